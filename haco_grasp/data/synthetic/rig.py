"""The hand rig of the planner: joint frames, vertex parts and grasp axes (computed once per MANO model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from haco_grasp.data.synthetic.config import (
    _DIGIT_JOINTS,
    _FINGER_LIMITS,
    _MAX_PATH,
    _MAX_THUMB_CMC_PATH,
    _NUM_DIGITS,
    _NUM_LEVELS,
    _THUMB_LIMITS,
    _THUMB_PAD_MIX,
    _TYPE_SPECS,
    _TypeSpec,
)
from haco_grasp.errors import InputError

# --------------------------------------------------------------------------------------------------------------
# hand rig: joint frames, vertex parts, grasp axes (computed once per model)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@dataclass(frozen=True)
class _Rig:
    """Kinematic annotations of a MANO-format model (rest pose, flat-hand-mean convention, betas 0).

    Attributes:
        frames: (5, 3, 3, 3) per digit and level, rows = flexion axis, abduction axis, bone direction (rest frame).
        palm_normal, finger_dir: (3,) unit vectors.
        palm_centre: (3,) metres.
        knuckle_offset: palm centre to MCP line
            along finger_dir, metres.
        vert_digit: (V,) int, digit of each vertex's dominant joint, -1 for the palm / back / wrist ("body").
        moving: (3, 5, V) float, skinning weight of each vertex on the level-k joint of digit d and its descendants
            (0 below 0.02).
        own: (3, 5, V) bool, vertices whose dominant joint is that joint or a descendant (the others
            with a moving weight are blended skin of the parent link: the crease).
        link: (3, 5, V) bool, vertices whose dominant joint is the level-k joint of digit d.
        digit: (5, V) bool, vertices of each digit.
        palm: (V,) bool, palmar palm vertices.
    """

    frames: np.ndarray
    palm_normal: np.ndarray
    finger_dir: np.ndarray
    palm_centre: np.ndarray
    knuckle_offset: float
    vert_digit: np.ndarray
    moving: np.ndarray
    own: np.ndarray
    link: np.ndarray
    digit: np.ndarray
    palm: np.ndarray


def _joint_frames(joints: np.ndarray, tips: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-digit, per-level joint frames from the 16 rest joints (3,) rows and the 5 tips (thumb..pinky)."""
    wrist, index1, pinky1, middle1 = joints[0], joints[1], joints[7], joints[4]
    normal = np.cross(index1 - wrist, pinky1 - wrist)
    normal = _unit(normal if side == "right" else -normal)  # palm normal, pointing out of the palm
    lateral = index1 - pinky1
    lateral = _unit(lateral - (lateral @ normal) * normal)  # towards the thumb side
    finger = middle1 - wrist
    finger = _unit(finger - (finger @ normal) * normal)
    thumb_pad = _unit(_THUMB_PAD_MIX[0] * normal - _THUMB_PAD_MIX[1] * lateral)
    sign = 1.0 if side == "right" else -1.0  # keeps abduction / twist coordinates mirror-invariant
    frames = np.zeros((_NUM_DIGITS, _NUM_LEVELS, 3, 3))
    for d, chain in enumerate(_DIGIT_JOINTS):
        points = [joints[j] for j in chain] + [tips[d]]
        reference = thumb_pad if d == 0 else normal
        for k in range(_NUM_LEVELS):
            bone = _unit(points[k + 1] - points[k])
            flex = _unit(np.cross(bone, reference))  # a positive rotation moves the child towards the reference
            frames[d, k] = np.stack([flex, sign * np.cross(flex, bone), sign * bone])
    return frames, normal, finger


def _rest_joints_and_tips(layer: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    v_template = layer.v_template.detach().double().cpu()
    joints = (layer.J_regressor.detach().double().cpu() @ v_template).numpy()  # (16, 3)
    tips = v_template[layer.tip_vertex_ids.cpu()].numpy()  # (5, 3)
    return v_template.numpy(), joints, tips


def _build_rig(layer: Any, side: str) -> _Rig:
    from haco_grasp.geometry.mesh import vertex_normals

    v_template, joints, tips = _rest_joints_and_tips(layer)
    frames, normal, finger = _joint_frames(joints, tips, side)
    weights = layer.lbs_weights.detach().double().cpu().numpy()  # (V, 16)
    dominant = weights.argmax(axis=1)
    num_verts = weights.shape[0]
    vert_digit = np.full(num_verts, -1, dtype=np.int64)
    moving = np.zeros((_NUM_LEVELS, _NUM_DIGITS, num_verts))
    link = np.zeros((_NUM_LEVELS, _NUM_DIGITS, num_verts), dtype=bool)
    own = np.zeros_like(link)
    for d, chain in enumerate(_DIGIT_JOINTS):
        for k, joint in enumerate(chain):
            vert_digit[dominant == joint] = d
            link[k, d] = dominant == joint
            weight = weights[:, list(chain[k:])].sum(axis=1)
            moving[k, d] = np.where(weight > 0.02, weight, 0.0)
            own[k, d] = np.isin(dominant, chain[k:])
    # The thumb's metacarpal (dominant joint: CMC) is the thenar eminence, in contact whenever the palm is: it is soft
    # skin for its own joint and does not stop the CMC, which opposes the thumb until a phalanx is blocked.
    own[0, 0] = np.isin(dominant, _DIGIT_JOINTS[0][1:])
    link[0, 0] = False
    faces = torch.as_tensor(np.asarray(layer.faces, dtype=np.int64))
    rest_normals = vertex_normals(torch.as_tensor(v_template), faces).numpy()
    palm = (vert_digit == -1) & (rest_normals @ normal > 0.5)
    if palm.sum() < 5:
        raise InputError(f"the hand model {layer.model_path!r} has no recognisable palm (palmar wrist-bound vertices)")
    palm_centre = v_template[palm].mean(axis=0)
    return _Rig(
        frames=frames,
        palm_normal=normal,
        finger_dir=finger,
        palm_centre=palm_centre,
        knuckle_offset=float((joints[[1, 4, 7, 10]].mean(axis=0) - palm_centre) @ finger),
        vert_digit=vert_digit,
        moving=moving,
        own=own,
        link=link,
        digit=np.stack([vert_digit == d for d in range(_NUM_DIGITS)]),
        palm=palm,
    )


def _pose_to_local(frames: np.ndarray, hand_pose: np.ndarray) -> np.ndarray:
    """(45,) axis-angle hand pose -> (5, 3, 3) local joint coordinates [digit, level, (flex, abd, twist)]."""
    per_joint = hand_pose.reshape(15, 3)
    local = np.zeros((_NUM_DIGITS, _NUM_LEVELS, 3))
    for d, chain in enumerate(_DIGIT_JOINTS):
        for k, joint in enumerate(chain):
            local[d, k] = frames[d, k] @ per_joint[joint - 1]
    return local


def _local_to_pose(frames: Tensor, local: Tensor) -> Tensor:
    """Local joint coordinates (B, 5, 3, 3) -> (B, 45) axis-angle hand pose (MANO joints 1..15)."""
    per_digit = torch.einsum("dkij,bdki->bdkj", frames, local)  # (B, 5, 3, 3): sum_i coordinate_i * frame row i
    pose = torch.zeros(local.shape[0], 15, 3, dtype=local.dtype, device=local.device)
    for d, chain in enumerate(_DIGIT_JOINTS):
        for k, joint in enumerate(chain):
            pose[:, joint - 1] = per_digit[:, d, k]
    return pose.reshape(-1, 45)


def _rotation_aligning(a_local: np.ndarray, o_local: np.ndarray, a_world: np.ndarray, o_world: np.ndarray):
    """Rotations (B, 3, 3) with R a_local = a_world and R o_local in the half-plane of (a_world, o_world)."""

    def frame(a: np.ndarray, o: np.ndarray) -> np.ndarray:
        a = _unit(a)
        o = _unit(o - np.sum(o * a, axis=-1, keepdims=True) * a)
        return np.stack([a, o, np.cross(a, o)], axis=-1)  # (B, 3, 3) columns

    return frame(a_world, o_world) @ np.swapaxes(frame(a_local, o_local), -1, -2)


@dataclass(frozen=True)
class _TypePlan:
    """Digit paths of one grasp type on one rig.

    Attributes:
        start: (5, 3, 3) local coordinates at t = 0 (open family).
        direction: (5, 3, 3) change per unit t.
        speed: (5, 3) radians per unit t (norm of direction).
        t_max: (5, 3) path limits.
    """

    name: str
    spec: _TypeSpec
    start: np.ndarray
    direction: np.ndarray
    speed: np.ndarray
    t_max: np.ndarray


def _type_plan(name: str, families: dict[str, np.ndarray], source_frames: np.ndarray) -> _TypePlan:
    spec = _TYPE_SPECS[name]
    start = _pose_to_local(source_frames, families["open"].mean(axis=0))
    target = _pose_to_local(source_frames, families[spec.family].mean(axis=0))
    direction = target - start
    flex_rate = direction[:, :, 0]
    limits = np.array([_THUMB_LIMITS] + [_FINGER_LIMITS] * 4)
    t_max = np.where(flex_rate > 0.05, (limits - start[:, :, 0]) / np.maximum(flex_rate, 0.05), 1.0)
    t_max = np.clip(t_max, 1.0, _MAX_PATH)
    t_max[0, 0] = min(t_max[0, 0], _MAX_THUMB_CMC_PATH)
    return _TypePlan(
        name=name,
        spec=spec,
        start=start,
        direction=direction,
        speed=np.maximum(np.linalg.norm(direction, axis=-1), 1e-3),
        t_max=t_max,
    )
