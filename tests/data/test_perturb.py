"""Noise models: determinism, empirical statistics of the drawn noise, calibrated MPJPE, untouched ground truth."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import haco_grasp.data.perturb as perturb
from haco_grasp.data.grasp import Grasp
from haco_grasp.data.perturb import perturb_grasp, perturb_grasps
from haco_grasp.errors import InputError
from haco_grasp.geometry.labels import hand_contact_labels
from haco_grasp.hand.assets import synthetic_mano_root
from haco_grasp.hand.mano import load_mano, read_mano_pickle, resolve_mano_path
from haco_grasp.hand.poses import synthetic_grasp_poses
from haco_grasp.metrics import mpjpe
from haco_grasp.objects.procedural import make_object


@pytest.fixture(scope="module")
def layer():
    return load_mano(root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True, dtype=torch.float64)


def _grasp(layer, pose: np.ndarray, rng: np.random.Generator) -> Grasp:
    """A hand near a can (physically plausible enough for noise statistics)."""
    can = make_object("can")
    global_orient = Rotation.random(random_state=int(rng.integers(1 << 31))).as_rotvec()
    betas = rng.normal(0.0, 0.5, size=10)
    transl = rng.normal(0.0, 0.02, size=3)
    out = layer(
        global_orient=torch.as_tensor(global_orient[None]),
        hand_pose=torch.as_tensor(pose[None]),
        betas=torch.as_tensor(betas[None]),
        transl=torch.as_tensor(transl[None]),
    )
    verts = out.verts[0].numpy()
    return Grasp(
        object_name="can",
        obj_verts_canonical=can.verts,
        obj_faces=can.faces,
        obj_rotation=np.eye(3),
        obj_translation=np.zeros(3),
        global_orient=global_orient,
        hand_pose=pose.copy(),
        betas=betas,
        transl=transl,
        hand_verts=verts,
        hand_joints=out.joints[0].numpy(),
        hand_faces=np.asarray(layer.faces, dtype=np.int64),
        hand_contact=hand_contact_labels(verts, can.verts, can.faces).astype(np.float64),
        grasp_type="power",
        meta={"source": "test"},
    )


@pytest.fixture(scope="module")
def grasps(layer) -> list[Grasp]:
    rng = np.random.default_rng(5)
    families = synthetic_grasp_poses(0)
    poses = [families[name][k] for name in ("power", "precision", "pinch") for k in range(2)]
    return [_grasp(layer, pose, rng) for pose in poses]


def test_deterministic_and_seed_sensitive(grasps, layer):
    for model in perturb.NOISE_MODELS:
        a = perturb_grasp(grasps[0], model=model, rng=7, layer=layer)
        b = perturb_grasp(grasps[0], model=model, rng=7, layer=layer)
        c = perturb_grasp(grasps[0], model=model, rng=8, layer=layer)
        np.testing.assert_array_equal(a.hand_verts, b.hand_verts)
        assert np.abs(a.hand_verts - c.hand_verts).max() > 1e-4
        assert a.meta["perturbation"]["model"] == model and a.meta["perturbation"]["seed"] == 7
        batch_a = perturb_grasps(grasps, model=model, seed=3, relabel=False)
        batch_b = perturb_grasps(grasps, model=model, seed=3, relabel=False)
        for x, y in zip(batch_a, batch_b, strict=True):
            np.testing.assert_array_equal(x.hand_pose, y.hand_pose)
        # The noise of list position i depends on (seed, i) only, not on the rest of the batch.
        alone = perturb_grasps(grasps[2:3], model=model, seed=3, relabel=False)[0]
        np.testing.assert_allclose(alone.transl - grasps[2].transl, batch_a[0].transl - grasps[0].transl, atol=1e-15)
        assert not np.allclose(alone.transl - grasps[2].transl, batch_a[2].transl - grasps[2].transl)


def test_ground_truth_untouched(grasps, layer):
    before = copy.deepcopy(grasps[1])
    out = perturb_grasp(grasps[1], model="hflnet-like", rng=1, layer=layer)
    for name in ("hand_verts", "hand_pose", "global_orient", "transl", "betas", "obj_rotation", "obj_translation"):
        np.testing.assert_array_equal(getattr(grasps[1], name), getattr(before, name))
    assert grasps[1].meta == before.meta and "perturbation" not in grasps[1].meta
    assert out.meta["source"] == "test"


def _repeat(grasp: Grasp, count: int) -> list[Grasp]:
    return [grasp] * count


def test_contactopt_noise_statistics(grasps, layer):
    gt = grasps[0]
    out = perturb_grasps(_repeat(gt, 600), model="contactopt-aug", seed=0, layer=layer, relabel=False)
    transl = np.stack([g.transl for g in out]) - gt.transl
    rot = np.stack([g.global_orient for g in out]) - gt.global_orient
    data = read_mano_pickle(resolve_mano_path("right", synthetic_mano_root()))
    basis = data.hands_components[:15]
    poses = np.stack([g.hand_pose for g in out])
    coeffs = (poses - data.hands_mean) @ basis.T - (gt.hand_pose - data.hands_mean) @ basis.T
    for values, std in ((transl, 0.05), (rot, 0.1), (coeffs, 0.5)):
        assert np.all(np.abs(values.std(axis=0) / std - 1.0) < 0.15), values.std(axis=0)
        assert np.all(np.abs(values.mean(axis=0)) < 4 * std / np.sqrt(len(out)))
    # The part of the pose outside the first 15 components is kept exactly.
    rest = data.hands_components[15:]
    np.testing.assert_allclose(poses @ rest.T, np.tile(gt.hand_pose @ rest.T, (600, 1)), atol=1e-9)
    # The object and the shape do not move.
    for g in out[:5]:
        np.testing.assert_array_equal(g.obj_verts, gt.obj_verts)
        np.testing.assert_array_equal(g.betas, gt.betas)


def test_contactopt_zero_noise_is_identity(grasps, layer, monkeypatch):
    for name in ("CONTACTOPT_TRANS_STD", "CONTACTOPT_ROT_STD", "CONTACTOPT_POSE_STD"):
        monkeypatch.setattr(perturb, name, 0.0)
    out = perturb_grasp(grasps[3], model="contactopt-aug", rng=0, layer=layer)
    np.testing.assert_allclose(out.hand_pose, grasps[3].hand_pose, atol=1e-12)
    np.testing.assert_allclose(out.hand_verts, grasps[3].hand_verts, atol=1e-9)
    np.testing.assert_array_equal(out.hand_contact, grasps[3].hand_contact)


def test_hflnet_noise_statistics(grasps, layer):
    gt = grasps[0]
    out = perturb_grasps(_repeat(gt, 600), model="hflnet-like", seed=1, layer=layer, relabel=False)
    pose = np.stack([g.hand_pose for g in out]) - gt.hand_pose
    betas = np.stack([g.betas for g in out]) - gt.betas
    transl = np.stack([g.transl for g in out]) - gt.transl
    assert abs(pose.std() / perturb.HFL_POSE_STD - 1.0) < 0.05
    assert abs(betas.std() / perturb.HFL_BETAS_STD - 1.0) < 0.1
    assert np.all(np.abs(transl.std(axis=0) / perturb.HFL_ROOT_STD - 1.0) < 0.15)
    # Object: rotation about its centre with N(0, 2.5 deg) per axis-angle component, translation N(0, 6 mm).
    angles = np.stack([Rotation.from_matrix(g.obj_rotation).as_rotvec() for g in out])
    assert np.all(np.abs(np.degrees(angles.std(axis=0)) / perturb.HFL_OBJ_ROT_STD_DEG - 1.0) < 0.15)
    centre = gt.obj_verts.mean(axis=0)
    moved_centre = np.stack([g.obj_verts.mean(axis=0) for g in out]) - centre
    assert np.all(np.abs(moved_centre.std(axis=0) / perturb.HFL_OBJ_TRANS_STD - 1.0) < 0.15)
    assert 0.006 < np.linalg.norm(moved_centre, axis=1).mean() < 0.012  # "about 1 cm"


def test_hflnet_mpjpe_in_range(grasps):
    gt_joints = np.stack([g.hand_joints for g in grasps])
    errors = []
    for seed in range(20):
        out = perturb_grasps(grasps, model="hflnet-like", seed=seed, relabel=False)
        errors.append(mpjpe(np.stack([g.hand_joints for g in out]), gt_joints, align="root"))
    mean = float(np.concatenate(errors).mean())
    assert 12.0 <= mean <= 15.0, mean
    root = np.linalg.norm(np.stack([g.hand_joints[0] for g in out]) - gt_joints[:, 0], axis=1)
    assert np.all(root < 0.03)


def test_object_moves_only_for_hflnet(grasps, layer):
    gt = grasps[4]
    hfl = perturb_grasp(gt, model="hflnet-like", rng=2, layer=layer)
    co = perturb_grasp(gt, model="contactopt-aug", rng=2, layer=layer)
    assert np.abs(hfl.obj_verts - gt.obj_verts).max() > 1e-3
    np.testing.assert_array_equal(co.obj_verts, gt.obj_verts)
    np.testing.assert_array_equal(hfl.obj_verts_canonical, gt.obj_verts_canonical)
    assert np.allclose(hfl.obj_rotation @ hfl.obj_rotation.T, np.eye(3), atol=1e-12)


def test_mesh_and_labels_follow_the_parameters(grasps, layer):
    out = perturb_grasp(grasps[2], model="contactopt-aug", rng=4, layer=layer)
    ref = layer(
        global_orient=torch.as_tensor(out.global_orient[None]),
        hand_pose=torch.as_tensor(out.hand_pose[None]),
        betas=torch.as_tensor(out.betas[None]),
        transl=torch.as_tensor(out.transl[None]),
    )
    np.testing.assert_allclose(out.hand_verts, ref.verts[0].numpy(), atol=1e-9)
    np.testing.assert_allclose(out.hand_joints, ref.joints[0].numpy(), atol=1e-9)
    labels = hand_contact_labels(out.hand_verts, out.obj_verts, out.obj_faces)
    np.testing.assert_array_equal(out.hand_contact, labels.astype(np.float64))
    kept = perturb_grasp(grasps[2], model="contactopt-aug", rng=4, layer=layer, relabel=False)
    np.testing.assert_array_equal(kept.hand_contact, grasps[2].hand_contact)


def test_validation(grasps, layer):
    with pytest.raises(InputError, match="model"):
        perturb_grasp(grasps[0], model="gaussian", rng=0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="rng"):
        perturb_grasp(grasps[0], rng=-1)
    with pytest.raises(InputError, match="flat_hand_mean"):
        perturb_grasp(grasps[0], rng=0, layer=load_mano(root=synthetic_mano_root(), use_pca=True))
    with pytest.raises(InputError, match="seed"):
        perturb_grasps(grasps, seed=-3)
    with pytest.raises(InputError, match=r"grasps\[1\]"):
        perturb_grasps([grasps[0], "not a grasp"], seed=0)  # type: ignore[list-item]
    assert perturb_grasps([], seed=0) == []
