"""Tests for contactopt_bridge.features: each feature against a naive numpy loop, and the input frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from contactopt_bridge.features import (
    FEATURE_NAMES,
    NUM_FEATURES,
    apply_transform,
    grasp_inputs,
    normalizing_transform,
    pointnet_features,
)
from haco_grasp.errors import InputError
from tests.bridge import fake_grasps


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _tiny_case(seed=0):
    rng = np.random.default_rng(seed)
    hand = rng.normal(scale=0.03, size=(6, 3)) + [0.05, 0.0, 0.0]
    hand_n = _unit(rng.normal(size=(6, 3)))
    joints = rng.normal(scale=0.03, size=(21, 3)) + [0.06, 0.0, 0.0]
    obj = rng.normal(scale=0.03, size=(8, 3))
    obj_n = _unit(rng.normal(size=(8, 3)))
    return hand, hand_n, joints, obj, obj_n


def _naive_features(points, normals, other, other_centroid, joints, flag):
    rows = []
    for p, n in zip(points, normals, strict=True):
        dists = [np.linalg.norm(q - p) for q in other]
        q = other[int(np.argmin(dists))]
        row = [flag, float(np.dot(p - other_centroid, n)), float(np.linalg.norm(q - p)), float(np.dot(q - p, n))]
        row += [float(np.linalg.norm(p - j)) for j in joints]
        rows.append(row)
    return np.array(rows)


def test_feature_names():
    assert NUM_FEATURES == 25 and len(FEATURE_NAMES) == 25 and FEATURE_NAMES[0] == "is_hand"


def test_each_feature_matches_naive_numpy():
    hand, hand_n, joints, obj, obj_n = _tiny_case()
    feats = pointnet_features(*(torch.as_tensor(x)[None] for x in (hand, hand_n, joints, obj, obj_n)))
    assert feats.hand.shape == (1, 6, 25) and feats.obj.shape == (1, 8, 25)
    expected_hand = _naive_features(hand, hand_n, obj, obj.mean(0), joints, 1.0)
    expected_obj = _naive_features(obj, obj_n, hand, hand.mean(0), joints, 0.0)
    for column, name in enumerate(FEATURE_NAMES):
        np.testing.assert_allclose(feats.hand[0, :, column].numpy(), expected_hand[:, column], atol=1e-12, err_msg=name)
        np.testing.assert_allclose(feats.obj[0, :, column].numpy(), expected_obj[:, column], atol=1e-12, err_msg=name)


def test_features_are_rigid_invariant_and_batched():
    case = _tiny_case(1)
    rot = Rotation.from_rotvec([0.3, -1.2, 0.5]).as_matrix()
    shift = np.array([0.4, -0.1, 0.9])
    moved = (
        case[0] @ rot.T + shift,
        case[1] @ rot.T,
        case[2] @ rot.T + shift,
        case[3] @ rot.T + shift,
        case[4] @ rot.T,
    )
    both = [torch.as_tensor(np.stack([a, b])) for a, b in zip(case, moved, strict=True)]
    feats = pointnet_features(*both)
    torch.testing.assert_close(feats.hand[0], feats.hand[1])
    torch.testing.assert_close(feats.obj[0], feats.obj[1])


def test_feature_input_validation():
    hand, hand_n, joints, obj, obj_n = (torch.as_tensor(x)[None] for x in _tiny_case())
    with pytest.raises(InputError):
        pointnet_features(hand, hand_n, joints[:, :20], obj, obj_n)
    with pytest.raises(InputError):
        pointnet_features(hand, hand_n[:, :5], joints, obj, obj_n)
    with pytest.raises(InputError):
        pointnet_features(hand[:, :0], hand_n[:, :0], joints, obj, obj_n)


def test_normalizing_frame():
    rng = np.random.default_rng(2)
    hand = torch.as_tensor(
        rng.normal(scale=0.02, size=(3, 20, 3)) + [[[0.1, 0.2, 0.05]], [[0.0, 0.0, 0.3]], [[-0.2, 0.1, 0.0]]]
    )
    obj = torch.as_tensor(rng.normal(scale=0.02, size=(3, 30, 3)))
    tf = normalizing_transform(hand, obj)
    rot = tf.rotation
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3, dtype=rot.dtype).expand(3, 3, 3))
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(3, dtype=rot.dtype))
    obj_net, hand_net = apply_transform(obj, tf), apply_transform(hand, tf)
    torch.testing.assert_close(obj_net.mean(1), torch.zeros(3, 3, dtype=rot.dtype))  # origin at the object centroid
    hand_c = hand_net.mean(1)
    assert (hand_c[:, 0] > 0).all()  # +x towards the hand
    torch.testing.assert_close(hand_c[:, 1:], torch.zeros(3, 2, dtype=rot.dtype))
    torch.testing.assert_close(hand_c[:, 0], (hand.mean(1) - obj.mean(1)).norm(dim=-1))
    # deterministic without roll; a roll turns y/z about x and keeps x
    torch.testing.assert_close(normalizing_transform(hand, obj).rotation, rot)
    roll = torch.tensor([0.0, np.pi / 2, 1.0], dtype=rot.dtype)
    rolled = normalizing_transform(hand, obj, roll).rotation
    torch.testing.assert_close(rolled[:, 0], rot[:, 0])
    torch.testing.assert_close(rolled[0], rot[0])
    torch.testing.assert_close(rolled[1, 1], rot[1, 2])  # y' = cos y + sin z with θ = 90°
    cos = (rolled[2, 1] * rot[2, 1]).sum()
    torch.testing.assert_close(cos, torch.cos(roll[2]))
    with pytest.raises(InputError):
        normalizing_transform(hand, obj, torch.zeros(2))


def test_normalizing_frame_near_pole_is_finite():
    obj = torch.zeros(1, 4, 3, dtype=torch.float64)
    obj[0, :, 0] = torch.tensor([-1.0, 1.0, 0.0, 0.0]) * 0.01
    hand = torch.zeros(1, 5, 3, dtype=torch.float64)
    hand[..., 2] = 0.2  # straight above: x = +z
    tf = normalizing_transform(hand, obj)
    assert torch.isfinite(tf.rotation).all()
    torch.testing.assert_close(tf.rotation[0, 0], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


def test_grasp_inputs_shapes_and_seeding():
    grasps = fake_grasps(("box", "box"))
    inputs = grasp_inputs(grasps, n_obj_points=64, seed=3)
    assert inputs.hand_verts.shape == (2, 778, 3) and inputs.obj_points.shape == (2, 64, 3)
    assert inputs.hand_feats.shape == (2, 778, 25) and inputs.obj_feats.shape == (2, 64, 25)
    assert inputs.hand_feats.dtype == torch.float32
    torch.testing.assert_close(inputs.obj_normals.norm(dim=-1), torch.ones(2, 64))
    again = grasp_inputs(grasps[1:], n_obj_points=64, seed=3)
    assert not torch.equal(again.obj_points[0], inputs.obj_points[1])  # index enters the seed
    torch.testing.assert_close(grasp_inputs(grasps, n_obj_points=64, seed=3).obj_points, inputs.obj_points)
    assert (inputs.hand_feats[..., 0] == 1).all() and (inputs.obj_feats[..., 0] == 0).all()
    with pytest.raises(InputError):
        grasp_inputs([], n_obj_points=64)
