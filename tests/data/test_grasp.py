"""Tests of :meth:`haco_grasp.data.grasp.Grasp.from_mano` against an independent MANO forward pass and trimesh."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from haco_grasp.data.grasp import Grasp, grasp_from_mano
from haco_grasp.errors import InputError
from haco_grasp.geometry.labels import hand_contact_labels
from haco_grasp.hand import synthetic_mano_root
from haco_grasp.hand.conventions import ManoLayerCache, pose_hand
from haco_grasp.objects.procedural import make_object


@pytest.fixture(scope="module")
def layers():
    return ManoLayerCache(synthetic_mano_root())


def _params(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "global_orient": rng.normal(0, 0.3, 3),
        "hand_pose": rng.normal(0, 0.2, 45),
        "betas": rng.normal(0, 0.5, 10),
        "transl": np.array([0.02, -0.01, 0.05]),
    }


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("side", ["right", "left"])
def test_from_mano_computes_hand_object_and_contact(layers, side):
    params = _params(1)
    mesh = make_object("box")
    pose = np.concatenate([_rotation(0.4), np.array([[0.03], [0.0], [0.1]])], axis=1)
    grasp = Grasp.from_mano(params, layers.layer(side), mesh, pose, object_id=7, meta={"frame": 3})

    reference = pose_hand(layers.layer(side), params)
    np.testing.assert_allclose(grasp.hand_verts, reference.verts, atol=1e-12)
    np.testing.assert_allclose(grasp.hand_joints, reference.joints, atol=1e-12)
    assert grasp.side == side and grasp.object_id == 7 and grasp.object_name == mesh.name
    assert grasp.meta["frame"] == 3 and grasp.meta["contact_source"] == "geometry<0.01m"
    np.testing.assert_array_equal(grasp.hand_faces, layers.layer(side).faces)
    np.testing.assert_allclose(grasp.obj_verts, mesh.verts @ pose[:, :3].T + pose[:, 3], atol=1e-12)

    # contact: trimesh's closest-point distance < 1 cm, or inside the (closed) object
    posed = trimesh.Trimesh(grasp.obj_verts, mesh.faces, process=False)
    _, distance, _ = trimesh.proximity.closest_point(posed, grasp.hand_verts)
    expected = (distance < 0.01) | posed.contains(grasp.hand_verts)
    assert np.mean(expected == (grasp.hand_contact > 0.5)) > 0.995


def test_from_mano_defaults_and_given_contact(layers):
    params = {"global_orient": np.zeros(3), "hand_pose": np.zeros(45)}  # betas and transl default to zeros
    given = np.linspace(0.0, 1.0, 778)
    grasp = Grasp.from_mano(params, layers.layer("right"), make_object("ball"), hand_contact=given)
    np.testing.assert_array_equal(grasp.obj_rotation, np.eye(3))
    np.testing.assert_array_equal(grasp.transl, np.zeros(3))
    np.testing.assert_array_equal(grasp.hand_contact, (given >= 0.5).astype(float))
    assert grasp.meta["contact_source"] == "given"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"hand_pose": np.zeros(44)}, "hand_pose"),
        ({"global_orient": None}, "global_orient"),
        ({"pose": np.zeros((4, 4))}, "obj_pose"),
        ({"pose": np.concatenate([2 * np.eye(3), np.zeros((3, 1))], axis=1)}, "rotation"),
        ({"contact": np.full(778, 2.0)}, "hand_contact"),
    ],
)
def test_from_mano_errors_name_the_field(layers, change, match):
    params = _params(0)
    pose, contact = change.pop("pose", None), change.pop("contact", None)
    for key, value in change.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    with pytest.raises(InputError, match=match):
        Grasp.from_mano(params, layers.layer("right"), make_object("box"), pose, hand_contact=contact)


def test_from_mano_refuses_a_pca_layer(layers):
    with pytest.raises(InputError, match="flat-hand-mean"):
        Grasp.from_mano(_params(0), layers.dexycb_layer("right"), make_object("box"))


# ----------------------------------------------------------------------------------------------- grasp_from_mano
# The one path Grasp.from_mano, DexYCBSample.to_grasp and hflnet.prediction_to_grasp share; these tests pin what
# each caller used to do inline (layer output, posed object, contact given or computed).
def test_grasp_from_mano_is_what_from_mano_builds(layers):
    params = _params(3)
    mesh = make_object("can")
    pose = np.concatenate([_rotation(-0.7), np.array([[0.01], [0.02], [0.08]])], axis=1)
    layer = layers.layer("left")
    meta = {"source": "test"}
    shared = grasp_from_mano(params, layer, mesh, pose, object_id=4, meta=meta)
    through = Grasp.from_mano(params, layer, mesh, pose, object_id=4, meta={"source": "test"})
    for name in ("hand_verts", "hand_joints", "hand_contact", "hand_faces", "obj_verts", "hand_pose", "betas"):
        np.testing.assert_array_equal(getattr(shared, name), getattr(through, name), err_msg=name)
    assert shared.meta is meta and shared.meta == {"source": "test"}  # the caller's meta, no contact_source added
    assert through.meta == {"source": "test", "contact_source": "geometry<0.01m"}
    assert shared.side == "left" and shared.object_id == 4


def test_grasp_from_mano_stores_a_given_hand_and_rounds_a_given_contact(layers):
    params = _params(4)
    mesh = make_object("box")
    pose = np.concatenate([np.eye(3), np.array([[0.0], [0.0], [0.1]])], axis=1)
    layer = layers.layer("right")
    stored = pose_hand(layer, params)
    moved = type(stored)(stored.verts + 0.001, stored.joints + 0.001)  # e.g. a prediction's own vertices
    grasp = grasp_from_mano(params, layer, mesh, pose, hand=moved, contact_threshold=0.02)
    np.testing.assert_array_equal(grasp.hand_verts, moved.verts)
    np.testing.assert_array_equal(grasp.hand_joints, moved.joints)
    expected = hand_contact_labels(moved.verts, mesh.verts @ pose[:, :3].T + pose[:, 3], mesh.faces, 0.02)
    np.testing.assert_array_equal(grasp.hand_contact, expected.astype(np.float64))  # labels of the stored hand
    given = np.linspace(0.0, 1.0, 778)
    rounded = grasp_from_mano(params, layer, mesh, pose, hand_contact=given).hand_contact
    np.testing.assert_array_equal(rounded, (given >= 0.5).astype(np.float64))
