"""Sampling points on mesh surfaces."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from haco_grasp.errors import InputError


def sample_surface(
    verts: np.ndarray | Tensor, faces: np.ndarray | Tensor, n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Area-uniform random points on a triangle mesh, with the normals of the faces they lie on.

    Args:
        verts: (V, 3) float, metres. faces: (F, 3) int.
        n: number of points (drawn with replacement over faces, like ContactOpt's vertex sampling).
        generator: torch random generator (seeded by the caller for determinism).

    Returns:
        points: (n, 3) float64, metres. normals: (n, 3) float64 unit outward normals (face winding).
    """
    v = torch.as_tensor(np.asarray(verts) if not torch.is_tensor(verts) else verts, dtype=torch.float64).cpu()
    f = torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces, dtype=torch.long).cpu()
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise InputError(
            f"sample_surface: expected verts (V, 3) and faces (F>0, 3), got {tuple(v.shape)}, {tuple(f.shape)}"
        )
    corners = v[f]  # (F, 3, 3)
    cross = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # (F, 3)
    area = cross.norm(dim=1)
    if not area.sum() > 0:
        raise InputError("sample_surface: the mesh has zero surface area")
    face = torch.multinomial(area / area.sum(), n, replacement=True, generator=generator)  # (n,)
    u, w = torch.rand(2, n, generator=generator, dtype=torch.float64)
    flip = u + w > 1.0
    u, w = torch.where(flip, 1.0 - u, u), torch.where(flip, 1.0 - w, w)
    tri = corners[face]  # (n, 3, 3)
    points = tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + w[:, None] * (tri[:, 2] - tri[:, 0])
    normals = cross[face] / area[face].clamp_min(1e-300)[:, None]
    return points, normals
