"""Synthetic ground-truth grasps: record fields, determinism, physical quality, labels, and no contact model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import haco_grasp.geometry.contact as contact_model
from haco_grasp.data.grasp import Grasp
from haco_grasp.data.synthetic import (
    GRASP_TYPES,
    GraspWorldConfig,
    generate_grasps,
    hand_parts,
    touching_parts,
)
from haco_grasp.errors import InputError
from haco_grasp.geometry.labels import hand_contact_labels
from haco_grasp.geometry.volume import intersection_volume
from haco_grasp.hand.assets import synthetic_mano_root
from haco_grasp.hand.mano import load_mano
from haco_grasp.metrics import max_penetration_depth

OBJECTS = ["can", "thin_plate", "tool"]


@pytest.fixture(scope="module")
def grasps() -> list[Grasp]:
    return generate_grasps(6, seed=3, objects=OBJECTS, progress=False)


@pytest.fixture(scope="module")
def layer():
    return load_mano(root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True, dtype=torch.float64)


def test_fields_and_shapes(grasps):
    assert len(grasps) == 6
    assert {g.grasp_type for g in grasps} == {"power", "precision"}
    for i, g in enumerate(grasps):
        assert g.object_name == OBJECTS[i % len(OBJECTS)]
        assert g.grasp_type in GRASP_TYPES
        assert g.hand_verts.shape == (778, 3) and g.hand_joints.shape == (21, 3)
        assert g.hand_pose.shape == (45,) and g.global_orient.shape == (3,) and g.transl.shape == (3,)
        assert g.betas.shape == (10,) and g.hand_contact.shape == (778,)
        assert g.hand_faces.shape == (1538, 3) and g.obj_faces.shape[1] == 3
        np.testing.assert_array_equal(g.obj_rotation, np.eye(3))
        np.testing.assert_array_equal(g.obj_translation, np.zeros(3))
        assert set(np.unique(g.hand_contact)) <= {0.0, 1.0}
        assert g.side == "right" and g.meta["seed"] == 3 and g.meta["index"] == i
        for array in (g.hand_verts, g.hand_joints, g.hand_pose, g.global_orient, g.transl, g.betas):
            assert array.dtype == np.float64 and np.all(np.isfinite(array))


def test_physical_quality(grasps):
    parts = hand_parts()
    for g in grasps:
        volume = intersection_volume(g.hand_verts, g.hand_faces, g.obj_verts, g.obj_faces, pitch=0.002)
        assert volume < 0.5, (g.object_name, volume)
        assert max_penetration_depth(g.hand_verts, g.obj_verts, g.obj_faces) < 1.1  # mm
        touching = touching_parts(g.hand_verts, g.obj_verts, g.obj_faces, parts, distance=0.0021)
        digits = int(touching.digits.sum())
        assert digits >= 3 or (digits >= 2 and touching.palm), (g.object_name, g.meta["contact_digits"])
        assert touching.digits[0] or touching.palm  # opposition
        assert g.meta["quality_passed"]
        assert 30 < g.hand_contact.sum() < 600


def test_labels_are_the_contact_rule(grasps):
    for g in grasps[:4]:
        np.testing.assert_array_equal(g.hand_contact, hand_contact_labels(g.hand_verts, g.obj_verts, g.obj_faces))


def test_mesh_is_the_mano_layer_output(grasps, layer):
    for g in grasps[:4]:
        out = layer(
            global_orient=torch.as_tensor(g.global_orient[None]),
            hand_pose=torch.as_tensor(g.hand_pose[None]),
            betas=torch.as_tensor(g.betas[None]),
            transl=torch.as_tensor(g.transl[None]),
        )
        np.testing.assert_allclose(out.verts[0].numpy(), g.hand_verts, atol=2e-6)
        np.testing.assert_allclose(out.joints[0].numpy(), g.hand_joints, atol=2e-6)


def test_deterministic_for_a_seed():
    first = generate_grasps(2, seed=11, objects=["can"], grasp_types=("precision",), progress=False)
    second = generate_grasps(2, seed=11, objects=["can"], grasp_types=("precision",), progress=False)
    other = generate_grasps(1, seed=12, objects=["can"], grasp_types=("precision",), progress=False)
    for a, b in zip(first, second, strict=True):
        for name in ("hand_verts", "hand_pose", "global_orient", "transl", "betas", "hand_contact"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert np.abs(other[0].hand_verts - first[0].hand_verts).max() > 1e-3


def test_never_calls_the_contact_model(monkeypatch):
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the ground-truth generator must not use the contact model")

    names = [n for n in dir(contact_model) if not n.startswith("_") and callable(getattr(contact_model, n))]
    functions = [n for n in names if getattr(getattr(contact_model, n), "__module__", "") == contact_model.__name__]
    assert "contact_maps" in functions
    for name in functions:
        if isinstance(getattr(contact_model, name), type):
            continue
        monkeypatch.setattr(contact_model, name, forbidden)
    result = generate_grasps(1, seed=0, objects=["small_cube"], progress=False)
    assert len(result) == 1 and not calls


def test_requested_types_and_fallback():
    plate = generate_grasps(1, seed=1, objects=["thin_plate"], grasp_types=("pinch",), progress=False)[0]
    assert plate.grasp_type == "pinch" and plate.meta["requested_type"] == "pinch"
    # A 6.6 cm ball affords no pinch site: the planner falls back to the next requested type.
    ball = generate_grasps(1, seed=1, objects=["ball"], grasp_types=("pinch", "precision"), progress=False)[0]
    assert ball.meta["requested_type"] == "pinch" and ball.grasp_type == "precision"


def test_left_hand():
    grasp = generate_grasps(1, seed=2, objects=["can"], side="left", progress=False)[0]
    assert grasp.side == "left" and grasp.meta["quality_passed"]
    parts = hand_parts(side="left")
    touching = touching_parts(grasp.hand_verts, grasp.obj_verts, grasp.obj_faces, parts, distance=0.0021)
    assert touching.digits.sum() >= 2


def test_simulator_skinning_matches_the_layer(layer):
    """The planner's fast forward pass (shape part precomputed) equals ManoLayer's LBS."""
    from haco_grasp.data.synthetic.rig import _build_rig, _type_plan
    from haco_grasp.data.synthetic.simulate import _Simulator
    from haco_grasp.geometry.sdf import sdf_grid
    from haco_grasp.hand.poses import synthetic_grasp_poses
    from haco_grasp.objects.procedural import make_object

    fast_layer = load_mano(root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True)
    rig = _build_rig(fast_layer, "right")
    plan = _type_plan("power", synthetic_grasp_poses(0), rig.frames)
    cube = make_object("small_cube")
    sim = _Simulator(fast_layer, rig, plan, sdf_grid(cube.verts, cube.faces), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    t = torch.rand(3, 5, 3, generator=generator) * 1.5
    betas = torch.randn(3, 10, generator=generator) * 0.5
    sim.prepare(betas)
    verts, _ = sim.local_verts(t)
    reference = layer(hand_pose=sim.hand_pose(t).double(), betas=betas.double()).verts
    np.testing.assert_allclose(verts.numpy(), reference.numpy(), atol=1e-5)


def test_validation():
    with pytest.raises(InputError, match="n:"):
        generate_grasps(-1, progress=False)
    with pytest.raises(InputError, match="grasp_types"):
        generate_grasps(1, grasp_types=("hook",), progress=False)
    with pytest.raises(InputError, match="unknown object"):
        generate_grasps(1, objects=["teapot"], progress=False)
    with pytest.raises(InputError, match="side"):
        generate_grasps(1, side="both", progress=False)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="config"):
        generate_grasps(1, config={"max_rounds": 1}, progress=False)  # type: ignore[arg-type]
    assert generate_grasps(0, progress=False) == []
    assert GraspWorldConfig().max_volume_cm3 == 0.5
