"""The torch ray caster (``RaycastRenderer(backend="torch")``, ``ImageConfig.renderer="torch"``), which needs no
open3d: its kernel against a per-ray, per-triangle Moller-Trumbore loop in float64, its renders against the numpy
rasteriser (the reference) and the open3d backend, and a synthetic crop made with open3d blocked."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from haco_grasp.data.images import ImageConfig, _layers, _scene, render_grasp_image
from haco_grasp.errors import InputError
from haco_grasp.viz.raycast import RaycastRenderer, cast_camera_rays
from haco_grasp.viz.render import Camera, render
from tests.data.test_images import build_grasp
from tests.helpers import run_python_without

HAS_OPEN3D = importlib.util.find_spec("open3d") is not None


def _moller_trumbore(origin: np.ndarray, direction: np.ndarray, triangles: np.ndarray):
    """Nearest two-sided hit of one ray, triangle by triangle: (t, face, barycentric) or (inf, -1, None)."""
    best = (np.inf, -1, None)
    for face, (v0, v1, v2) in enumerate(triangles):
        e1, e2 = v1 - v0, v2 - v0
        p = np.cross(direction, e2)
        det = e1 @ p
        if abs(det) < 1e-15:
            continue
        s = origin - v0
        u = (s @ p) / det
        q = np.cross(s, e1)
        v = (direction @ q) / det
        t = (e2 @ q) / det
        if u < 0 or v < 0 or u + v > 1 or t <= 0:
            continue
        if t < best[0]:
            best = (t, face, np.array([1.0 - u - v, u, v]))
    return best


def test_kernel_matches_a_triangle_by_triangle_loop():
    rng = np.random.default_rng(0)
    centres = rng.uniform(-0.05, 0.05, size=(40, 1, 3)) + np.array([0.0, 0.0, 0.5])
    triangles = centres + rng.normal(scale=0.02, size=(40, 3, 3))  # overlapping, random orientation
    origin = np.array([0.01, -0.02, 0.0])
    directions = np.concatenate(
        [rng.uniform(-0.15, 0.15, size=(300, 2)), np.ones((300, 1))], axis=1
    )  # camera-like rays, z = 1
    directions[:5, 2] = -1.0  # looking away: misses
    t, face, bary = cast_camera_rays(
        torch.from_numpy(origin), torch.from_numpy(directions), torch.from_numpy(triangles)
    )
    hits = 0
    for index, direction in enumerate(directions):
        t_ref, face_ref, bary_ref = _moller_trumbore(origin, direction, triangles)
        if face_ref < 0:
            assert int(face[index]) == -1 and np.isinf(float(t[index])), index
            continue
        hits += 1
        assert int(face[index]) == face_ref, index
        assert abs(float(t[index]) - t_ref) < 1e-5 * t_ref
        np.testing.assert_allclose(bary[index].numpy(), bary_ref, atol=1e-4)
    assert 30 < hits < 295  # the rays hit and miss
    # chunking changes the hits not at all, the values only by the GEMM's rounding
    again = cast_camera_rays(
        torch.from_numpy(origin), torch.from_numpy(directions), torch.from_numpy(triangles), max_elements=97
    )
    torch.testing.assert_close(again[1], face, rtol=0, atol=0)
    torch.testing.assert_close(again[0], t, rtol=1e-6, atol=0)
    torch.testing.assert_close(again[2], bary, rtol=0, atol=1e-6)
    # no rays, no triangles
    empty = cast_camera_rays(torch.zeros(3), torch.zeros((0, 3)), torch.from_numpy(triangles))
    assert empty[0].shape == (0,)
    none = cast_camera_rays(torch.zeros(3), torch.from_numpy(directions), torch.zeros((0, 3, 3)))
    assert (none[1] == -1).all() and torch.isinf(none[0]).all()


def test_shared_edges_are_watertight():
    """A fan of triangles around one vertex: every ray through the fan's disc hits exactly one of them."""
    angles = np.linspace(0.0, 2.0 * np.pi, 13)[:-1]
    rim = np.stack([0.03 * np.cos(angles), 0.03 * np.sin(angles), 0.4 + 0.01 * np.sin(3 * angles)], axis=1)
    centre = np.array([0.0, 0.0, 0.41])
    triangles = np.stack([np.stack([centre, rim[i], rim[(i + 1) % 12]]) for i in range(12)])
    # rays through the centre, along the spokes and at random points of the inner disc
    radius = np.concatenate([np.zeros(1), np.full(12, 0.015), np.random.default_rng(1).uniform(0, 0.02, 500)])
    phase = np.concatenate([np.zeros(1), angles, np.random.default_rng(2).uniform(0, 2 * np.pi, 500)])
    targets = np.stack([radius * np.cos(phase), radius * np.sin(phase), np.full_like(radius, 0.4)], axis=1)
    t, face, _ = cast_camera_rays(torch.zeros(3), torch.from_numpy(targets / 0.4), torch.from_numpy(triangles))
    assert (face >= 0).all() and torch.isfinite(t).all()


@pytest.fixture(scope="module")
def grasps():
    return [build_grasp(0), build_grasp(2, mirror=True)]


def test_torch_renders_match_the_rasteriser_and_open3d(grasps):
    for index, grasp in enumerate(grasps):
        layers = _layers(_scene(grasp), (0.8, 0.6, 0.5), (0.2, 0.4, 0.8), smooth_object=True)
        centre = grasp.hand_joints.mean(axis=0)
        caster = RaycastRenderer(layers, backend="torch", device="cpu")
        for eye_offset in ((0.0, 0.0, -0.4), (0.3, -0.2, 0.25)):
            camera = Camera.look_at(centre + np.asarray(eye_offset), centre, fov_deg=35.0, width=64, height=64)
            light = (0.2, -0.5, -0.8) if index else None
            reference = render(layers, camera, background=(0.2, 0.3, 0.4), light_dir=light, supersample=2)
            fast = caster.render(camera, background=(0.2, 0.3, 0.4), light_dir=light, supersample=2)
            for layer in (0, 1):
                union = ((reference.mask == layer) | (fast.mask == layer)).sum()
                assert ((reference.mask == layer) & (fast.mask == layer)).sum() >= 0.98 * union, layer
            both = np.isfinite(reference.depth) & np.isfinite(fast.depth)
            assert np.median(np.abs(reference.depth[both] - fast.depth[both])) < 1e-6
            assert np.abs(reference.depth[both] - fast.depth[both]).max() < 2e-4  # float32 rays at grazing hits
            diff = np.abs(reference.image.astype(np.int64) - fast.image.astype(np.int64))
            assert diff.mean() <= 1.0 and (diff.max(axis=-1) > 8).mean() <= 0.01
            if HAS_OPEN3D:
                embree = RaycastRenderer(layers).render(
                    camera, background=(0.2, 0.3, 0.4), light_dir=light, supersample=2
                )
                assert (embree.mask == fast.mask).mean() > 0.999
    with pytest.raises(InputError, match="backend"):
        RaycastRenderer(layers, backend="optix")


def test_crops_need_no_open3d_with_the_torch_renderer(grasps):
    config = ImageConfig(size=48, candidate_size=24, renderer="torch")
    crop = render_grasp_image(grasps[0], 3, config)
    assert crop.hand_mask.any() and crop.image.shape == (48, 48, 3)
    # the same random stream as the open3d renderer: the same camera and appearance
    if HAS_OPEN3D:
        embree = render_grasp_image(grasps[0], 3, ImageConfig(size=48, candidate_size=24))
        np.testing.assert_allclose(crop.K, embree.K)
        assert crop.params == embree.params
        union = (crop.hand_mask | embree.hand_mask).sum()
        assert (crop.hand_mask & embree.hand_mask).sum() >= 0.98 * union
    code = (
        "import sys\n"
        "from haco_grasp.data.images import ImageConfig, render_grasp_image\n"
        "from tests.data.test_images import build_grasp\n"
        "crop = render_grasp_image(build_grasp(0), 3, ImageConfig(size=32, candidate_size=16, renderer='torch'))\n"
        "print(int(crop.hand_mask.sum()), 'open3d' in sys.modules)\n"
    )
    out = run_python_without(["open3d"], code)
    assert out.returncode == 0, out.stderr[-2000:]
    pixels, imported = out.stdout.split()
    assert int(pixels) > 0 and imported == "False"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_kernel_on_cuda_equals_the_cpu(grasps):
    layers = _layers(_scene(grasps[0]), smooth_object=True)
    triangles = torch.from_numpy(np.concatenate([layer.verts[layer.faces] for layer in layers]))
    centre = grasps[0].hand_joints.mean(axis=0)
    camera = Camera.look_at(centre + np.array([0.0, 0.0, -0.4]), centre, fov_deg=35.0, width=96, height=96)
    u, v = np.meshgrid(np.arange(96.0), np.arange(96.0))
    pixels = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
    directions = torch.from_numpy(pixels @ (camera.R.T @ np.linalg.inv(camera.K)).T)
    origin = torch.from_numpy(np.asarray(camera.center, dtype=np.float64))
    cpu = cast_camera_rays(origin, directions, triangles)
    gpu = cast_camera_rays(origin.cuda(), directions.cuda(), triangles.cuda())
    assert (gpu[1].cpu() == cpu[1]).float().mean() > 0.999 and (cpu[1] >= 0).any()
    both = (gpu[1].cpu() == cpu[1]) & (cpu[1] >= 0)
    torch.testing.assert_close(gpu[0].cpu()[both], cpu[0][both], rtol=1e-5, atol=0)
