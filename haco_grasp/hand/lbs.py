"""Linear blend skinning for MANO as pure functions over tensors (the functional core of ``ManoLayer``).

The maths is smplx's ``lbs`` (shape blend, joint regression, Rodrigues rotations, pose blend, forward kinematics,
skinning), arranged so that its number of torch operations is fixed and small and it never reads a tensor on the
host: the kinematic chain is walked by tree *depth* (MANO: the wrist, then five fingers at a time, three levels)
instead of joint by joint, and the parent of every joint is a precomputed index. Tested against ``smplx.lbs`` and a
float64 textbook forward kinematics (``tests/hand/test_mano.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from haco_grasp.geometry.constants import constant

__all__ = ["KinematicLevels", "kinematic_levels", "linear_blend_skinning"]


class KinematicLevels(NamedTuple):
    """The kinematic tree by depth.

    order: (J,) long, joints sorted by depth (root first); inverse: (J,) long, position of joint j in ``order``.
    levels: per depth >= 1, (start, stop, parents) — the joints ``order[start:stop]`` and their parents, which all
    lie in the previous level: ``None`` when joint i's parent is the previous level's i-th joint or its only joint
    (MANO: every level), else a (n,) long tensor of positions within the previous level.
    """

    order: Tensor
    inverse: Tensor
    levels: tuple[tuple[int, int, Tensor | None], ...]


def kinematic_levels(parents: list[int] | tuple[int, ...], device: torch.device | None = None) -> KinematicLevels:
    """Group a kinematic tree's joints by depth.

    Args:
        parents: (J,) parent of each joint, -1 for the single root (joint 0).

    Returns:
        KinematicLevels.
    """
    parents = [int(p) for p in parents]
    depth = [0] * len(parents)
    for joint in range(len(parents)):
        d, p = 0, parents[joint]
        while p >= 0:
            d, p = d + 1, parents[p]
        depth[joint] = d
    order = sorted(range(len(parents)), key=lambda j: (depth[j], j))
    position = {joint: i for i, joint in enumerate(order)}
    levels, previous_start, previous_stop = [], 0, 1
    for d in range(1, max(depth) + 1):
        members = [i for i, j in enumerate(order) if depth[j] == d]
        start, stop = members[0], members[-1] + 1
        relative = [position[parents[order[i]]] - previous_start for i in members]
        width = previous_stop - previous_start
        aligned = relative == list(range(len(members))) or (width == 1 and set(relative) == {0})
        levels.append((start, stop, None if aligned else torch.tensor(relative, dtype=torch.long, device=device)))
        previous_start, previous_stop = start, stop
    inverse = [position[j] for j in range(len(parents))]
    return KinematicLevels(
        torch.tensor(order, dtype=torch.long, device=device),
        torch.tensor(inverse, dtype=torch.long, device=device),
        tuple(levels),
    )


def linear_blend_skinning(
    betas: Tensor,
    rotations: Tensor,
    v_template: Tensor,
    shapedirs: Tensor,
    posedirs: Tensor,
    joint_regressor: Tensor,
    levels: KinematicLevels,
    skinning_weights: Tensor,
) -> tuple[Tensor, Tensor]:
    """Pose a MANO-style model.

    Args:
        betas: (B, S) float, shape coefficients (S <= shapedirs' last axis).
        rotations: (B, J, 3, 3) float, rotation matrix of every joint (root first, J = 16 for MANO), e.g.
            ``axis_angle_to_matrix(full_pose.view(B, J, 3))``.
        v_template: (V, 3) float, rest vertices, metres.
        shapedirs: (V, 3, S) float, shape blend shapes.
        posedirs: (9(J-1), 3V) float, pose blend shapes (row p moves every vertex coordinate).
        joint_regressor: (J, V) float.
        levels: the kinematic tree by depth (:func:`kinematic_levels`).
        skinning_weights: (V, J) float.

    Returns:
        verts: (B, V, 3) float and joints: (B, J, 3) float, posed, metres (no translation).
    """
    batch = rotations.shape[0]
    num_betas = betas.shape[1]
    # v_shaped[b, v, c] = v_template[v, c] + sum_s betas[b, s] * shapedirs[v, c, s]
    v_shaped = v_template + (betas @ shapedirs[:, :, :num_betas].reshape(-1, num_betas).T).view(batch, -1, 3)
    rest_joints = joint_regressor @ v_shaped  # (B, J, 3)
    num_joints = rotations.shape[1]
    eye = constant(((1, 0, 0), (0, 1, 0), (0, 0, 1)), rotations)  # (3, 3), cached
    # (split, not slicing: one cheap backward node instead of one per slice)
    pose_feature = (rotations.split([1, num_joints - 1], dim=1)[1] - eye).view(batch, -1)  # (B, 9(J-1))
    v_posed = v_shaped + (pose_feature @ posedirs).view(batch, -1, 3)  # (B, V, 3)

    # forward kinematics by depth (joints in level order): world rotation and world position of every joint
    rot = rotations[:, levels.order]  # (B, J, 3, 3)
    rest = rest_joints[:, levels.order]  # (B, J, 3)
    sizes = [1] + [stop - start for start, stop, _ in levels.levels]
    rot_levels, rest_levels = rot.split(sizes, dim=1), rest.split(sizes, dim=1)
    world_rot, world_pos = [rot_levels[0]], [rest_levels[0]]
    for depth, (_, _, parents) in enumerate(levels.levels, start=1):
        parent_rot, parent_pos = world_rot[-1], world_pos[-1]  # (B, n or 1, 3, 3), (B, n or 1, 3)
        parent_rest = rest_levels[depth - 1]
        if parents is not None:
            parent_rot, parent_pos = parent_rot[:, parents], parent_pos[:, parents]
            parent_rest = parent_rest[:, parents]
        bone = rest_levels[depth] - parent_rest  # (B, n, 3), bone vectors at rest
        world_rot.append(parent_rot @ rot_levels[depth])
        world_pos.append(parent_pos + (parent_rot * bone[:, :, None, :]).sum(-1))
    world_rot = torch.cat(world_rot, dim=1)  # (B, J, 3, 3), level order
    world_pos = torch.cat(world_pos, dim=1)  # (B, J, 3), level order
    # joint j moves a rest point x to world_rot_j @ (x - rest_j) + world_pos_j
    shift = world_pos - (world_rot * rest[:, :, None, :]).sum(-1)  # (B, J, 3)
    transforms = torch.cat([world_rot.flatten(2), shift], dim=-1)  # (B, J, 12), level order
    # blended[b, v] = sum_j w[v, j] * transforms[b, j]  (weights' columns taken in level order)
    blended = skinning_weights[:, levels.order] @ transforms  # (B, V, 12)
    rotation, translation = blended.split([9, 3], dim=-1)  # (B, V, 9), (B, V, 3)
    verts = (rotation.unflatten(-1, (3, 3)) * v_posed[:, :, None, :]).sum(-1) + translation  # (B, V, 3)
    return verts, world_pos[:, levels.inverse]
