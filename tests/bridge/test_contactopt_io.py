"""Tests for contactopt_bridge.contactopt_io with a fake ``contactopt.hand_object.HandObject`` class."""

from __future__ import annotations

import pickle
import pickletools
import sys
import types

import numpy as np
import pytest

from contactopt_bridge.contactopt_io import (
    ContactOptHandObject,
    hand_object_from_grasp,
    read_contactopt_pickle,
    refinement_results,
    write_contactopt_results,
)
from haco_grasp.errors import InputError, UnsafePickleError
from tests.bridge import fake_grasps


@pytest.fixture
def fake_contactopt(monkeypatch):
    """Install a stand-in ``contactopt.hand_object`` module holding a HandObject class (as ContactOpt's code)."""
    package = types.ModuleType("contactopt")
    module = types.ModuleType("contactopt.hand_object")

    class HandObject:
        def __init__(self):
            self.is_left = None
            self.hand_beta = None
            self.hand_pose = None
            self.hand_mTc = None
            self.hand_contact = None
            self.hand_verts = None
            self.hand_joints = None
            self.obj_verts = None
            self.obj_faces = None
            self.obj_contact = None
            self.path = None
            self.obj_normals = None

    HandObject.__module__ = "contactopt.hand_object"
    HandObject.__qualname__ = "HandObject"
    module.HandObject = HandObject
    package.hand_object = module
    monkeypatch.setitem(sys.modules, "contactopt", package)
    monkeypatch.setitem(sys.modules, "contactopt.hand_object", module)
    return HandObject


def _hand_object(cls, rng, n_obj=30):
    ho = cls()
    ho.hand_beta = rng.normal(size=10).astype(np.float32)
    ho.hand_pose = rng.normal(size=18).astype(np.float32)
    ho.hand_mTc = np.eye(4, dtype=np.float32)
    ho.hand_verts = rng.normal(size=(778, 3)).astype(np.float32)
    ho.hand_joints = rng.normal(size=(21, 3)).astype(np.float32)
    ho.hand_contact = rng.uniform(size=(778, 1)).astype(np.float32)
    ho.obj_verts = rng.normal(size=(n_obj, 3)).astype(np.float32)
    ho.obj_faces = rng.integers(0, n_obj, size=(40, 3))
    ho.obj_contact = rng.uniform(size=(n_obj, 1)).astype(np.float32)
    ho.obj_normals = rng.normal(size=(n_obj, 3)).astype(np.float32)
    ho.is_left = False
    ho.custom_attribute = "kept"
    return ho


def test_read_dataset_pickle(tmp_path, fake_contactopt):
    rng = np.random.default_rng(0)
    entries = [
        {
            "ho_gt": _hand_object(fake_contactopt, rng),
            "ho_aug": _hand_object(fake_contactopt, rng),
            "obj_sampled_idx": rng.integers(0, 30, size=2048),
            "hand_feats_aug": rng.normal(size=(778, 25)).astype(np.float32),
            "obj_feats_aug": rng.normal(size=(2048, 25)).astype(np.float32),
        }
        for _ in range(2)
    ]
    path = tmp_path / "perturbed_contactpose_test.pkl"
    path.write_bytes(pickle.dumps(entries, protocol=2))
    loaded = read_contactopt_pickle(path)
    assert len(loaded) == 2
    for got, ref in zip(loaded, entries, strict=True):
        for key in ("ho_gt", "ho_aug"):
            ho = got[key]
            assert isinstance(ho, ContactOptHandObject)
            for name in (
                "hand_beta",
                "hand_pose",
                "hand_mTc",
                "hand_verts",
                "hand_contact",
                "obj_faces",
                "obj_normals",
            ):
                np.testing.assert_array_equal(getattr(ho, name), getattr(ref[key], name))
            assert ho.is_left is False and ho.path is None and ho.extra == {"custom_attribute": "kept"}
        np.testing.assert_array_equal(got["obj_feats_aug"], ref["obj_feats_aug"])
    assert read_contactopt_pickle(path.read_bytes())[0]["ho_gt"].hand_verts.shape == (778, 3)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_refuses_other_classes(tmp_path, fake_contactopt):
    rng = np.random.default_rng(1)
    other = types.SimpleNamespace(x=1)
    with pytest.raises(UnsafePickleError):
        read_contactopt_pickle(pickle.dumps([{"ho_gt": other}]))
    with pytest.raises(UnsafePickleError):
        read_contactopt_pickle(pickle.dumps([{"gt_ho": _hand_object(fake_contactopt, rng), "x": Evil()}]))
    with pytest.raises(InputError):
        read_contactopt_pickle(pickle.dumps({"not": "a list"}))


def test_write_results_and_read_back(tmp_path, fake_contactopt):
    gt = fake_grasps(("box", "box"), seed=2)
    noisy = fake_grasps(("box", "box"), seed=3)
    results = refinement_results(gt, noisy, gt)
    path = write_contactopt_results(tmp_path / "optimized_aug.pkl", results)
    data = path.read_bytes()
    names = {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    assert "contactopt.hand_object HandObject" in names
    assert not any(str(n).startswith("numpy._core") for n in names)  # numpy-1 readable paths

    # ContactOpt's side: a plain pickle.load builds its own HandObject class
    loaded = pickle.loads(data)
    assert len(loaded) == 2 and set(loaded[0]) == {"gt_ho", "in_ho", "out_ho"}
    ho = loaded[1]["in_ho"]
    assert type(ho) is fake_contactopt
    np.testing.assert_allclose(ho.hand_verts, noisy[1].hand_verts, atol=1e-6)
    np.testing.assert_allclose(ho.hand_mTc[:3, 3], noisy[1].transl, atol=1e-6)
    np.testing.assert_allclose(ho.hand_pose, np.concatenate([noisy[1].global_orient, noisy[1].hand_pose]), atol=1e-6)
    assert ho.hand_contact.shape == (778, 1) and ho.obj_contact.shape == (len(gt[1].obj_verts), 1)
    assert ho.is_left is False

    # our side: the restricted reader round-trips every field
    back = read_contactopt_pickle(path)
    for entry, ref in zip(back, results, strict=True):
        for key in ("gt_ho", "in_ho", "out_ho"):
            for name in ("hand_verts", "hand_joints", "obj_verts", "obj_faces", "obj_normals", "hand_mTc"):
                np.testing.assert_array_equal(getattr(entry[key], name), getattr(ref[key], name))


def test_write_validates_entries(tmp_path):
    ho = hand_object_from_grasp(fake_grasps(("box",))[0])
    with pytest.raises(InputError):
        write_contactopt_results(tmp_path / "x.pkl", [{"gt_ho": ho, "in_ho": ho}])
    with pytest.raises(InputError):
        write_contactopt_results(tmp_path / "x.pkl", [{"gt_ho": ho, "in_ho": ho, "out_ho": "nope"}])
    with pytest.raises(InputError):
        hand_object_from_grasp(fake_grasps(("box",))[0], hand_contact=np.zeros(5))
