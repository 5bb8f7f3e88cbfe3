"""The MANO conventions' home (haco_grasp.hand.conventions) and the names the data modules still resolve."""

from __future__ import annotations

import numpy as np
import torch

import haco_grasp.data
from haco_grasp.data import dexycb, hflnet
from haco_grasp.hand import conventions
from haco_grasp.objects import ycb


def test_one_definition_behind_every_public_name() -> None:
    assert haco_grasp.data.ManoLayerCache is conventions.ManoLayerCache
    assert dexycb.ManoLayerCache is conventions.ManoLayerCache
    for name in ("dexycb_pca_to_flat_axis_angle", "flat_axis_angle_to_pca", "mirror_axis_angle"):
        assert getattr(hflnet, name) is getattr(conventions, name)
    assert dexycb.object_provider is ycb.object_provider and dexycb.YCBMeshCache is ycb.YCBMeshCache
    for name in ("PosedHand", "pose_hand", "flat_axis_angle_to_pca", "mirror_axis_angle"):  # dexycb's old exports
        assert getattr(dexycb, name) is getattr(conventions, name) and name in dexycb.__all__


def test_mirror_is_its_own_inverse_numpy_and_torch() -> None:
    aa = np.random.default_rng(0).normal(size=(4, 48))
    np.testing.assert_array_equal(conventions.mirror_axis_angle(conventions.mirror_axis_angle(aa)), aa)
    mirrored = conventions.mirror_axis_angle(torch.as_tensor(aa))
    assert isinstance(mirrored, torch.Tensor)
    np.testing.assert_array_equal(mirrored.numpy(), conventions.mirror_axis_angle(aa))
