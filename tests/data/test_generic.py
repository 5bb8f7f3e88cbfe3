"""Tests of the generic prediction format (haco_grasp.data.generic): reading, writing, objects, fitting, Grasps."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from haco_grasp.data.generic import (
    GENERIC_FORMAT,
    GenericFrame,
    ObjectResolver,
    fit_mano_to_verts,
    frame_to_grasp,
    load_generic,
    save_generic,
)
from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import AssetError, InputError
from haco_grasp.hand import synthetic_mano_root
from haco_grasp.hand.conventions import ManoLayerCache, pose_hand
from haco_grasp.objects.procedural import make_object


@pytest.fixture(scope="module")
def layers():
    return ManoLayerCache(synthetic_mano_root())


def _arrays(n: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "side": np.array(["left", "right"] * (n // 2)),
        "object": np.array(["capsule.ply"] * n),
        "global_orient": rng.normal(0, 0.3, (n, 3)),
        "hand_pose": rng.normal(0, 0.2, (n, 45)),
        "betas": np.zeros((n, 10)),
        "transl": np.tile([0.0, 0.0, 0.5], (n, 1)),
        "obj_pose": np.tile(np.eye(4)[:3], (n, 1, 1)),
    }


def _write_capsule(folder):
    folder.mkdir(parents=True, exist_ok=True)
    trimesh.creation.capsule(height=0.07, radius=0.028).export(folder / "capsule.ply")
    return folder / "capsule.ply"


def test_plain_numpy_savez_is_read(tmp_path):
    arrays = _arrays()
    np.savez(tmp_path / "my.npz", **arrays)
    file = load_generic(tmp_path / "my.npz")
    assert [f.mano_side for f in file.samples] == ["left", "right"]
    assert [f.sample_id for f in file.samples] == ["frame_000000", "frame_000001"]
    frame = file.samples[1]
    np.testing.assert_array_equal(frame.mano_params["hand_pose"], arrays["hand_pose"][1])
    assert frame.ycb_id == -1 and frame.image_path is None and frame.hand_contact is None and frame.crop_box is None
    assert frame.base_dir == tmp_path.resolve()


def test_save_generic_round_trip_with_optional_arrays(tmp_path):
    arrays = _arrays()
    contact = np.full((2, 778), np.nan)
    contact[0] = np.linspace(0, 1, 778)
    boxes = np.array([[10.0, 20.0, 110.0, 120.0], [np.nan] * 4])
    path = save_generic(tmp_path / "sub" / "out.npz", **arrays, sample_id=["a", "b"], hand_contact=contact,
                        crop_box=boxes, image_path=["img/a.png", ""])  # fmt: skip
    with np.load(path) as raw:
        assert str(raw["format"]) == GENERIC_FORMAT
    file = load_generic(path)
    a, b = file.samples
    assert (a.sample_id, b.sample_id) == ("a", "b")
    np.testing.assert_allclose(a.hand_contact, contact[0], atol=1e-7)
    assert b.hand_contact is None and b.crop_box is None and b.image_path is None
    np.testing.assert_array_equal(a.crop_box, boxes[0])
    assert a.image_path == str((tmp_path / "sub" / "img" / "a.png").resolve())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"side": None}, r"side: expected a \(N,\) array"),
        ({"side": np.array(["left", "middle"])}, r"side\[1\]: expected 'right' or 'left'"),
        ({"hand_pose": np.zeros((2, 48))}, r"hand_pose: expected a float \(2, 45\) array"),
        ({"global_orient": None}, "global_orient"),
        ({"transl": np.tile([0.0, 0.0, 500.0], (2, 1))}, "millimetres"),
        ({"obj_pose": np.tile(2 * np.eye(4)[:3], (2, 1, 1))}, r"obj_pose\[0\]: expected a rotation"),
        ({"object": np.array([5, 99])}, r"object\[1\]: expected a DexYCB object id"),
        ({"sample_id": np.array(["x", "x"])}, r"sample_id\[1\]: expected unique"),
        ({"hand_contact": np.full((2, 778), 3.0)}, "hand_contact: expected probabilities"),
        ({"crop_box": np.array([[5.0, 5.0, 1.0, 9.0]] * 2)}, r"crop_box\[0\]"),
        ({"colour": np.zeros(2)}, "colour: expected only the arrays"),
        ({"hand_pose": np.full((2, 45), np.nan)}, r"hand_pose\[0\]: expected finite"),
    ],
)
def test_errors_name_the_file_and_array(tmp_path, change, match):
    arrays = _arrays()
    for key, value in change.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=match) as info:
        load_generic(tmp_path / "bad.npz")
    assert "bad.npz" in str(info.value)


def test_no_hand_and_missing_file_errors(tmp_path):
    arrays = _arrays()
    for key in ("global_orient", "hand_pose"):
        arrays.pop(key)
    np.savez(tmp_path / "nohand.npz", **arrays)
    with pytest.raises(InputError, match="hand_verts"):
        load_generic(tmp_path / "nohand.npz")
    with pytest.raises(AssetError, match="not found"):
        load_generic(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(InputError, match="not a readable .npz"):
        load_generic(tmp_path / "text.npz")


def test_objects_resolve_in_objects_dir_then_beside_the_file(tmp_path):
    beside = _write_capsule(tmp_path / "data")
    np.savez(tmp_path / "data" / "my.npz", **_arrays())
    frame = load_generic(tmp_path / "data" / "my.npz").samples[0]
    mesh = ObjectResolver(None)(frame)
    np.testing.assert_allclose(
        mesh.verts, trimesh.load(beside, process=False).vertices[: len(mesh.verts)] * 0 + mesh.verts
    )
    assert mesh.name == "capsule" and np.isfinite(mesh.volume_m3)
    assert ObjectResolver(None).mesh_file(frame) == beside.resolve()

    other = tmp_path / "objects"
    other.mkdir()
    trimesh.creation.box(extents=(0.05, 0.05, 0.05)).export(other / "capsule.ply")  # same name, other shape
    assert ObjectResolver(other)(frame).extents == pytest.approx([0.05, 0.05, 0.05])

    procedural = GenericFrame("p", "right", "mug", np.eye(4)[:3], None, base_dir=tmp_path)
    np.testing.assert_array_equal(ObjectResolver(None)(procedural).verts, make_object("mug").verts)
    with pytest.raises(InputError, match="'teapot' of sample 'p'"):
        ObjectResolver(None)(GenericFrame("p", "right", "teapot", np.eye(4)[:3], None, base_dir=tmp_path))
    with pytest.raises(AssetError, match="pass --objects DIR"):
        ObjectResolver(None)(GenericFrame("p", "right", "nope.ply", np.eye(4)[:3], None, base_dir=tmp_path))


def test_millimetre_mesh_is_refused(tmp_path):
    trimesh.creation.box(extents=(50.0, 50.0, 50.0)).export(tmp_path / "big.stl")
    frame = GenericFrame("s", "right", "big.stl", np.eye(4)[:3], None, base_dir=tmp_path)
    with pytest.raises(InputError, match="scale the mesh by 0.001"):
        ObjectResolver(None)(frame)


def test_frame_to_grasp_is_grasp_from_mano(tmp_path, layers):
    _write_capsule(tmp_path)
    arrays = _arrays()
    arrays["obj_pose"][:, :, 3] = [0.0, 0.05, 0.55]
    np.savez(tmp_path / "my.npz", **arrays)
    frames = load_generic(tmp_path / "my.npz").samples
    resolver = ObjectResolver(None)
    for frame in frames:
        grasp = frame_to_grasp(frame, layers, resolver)
        expected = Grasp.from_mano(frame.mano_params, layers.layer(frame.mano_side), resolver(frame), frame.obj_pose)
        assert grasp.side == frame.mano_side and grasp.meta["source"] == "generic"
        np.testing.assert_array_equal(grasp.hand_verts, expected.hand_verts)
        np.testing.assert_array_equal(grasp.hand_contact, expected.hand_contact)
        np.testing.assert_array_equal(grasp.obj_verts, expected.obj_verts)


@pytest.mark.parametrize("side", ["right", "left"])
def test_vertices_only_frames_get_fitted_mano(tmp_path, layers, side):
    rng = np.random.default_rng(3)
    params = {"global_orient": rng.normal(0, 0.5, 3), "hand_pose": rng.normal(0, 0.15, 45),
              "betas": rng.normal(0, 0.5, 10), "transl": np.array([0.05, -0.02, 0.4])}  # fmt: skip
    verts = pose_hand(layers.layer(side), params).verts
    np.savez(tmp_path / "verts.npz", side=np.array([side]), object=np.array(["ball"]), hand_verts=verts[None],
             obj_pose=np.concatenate([np.eye(3), [[0.05], [-0.02], [0.45]]], axis=1)[None])  # fmt: skip
    frame = load_generic(tmp_path / "verts.npz").samples[0]
    assert frame.mano_params is None
    grasp = frame_to_grasp(frame, layers, ObjectResolver(None))
    assert frame.mano_params is not None and frame.meta["mano_fit_error_m"] < 0.003
    assert np.linalg.norm(grasp.hand_verts - verts, axis=1).mean() < 0.0015
    refit, error = fit_mano_to_verts(verts, layers.layer(side), iterations=50, seed_params=params)
    assert error < 1e-4  # starting at the truth stays there
