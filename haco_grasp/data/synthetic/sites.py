"""Grasp sites on an object: surface samples scored per grasp type along tangent directions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from haco_grasp.data.synthetic.config import _POWER_DEPTH_RANGE, _TYPE_SPECS, GraspWorldConfig
from haco_grasp.data.synthetic.rig import _unit
from haco_grasp.objects.procedural import ObjectMesh

# --------------------------------------------------------------------------------------------------------------
# grasp sites on an object


@dataclass(frozen=True)
class _Sites:
    """Scored grasp sites of one object.

    Attributes:
        points, normals: (P, 3) sample points and outward normals.
        tangents: (P, K, 3) candidate opposition axes.
        valid: type -> (P, K) bool.
        depth: type -> (P,) target depth of the grasp centre, metres (inf: palm contact).
    """

    points: np.ndarray
    normals: np.ndarray
    tangents: np.ndarray
    valid: dict[str, np.ndarray]
    depth: dict[str, np.ndarray]


def _sample_surface(
    verts: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted surface samples (count, 3) and their face normals (count, 3)."""
    corners = verts[faces]  # (F, 3, 3)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = np.linalg.norm(cross, axis=1)
    chosen = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    c = corners[chosen]
    points = c[:, 0] + u[:, None] * (c[:, 1] - c[:, 0]) + v[:, None] * (c[:, 2] - c[:, 0])
    normals = cross[chosen] / np.maximum(area[chosen], 1e-30)[:, None]
    return points, normals


def _score_sites(obj: ObjectMesh, config: GraspWorldConfig, num_dirs: int = 12) -> _Sites:
    """Measure, at surface samples, the object's depth and its extent along tangent directions (see module doc)."""
    rng = np.random.default_rng(12345)  # the site pool is a property of the object, not of the seed
    samples, _ = _sample_surface(obj.verts, obj.faces, config.surface_samples, rng)
    points, normals = _sample_surface(obj.verts, obj.faces, config.site_candidates, rng)
    helper = np.where(np.abs(normals[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    t1 = _unit(np.cross(normals, helper))
    t2 = np.cross(normals, t1)
    angles = np.arange(num_dirs) * math.pi / num_dirs
    tangents = np.cos(angles)[None, :, None] * t1[:, None] + np.sin(angles)[None, :, None] * t2[:, None]  # (P, K, 3)
    valid = {name: np.zeros((len(points), num_dirs), dtype=bool) for name in _TYPE_SPECS}
    depth = {name: np.full(len(points), _TYPE_SPECS[name].depth) for name in _TYPE_SPECS}
    slab = 0.006
    samples32 = samples.astype(np.float32)
    for start in range(0, len(points), 50):
        sl = slice(start, start + 50)
        rel = samples32[None] - points[sl, None].astype(np.float32)  # (p, S, 3)
        inward = -(rel * normals[sl, None].astype(np.float32)).sum(-1)  # (p, S) depth below the site along -n
        radial_sq = (rel * rel).sum(-1) - inward**2
        behind = (radial_sq < 0.015**2) & (inward > 0.002)
        body_depth = np.where(behind, inward, 0.0).max(axis=1)  # (p,)
        along = np.einsum("psc,pkc->pks", rel, tangents[sl].astype(np.float32))  # (p, K, S)
        side = np.cross(normals[sl, None], tangents[sl]).astype(np.float32)  # (p, K, 3)
        across = np.abs(np.einsum("psc,pkc->pks", rel, side))
        for name, spec in _TYPE_SPECS.items():
            if name == "power":
                target = np.clip(body_depth / 2, 0.0075, 0.03)
                ok_depth = (body_depth >= _POWER_DEPTH_RANGE[0]) & (body_depth <= _POWER_DEPTH_RANGE[1])
            else:
                target = np.full(body_depth.shape, spec.depth)
                ok_depth = body_depth >= spec.depth + 0.002
            in_slab = (np.abs(inward - target[:, None]) < slab)[:, None, :] & (across < spec.band)
            window = in_slab & (np.abs(along) < spec.window)
            rim = in_slab & (np.abs(along) > spec.window - 0.01) & (np.abs(along) < spec.window)
            high = np.where(window, along, -np.inf).max(axis=2)
            low = np.where(window, along, np.inf).min(axis=2)
            extent = high - low
            valid[name][sl] = (
                ok_depth[:, None]
                & (window.sum(axis=2) >= 4)
                & ~rim.any(axis=2)
                & (high > 0)
                & (low < 0)
                & (extent >= spec.extent[0])
                & (extent <= spec.extent[1])
            )
    return _Sites(points=points, normals=normals, tangents=tangents, valid=valid, depth=depth)
