"""Tests of the synthetic grasp image renderer (haco_grasp.data.images).

References are independent of the module: a textbook K [R | t] projection written here, the crop mapping written
from the definition of the crop box, trimesh's ray caster for depth, and scipy's distance transform for the
joint-on-hand check. The test grasp (synthetic MANO hand in a power pose around a procedural can, moved by a
random rigid transform) is built here, so the tests do not depend on the synthetic grasp generator.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from scipy import ndimage
from scipy.spatial.transform import Rotation

from haco_grasp.data.grasp import Grasp
from haco_grasp.data.images import (
    BACKGROUND_KINDS,
    GraspImage,
    ImageConfig,
    crop_intrinsics,
    render_grasp_image,
    render_grasp_images,
    write_image_dataset,
)
from haco_grasp.errors import InputError
from haco_grasp.hand import load_mano
from haco_grasp.hand.assets import synthetic_mano_root
from haco_grasp.hand.poses import synthetic_grasp_poses
from haco_grasp.objects.procedural import make_object

# Small, fast settings for tests that do not look at fine detail.
SMALL = ImageConfig(size=64, supersample=1, candidate_size=32)

# ------------------------------------------------------------------------------------------------------------------
# test grasps (built here)
# ------------------------------------------------------------------------------------------------------------------


def build_grasp(seed: int = 0, family: str = "power", mirror: bool = False) -> Grasp:
    """Synthetic right hand around a can, both moved by one random rigid transform; ``mirror`` makes a left hand."""
    rng = np.random.default_rng(seed)
    layer = load_mano(root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True, dtype=torch.float64)
    pose = synthetic_grasp_poses(0)[family][seed % 8]
    orient = Rotation.random(random_state=seed).as_rotvec()
    transl = rng.uniform(-0.3, 0.3, size=3)
    rest = layer(hand_pose=torch.as_tensor(pose[None]))
    posed = layer(
        global_orient=torch.as_tensor(orient[None]),
        hand_pose=torch.as_tensor(pose[None]),
        transl=torch.as_tensor(transl[None]),
    )
    rotation = Rotation.from_rotvec(orient).as_matrix()
    offset = posed.verts[0, 0].numpy() - rotation @ rest.verts[0, 0].numpy()  # posed = rotation @ rest + offset
    can = make_object("can")
    obj_rotation = rotation  # can axis (z) along the hand's lateral axis, across the palm
    obj_translation = rotation @ np.array([0.02, -0.045, 0.0]) + offset
    verts, joints = posed.verts[0].numpy(), posed.joints[0].numpy()
    faces = np.asarray(layer.faces, dtype=np.int64)
    canonical, obj_faces = can.verts, can.faces
    if mirror:  # mirror the whole scene across the world x = 0 plane: a left hand holding a mirrored can
        flip = np.diag([-1.0, 1.0, 1.0])
        verts, joints, faces = verts @ flip, joints @ flip, faces[:, ::-1].copy()
        canonical, obj_faces = canonical @ flip, obj_faces[:, ::-1].copy()
        obj_rotation, obj_translation = flip @ obj_rotation @ flip, flip @ obj_translation
    world_can = trimesh.Trimesh(canonical @ obj_rotation.T + obj_translation, obj_faces, process=False)
    _, distance, _ = trimesh.proximity.closest_point(world_can, verts)
    return Grasp(
        object_name="can",
        obj_verts_canonical=canonical,
        obj_faces=obj_faces,
        obj_rotation=obj_rotation,
        obj_translation=obj_translation,
        global_orient=orient,
        hand_pose=pose,
        betas=np.zeros(10),
        transl=transl,
        hand_verts=verts,
        hand_joints=joints,
        hand_faces=faces,
        hand_contact=(distance < 0.01).astype(np.float64),
        side="left" if mirror else "right",
    )


def textbook_project(K: np.ndarray, R: np.ndarray, t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """K [R | t] projection, one point at a time."""
    out = []
    for point in points:
        hom = K @ (R @ point + t)
        out.append(hom[:2] / hom[2])
    return np.array(out)


def object_box_corners(grasp: Grasp) -> np.ndarray:
    low, high = grasp.obj_verts_canonical.min(axis=0), grasp.obj_verts_canonical.max(axis=0)
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
    return corners @ grasp.obj_rotation.T + grasp.obj_translation


@pytest.fixture(scope="module")
def grasp() -> Grasp:
    return build_grasp(0)


@pytest.fixture(scope="module")
def left_grasp() -> Grasp:
    return build_grasp(0, mirror=True)


@pytest.fixture(scope="module", params=["right", "left"])
def scene(request, grasp: Grasp, left_grasp: Grasp) -> tuple[Grasp, GraspImage]:
    """A grasp and its default-config rendering, for a right hand and a (mirrored) left hand."""
    chosen = grasp if request.param == "right" else left_grasp
    return chosen, render_grasp_image(chosen, 3)


# ------------------------------------------------------------------------------------------------------------------
# camera, crop and annotations
# ------------------------------------------------------------------------------------------------------------------


def test_camera_projects_joints_to_joints_2d(scene):
    grasp, rendered = scene
    size = rendered.image.shape[0]
    assert rendered.image.shape == (size, size, 3) and rendered.image.dtype == np.uint8 and size == 256
    np.testing.assert_allclose(rendered.R @ rendered.R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rendered.R) > 0.0
    expected = textbook_project(rendered.K, rendered.R, rendered.t, grasp.hand_joints)
    np.testing.assert_allclose(rendered.joints_2d, expected, atol=1e-6, rtol=0)
    joints_cam = np.array([rendered.R @ joint + rendered.t for joint in grasp.hand_joints])
    np.testing.assert_allclose(rendered.joints_3d_cam, joints_cam, atol=1e-12)
    assert np.all(joints_cam[:, 2] > 0.0)
    # The Camera view of the result gives the same pixels.
    np.testing.assert_allclose(rendered.camera.project(grasp.hand_joints).pixels, expected, atol=1e-6)


def test_crop_box_is_the_enlarged_square_hand_object_box(scene):
    grasp, rendered = scene
    x0, y0, x1, y1 = rendered.crop_box
    side = x1 - x0
    assert side > 0.0 and y1 - y0 == pytest.approx(side, rel=1e-12)
    np.testing.assert_array_equal(rendered.full_size, [640, 480])
    # Full-sensor projection, then the crop mapping from the definition of the box: edge x0 -> -0.5, x1 -> size - 0.5.
    size = rendered.image.shape[0]
    full = textbook_project(rendered.K_full, rendered.R, rendered.t, grasp.hand_joints)
    scale = size / side
    in_crop = (full - np.array([x0, y0])) * scale - 0.5
    np.testing.assert_allclose(rendered.joints_2d, in_crop, atol=1e-6, rtol=0)
    # The tight box of joints + object box corners is 1/crop_scale of the crop along its longer side and centred.
    points = np.concatenate([grasp.hand_joints, object_box_corners(grasp)])
    crop_points = textbook_project(rendered.K, rendered.R, rendered.t, points)
    low, high = crop_points.min(axis=0), crop_points.max(axis=0)
    assert np.max(high - low) == pytest.approx(size / 1.3, rel=1e-9)
    np.testing.assert_allclose(0.5 * (low + high), [(size - 1) / 2.0] * 2, atol=1e-6)
    # Hence every joint is inside the crop with a margin of (1 - 1/1.3) / 2 of its size.
    margin = (1.0 - 1.0 / 1.3) / 2.0 * size - 0.5 - 1e-6
    assert np.all(rendered.joints_2d >= margin) and np.all(rendered.joints_2d <= size - 1 - margin)


def test_crop_intrinsics_map_box_edges_to_crop_edges():
    K_full = np.array([[600.0, 0.0, 319.5], [0.0, 610.0, 239.5], [0.0, 0.0, 1.0]])
    box = np.array([100.25, 50.5, 300.25, 250.5])
    K = crop_intrinsics(K_full, box, 128)
    # A camera-frame point that lands on the full-sensor pixel (u, v) must land on ((u - x0) * s - 0.5, ...).
    for u, v in [(box[0], box[1]), (box[2], box[3]), (200.0, 120.0)]:
        ray = np.linalg.solve(K_full, [u, v, 1.0]) * 0.7
        hom = K @ ray
        expected = [(u - box[0]) * 128 / 200.0 - 0.5, (v - box[1]) * 128 / 200.0 - 0.5]
        np.testing.assert_allclose(hom[:2] / hom[2], expected, atol=1e-9)
    with pytest.raises(InputError, match="square"):
        crop_intrinsics(K_full, [0.0, 0.0, 10.0, 20.0], 64)


def test_masks_and_joints_land_on_the_hand(scene):
    _, rendered = scene
    hand, obj = rendered.hand_mask, rendered.obj_mask
    assert hand.dtype == bool and hand.shape == rendered.image.shape[:2]
    assert hand.sum() > 0.03 * hand.size and obj.sum() > 0
    assert not np.any(hand & obj)
    # Every joint lands on or near the hand (joints such as the thumb's CMC may sit a little outside the silhouette),
    # unless the object is drawn in front of it at that pixel.
    distance_to_hand = ndimage.distance_transform_edt(~hand)
    cols, rows = np.rint(rendered.joints_2d).astype(int).T
    on_hand = distance_to_hand[rows, cols] <= 1.0
    near_hand = distance_to_hand[rows, cols] <= 0.03 * hand.shape[0]
    behind_object = obj[rows, cols] & (rendered.depth[rows, cols] < rendered.joints_3d_cam[:, 2])
    assert np.all(near_hand | behind_object)
    assert on_hand.sum() >= 5  # the object hides at most part of the hand


def test_depth_matches_trimesh_ray_cast(scene):
    grasp, rendered = scene
    rng = np.random.default_rng(0)
    depth = rendered.depth
    assert depth.dtype == np.float32
    assert np.all(np.isinf(depth[~(rendered.hand_mask | rendered.obj_mask)]))
    assert np.all(np.isfinite(depth[rendered.hand_mask | rendered.obj_mask]))
    inner = ndimage.binary_erosion(rendered.hand_mask, np.ones((3, 3), dtype=bool))
    picked = np.argwhere(inner)[rng.choice(int(inner.sum()), size=50, replace=False)]
    rows, cols = picked[:, 0], picked[:, 1]
    pixels = np.stack([cols, rows, np.ones_like(cols)], axis=1).astype(np.float64)
    directions = np.linalg.solve(rendered.K, pixels.T).T @ rendered.R  # camera -> world: d @ R
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origin = -rendered.R.T @ rendered.t
    hand_mesh = trimesh.Trimesh(grasp.hand_verts, grasp.hand_faces, process=False)
    obj_mesh = trimesh.Trimesh(grasp.obj_verts, grasp.obj_faces, process=False)
    scene = trimesh.util.concatenate([hand_mesh, obj_mesh])
    locations, ray_index, tri_index = scene.ray.intersects_location(
        np.repeat(origin[None], 50, axis=0), directions, multiple_hits=False
    )
    assert len(np.unique(ray_index)) == 50
    assert np.all(tri_index < len(grasp.hand_faces))  # the nearest surface is the hand
    hit_z = (locations @ rendered.R.T + rendered.t)[:, 2]
    np.testing.assert_allclose(depth[rows[ray_index], cols[ray_index]], hit_z, atol=1e-4, rtol=0)


def test_palm_side_views_show_contact(grasp, left_grasp):
    """The hand-anchored frame puts azimuth 0 on the palm side: the can (held in the palm) is nearer the camera."""
    config = ImageConfig(size=64, supersample=1, azimuth_range_deg=(0.0, 0.0), elevation_range_deg=(0.0, 0.0))
    back = ImageConfig(size=64, supersample=1, azimuth_range_deg=(180.0, 180.0), elevation_range_deg=(0.0, 0.0))
    for hand_grasp in (grasp, left_grasp):
        palm_view = render_grasp_image(hand_grasp, 1, config)
        back_view = render_grasp_image(hand_grasp, 1, back)
        obj_centre = 0.5 * (object_box_corners(hand_grasp).min(axis=0) + object_box_corners(hand_grasp).max(axis=0))
        hand_centre = hand_grasp.hand_verts.mean(axis=0)
        for view, sign in ((palm_view, 1.0), (back_view, -1.0)):
            obj_z = (view.R @ obj_centre + view.t)[2]
            hand_z = (view.R @ hand_centre + view.t)[2]
            assert sign * (hand_z - obj_z) > 0.0
        assert palm_view.params["visible_contact"] > back_view.params["visible_contact"]


# ------------------------------------------------------------------------------------------------------------------
# randomness and appearance
# ------------------------------------------------------------------------------------------------------------------


def test_same_seed_same_image_and_different_seeds_differ(grasp):
    first = render_grasp_image(grasp, 11, SMALL)
    again = render_grasp_image(grasp, np.random.default_rng(11), SMALL)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.K, again.K)
    np.testing.assert_array_equal(first.R, again.R)
    assert first.params == again.params
    other = render_grasp_image(grasp, 12, SMALL)
    assert not np.allclose(first.R, other.R)
    assert np.mean(first.image != other.image) > 0.5


def background_pixels(result: GraspImage) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood shows neither hand nor object (free of anti-aliasing blends)."""
    empty = ndimage.binary_erosion(~(result.hand_mask | result.obj_mask), np.ones((3, 3), dtype=bool))
    return result.image[empty].astype(np.float64)


def test_backgrounds_vary_across_seeds_and_kinds(grasp):
    stats = []
    for seed in range(6):
        pixels = background_pixels(render_grasp_image(grasp, seed, SMALL))
        stats.append(np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)]))
    stats = np.array(stats)
    pairwise = np.abs(stats[:, None] - stats[None]).max(axis=2)
    assert np.all(pairwise[~np.eye(6, dtype=bool)] > 2.0)  # no two backgrounds share their colour statistics
    for kind in BACKGROUND_KINDS:
        result = render_grasp_image(grasp, 0, ImageConfig(size=64, supersample=1, background=kind))
        assert result.params["background"] == kind
        assert background_pixels(result).std(axis=0).max() > 4.0  # textured, not flat


@pytest.mark.parametrize("supersample", [1, 2])
def test_plain_background_is_constant(grasp, supersample):
    config = ImageConfig(size=64, supersample=supersample, background="plain", plain_color=(0.2, 0.4, 0.6))
    result = render_grasp_image(grasp, 5, config)
    pixels = background_pixels(result)
    assert len(pixels) > 100
    np.testing.assert_array_equal(pixels, np.broadcast_to([51.0, 102.0, 153.0], pixels.shape))
    random_plain = [
        background_pixels(render_grasp_image(grasp, seed, ImageConfig(size=64, supersample=1, background="plain")))
        for seed in (0, 1)
    ]
    for pixels in random_plain:
        assert np.ptp(pixels, axis=0).max() == 0.0
    assert not np.array_equal(random_plain[0][0], random_plain[1][0])


def test_view_fallback_when_no_candidate_passes(grasp, caplog):
    config = ImageConfig(size=32, supersample=1, candidate_size=32, max_view_tries=2, min_visible_contact=1.0)
    with caplog.at_level(logging.WARNING, logger="haco_grasp.data.images"):
        result = render_grasp_image(grasp, 0, config)
    assert "keeping the best" in caplog.text
    assert result.hand_mask.any()


# ------------------------------------------------------------------------------------------------------------------
# batch rendering and the on-disk dataset
# ------------------------------------------------------------------------------------------------------------------


def test_write_image_dataset_round_trip(grasp, tmp_path):
    grasps = [grasp, build_grasp(1)]
    root = write_image_dataset(grasps, tmp_path / "ds", seed=7, config=SMALL, progress=False)
    assert (root / "config.json").is_file()
    meta = json.loads((root / "config.json").read_text())
    assert meta["seed"] == 7 and meta["count"] == 2 and meta["config"]["size"] == 64
    assert ImageConfig.from_dict(meta["config"]) == SMALL
    with np.load(root / "annotations.npz") as data:  # no pickled objects needed
        arrays = {key: data[key] for key in data.files}
    expected_shapes = {
        "K": (2, 3, 3),
        "R": (2, 3, 3),
        "t": (2, 3),
        "K_full": (2, 3, 3),
        "full_size": (2, 2),
        "crop_box": (2, 4),
        "joints_2d": (2, 21, 2),
        "joints_3d_cam": (2, 21, 3),
        "hand_verts_cam": (2, 778, 3),
        "obj_rotation_cam": (2, 3, 3),
        "obj_translation_cam": (2, 3),
        "hand_contact": (2, 778),
        "grasp_index": (2,),
        "object_names": (2,),
        "image_files": (2,),
        "hand_pixels": (2,),
    }
    for key, shape in expected_shapes.items():
        assert arrays[key].shape == shape, key
    np.testing.assert_array_equal(arrays["grasp_index"], [0, 1])
    assert list(arrays["object_names"]) == ["can", "can"]
    np.testing.assert_array_equal(arrays["hand_contact"][1], grasps[1].hand_contact)
    in_memory = render_grasp_images(grasps, seed=7, config=SMALL, progress=False)
    for index, name in enumerate(arrays["image_files"]):
        image = np.asarray(Image.open(root / name))
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, in_memory[index].image)
        np.testing.assert_allclose(arrays["joints_2d"][index], in_memory[index].joints_2d)
        # Camera-frame annotations agree with the world-frame grasp and the camera.
        R, t = arrays["R"][index], arrays["t"][index]
        np.testing.assert_allclose(arrays["hand_verts_cam"][index], grasps[index].hand_verts @ R.T + t, atol=1e-6)
        obj_cam = grasps[index].obj_verts_canonical @ arrays["obj_rotation_cam"][index].T
        np.testing.assert_allclose(
            obj_cam + arrays["obj_translation_cam"][index], grasps[index].obj_verts @ R.T + t, atol=1e-9
        )
        assert arrays["hand_pixels"][index] == in_memory[index].hand_mask.sum()


def test_input_validation(grasp):
    with pytest.raises(InputError, match="crop_scale"):
        ImageConfig(crop_scale=-1.0)
    with pytest.raises(InputError, match="elevation_range_deg"):
        ImageConfig(elevation_range_deg=(-90.0, 0.0))
    with pytest.raises(InputError, match="background"):
        ImageConfig(background="marble")
    with pytest.raises(InputError, match="focal_range_px"):
        ImageConfig(focal_range_px=(700.0, 500.0))
    with pytest.raises(InputError, match="skin_tones"):
        ImageConfig(skin_tones=((1.5, 0.0, 0.0),))
    with pytest.raises(InputError, match="Grasp"):
        render_grasp_image("not a grasp", 0, SMALL)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="rng_or_seed"):
        render_grasp_image(grasp, -1, SMALL)
    with pytest.raises(InputError, match="hand_joints"):
        render_grasp_image(grasp.with_hand(hand_joints=grasp.hand_joints[:20]), 0, SMALL)
    with pytest.raises(InputError, match="config"):
        render_grasp_image(grasp, 0, {"size": 64})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown ImageConfig field"):
        ImageConfig.from_dict({"sise": 64})
    with pytest.raises(InputError, match="at least one"):
        write_image_dataset([], "/nonexistent/never-written", progress=False)
