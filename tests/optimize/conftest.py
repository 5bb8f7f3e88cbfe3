"""Shared fixtures of the optimizer tests: the synthetic hand in float64 and two palm grasps touching objects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from haco_grasp.data.grasp import Grasp
from haco_grasp.geometry.contact import sdf_contact
from haco_grasp.geometry.sdf import sdf_grid
from haco_grasp.geometry.volume import intersection_volume
from haco_grasp.hand import load_mano
from haco_grasp.hand.assets import synthetic_mano_root
from haco_grasp.hand.poses import synthetic_grasp_poses
from haco_grasp.objects.procedural import make_object
from haco_grasp.optimize import FAST

# the fixtures' targets are the ground-truth hand's own contact values, not probabilities
QUICK = FAST.replace(n_iter=40, n_restarts=2, early_stop_patience=None, target_mapping="value")


@pytest.fixture(scope="module")
def layer():
    return load_mano(root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True, dtype=torch.float64)


def palm_grasp(layer, name: str, pose_family: str = "power") -> Grasp:
    """A hand in a grasp pose with the object slid against its palm (touching, not penetrating)."""
    obj = make_object(name)
    pose = synthetic_grasp_poses(0)[pose_family][0].astype(np.float64)
    out = layer(hand_pose=torch.as_tensor(pose[None]))
    verts, joints = out.verts[0].numpy(), out.joints[0].numpy()
    centre = joints[[0, 5, 9, 13, 17]].mean(0)
    back = np.cross(joints[5] - joints[0], joints[17] - joints[0])
    normal = -back / np.linalg.norm(back)
    obj_centre = 0.5 * (obj.verts.min(0) + obj.verts.max(0))
    low, high = 0.0, 0.2
    for _ in range(20):
        mid = 0.5 * (low + high)
        moved = obj.verts - obj_centre + centre + mid * normal
        if intersection_volume(verts, layer.faces, moved, obj.faces, pitch=0.003) > 0:
            low = mid
        else:
            high = mid
    translation = -obj_centre + centre + (high + 0.001) * normal
    grid = sdf_grid(obj.verts, obj.faces)
    contact = sdf_contact(grid.query(torch.as_tensor(verts - translation, dtype=torch.float32))[None])[0]
    return Grasp(
        object_name=name,
        obj_verts_canonical=obj.verts,
        obj_faces=obj.faces,
        obj_rotation=np.eye(3),
        obj_translation=translation,
        global_orient=np.zeros(3),
        hand_pose=pose,
        betas=np.zeros(10),
        transl=np.zeros(3),
        hand_verts=verts,
        hand_joints=joints,
        hand_faces=layer.faces,
        hand_contact=contact.double().numpy(),  # oracle contact values of the ground-truth hand
    )


@pytest.fixture(scope="module")
def grasps(layer):
    return [palm_grasp(layer, "can"), palm_grasp(layer, "box", "precision")]


def perturbed(grasp: Grasp, shift: tuple[float, float, float]) -> Grasp:
    return grasp.with_hand(transl=grasp.transl + np.asarray(shift))


