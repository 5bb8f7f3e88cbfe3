"""Tests of the DexYCB reader (haco_grasp.data.dexycb) on toolkit-like skeletons and on the miniature DexYCB.

Expected split sizes and sample positions are counted by hand from the s0 rule of the reference (subjects 0-9 /
0-1 / 2-9, sequence position % 5, camera-major then frame order); the joints of ``to_grasp`` are compared with the
``joint_3d`` labels the miniature writes with the toolkit's PCA-45 layer.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
import yaml

from haco_grasp.data.dexycb import (
    DEX_YCB_SERIALS,
    DEX_YCB_SUBJECTS,
    DexYCB,
    read_intrinsics,
    read_mano_betas,
)
from haco_grasp.data.mini_dexycb import write_mini_dexycb
from haco_grasp.errors import AssetError, InputError
from haco_grasp.hand.conventions import ManoLayerCache

SUBJ = DEX_YCB_SUBJECTS
SER = DEX_YCB_SERIALS


def _write_yaml(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def _calibration(root, serials, intrinsics=None):
    for j, serial in enumerate(serials):
        intr = intrinsics or {"fx": 600.0 + j, "fy": 601.0 + j, "ppx": 320.5, "ppy": 240.25}
        _write_yaml(root / "calibration" / "intrinsics" / f"{serial}_640x480.yml", {"color": intr})
    _write_yaml(root / "calibration" / "mano_calib-a" / "mano.yml", {"betas": [0.1 * k for k in range(10)]})


# Per sequence position: number of frames (6 sequences per subject).
FRAMES = [3, 2, 4, 2, 7, 2]


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory):
    """Subjects 0, 1, 2 with 6 sequences each, two cameras (serials 0 and 3); the s0 'val' sequence of subject 0 is
    a left hand, every other sequence a right hand. Only meta.yml and calibration: enough to enumerate."""
    root = tmp_path_factory.mktemp("skeleton")
    for s in (0, 1, 2):
        for k, frames in enumerate(FRAMES):
            side = "left" if (s == 0 and k == 4) else "right"
            meta = {
                "serials": [SER[0], SER[3]],
                "num_frames": frames,
                "ycb_ids": [4, 5],
                "ycb_grasp_ind": 1,
                "mano_sides": [side],
                "mano_calib": ["calib-a"],
            }
            _write_yaml(root / SUBJ[s] / f"20200101_{100000 + 7 * k:06d}" / "meta.yml", meta)
    _calibration(root, [SER[0], SER[3]])
    return root


def test_s0_counts_by_hand(skeleton):
    # train: positions 0,1,2,3,5 of all 3 subjects: (3+2+4+2+2) frames x 2 cameras x 3 subjects.
    assert len(DexYCB(skeleton, "s0_train", "all", strict=False)) == 13 * 2 * 3
    # val: subjects 0 and 1, position 4 (7 frames) x 2 cameras.
    assert len(DexYCB(skeleton, "s0_val", "all", strict=False)) == 7 * 2 * 2
    # test: subject 2 only (subjects 3-9 absent), position 4.
    assert len(DexYCB(skeleton, "s0_test", "all", strict=False)) == 7 * 2


def test_gsdf_subset_right_hand_every_fifth_frame(skeleton):
    # train: every sequence is right; frames % 5 == 0 -> 1 frame for 3/2/4/2/2-frame sequences.
    assert len(DexYCB(skeleton, "s0_train", "gsdf", strict=False)) == 5 * 2 * 3
    # val: subject 0's sequence is left (dropped); subject 1's 7 frames -> frames 0 and 5.
    val = DexYCB(skeleton, "s0_val", "gsdf", strict=False)
    assert len(val) == 2 * 2
    # The toolkit indices of val: subject 0 (left) occupies 0..13, subject 1 starts at 14; camera-major.
    assert val.indices.tolist() == [14 + 0, 14 + 5, 14 + 7 + 0, 14 + 7 + 5]


def test_sample_order_and_ids(skeleton):
    test = DexYCB(skeleton, "s0_test", "all", strict=False)
    seq = f"20200101_{100000 + 7 * 4:06d}"
    # Index 8 = second camera (index // 7 == 1), frame 1.
    assert test.sample_id(8) == f"{SUBJ[2]}_{seq}_{SER[3]}_000001"
    assert test.color_file(8) == f"{SUBJ[2]}/{seq}/{SER[3]}/color_000001.jpg"
    assert test.index_of(test.color_file(8)) == 8
    assert test.index_of("/data/dexycb/" + test.color_file(8)) == 8
    assert test.index_of(test.sample_id(13)) == 13
    with pytest.raises(InputError, match="not a sample"):
        test.index_of(f"{SUBJ[2]}_{seq}_{SER[5]}_000001")


def test_strict_full_dataset_counts(tmp_path):
    """A complete toolkit-like tree: 10 subjects x 100 sequences x 8 cameras, 1 or 2 frames per sequence."""
    for subject in SUBJ:
        for k in range(100):
            meta = {
                "serials": list(SER),
                "num_frames": 1 + (k % 2),
                "ycb_ids": [1],
                "ycb_grasp_ind": 0,
                "mano_sides": ["right"],
                "mano_calib": ["calib-a"],
            }
            _write_yaml(tmp_path / subject / f"20200101_{k:06d}" / "meta.yml", meta)
    _calibration(tmp_path, SER)
    # Test sequences are positions 4, 9, ..., 99: ten even ones (1 frame) and ten odd ones (2 frames) per subject.
    assert len(DexYCB(tmp_path, "s0_test", "all")) == 8 * (10 * 1 + 10 * 2) * 8
    assert len(DexYCB(tmp_path, "s0_val", "all")) == 2 * (10 * 1 + 10 * 2) * 8
    # gsdf: right hands, frame 0 only.
    assert len(DexYCB(tmp_path, "s0_test", "gsdf")) == 8 * 20 * 8


def test_strict_rejects_partial_copies(skeleton, tmp_path):
    with pytest.raises(InputError, match="subject-03: expected 100 sequence folders"):
        DexYCB(skeleton, "s0_test", "all", strict=True)
    with pytest.raises(AssetError, match="20200820-subject-03"):
        DexYCB(tmp_path, "s0_test", "all", strict=True)
    with pytest.raises(AssetError, match="no sequences found"):
        DexYCB(tmp_path, "s0_test", "all", strict=False)


def test_root_from_env_or_error(skeleton, monkeypatch):
    monkeypatch.delenv("DEX_YCB_DIR", raising=False)
    with pytest.raises(AssetError, match="DEX_YCB_DIR"):
        DexYCB(None, "s0_test")
    monkeypatch.setenv("DEX_YCB_DIR", str(skeleton))
    assert len(DexYCB(None, "s0_test", "all", strict=False)) == 14
    with pytest.raises(InputError, match="split"):
        DexYCB(skeleton, "s1_test", strict=False)


def test_subset_file(skeleton, tmp_path):
    path = tmp_path / "test_s0.json"
    path.write_text(json.dumps([3, 0, 11]))
    dataset = DexYCB(skeleton, "s0_test", subset_file=path, strict=False)
    assert dataset.indices.tolist() == [3, 0, 11]
    assert dataset.subset == "file:test_s0.json"
    path.write_text(json.dumps([0, 14]))
    with pytest.raises(InputError, match="index 14 is outside"):
        DexYCB(skeleton, "s0_test", subset_file=path, strict=False)


def test_intrinsics_and_betas_parsing(tmp_path):
    path = tmp_path / "cam_640x480.yml"
    path.write_text("color:\n  fx: 614.5\n  fy: 615.25\n  ppx: 321.0\n  ppy: 239.5\ndepth:\n  fx: 1.0\n")
    intr = read_intrinsics(path)
    assert intr == (614.5, 615.25, 321.0, 239.5)
    np.testing.assert_array_equal(intr.K, [[614.5, 0, 321.0], [0, 615.25, 239.5], [0, 0, 1]])
    path.write_text("color:\n  fx: 614.5\n  fy: 615.25\n  ppy: 239.5\n")
    with pytest.raises(InputError, match=r"cam_640x480\.yml: missing key 'ppx'"):
        read_intrinsics(path)
    with pytest.raises(AssetError, match="missing_640x480.yml"):
        read_intrinsics(tmp_path / "missing_640x480.yml")
    mano = tmp_path / "mano.yml"
    mano.write_text("betas: [0.5, -1.0, 0, 0, 0, 0, 0, 0, 0, 2.5]\n")
    np.testing.assert_array_equal(read_mano_betas(mano), [0.5, -1.0, 0, 0, 0, 0, 0, 0, 0, 2.5])
    mano.write_text("betas: [0.5, -1.0]\n")
    with pytest.raises(InputError, match=r"mano\.yml: key 'betas' must be 10"):
        read_mano_betas(mano)
    mano.write_text("shape: [1]\n")
    with pytest.raises(InputError, match="missing key 'betas'"):
        read_mano_betas(mano)


def test_malformed_meta_names_file_and_key(skeleton, tmp_path):
    root = tmp_path / "bad"
    meta = {"serials": [SER[0]], "num_frames": 2, "ycb_ids": [4], "mano_sides": ["right"], "mano_calib": ["calib-a"]}
    _write_yaml(root / SUBJ[2] / "20200101_000000" / "meta.yml", meta)
    for k in range(1, 5):
        _write_yaml(root / SUBJ[2] / f"20200101_00000{k}" / "meta.yml", meta)
    _calibration(root, [SER[0]])
    with pytest.raises(InputError, match=r"meta\.yml: missing key 'ycb_grasp_ind'"):
        DexYCB(root, "s0_test", "all", strict=False)


# ------------------------------------------------------------------------------------------------ miniature
@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return write_mini_dexycb(tmp_path_factory.mktemp("mini"), n_subjects=2, n_sequences=5, n_frames=6, seed=3)


@pytest.fixture(scope="module")
def mini_test(mini):
    return DexYCB(mini.root, "s0_test", "all", mano_root=mini.mano_root, strict=False)


def test_mini_layout_and_counts(mini, mini_test):
    root = mini.root
    assert len(list(root.glob("*/*/*/labels_*.npz"))) == mini.n_samples == 2 * 5 * 2 * 6
    assert len(list(root.glob("*/*/*/color_*.jpg"))) == mini.n_samples
    assert len(list(root.glob("*/*/pose.npz"))) == 2 * 5
    assert len(list(root.glob("models/*/textured_simple.obj"))) == len(list(root.glob("models/*/points.xyz"))) >= 3
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 5e6
    # s0 rule on the miniature: 2 test sequences (one per subject) x 2 cameras x 6 frames; gsdf: the right one only.
    assert len(mini_test) == mini.n_test_samples == 2 * 2 * 6
    gsdf = DexYCB(mini.root, "s0_test", "gsdf", strict=False)
    assert len(gsdf) == mini.n_test_gsdf == 1 * 2 * 2
    assert len(DexYCB(mini.root, "s0_train", "all", strict=False)) == 2 * 4 * 2 * 6
    labels = np.load(root / mini_test[0].label_file)
    assert labels["seg"].shape == (480, 640) and labels["seg"].dtype == np.uint8
    assert set(np.unique(labels["seg"])) >= {0, 255}


def test_mini_sample_fields(mini, mini_test):
    sample = mini_test[8]  # camera 1 (6 frames per camera), frame 2
    assert sample.sample_id == f"{mini.subjects[0]}_{sample.sequence}_{sample.serial}_{sample.frame:06d}"
    assert sample.serial == mini.serials[1] and sample.frame == 2
    intr = yaml.safe_load((mini.root / "calibration" / "intrinsics" / f"{sample.serial}_640x480.yml").read_text())
    assert sample.intrinsics == tuple(intr["color"][k] for k in ("fx", "fy", "ppx", "ppy"))
    betas = yaml.safe_load((mini.root / "calibration" / f"mano_{mini.subjects[0]}" / "mano.yml").read_text())
    np.testing.assert_array_equal(sample.mano_betas, betas["betas"])
    assert sample.pose_m.shape == (1, 51) and sample.pose_y.shape == (3, 3, 4)
    # joint_2d is the pinhole projection of joint_3d.
    j3 = sample.joint_3d[0].astype(np.float64)
    projected = j3[:, :2] / j3[:, 2:] * [sample.intrinsics.fx, sample.intrinsics.fy]
    projected += [sample.intrinsics.ppx, sample.intrinsics.ppy]
    np.testing.assert_allclose(sample.joint_2d[0], projected, atol=1e-3)


def test_to_grasp_joints_match_labels(mini, mini_test):
    cache = ManoLayerCache(mini.mano_root)
    sides = set()
    with_hand = [p for p in range(len(mini_test)) if mini_test[p].has_hand]
    assert len(with_hand) == len(mini_test) - 2  # frame 1 of the first test sequence, on both cameras
    for position in with_hand:
        sample = mini_test[position]
        # Every sample: the flat-mean parameters posed by the flat-mean layer reproduce the labels' joints.
        params = sample.mano_params(cache)
        out = cache.layer(sample.mano_side)(**{k: torch.as_tensor(v[None]) for k, v in params.items()})
        np.testing.assert_allclose(out.joints[0].numpy(), sample.joint_3d[0], atol=1e-5)
        sides.add(sample.mano_side)
    assert sides == {"right", "left"}
    for position in (with_hand[0], with_hand[-1]):  # a right and a left hand through the whole to_grasp
        sample = mini_test[position]
        grasp = sample.to_grasp(cache)
        np.testing.assert_allclose(grasp.hand_joints, sample.joint_3d[0], atol=1e-5)
        assert grasp.side == sample.mano_side
        # The object is the YCB file posed by pose_y[ycb_grasp_ind].
        mesh = trimesh.load(mini.root / "models" / grasp.object_name / "textured_simple.obj", process=False)
        rt = sample.pose_y[sample.ycb_grasp_ind].astype(np.float64)
        expected = np.asarray(mesh.vertices) @ rt[:, :3].T + rt[:, 3]
        np.testing.assert_allclose(np.sort(grasp.obj_verts, axis=0), np.sort(expected, axis=0), atol=1e-6)
        assert grasp.hand_contact.shape == (778,) and grasp.hand_contact.sum() > 0
        assert grasp.meta["sample_id"] == sample.sample_id and grasp.object_id == sample.grasped_ycb_id
    assert {mini_test[with_hand[0]].mano_side, mini_test[with_hand[-1]].mano_side} == {"right", "left"}


def test_frame_without_hand(mini_test):
    sample = mini_test[1]  # first test sequence of the first subject, camera 0, frame 1: written without a hand
    assert not sample.has_hand
    assert np.all(sample.joint_3d == -1)
    with pytest.raises(InputError, match="no hand annotation"):
        sample.to_grasp()


def test_label_file_errors(mini, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(mini.root, root)
    dataset = DexYCB(root, "s0_test", "all", strict=False)
    label = root / dataset[0].label_file
    arrays = dict(np.load(label))
    del arrays["pose_m"]
    np.savez(label, **arrays)
    with pytest.raises(InputError, match=r"labels_000000\.npz: missing key 'pose_m'"):
        dataset.sample(0)
    arrays["pose_m"] = np.zeros((1, 48), np.float32)
    np.savez(label, **arrays)
    with pytest.raises(InputError, match=r"key 'pose_m' expected float \(1, 51\)"):
        dataset.sample(0)
    label.unlink()
    with pytest.raises(AssetError, match="labels_000000.npz"):
        dataset.sample(0)
    models = root / "models"
    shutil.rmtree(models)
    with pytest.raises(AssetError, match="textured_simple.obj"):
        dataset.sample(2).to_grasp(ManoLayerCache(mini.mano_root))
