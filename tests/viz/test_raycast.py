"""The open3d ray-cast renderer against the numpy rasteriser (the reference), and its use by data.images.

Thresholds are set so that a wrong convention fails them: a half-pixel shift of the rays drops the mask IoU of a
hand at 128 px to about 0.9 and moves thousands of pixels by more than 8 grey levels; a flipped normal or light
changes the mean colour by tens of grey levels.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("open3d")

from haco_grasp.data.images import ImageConfig, _layers, _scene, render_grasp_image  # noqa: E402
from haco_grasp.errors import InputError  # noqa: E402
from haco_grasp.viz.raycast import RaycastRenderer, raycast_render  # noqa: E402
from haco_grasp.viz.render import Camera, MeshLayer, render  # noqa: E402
from tests.data.test_images import build_grasp  # noqa: E402

# Agreement thresholds of the two renderers (per layer mask IoU, colour in 8-bit grey levels).
MIN_MASK_IOU = 0.98
MAX_MEAN_COLOR_DIFF = 1.0
MAX_FRACTION_OVER_8 = 0.01


def _mask_iou(a: np.ndarray, b: np.ndarray, layer: int) -> float:
    union = ((a == layer) | (b == layer)).sum()
    return 1.0 if union == 0 else float(((a == layer) & (b == layer)).sum() / union)


def _assert_agree(reference, fast, layers=(0, 1)) -> None:
    for layer in layers:
        assert _mask_iou(reference.mask, fast.mask, layer) >= MIN_MASK_IOU, layer
    both = np.isfinite(reference.depth) & np.isfinite(fast.depth)
    assert both.sum() > 0
    assert np.abs(reference.depth[both] - fast.depth[both]).max() < 1e-5  # float32 ray casting vs float64
    same = (reference.mask == fast.mask) & (reference.mask >= 0)
    # Pixels on an edge shared by two faces may go to either face (a tie at the same depth).
    assert (reference.face_index[same] == fast.face_index[same]).mean() > 0.95
    diff = np.abs(reference.image.astype(np.int64) - fast.image.astype(np.int64))
    assert diff.mean() <= MAX_MEAN_COLOR_DIFF
    assert (diff.max(axis=-1) > 8).mean() <= MAX_FRACTION_OVER_8


@pytest.fixture(scope="module")
def grasps():
    return [build_grasp(0), build_grasp(1, family="pinch"), build_grasp(2, mirror=True)]


@pytest.mark.parametrize("supersample", [1, 2])
def test_raycast_matches_rasteriser_on_grasp_views(grasps, supersample):
    for index, grasp in enumerate(grasps):
        scene = _scene(grasp)
        layers = _layers(scene, (0.8, 0.6, 0.5), (0.2, 0.4, 0.8), smooth_object=True)
        centre = grasp.hand_joints.mean(axis=0)
        caster = RaycastRenderer(layers)
        for eye_offset in ((0.0, 0.0, -0.4), (0.3, -0.2, 0.25)):
            camera = Camera.look_at(centre + np.asarray(eye_offset), centre, fov_deg=35.0, width=128, height=128)
            light = (0.2, -0.5, -0.8) if index % 2 else None
            reference = render(layers, camera, background=(0.2, 0.3, 0.4), light_dir=light, supersample=supersample)
            fast = caster.render(camera, background=(0.2, 0.3, 0.4), light_dir=light, supersample=supersample)
            _assert_agree(reference, fast)


def test_render_grasp_image_renderers_agree(grasps):
    config = ImageConfig(size=128, candidate_size=48)
    for grasp in grasps:
        for seed in (0, 5):
            reference = render_grasp_image(grasp, seed, ImageConfig(**{**config.__dict__, "renderer": "raster"}))
            fast = render_grasp_image(grasp, seed, config)
            # Same random stream consumed the same way: same camera, crop and appearance.
            np.testing.assert_allclose(fast.K, reference.K)
            np.testing.assert_allclose(fast.R, reference.R)
            assert fast.params["background"] == reference.params["background"]
            assert fast.params["skin_color"] == reference.params["skin_color"]
            for name in ("hand_mask", "obj_mask"):
                a, b = getattr(reference, name), getattr(fast, name)
                union = (a | b).sum()
                assert union == 0 or (a & b).sum() / union >= MIN_MASK_IOU, name
            diff = np.abs(reference.image.astype(np.int64) - fast.image.astype(np.int64))
            assert diff.mean() <= MAX_MEAN_COLOR_DIFF
            assert (diff.max(axis=-1) > 8).mean() <= MAX_FRACTION_OVER_8


def test_flat_layers_empty_layers_and_misses():
    square = MeshLayer(
        np.array([[-0.1, -0.1, 0.5], [0.1, -0.1, 0.5], [0.1, 0.1, 0.6], [-0.1, 0.1, 0.6]]),
        np.array([[0, 1, 2], [0, 2, 3]]),
        (0.9, 0.2, 0.1),
        smooth=False,
    )
    empty = MeshLayer(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), (0.1, 0.9, 0.1))
    camera = Camera.look_at((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), fov_deg=40.0, width=48, height=48)
    for layers in ([empty, square], [square]):
        reference = render(layers, camera, background=(1.0, 1.0, 1.0), supersample=2)
        fast = raycast_render(layers, camera, background=(1.0, 1.0, 1.0), supersample=2)
        _assert_agree(reference, fast, layers=range(len(layers)))
    # Looking away from everything: background only.
    away = Camera.look_at((0.0, 0.0, 0.0), (0.0, 0.0, -1.0), fov_deg=40.0, width=16, height=16)
    result = raycast_render([square], away, background=(0.0, 0.0, 1.0))
    assert (result.mask == -1).all() and np.isinf(result.depth).all() and (result.image[..., 2] == 255).all()


def test_with_colors_recolours_without_moving_anything(grasps):
    layers = _layers(_scene(grasps[0]))
    caster = RaycastRenderer(layers)
    centre = grasps[0].hand_joints.mean(axis=0)
    camera = Camera.look_at(centre + np.array([0.0, 0.0, -0.4]), centre, width=64, height=64)
    before = caster.render(camera)
    after = caster.with_colors([(0.0, 0.0, 1.0), (1.0, 0.0, 0.0)]).render(camera, supersample=1)
    np.testing.assert_array_equal(before.mask, after.mask)
    assert (after.image[after.mask == 0][:, 0] == 0).all() and (after.image[after.mask == 1][:, 2] == 0).all()
    with pytest.raises(InputError, match="one colour per layer"):
        caster.with_colors([(0.0, 0.0, 1.0)])


def test_input_validation(grasps):
    caster = RaycastRenderer(_layers(_scene(grasps[0])))
    camera = Camera.look_at((0.0, 0.0, -1.0), (0.0, 0.0, 0.0), width=8, height=8)
    with pytest.raises(InputError, match="supersample"):
        caster.render(camera, supersample=0)
    with pytest.raises(InputError, match="Camera"):
        caster.render("camera")
    with pytest.raises(InputError, match="MeshLayer"):
        RaycastRenderer([np.zeros((3, 3))])
    with pytest.raises(InputError, match="renderer"):
        ImageConfig(renderer="opengl")


def test_open3d_is_imported_lazily():
    code = (
        "import sys, haco_grasp.viz.raycast, haco_grasp.data.images, haco_grasp.contact.datasets; "
        "print('open3d' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_ray_window_changes_nothing(grasps, monkeypatch):
    caster = RaycastRenderer(_layers(_scene(grasps[1]), smooth_object=True))
    centre = grasps[1].hand_joints.mean(axis=0)
    camera = Camera.look_at(centre + np.array([0.1, -0.3, -0.3]), centre, fov_deg=60.0, width=96, height=80)
    u0, u1, v0, v1 = caster._pixel_window(camera)
    assert (u1 - u0 + 1) * (v1 - v0 + 1) < 96 * 80  # the window does cut rays here
    windowed = caster.render(camera, background=(0.5, 0.5, 0.5))
    monkeypatch.setattr(RaycastRenderer, "_pixel_window", lambda self, cam: (0, cam.width - 1, 0, cam.height - 1))
    full = caster.render(camera, background=(0.5, 0.5, 0.5))
    for name in ("image", "depth", "mask", "face_index"):
        np.testing.assert_array_equal(getattr(windowed, name), getattr(full, name))
