"""Candidate grasps: drawing placements for a site and type, and simulating a chunk of them as one batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from haco_grasp.data.synthetic.config import _NUM_DIGITS, _NUM_LEVELS, GraspWorldConfig
from haco_grasp.data.synthetic.rig import _Rig, _rotation_aligning, _TypePlan
from haco_grasp.data.synthetic.simulate import _approach, _back_off, _Batch, _close, _quality, _settle, _Simulator
from haco_grasp.data.synthetic.sites import _Sites
from haco_grasp.objects.procedural import ObjectMesh

# --------------------------------------------------------------------------------------------------------------
# candidates


def _draw_candidates(
    plan: _TypePlan,
    sites: _Sites,
    rig: _Rig,
    sim: _Simulator,
    rngs: Sequence[np.random.Generator],
    betas: np.ndarray,
    count: int,
    config: GraspWorldConfig,
) -> tuple[_Batch, Tensor, np.ndarray]:
    """Draw ``count`` candidates per rng (one rng per grasp slot) and place them at a collision-free stand-off.

    Returns the batch, the (B,) maximum approach travel and the (B,) site index of every candidate.
    """
    spec = plan.spec
    valid_pairs = np.argwhere(sites.valid[plan.name])  # (N, 2) site, direction
    batch_size = count * len(rngs)
    t = np.ones((batch_size, _NUM_DIGITS, _NUM_LEVELS))
    site_index = np.zeros(batch_size, dtype=np.int64)
    tangent = np.zeros((batch_size, 3))
    knuckle_gap = np.zeros(batch_size)
    for slot, rng in enumerate(rngs):
        for c in range(count):
            b = slot * count + c
            site, direction_index = valid_pairs[rng.integers(len(valid_pairs))]
            site_index[b] = site
            direction = sites.tangents[site, direction_index] * (1.0 if rng.random() < 0.5 else -1.0)
            roll = math.radians(rng.uniform(-config.roll_jitter_deg, config.roll_jitter_deg))
            normal = sites.normals[site]
            tangent[b] = direction * math.cos(roll) + np.cross(normal, direction) * math.sin(roll)
            preshape = rng.uniform(*spec.preshape)
            t[b, 1:][np.asarray(spec.closing[1:])] = preshape
            t[b, 0] = rng.uniform(*spec.thumb_preshape)
            knuckle_gap[b] = rng.uniform(0.01, 0.025)
    device = sim.device
    f32 = {"dtype": torch.float32, "device": device}
    t_tensor = torch.as_tensor(t, **f32)
    sim.prepare(torch.as_tensor(np.repeat(betas, count, axis=0), **f32))
    verts_np = sim.local_verts(t_tensor)[0].cpu().numpy().astype(np.float64)  # (B, V, 3) hand frame
    palm = verts_np[:, rig.palm].mean(axis=1)  # (B, 3) palm centre of each shape
    if plan.name == "power":
        # The object lies across the palm just below the knuckles (1-2.5 cm towards the wrist from the MCP line).
        centre = palm + rig.finger_dir[None] * (rig.knuckle_offset - knuckle_gap)[:, None]
        approach = np.repeat(rig.palm_normal[None], batch_size, axis=0)
        opposition = np.repeat(rig.finger_dir[None], batch_size, axis=0)
    else:
        # Thumb and finger tips converge on the midpoint of their positions in the family pose (t = 1): the object
        # goes there; they start apart along the pre-shape's thumb-to-fingers axis.
        tip_ids = sim.layer.tip_vertex_ids.cpu().numpy()
        fingers = slice(1, 3) if plan.name == "pinch" else slice(1, 5)
        tips_open = verts_np[:, tip_ids]  # (B, 5, 3) thumb..pinky
        closed = sim.local_verts(torch.ones_like(t_tensor))[0].cpu().numpy().astype(np.float64)
        tips_closed = closed[:, tip_ids]
        centre = 0.5 * (tips_closed[:, 0] + tips_closed[:, fingers].mean(axis=1))
        opposition = tips_open[:, fingers].mean(axis=1) - tips_open[:, 0]
        approach = centre - closed[:, rig.palm].mean(axis=1)
    normals = sites.normals[site_index]
    points = sites.points[site_index]
    rotation = _rotation_aligning(approach, opposition, -normals, tangent)  # (B, 3, 3)
    # Stand-off: the smallest of a few heights at which no vertex is within 3 mm of the object.
    heights = np.array([0.02, 0.04, 0.07, 0.11, 0.16])
    rotated = np.einsum("bij,bvj->bvi", rotation, verts_np - centre[:, None])  # (B, V, 3) about the grasp centre
    placed = rotated[:, None] + points[:, None, None] + heights[None, :, None, None] * normals[:, None, None]
    clear = sim.sdf(torch.as_tensor(placed.reshape(batch_size, -1, 3), **f32)).reshape(batch_size, len(heights), -1)
    free = (clear.amin(dim=-1) > 0.003).cpu().numpy()  # (B, H)
    height = heights[np.argmax(free, axis=1)]
    position = points + height[:, None] * normals - np.einsum("bij,bj->bi", rotation, centre)
    depth = sites.depth[plan.name][site_index]
    travel = np.where(np.isfinite(depth), height + depth, height + 0.3)
    batch = _Batch(
        rotation=torch.as_tensor(rotation, **f32),
        position=torch.as_tensor(position, **f32),
        t=t_tensor,
        t_max=torch.as_tensor(np.repeat(plan.t_max[None], batch_size, axis=0), **f32),
        betas=torch.as_tensor(np.repeat(betas, count, axis=0), **f32),
        normal=torch.as_tensor(normals, **f32),
        valid=torch.as_tensor(free.any(axis=1), device=device),
    )
    return batch, torch.as_tensor(travel, **f32), site_index


@dataclass
class _Candidate:
    """The state and quality of one simulated candidate (float64 numpy)."""

    rotation: np.ndarray
    position: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    digits: np.ndarray
    palm: bool
    depth: float
    volume: float
    site: np.ndarray
    normal: np.ndarray
    passed: bool
    score: float
    grasp_type: str
    rounds: int = 1


def _simulate_chunk(
    plan: _TypePlan,
    sites: _Sites,
    rig: _Rig,
    sim: _Simulator,
    obj: ObjectMesh,
    rngs: Sequence[np.random.Generator],
    betas: np.ndarray,
    config: GraspWorldConfig,
    hand_faces: np.ndarray,
) -> list[_Candidate]:
    """Simulate the candidates of a few grasp slots; per slot, the first passing (else the best) candidate."""
    from haco_grasp.geometry.volume import intersection_volume

    count = config.candidates_per_round
    batch, travel, site_index = _draw_candidates(plan, sites, rig, sim, rngs, betas, count, config)
    _approach(sim, batch, travel, config)
    closing = torch.as_tensor(plan.spec.closing, device=sim.device)
    _close(sim, batch, closing, config)
    if plan.name == "power":
        _settle(sim, batch, config)
    sdf = _back_off(sim, batch, obj, config)
    quality = _quality(sdf, rig, config, batch.valid.cpu().numpy())
    verts = sim.world_verts(batch).cpu().numpy().astype(np.float64)
    hand_pose = sim.hand_pose(batch.t).cpu().numpy().astype(np.float64)

    def record(b: int, volume: float, passed: bool) -> _Candidate:
        return _Candidate(
            rotation=batch.rotation[b].cpu().double().numpy(),
            position=batch.position[b].cpu().double().numpy(),
            hand_pose=hand_pose[b],
            betas=batch.betas[b].cpu().double().numpy(),
            digits=quality.digits[b].copy(),
            palm=bool(quality.palm[b]),
            depth=float(quality.depth[b]),
            volume=volume,
            site=sites.points[site_index[b]].copy(),
            normal=sites.normals[site_index[b]].copy(),
            passed=passed,
            score=math.inf if passed else float(quality.score[b]) - volume,
            grasp_type=plan.name,
        )

    def volume_of(b: int) -> float:
        return float(intersection_volume(verts[b], hand_faces, obj.verts, obj.faces, pitch=config.volume_pitch))

    results = []
    for slot in range(len(rngs)):
        rows = range(slot * count, (slot + 1) * count)
        chosen = None
        for b in rows:
            if quality.ok[b]:
                volume = volume_of(b)
                if volume < config.max_volume_cm3:
                    chosen = record(b, volume, True)
                    break
        if chosen is None:
            b = max(rows, key=lambda r: quality.score[r])
            chosen = record(b, volume_of(b), False)
        results.append(chosen)
    return results
