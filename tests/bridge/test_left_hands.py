"""DeepContact on left hands by mirroring: a left grasp must give exactly the mirrored right grasp's prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contactopt_bridge.deepcontact import DEFAULT_CHECKPOINT, predict_contact
from contactopt_bridge.features import grasp_inputs, mirror_grasp
from haco_grasp.data.synthetic import generate_grasps
from haco_grasp.hand import synthetic_mano_root
from haco_grasp.hand.conventions import ManoLayerCache, pose_hand

ARRAYS = ("hand_verts", "hand_joints", "hand_faces", "global_orient", "hand_pose", "transl", "obj_verts_canonical",
          "obj_faces", "obj_rotation", "obj_translation")  # fmt: skip


@pytest.fixture(scope="module")
def right():
    return generate_grasps(1, seed=4, objects=["mug"], progress=False)[0]


def test_mirror_twice_is_the_identity(right):
    left = mirror_grasp(right)
    assert left.side == "left" and left.meta["mirrored"] is True
    back = mirror_grasp(left)
    assert back.side == "right" and back.meta["mirrored"] is False
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(back, name), getattr(right, name), err_msg=name)


def test_mirror_is_the_left_mano_hand_and_the_reflected_object(right):
    left = mirror_grasp(right)
    np.testing.assert_allclose(left.obj_verts, right.obj_verts * [-1.0, 1.0, 1.0], atol=1e-12)
    assert np.linalg.det(left.obj_rotation) == pytest.approx(1.0)
    # the synthetic MANO_LEFT mirrors MANO_RIGHT, so the mirrored parameters reproduce the mirrored mesh
    posed = pose_hand(ManoLayerCache(synthetic_mano_root()).layer("left"), left.mano_params)
    np.testing.assert_allclose(posed.verts, left.hand_verts, atol=1e-6)
    np.testing.assert_allclose(posed.joints, left.hand_joints, atol=1e-6)


def test_left_inputs_are_the_mirrored_right_inputs(right):
    a = grasp_inputs([right], n_obj_points=256)
    b = grasp_inputs([mirror_grasp(right)], n_obj_points=256)
    for name, x, y in zip(a._fields, a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6, msg=name)


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="shipped DeepContact checkpoint not installed")
def test_deepcontact_left_prediction_is_the_mirrored_right_prediction(right):
    expected = predict_contact([right], n_obj_points=512)
    got = predict_contact([mirror_grasp(right)], n_obj_points=512)
    torch.testing.assert_close(got.hand, expected.hand)  # same vertex ids
    torch.testing.assert_close(got.obj, expected.obj)
    flip = torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(got.obj_points, expected.obj_points * flip)  # in the left grasp's own frame
    torch.testing.assert_close(got.obj_normals, expected.obj_normals * flip)
    assert float(expected.hand.max()) > 0.1  # a real prediction, not an all-zero map
    # mixed batches keep each grasp's own frame
    both = predict_contact([right, mirror_grasp(right)], n_obj_points=512)
    rights = predict_contact([right, right], n_obj_points=512)  # grasp i samples its object with seed and index
    torch.testing.assert_close(both.hand, rights.hand)
    torch.testing.assert_close(both.obj_points[0], rights.obj_points[0])
    torch.testing.assert_close(both.obj_points[1], rights.obj_points[1] * flip)
