"""Inside tests, signed distances, SDF grids and intersection volumes where open3d cannot be imported: the torch
fallback (winding number + point_mesh_distance) against trimesh, an analytic sphere and the open3d path."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import trimesh

import haco_grasp.geometry.sdf as sdf_module
from haco_grasp.geometry.sdf import SdfGrid, inside_mesh, signed_distance, winding_number
from haco_grasp.geometry.volume import intersection_volume
from haco_grasp.objects.procedural import make_object
from tests.helpers import run_python_without

HAS_OPEN3D = importlib.util.find_spec("open3d") is not None


@pytest.fixture
def no_open3d(monkeypatch):
    """The module answers as where `import open3d` fails."""
    monkeypatch.setattr(sdf_module, "_OPEN3D", False)


def test_winding_number_is_one_inside_zero_outside():
    mug = make_object("mug")  # not convex: a handle and a cavity
    mesh = trimesh.Trimesh(mug.verts, mug.faces, process=False)
    rng = np.random.default_rng(0)
    low, high = mug.verts.min(0) - 0.01, mug.verts.max(0) + 0.01
    points = rng.uniform(low, high, size=(2000, 3))
    distance = np.abs(trimesh.proximity.signed_distance(mesh, points))
    clear = distance > 1e-3
    number = winding_number(torch.from_numpy(points), torch.from_numpy(mug.verts), torch.from_numpy(mug.faces))
    contains = mesh.contains(points)
    assert 30 < contains[clear].sum() < clear.sum() - 30  # both kinds of points (a thin-walled mug)
    np.testing.assert_allclose(number.numpy()[clear], contains[clear].astype(np.float64), atol=1e-6)
    # flipped faces flip the sign; blocks change nothing
    flipped = winding_number(
        torch.from_numpy(points), torch.from_numpy(mug.verts), torch.from_numpy(mug.faces[:, ::-1].copy())
    )
    torch.testing.assert_close(flipped, -number)
    blocked = winding_number(
        torch.from_numpy(points), torch.from_numpy(mug.verts), torch.from_numpy(mug.faces), max_pairs=1000
    )
    torch.testing.assert_close(blocked, number)


def test_fallback_inside_and_signed_distance(no_open3d):
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.03)
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.05, 0.05, size=(600, 3))
    radius = np.linalg.norm(points, axis=1)
    clear = np.abs(radius - 0.03) > 1e-3
    inside = inside_mesh(points, sphere.vertices, sphere.faces)
    np.testing.assert_array_equal(inside, sphere.contains(points))
    ours = signed_distance(points, sphere.vertices, sphere.faces)
    theirs = -trimesh.proximity.ProximityQuery(sphere).signed_distance(points)  # trimesh: positive inside
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    assert np.all(np.sign(ours[clear]) == np.where(radius[clear] < 0.03, -1.0, 1.0))
    grad_points = torch.from_numpy(points[:50]).requires_grad_(True)
    torch_sdf = signed_distance(grad_points, torch.from_numpy(sphere.vertices), torch.from_numpy(sphere.faces))
    np.testing.assert_allclose(torch_sdf.detach().numpy(), ours[:50], atol=1e-9)
    torch_sdf.sum().backward()
    assert torch.isfinite(grad_points.grad).all()


@pytest.mark.skipif(not HAS_OPEN3D, reason="compares with open3d")
def test_fallback_matches_open3d_grids_and_volumes(monkeypatch):
    can = make_object("can")
    hand = trimesh.creation.icosphere(subdivisions=3, radius=0.025)
    hand.apply_translation(can.verts.max(0) - 0.01)  # overlaps the can's rim
    with_open3d = (
        SdfGrid.from_mesh(can.verts, can.faces, pitch=0.006, padding=0.01),
        intersection_volume(hand.vertices, hand.faces, can.verts, can.faces, pitch=0.003, cap_hand=False),
    )
    monkeypatch.setattr(sdf_module, "_OPEN3D", False)
    grid = SdfGrid.from_mesh(can.verts, can.faces, pitch=0.006, padding=0.01)
    volume = intersection_volume(hand.vertices, hand.faces, can.verts, can.faces, pitch=0.003, cap_hand=False)
    torch.testing.assert_close(grid.values, with_open3d[0].values, atol=2e-6, rtol=0)  # open3d: float32
    assert with_open3d[1] > 1.0 and volume == pytest.approx(with_open3d[1], rel=0.02)


def test_a_grid_is_built_in_a_process_where_open3d_cannot_be_imported():
    code = (
        "import sys\n"
        "from haco_grasp.geometry.sdf import sdf_grid\n"
        "from haco_grasp.objects.procedural import make_object\n"
        "ball = make_object('ball')\n"
        "grid = sdf_grid(ball.verts, ball.faces, pitch=0.01, padding=0.01)\n"
        "print(float(grid.values.min()), float(grid.values.max()), 'open3d' in sys.modules)\n"
    )
    out = run_python_without(["open3d"], code)
    assert out.returncode == 0, out.stderr[-2000:]
    low, high, imported = out.stdout.split()
    assert float(low) < -0.01 < 0.0 < float(high) and imported == "False"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_winding_number_on_cuda_equals_the_cpu():
    can = make_object("can")
    points = torch.from_numpy(np.random.default_rng(3).uniform(-0.06, 0.06, size=(5000, 3)))
    verts, faces = torch.from_numpy(can.verts), torch.from_numpy(can.faces)
    torch.testing.assert_close(winding_number(points.cuda(), verts, faces).cpu(), winding_number(points, verts, faces))
