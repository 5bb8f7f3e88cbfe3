"""Contact datasets: image folders, the synthetic cache (cached = on the fly), grasp caches, DexYCB bbox_ho."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from haco_grasp.contact.datasets import (
    IMAGENET_NORMALIZATION,
    ContactDataset,
    DexYCBContactDataset,
    ImageFolderContactDataset,
    SyntheticContactDataset,
    enlarged_box,
    load_grasps,
    save_grasps,
)
from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import AssetError, InputError


def make_grasp(name: str, shift: float, seed: int) -> Grasp:
    """A cheap grasp: the synthetic flat hand with a procedural object pushed into its palm side."""
    from haco_grasp.geometry.labels import hand_contact_labels
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import load_mano
    from haco_grasp.objects.procedural import make_object

    layer = load_mano("right", synthetic_mano_root(), use_pca=False, flat_hand_mean=True, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    pose = torch.tensor(rng.normal(0, 0.15, size=(1, 45)))
    out = layer(global_orient=torch.zeros(1, 3, dtype=torch.float64), hand_pose=pose)
    verts, joints = out.verts[0].numpy(), out.joints[0].numpy()
    obj = make_object(name)
    translation = verts.mean(axis=0) + np.array([0.0, shift, 0.0])
    contact = hand_contact_labels(verts, obj.verts + translation, obj.faces).astype(np.float64)
    return Grasp(
        object_name=name, obj_verts_canonical=obj.verts, obj_faces=obj.faces, obj_rotation=np.eye(3),
        obj_translation=translation, global_orient=np.zeros(3), hand_pose=pose[0].numpy(), betas=np.zeros(10),
        transl=np.zeros(3), hand_verts=verts, hand_joints=joints, hand_faces=np.asarray(layer.faces),
        hand_contact=contact, grasp_type="power", object_id=seed, meta={"seed": seed},
    )  # fmt: skip


@pytest.fixture(scope="module")
def grasps() -> list[Grasp]:
    return [make_grasp("ball", 0.01, 0), make_grasp("box", 0.02, 1)]


@pytest.fixture(scope="module")
def image_config():  # noqa: ANN201
    from haco_grasp.data.images import ImageConfig

    return ImageConfig(size=48, supersample=1, candidate_size=24, max_view_tries=2)


def test_grasp_cache_roundtrip(tmp_path: Path, grasps: list[Grasp]) -> None:
    path = save_grasps(grasps, tmp_path / "g.npz")
    loaded = load_grasps(path)
    assert len(loaded) == 2
    for a, b in zip(grasps, loaded, strict=True):
        assert a.object_name == b.object_name and a.grasp_type == b.grasp_type and a.meta == b.meta
        np.testing.assert_array_equal(a.hand_contact, b.hand_contact)
        np.testing.assert_array_equal(a.obj_faces, b.obj_faces)
        assert a.object_id == b.object_id
    with pytest.raises(AssetError):
        load_grasps(tmp_path / "none.npz")


def test_image_folder_dataset(tmp_path: Path, grasps: list[Grasp], image_config) -> None:  # noqa: ANN001
    from PIL import Image

    from haco_grasp.data.images import write_image_dataset

    root = write_image_dataset(grasps, tmp_path / "imgs", seed=0, config=image_config, progress=False)
    dataset = ImageFolderContactDataset(root, size=48)
    assert isinstance(dataset, ContactDataset) and len(dataset) == 2
    np.testing.assert_array_equal(dataset.labels(), np.stack([g.hand_contact for g in grasps]).astype(np.float32))
    item = dataset[1]
    assert item["image"].shape == (3, 48, 48) and item["contact"].shape == (778,)
    raw = np.asarray(Image.open(root / "images" / "000001.png").convert("RGB")) / 255.0
    mean, std = np.array(IMAGENET_NORMALIZATION.mean), np.array(IMAGENET_NORMALIZATION.std)
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), (raw - mean) / std, atol=1e-5)
    assert item["meta"]["object_name"] == "box"
    held_out = ImageFolderContactDataset(root, exclude_objects=["box"], size=48)
    assert len(held_out) == 1 and held_out.object_names == ["ball"]
    only = ImageFolderContactDataset([root, root], objects=["box"], size=48)
    assert len(only) == 2
    # joints: the stored crop-pixel joints, scaled to the 48 px crop without augmentation ...
    with np.load(root / "annotations.npz") as data:
        stored, native = data["joints_2d"][1], data["full_size"][1]
    side = Image.open(root / "images" / "000001.png").size[0]
    np.testing.assert_allclose(item["joints_2d"].numpy(), stored * 48 / side, atol=1e-4)
    train = ImageFolderContactDataset(root, train=True, size=48, seed=1)
    # ... and moved by the augmentation's own warp
    from haco_grasp.contact.augment import augment_crop, sample_augment_params, transform_points

    params = sample_augment_params(np.random.default_rng([1, 0, 1]), train.augment)
    affine = augment_crop(np.zeros((side, side, 3), np.uint8), (0.0, 0.0, side, side), params, 48).affine
    np.testing.assert_allclose(train[1]["joints_2d"].numpy(), transform_points(stored, affine), atol=1e-4)
    assert native.shape == (2,)
    a, b = train[0]["image"], train[0]["image"]
    torch.testing.assert_close(a, b)  # same (seed, epoch, index) -> same augmentation
    train.set_epoch(1)
    assert not torch.allclose(a, train[0]["image"])
    with pytest.raises(AssetError):
        ImageFolderContactDataset(tmp_path / "missing")
    with pytest.raises(IndexError):
        dataset[5]


def test_synthetic_cache_equals_on_the_fly(tmp_path: Path, grasps: list[Grasp], image_config) -> None:  # noqa: ANN001
    save_grasps(grasps, tmp_path / "grasps" / "chunk_0000.npz")  # pre-filled cache: no grasp planning here
    common = {"num_chunks": 1, "views_per_grasp": 2, "objects": ["ball", "box"], "image_config": image_config,
              "size": 48, "progress": False}  # fmt: skip
    cached = SyntheticContactDataset(tmp_path, **common)
    assert len(cached) == 4 and (tmp_path / "views" / "chunk_0000" / "annotations.npz").is_file()
    fly = SyntheticContactDataset(tmp_path, render_on_the_fly=True, **common)
    assert len(fly) == 4
    np.testing.assert_array_equal(cached.labels(), fly.labels())
    for index in (0, 3):
        torch.testing.assert_close(cached[index]["image"], fly[index]["image"], atol=1.5 / 255 / 0.224, rtol=0)
    assert not torch.allclose(cached[0]["image"], cached[1]["image"])  # two different views of one grasp
    val = SyntheticContactDataset(tmp_path, include_objects=["box"], **common)
    assert len(val) == 2 and set(val.object_names) == {"box"}


def test_enlarged_box_by_hand() -> None:
    np.testing.assert_allclose(enlarged_box(np.array([[0.0, 0.0], [10.0, 4.0]]), 1.5), [-2.5, -1.0, 12.5, 5.0])
    with pytest.raises(InputError):
        enlarged_box(np.zeros((0, 2)))


@pytest.mark.slow
def test_dexycb_dataset_on_mini(tmp_path: Path) -> None:
    from haco_grasp.data.dexycb import DexYCB
    from haco_grasp.data.mini_dexycb import write_mini_dexycb

    mini = write_mini_dexycb(tmp_path, n_subjects=1, n_sequences=5, n_serials=1, n_frames=2, n_left=0)
    dex = DexYCB(tmp_path, split="s0_test", subset="all", strict=False, mano_root=mini.mano_root)
    dataset = DexYCBContactDataset(dex, label_cache=tmp_path / "labels.npz", size=64)
    assert len(dataset) >= 1
    labels = dataset.labels()
    grasp = dex.grasp(dataset.positions[0])
    np.testing.assert_array_equal(labels[0], grasp.hand_contact.astype(np.float32))
    assert (tmp_path / "labels.npz").is_file()
    # bbox_ho: the tight box of the joints and the projected object box corners, enlarged 1.3x
    sample = dex.sample(dataset.positions[0])
    low, high = grasp.obj_verts_canonical.min(0), grasp.obj_verts_canonical.max(0)
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
    cam = corners @ grasp.obj_rotation.T + grasp.obj_translation
    uv = cam @ sample.intrinsics.K.T
    points = np.concatenate([sample.joint_2d.reshape(-1, 2), uv[:, :2] / uv[:, 2:]])
    lo, hi = points.min(0), points.max(0)
    center, half = (lo + hi) / 2, (hi - lo) / 2 * 1.3
    np.testing.assert_allclose(dataset.box(0), np.concatenate([center - half, center + half]), rtol=1e-9)
    item = dataset[0]
    assert item["image"].shape == (3, 64, 64) and item["sample_id"] == sample.sample_id
    # the 2D joints follow the anisotropic box warp: u -> (u - x0) * 64 / w
    box = dataset.box(0)
    scale = 64.0 / (box[2:] - box[:2])
    np.testing.assert_allclose(item["joints_2d"].numpy(), (sample.joint_2d.reshape(-1, 2) - box[:2]) * scale, atol=1e-3)
    assert float(item["image"].abs().sum()) > 0
