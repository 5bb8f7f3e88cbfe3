"""Malformed ``hflnet.pkl`` fields (seeded mutations of a valid file) and implausible predictions.

Every mutation must give an InputError whose one line names the file, the sample and the field, or (for the
semantic cases that are valid arrays: a right hand labelled left, parameters of another sample) the MANO fit error
of :func:`prediction_to_grasp` with its stated tolerance.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from haco_grasp.data.hflnet import MAX_FIT_ERROR_M, load_hflnet, prediction_to_grasp
from haco_grasp.errors import InputError
from haco_grasp.hand.conventions import ManoLayerCache

from .conftest import SEED, one_line_error, write_pickle

RNG = np.random.default_rng(SEED)


def _array_with(value, shape, where=None):
    array = np.zeros(shape, np.float32)
    index = tuple(int(RNG.integers(0, n)) for n in shape) if where is None else where
    array[index] = value
    return array


# (field, replacement or callable(old) -> new, text the error must hold). "<del>" deletes the field.
SAMPLE_MUTATIONS = [
    ("dex_index", "<del>", "dex_index"),
    ("dex_index", -1, "dex_index"),
    ("dex_index", "7", "dex_index"),
    ("dex_index", True, "dex_index"),
    ("dex_index", 3.5, "dex_index"),
    ("sample_id", "", "sample_id"),
    ("sample_id", 12, "sample_id"),
    ("color_file", "/abs/color_000000.jpg", "color_file"),
    ("color_file", "../../etc/passwd", "color_file"),
    ("color_file", "a/../../b/color_000000.jpg", "color_file"),
    ("image_path", "../outside.jpg", "image_path"),
    ("image_path", "/etc/shadow", "image_path"),
    ("image_path", "C:/images/x.jpg", "image_path"),
    ("image_path", "~/x.jpg", "image_path"),
    ("image_path", 5, "image_path"),
    ("mano_side", "both", "mano_side"),
    ("mano_side", None, "mano_side"),
    ("ycb_id", 0, "ycb_id"),
    ("ycb_id", 22, "ycb_id"),
    ("ycb_id", "2", "ycb_id"),
    ("obj_pnp_ok", "yes", "obj_pnp_ok"),
    ("hand_verts_rel", lambda v: v * 1000, "millimetres"),
    ("hand_verts_rel", lambda v: v[:700], "hand_verts_rel"),
    ("hand_verts_rel", lambda v: v.astype(str), "hand_verts_rel"),
    ("hand_verts_rel", lambda v: _array_with(np.nan, (778, 3)), "NaN"),
    ("hand_verts_rel", lambda v: _array_with(np.inf, (778, 3)), "NaN or inf"),
    ("hand_verts_rel", lambda v: v.tolist(), "hand_verts_rel"),
    ("hand_joints_rel", lambda v: v + 0.01, "joint 0"),
    ("hand_joints_rel", lambda v: v.reshape(-1), "hand_joints_rel"),
    ("hand_root", lambda v: v * 1000 + 20, "hand_root"),
    ("hand_root", lambda v: np.array([np.nan, 0, 0], np.float32), "hand_root"),
    ("hand_root", None, "hand_root"),
    ("mano_pose_aa", lambda v: np.full(48, 1e6, np.float32), "mano_pose_aa"),
    ("mano_pose_aa", lambda v: np.full(48, 3e38, np.float32), "mano_pose_aa"),
    ("mano_pose_aa", lambda v: _array_with(np.nan, (48,)), "mano_pose_aa"),
    ("mano_pose_aa", lambda v: np.rad2deg(v) + 90.0, "radians"),
    ("mano_pose_aa", lambda v: v[:45], "mano_pose_aa"),
    ("mano_shape", lambda v: np.full(10, 1e6, np.float32), "mano_shape"),
    ("mano_shape", lambda v: _array_with(-50.0, (10,)), "mano_shape"),
    ("mano_shape", lambda v: np.zeros(16, np.float32), "mano_shape"),
    ("mano_shape", lambda v: v.astype(np.complex64), "mano_shape"),
    ("obj_pose", lambda v: np.concatenate([v[:, :3] * 2, v[:, 3:]], 1), "rotation"),
    ("obj_pose", lambda v: np.concatenate([v[:, :3], v[:, 3:] * 1000 + 50], 1), "obj_pose"),
    ("obj_pose", lambda v: np.concatenate([-v[:, :3], v[:, 3:]], 1), "det"),
    ("obj_pose", lambda v: v[:, :3], "obj_pose"),
    ("crop_box", lambda v: np.array([100, 100, 50, 50], np.float32), "crop_box"),
    ("crop_box", lambda v: np.array([0, 0, np.inf, 10], np.float32), "crop_box"),
    ("hand_contact", lambda v: np.full(778, 3.0, np.float32), "hand_contact"),
    ("hand_contact", lambda v: np.full(778, -0.5, np.float32), "hand_contact"),
    ("hand_contact", lambda v: np.zeros(10, np.float32), "hand_contact"),
    ("unknown_field", 1, "unknown_field"),
]

HEADER_MUTATIONS = [
    ("format", "haco_grasp.hflnet/v0", "'format'"),
    ("format", "<del>", "'format'"),
    ("units", "mm", "'units'"),
    ("frame", "world", "'frame'"),
    ("split", 5, "'split'"),
    ("root_source", "guess", "'root_source'"),
    ("meta", [1, 2], "'meta'"),
    ("samples", {"a": 1}, "'samples'"),
    ("extra_header", 1, "extra_header"),
]


def _mutate(raw, field, change, sample=None):
    raw = copy.deepcopy(raw)
    target = raw if sample is None else raw["samples"][sample]
    if change == "<del>":
        del target[field]
    elif callable(change):
        target[field] = change(target.get(field) if target.get(field) is not None else np.zeros(4, np.float32))
    else:
        target[field] = change
    return raw


@pytest.mark.parametrize(("field", "change", "expected"), SAMPLE_MUTATIONS,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(SAMPLE_MUTATIONS)])  # fmt: skip
def test_sample_field(field, change, expected, world, tmp_path):
    sample = int(RNG.integers(0, len(world.raw["samples"])))
    path = write_pickle(tmp_path / "pred.pkl", _mutate(world.raw, field, change, sample))
    one_line_error(lambda: load_hflnet(path), str(path), f"samples[{sample}]", expected, kind=InputError)


@pytest.mark.parametrize(("field", "change", "expected"), HEADER_MUTATIONS, ids=[f for f, _, _ in HEADER_MUTATIONS])
def test_header_field(field, change, expected, world, tmp_path):
    path = write_pickle(tmp_path / "pred.pkl", _mutate(world.raw, field, change))
    one_line_error(lambda: load_hflnet(path), str(path), expected, kind=InputError)


def test_not_a_dict(world, tmp_path):
    path = write_pickle(tmp_path / "pred.pkl", [world.raw])
    one_line_error(lambda: load_hflnet(path), str(path), "expected a dict", kind=InputError)


def test_duplicate_dex_index(world, tmp_path):
    raw = copy.deepcopy(world.raw)
    raw["samples"][1]["dex_index"] = raw["samples"][0]["dex_index"]
    path = write_pickle(tmp_path / "pred.pkl", raw)
    one_line_error(lambda: load_hflnet(path), str(path), "dex_index", "unique", kind=InputError)


@pytest.fixture(scope="module")
def layers(world):
    return ManoLayerCache(world.mini.mano_root)


def _grasp(path, world, layers):
    pred = load_hflnet(path).samples[0]
    return prediction_to_grasp(pred, layers, world.mini.models_root)


@pytest.mark.parametrize("true_side", ["right", "left"])
def test_mislabelled_side_is_named(true_side, world, layers, tmp_path):
    raw = copy.deepcopy(world.raw)
    right = next(s for s in raw["samples"] if s["mano_side"] == true_side)
    wrong = "left" if true_side == "right" else "right"
    right["mano_side"] = wrong  # only the label is wrong: pose, shape and vertices are the right hand's
    raw["samples"] = [right]
    path = write_pickle(tmp_path / "pred.pkl", raw)
    one_line_error(lambda: _grasp(path, world, layers), "mano_side", f"fit a {true_side} hand",
                   f"store mano_side '{true_side}'")  # fmt: skip


@pytest.mark.parametrize("case", ["other-sample-params", "betas-x3", "pose-shifted", "verts-shifted"])
def test_parameters_that_miss_the_vertices(case, world, layers, tmp_path):
    raw = copy.deepcopy(world.raw)
    first, second = raw["samples"][0], raw["samples"][1]
    if case == "other-sample-params":
        first["mano_pose_aa"] = second["mano_pose_aa"] + np.float32(0.6)
    elif case == "betas-x3":
        first["mano_shape"] = np.full(10, 3.0, np.float32)
    elif case == "pose-shifted":
        first["mano_pose_aa"] = first["mano_pose_aa"] + np.float32(1.0)
    else:
        first["hand_verts_rel"] = first["hand_verts_rel"] * np.float32(1.4)
    raw["samples"] = [first]
    path = write_pickle(tmp_path / "pred.pkl", raw)
    message = one_line_error(lambda: _grasp(path, world, layers), "tolerance", kind=InputError)
    assert f"{MAX_FIT_ERROR_M:g} m" in message


def test_ground_truth_fits_within_tolerance(world, layers):
    for pred in load_hflnet(world.pred).samples:
        grasp = prediction_to_grasp(pred, layers, world.mini.models_root)
        assert grasp.meta["mano_fit_error_m"] < 1e-4
