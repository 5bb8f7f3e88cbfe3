"""Batched simulation of candidate grasps: approach, clearing, closing, settling, back-off, touching, quality."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from haco_grasp.arrays import to_numpy
from haco_grasp.data.synthetic.config import (
    _DIGIT_JOINTS,
    _MIN_PATH,
    _NUM_DIGITS,
    _NUM_LEVELS,
    _OPEN_STEP,
    GraspWorldConfig,
)
from haco_grasp.data.synthetic.rig import _build_rig, _local_to_pose, _Rig, _TypePlan
from haco_grasp.errors import InputError
from haco_grasp.objects.procedural import ObjectMesh

# --------------------------------------------------------------------------------------------------------------
# batched simulation


@dataclass
class _Batch:
    """Candidates simulated together (one object, one grasp type); B candidates, all float32 tensors.

    Attributes:
        rotation: (B, 3, 3) hand-to-world rotation.
        position: (B, 3) world position of the hand frame's origin.
        t: (B, 5, 3) path parameter of every digit joint.
        t_max: (B, 5, 3).
        betas: (B, S).
        normal: (B, 3) site normal.
        valid: (B,) bool, False for candidates that could not be placed.
    """

    rotation: Tensor
    position: Tensor
    t: Tensor
    t_max: Tensor
    betas: Tensor
    normal: Tensor
    valid: Tensor


class _Simulator:
    """Forward kinematics and grid distances for a batch of candidates of one object and type.

    The loops run hundreds of forward passes, so the shape-dependent part of MANO (shaped template and rest joints)
    is computed once per batch with smplx's ``blend_shapes`` / ``vertices2joints``, and each pass re-runs only the
    pose part (``batch_rodrigues``, pose correctives, ``batch_rigid_transform``, skinning as one einsum): the same
    linear-blend skinning as :class:`~haco_grasp.hand.mano.ManoLayer` (the tests compare the two). The final grasp
    is recomputed with the layer itself.
    """

    def __init__(self, layer: Any, rig: _Rig, plan: _TypePlan, grid: Any, device: torch.device) -> None:
        self.layer = layer
        self.device = device
        f32 = {"dtype": torch.float32, "device": device}
        self.frames = torch.as_tensor(rig.frames, **f32)
        self.start = torch.as_tensor(plan.start, **f32)
        self.direction = torch.as_tensor(plan.direction, **f32)
        self.speed = torch.as_tensor(plan.speed, **f32)
        self.moving = torch.as_tensor(rig.moving, **f32)
        self.own = torch.as_tensor(rig.own, device=device)
        self.link = torch.as_tensor(rig.link, device=device)
        self.digit = torch.as_tensor(rig.digit, device=device)
        self.body = torch.as_tensor(rig.vert_digit == -1, device=device)
        self.palm = torch.as_tensor(rig.palm, device=device)
        self.v_shaped: Tensor | None = None
        self.rest_joints: Tensor | None = None
        # The grid as a (1, 1, X, Y, Z) volume for grid_sample: trilinear, the interpolation of SdfGrid.query.
        self.volume = grid.values.to(**f32)[None, None]
        self.origin = grid.origin.to(**f32)
        self.pitch = float(grid.pitch)
        self.upper = torch.tensor(grid.values.shape, **f32) - 1.0

    def prepare(self, betas: Tensor) -> None:
        """Shape-dependent part of the batch: betas (B, S)."""
        from smplx.lbs import blend_shapes, vertices2joints

        shapedirs = self.layer.shapedirs[:, :, : betas.shape[1]]
        self.v_shaped = self.layer.v_template + blend_shapes(betas, shapedirs)  # (B, V, 3)
        self.rest_joints = vertices2joints(self.layer.J_regressor, self.v_shaped)  # (B, 16, 3)

    def local(self, t: Tensor) -> Tensor:
        """Path parameters (B, 5, 3) -> local joint coordinates (B, 5, 3, 3)."""
        return self.start + t[..., None] * self.direction

    def hand_pose(self, t: Tensor) -> Tensor:
        """Path parameters (B, 5, 3) -> (B, 45) axis-angle hand pose, flat-hand-mean convention."""
        return _local_to_pose(self.frames, self.local(t))

    def local_verts(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Hand frame (global_orient 0, transl 0): verts (B, V, 3) and the 16 posed MANO joints (B, 16, 3)."""
        from smplx.lbs import batch_rigid_transform, batch_rodrigues

        layer = self.layer
        batch = t.shape[0]
        pose = torch.cat([torch.zeros_like(t[:, :1, 0]).expand(batch, 3), self.hand_pose(t)], dim=1)  # (B, 48)
        rot = batch_rodrigues(pose.reshape(-1, 3)).reshape(batch, -1, 3, 3)  # (B, 16, 3, 3)
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        offsets = ((rot[:, 1:] - eye).reshape(batch, -1) @ layer.posedirs).reshape(batch, -1, 3)
        v_posed = self.v_shaped + offsets  # (B, V, 3)
        joints, transforms = batch_rigid_transform(rot, self.rest_joints, layer.parents, dtype=rot.dtype)
        blended = torch.einsum("vj,bjrc->bvrc", layer.lbs_weights, transforms[:, :, :3, :])  # (B, V, 3, 4)
        verts = torch.einsum("bvrc,bvc->bvr", blended[..., :3], v_posed) + blended[..., 3]
        return verts, joints

    def world(self, batch: _Batch, points: Tensor) -> Tensor:
        """Hand-frame points (B, N, 3) -> world (B, N, 3)."""
        return points @ batch.rotation.transpose(1, 2) + batch.position[:, None]

    def world_verts(self, batch: _Batch) -> Tensor:
        """World vertices (B, V, 3) of the batch's current state."""
        return self.world(batch, self.local_verts(batch.t)[0])

    def sdf(self, points: Tensor) -> Tensor:
        """Trilinear grid distance of points (B, N, 3) -> (B, N), metres; outside the box: border + distance."""
        coord = (points - self.origin) / self.pitch  # (B, N, 3) in samples
        clamped = torch.minimum(torch.clamp(coord, min=0.0), self.upper)
        outside = ((coord - clamped) * self.pitch).norm(dim=-1)
        normalised = clamped / self.upper * 2.0 - 1.0
        # grid_sample's last coordinate indexes the last volume axis: (x, y, z) -> (z, y, x).
        grid = normalised.flip(-1).reshape(1, -1, 1, 1, 3)
        value = torch.nn.functional.grid_sample(self.volume, grid, mode="bilinear", align_corners=True)
        return value.reshape(points.shape[:-1]) + outside


def _masked_min(values: Tensor, mask: Tensor) -> Tensor:
    """values (B, V), mask (D, V) -> (B, D) minimum over the masked vertices (inf where none)."""
    return values[:, None, :].masked_fill(~mask[None], math.inf).amin(dim=-1)


def _approach(sim: _Simulator, batch: _Batch, max_travel: Tensor, config: GraspWorldConfig) -> None:
    """Sphere-trace the hand body along -normal to first contact or max_travel, then clear the digits."""
    body = sim.world_verts(batch)[:, sim.body]  # (B, Vb, 3)
    travel = torch.zeros_like(max_travel)
    active = batch.valid.clone()
    for _ in range(80):
        if not active.any():
            break
        distance = sim.sdf(body - travel[:, None, None] * batch.normal[:, None]).amin(dim=1)  # (B,)
        # Every vertex may move by the smallest distance (minus the clearance) without entering the object.
        step = torch.minimum(torch.clamp(distance - config.clearance, min=0.0), max_travel - travel)
        active = active & (distance >= config.touch_distance) & (step > 1e-5)
        travel = torch.where(active, travel + step, travel)
    batch.position = batch.position - travel[:, None] * batch.normal
    _clear_digits(sim, batch, config)


def _clear_digits(sim: _Simulator, batch: _Batch, config: GraspWorldConfig) -> None:
    """Open digits that intersect the object; retreat the hand where a fully open digit still does."""
    for _ in range(16):
        sdf = sim.sdf(sim.world_verts(batch))  # (B, V)
        digit_min = _masked_min(sdf, sim.digit)  # (B, 5)
        hit = (digit_min < config.clearance) & batch.valid[:, None]
        if not hit.any():
            return
        can_open = (batch.t > _MIN_PATH + 1e-6).any(dim=-1)  # (B, 5)
        opening = hit & can_open
        batch.t = torch.where(opening[..., None], torch.clamp(batch.t - _OPEN_STEP, min=_MIN_PATH), batch.t)
        stuck = hit & ~can_open
        depth = torch.where(stuck, config.clearance - digit_min, torch.zeros_like(digit_min)).amax(dim=1)  # (B,)
        retreat = torch.where(depth > 0, depth + 0.0005, depth)
        batch.position = batch.position + retreat[:, None] * batch.normal


def _close(sim: _Simulator, batch: _Batch, closing: Tensor, config: GraspWorldConfig) -> None:
    """Close the joint levels proximal to distal; each joint stops on touch, when blocked, or at its limit.

    A joint's step is bounded so that no vertex it moves can enter the object: a rotation by dtheta moves a vertex
    at distance r from the joint, skinned to the moving chain with total weight w, by at most w r dtheta, so
    dtheta = min over the moved vertices of (grid distance - clearance) / (w r): sphere tracing in angle. Blended
    crease skin of the parent link (and the thenar skin of the thumb) may sink to ``0.5 * max_penetration``, as
    soft tissue does, so that a touching palm or proximal phalanx does not lock the next joint.
    """
    soft = 0.5 * config.max_penetration
    joint_ids = torch.tensor([[chain[k] for chain in _DIGIT_JOINTS] for k in range(_NUM_LEVELS)], device=sim.device)
    for level in range(_NUM_LEVELS):
        limit = batch.t_max[:, :, level]
        active = closing[None] & batch.valid[:, None] & (batch.t[:, :, level] < limit - 1e-6)
        moving = sim.moving[level]  # (5, V) weights
        allowance = torch.where(sim.own[level], -config.clearance, soft)  # (5, V) metres of allowed depth
        link = sim.link[level]
        speed = sim.speed[:, level]  # (5,) radians per unit t
        for _ in range(40):
            if not active.any():
                break
            verts_local, joints_local = sim.local_verts(batch.t)
            sdf = sim.sdf(sim.world(batch, verts_local))  # (B, V); rigid motion keeps distances to the joints
            pivot = joints_local[:, joint_ids[level]]  # (B, 5, 3)
            radius = (verts_local[:, None] - pivot[:, :, None]).norm(dim=-1).clamp(min=0.005)  # (B, 5, V)
            lever = radius * moving[None]  # (B, 5, V) metres of motion per radian
            slack = (sdf[:, None] + allowance[None]) / lever.clamp(min=1e-6)
            safe = slack.masked_fill(lever <= 0, math.inf).amin(dim=-1).clamp(min=0.0)  # (B, 5) radians
            touched = _masked_min(sdf, link) < config.touch_distance
            current = batch.t[:, :, level]
            active = active & ~touched & (safe >= config.min_flex_step) & (current < limit - 1e-6)
            step = torch.clamp(0.9 * safe, max=config.flex_step) / speed
            t = batch.t.clone()
            t[:, :, level] = torch.where(active, torch.minimum(current + step, limit), current)
            batch.t = t


def _settle(sim: _Simulator, batch: _Batch, config: GraspWorldConfig) -> None:
    """Power grasps: push the closed hand along -normal while no vertex would enter the object (line search).

    Closing the fingers deforms the skin of the palm near the knuckles (linear-blend skinning), which can lift the
    palm off the object; this restores the palm contact where the fingers allow it.
    """
    verts = sim.world_verts(batch)  # (B, V, 3)
    travel = torch.zeros(verts.shape[0], dtype=verts.dtype, device=verts.device)
    active = batch.valid.clone()
    for step in (0.004, 0.002, 0.001, 0.0005, 0.00025) * 3:  # a coarse-to-fine line search, three sweeps
        if not active.any():
            break
        trial = travel + step
        distance = sim.sdf(verts - trial[:, None, None] * batch.normal[:, None]).amin(dim=1)
        ok = active & (distance >= config.clearance)
        travel = torch.where(ok, trial, travel)
        palm = sim.sdf(verts[:, sim.palm] - travel[:, None, None] * batch.normal[:, None]).amin(dim=1)
        active = active & (palm >= config.touch_distance)
    batch.position = batch.position - travel[:, None] * batch.normal


def _exact_sdf(verts: np.ndarray, obj: ObjectMesh) -> np.ndarray:
    """Exact signed distance (open3d) of (..., 3) points to the object, metres, negative inside."""
    from haco_grasp.geometry.sdf import signed_distance

    return np.asarray(signed_distance(verts.reshape(-1, 3), obj.verts, obj.faces)).reshape(verts.shape[:-1])


def _back_off(sim: _Simulator, batch: _Batch, obj: ObjectMesh, config: GraspWorldConfig) -> np.ndarray:
    """Open penetrating digits / retreat a penetrating body until the exact depth < max_penetration.

    Returns the final exact signed distances (B, V) of the world vertices, metres, as float64 numpy.
    """
    valid = batch.valid.cpu().numpy()
    for _ in range(12):
        verts = sim.world_verts(batch).cpu().numpy().astype(np.float64)
        sdf = _exact_sdf(verts, obj)
        deep = (sdf < -0.8 * config.max_penetration) & valid[:, None]
        if not deep.any():
            return sdf
        deep_t = torch.as_tensor(deep, device=sim.device)
        digit_hit = (deep_t[:, None, :] & sim.digit[None]).any(dim=-1)  # (B, 5)
        batch.t = torch.where(digit_hit[..., None], torch.clamp(batch.t - 0.05, min=_MIN_PATH), batch.t)
        body_hit = (deep_t & sim.body[None]).any(dim=1)
        depth = torch.as_tensor(np.where(deep, -sdf, 0.0).max(axis=1), dtype=torch.float32, device=sim.device)
        retreat = torch.where(body_hit, depth + 0.0003, torch.zeros_like(depth))
        batch.position = batch.position + retreat[:, None] * batch.normal
    return _exact_sdf(sim.world_verts(batch).cpu().numpy().astype(np.float64), obj)


class HandParts(NamedTuple):
    """Vertex parts of a MANO-format hand used by the quality rule.

    Attributes:
        vert_digit: (V,) int64, digit of each vertex's dominant skinning joint (0 thumb, 1 index, 2 middle, 3 ring,
            4 pinky), -1 for the palm, back of the hand and wrist.
        palm: (V,) bool, palmar palm vertices (wrist-bound, rest normal within 60 degrees of the palm normal).
    """

    vert_digit: np.ndarray
    palm: np.ndarray


class Touching(NamedTuple):
    """Which parts of a hand touch an object. digits: (5,) bool, thumb..pinky. palm: bool."""

    digits: np.ndarray
    palm: bool


def hand_parts(mano_root: str | os.PathLike | None = None, side: Literal["right", "left"] = "right") -> HandParts:
    """Digit and palm vertex sets of the hand model (None: the synthetic hand), as used by :func:`generate_grasps`."""
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import load_mano

    if side not in ("right", "left"):
        raise InputError(f"side: expected 'right' or 'left', got {side!r}")
    layer = load_mano(side=side, root=synthetic_mano_root() if mano_root is None else mano_root, use_pca=False)
    rig = _build_rig(layer, side)
    return HandParts(vert_digit=rig.vert_digit.copy(), palm=rig.palm.copy())


def _touching_from_sdf(sdf: np.ndarray, digit: np.ndarray, palm: np.ndarray, distance: float):
    """sdf (B, V) -> digits (B, 5) bool, palm (B,) bool: within ``distance`` or inside."""
    near = np.maximum(sdf, 0.0) < distance  # (B, V)
    digits = np.stack([(near & (digit == d)[None]).any(axis=1) for d in range(_NUM_DIGITS)], axis=1)
    return digits, (near & palm[None]).any(axis=1)


def touching_parts(
    hand_verts: np.ndarray | Tensor,
    obj_verts: np.ndarray | Tensor,
    obj_faces: np.ndarray | Tensor,
    parts: HandParts,
    distance: float = 0.002,
) -> Touching:
    """The digits and palm with a vertex within ``distance`` of a closed object (or inside it).

    Args:
        hand_verts: (V, 3) float, metres.
        obj_verts: (Vo, 3) float, metres, closed mesh. obj_faces: (Fo, 3) int.
        parts: from :func:`hand_parts`.
        distance: touching distance, metres (the quality rule uses 2 mm).

    Returns:
        Touching with digits (5,) bool (thumb..pinky) and palm.
    """
    from haco_grasp.geometry.sdf import signed_distance

    hand = to_numpy(hand_verts)
    if hand.ndim != 2 or hand.shape != (parts.vert_digit.shape[0], 3):
        raise InputError(f"hand_verts: expected shape ({parts.vert_digit.shape[0]}, 3), got {hand.shape}")
    if not (isinstance(distance, (int, float)) and distance > 0):
        raise InputError(f"distance: expected a positive number of metres, got {distance!r}")
    sdf = np.asarray(signed_distance(hand.astype(np.float64), obj_verts, obj_faces))[None]
    digits, palm = _touching_from_sdf(sdf, parts.vert_digit, parts.palm, float(distance))
    return Touching(digits=digits[0], palm=bool(palm[0]))


@dataclass(frozen=True)
class _Quality:
    """Per-candidate quality: digits (B, 5) bool, palm (B,) bool, depth (B,) metres, ok (B,) bool, score (B,)."""

    digits: np.ndarray
    palm: np.ndarray
    depth: np.ndarray
    ok: np.ndarray
    score: np.ndarray


def _quality(sdf: np.ndarray, rig: _Rig, config: GraspWorldConfig, valid: np.ndarray) -> _Quality:
    digits, palm = _touching_from_sdf(sdf, rig.vert_digit, rig.palm, config.quality_distance)
    count = digits.sum(axis=1)
    depth = np.maximum(-sdf.min(axis=1), 0.0)
    enough = (count >= 3) | ((count >= 2) & palm)
    opposed = digits[:, 0] | palm
    shallow = depth < config.max_penetration
    ok = valid & enough & opposed & shallow
    score = count + palm + 2.0 * opposed - 5.0 * ~shallow - 20.0 * ~valid
    return _Quality(digits=digits, palm=palm, depth=depth, ok=ok, score=score.astype(np.float64))
