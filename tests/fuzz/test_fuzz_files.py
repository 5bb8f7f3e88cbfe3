"""Broken checkpoints, object meshes and DexYCB files: each a one-line error naming the file and the fix.

Checkpoints are cut at seeded fractions of the shipped ones; the ``.json`` beside a HACO checkpoint is replaced by
malformed text; YCB meshes are written in millimetres or broken; DexYCB calibration and label files get implausible
values.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
import yaml

from haco_grasp.errors import HacoGraspError, InputError

from .conftest import SEED, one_line_error

FRACTIONS = [0.0, 0.001, 0.3, 0.5, 0.9, 0.999]


def _cut(source, target, fraction):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"epoch": 1, "state_dict": {"w": torch.arange(2000.0)}}, path)
    return path


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_truncated_haco_checkpoint(fraction, tiny_checkpoint, tmp_path):
    from haco_grasp.contact.checkpoint import read_checkpoint

    path = _cut(tiny_checkpoint, tmp_path / "cut.ckpt", fraction)
    one_line_error(lambda: read_checkpoint(path), str(path), "truncated or corrupt", kind=InputError)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99])
def test_truncated_deepcontact_checkpoint(fraction, tmp_path):
    from contactopt_bridge.deepcontact import DEFAULT_CHECKPOINT, load_deepcontact

    path = _cut(DEFAULT_CHECKPOINT, tmp_path / "cut.pt", fraction)
    one_line_error(lambda: load_deepcontact(path), str(path), "truncated or corrupt", kind=InputError)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("loader", ["haco", "deepcontact"])
def test_checkpoint_payload_names_what_was_blocked(loader, tmp_path):
    from contactopt_bridge.deepcontact import load_deepcontact
    from haco_grasp.contact.checkpoint import read_checkpoint

    path = tmp_path / "payload.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": _Payload()}, path)
    load = read_checkpoint if loader == "haco" else load_deepcontact
    message = one_line_error(lambda: load(path), str(path))
    assert "system" in message, message


CONFIG_TEXTS = {
    "not-json": "{backbone: resnet",
    "a-list": "[1, 2, 3]",
    "unknown-key": '{"backbone": "resnet-18", "colour": "red"}',
    "wrong-type": '{"backbone": 18}',
    "empty": "",
    "binary": "\x00\xff\x00",
}


@pytest.mark.parametrize("case", list(CONFIG_TEXTS))
def test_malformed_json_beside_checkpoint(case, tmp_path):
    from haco_grasp.contact.checkpoint import load_haco
    from haco_grasp.contact.predictor import DEFAULT_CHECKPOINT

    checkpoint = tmp_path / "model.ckpt"
    os.symlink(DEFAULT_CHECKPOINT, checkpoint)
    (tmp_path / "model.json").write_text(CONFIG_TEXTS[case], encoding="latin1")
    one_line_error(lambda: load_haco(checkpoint), str(tmp_path / "model.json"), seconds=60)


# ----------------------------------------------------------------------------------------------- object meshes
def _obj_text(verts, faces):
    lines = [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    return "\n".join(lines) + "\n"


OBJECT_CASES = {
    "millimetres": (lambda v: v * 1000.0, "object looks like millimetres; scale by 0.001"),
    "micrometres": (lambda v: v * 1e6, "object looks like millimetres; scale by 0.001"),
    "nan-vertex": (lambda v: np.vstack([v[:-1], [[np.nan, 0, 0]]]), "non-finite"),
    "garbage": (None, ""),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # trimesh casting NaN vertices while parsing
@pytest.mark.parametrize("case", list(OBJECT_CASES))
def test_broken_object_model(case, world, tmp_path):
    from haco_grasp.objects.ycb import YCB_CLASSES, YCBMeshCache, load_ycb_mesh

    ycb_id = int(world.raw["samples"][0]["ycb_id"])
    models = tmp_path / "models"
    shutil.copytree(world.mini.models_root, models)
    path = models / YCB_CLASSES[ycb_id] / "textured_simple.obj"
    change, expected = OBJECT_CASES[case]
    if change is None:
        path.write_bytes(np.random.default_rng(SEED).bytes(4096))
    else:
        mesh = load_ycb_mesh(path)
        path.write_text(_obj_text(change(np.asarray(mesh.verts, np.float64)), np.asarray(mesh.faces)))
    one_line_error(lambda: YCBMeshCache(models)(ycb_id), str(path), expected)


def test_sdf_grid_refuses_millimetres_before_allocating():
    from haco_grasp.geometry.sdf import sdf_grid

    verts = np.array([[0, 0, 0], [100, 0, 0], [0, 100, 0], [0, 0, 100]], np.float64)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    one_line_error(lambda: sdf_grid(verts, faces), "millimetres", "0.001", traced_mb=16)


# ----------------------------------------------------------------------------------------------- DexYCB files
BETAS = {
    "huge": ([1e6] * 10, "'betas'"),
    "text": ("tall", "'betas'"),
    "short": ([0.1] * 9, "'betas'"),
    "nan": ([float("nan")] * 10, "'betas'"),
}


@pytest.mark.parametrize("case", list(BETAS))
def test_calibration_betas(case, tmp_path):
    from haco_grasp.data.dexycb import read_mano_betas

    path = tmp_path / "mano.yml"
    path.write_text(yaml.safe_dump({"betas": BETAS[case][0]}))
    one_line_error(lambda: read_mano_betas(path), str(path), BETAS[case][1], kind=InputError)


def _label_file(world):
    return next(iter(sorted(world.mini.root.rglob("labels_*.npz"))))


LABELS = {
    "pose-1e6": ("pose_m", lambda a: np.full_like(a, 1e6), "'pose_m'"),
    "translation-km": ("pose_m", lambda a: np.concatenate([a[:, :48], a[:, 48:] + 5000], 1), "translation"),
    "joints-nan": ("joint_3d", lambda a: a * np.nan, "NaN"),
    "object-km": ("pose_y", lambda a: a + 1e5, "pose_y"),
    "pose-shape": ("pose_m", lambda a: a[:, :40], "'pose_m'"),
}


@pytest.mark.parametrize("case", list(LABELS))
def test_dexycb_labels(case, world, tmp_path):
    from haco_grasp.data.dexycb import _load_labels

    with np.load(_label_file(world)) as data:
        arrays = {key: data[key] for key in data.files}
    key, change, expected = LABELS[case]
    arrays[key] = change(arrays[key])
    path = tmp_path / "labels_000000.npz"
    np.savez(path, **arrays)
    one_line_error(lambda: _load_labels(path, arrays["pose_y"].shape[0]), str(path), expected, kind=InputError)


def test_dexycb_labels_truncated(world, tmp_path):
    from haco_grasp.data.dexycb import _load_labels

    path = _cut(_label_file(world), tmp_path / "labels_000000.npz", 0.5)
    one_line_error(lambda: _load_labels(path, 3), str(path), kind=InputError)


def test_contactopt_pickle_with_payload(tmp_path):
    from contactopt_bridge.contactopt_io import read_contactopt_pickle

    data = io.BytesIO()
    pickle.dump([{"x": _Payload()}], data, protocol=2)
    path = tmp_path / "dataset.pkl"
    path.write_bytes(data.getvalue())
    message = one_line_error(lambda: read_contactopt_pickle(path), kind=HacoGraspError)
    assert "system" in message


@pytest.mark.parametrize("loader", ["haco", "deepcontact"])
def test_nan_weights_name_the_file(loader, tmp_path):
    from contactopt_bridge.deepcontact import DEFAULT_CHECKPOINT as DEEPCONTACT
    from contactopt_bridge.deepcontact import load_deepcontact
    from haco_grasp.contact.checkpoint import load_haco
    from haco_grasp.contact.predictor import DEFAULT_CHECKPOINT as HACO

    source = HACO if loader == "haco" else DEEPCONTACT
    state = torch.load(source, map_location="cpu", weights_only=True)
    tensors = state["state_dict"] if loader == "haco" else state.get("model", state)
    name = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[name] = tensors[name] * float("nan")
    path = tmp_path / source.name
    torch.save(state, path)
    if loader == "haco":
        shutil.copy(source.with_suffix(".json"), path.with_suffix(".json"))
    load = load_haco if loader == "haco" else load_deepcontact
    one_line_error(lambda: load(path), str(path), name, "NaN", kind=InputError, seconds=60, traced_mb=512)
