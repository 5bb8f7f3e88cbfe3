"""Triangle-mesh basics: face and vertex normals, open boundaries, capping and watertightness.

Conventions: vertices are row vectors in metres; faces are (F, 3) integer vertex indices whose counter-clockwise
order (seen from outside) gives the outward normal ``(v1 - v0) x (v2 - v0)``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import Tensor

from haco_grasp.arrays import to_numpy
from haco_grasp.errors import InputError

__all__ = ["face_normals", "vertex_normals", "boundary_loops", "cap_boundary", "is_watertight"]

# Squared-norm threshold under which a normal counts as zero (a zero-area face or an isolated vertex).
_ZERO_SQ_NORM = 1e-30


def _check_verts_faces(verts: Tensor, faces: Tensor) -> None:
    if not isinstance(verts, Tensor) or verts.ndim not in (2, 3) or verts.shape[-1] != 3:
        got = tuple(verts.shape) if isinstance(verts, Tensor) else type(verts).__name__
        raise InputError(f"verts must be a (V, 3) or (B, V, 3) float tensor, got {got}; stack vertices as xyz rows")
    if not verts.is_floating_point():
        raise InputError(f"verts must be a floating-point tensor, got {verts.dtype}; call verts.float()")
    if not isinstance(faces, Tensor) or faces.ndim != 2 or faces.shape[-1] != 3:
        got = tuple(faces.shape) if isinstance(faces, Tensor) else type(faces).__name__
        raise InputError(
            f"faces must be an (F, 3) long tensor, got {got}; pass torch.as_tensor(faces, dtype=torch.long)"
        )
    if faces.dtype not in (torch.int32, torch.int64):
        raise InputError(f"faces must be an integer tensor, got {faces.dtype}; call faces.long()")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[-2]):
        raise InputError(
            f"faces index vertices 0..{verts.shape[-2] - 1}, got indices {int(faces.min())}..{int(faces.max())}; "
            "check that faces belong to these vertices"
        )


def _safe_normalize(vectors: Tensor) -> Tensor:
    """Unit vectors along the last axis; vectors of (near) zero length map to 0 with finite gradients."""
    sq_norm = (vectors * vectors).sum(-1, keepdim=True)
    nonzero = sq_norm > _ZERO_SQ_NORM
    inv_norm = torch.rsqrt(torch.where(nonzero, sq_norm, torch.ones_like(sq_norm)))
    return torch.where(nonzero, vectors * inv_norm, torch.zeros_like(vectors))


def _face_cross(verts: Tensor, faces: Tensor) -> Tensor:
    """Unnormalised face normals (twice the area times the unit normal): (..., F, 3)."""
    faces = faces.long()
    v0 = verts[..., faces[:, 0], :]  # (..., F, 3)
    v1 = verts[..., faces[:, 1], :]
    v2 = verts[..., faces[:, 2], :]
    return torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)


def face_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """Unit outward normal of every face.

    Args:
        verts: (B, V, 3) or (V, 3) float, metres.
        faces: (F, 3) long, counter-clockwise vertex indices.

    Returns:
        normals: (B, F, 3) or (F, 3) float, unit length; zero-area faces give the zero vector.
    """
    _check_verts_faces(verts, faces)
    return _safe_normalize(_face_cross(verts, faces))


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals (sum of the incident faces' cross products, normalised). Differentiable.

    Args:
        verts: (B, V, 3) or (V, 3) float, metres.
        faces: (F, 3) long, counter-clockwise vertex indices.

    Returns:
        normals: (B, V, 3) or (V, 3) float, unit length; isolated vertices, or vertices whose incident faces
            cancel or have zero area, give the zero vector.
    """
    _check_verts_faces(verts, faces)
    unbatched = verts.ndim == 2
    batched_verts = verts.unsqueeze(0) if unbatched else verts  # (B, V, 3)
    cross = _face_cross(batched_verts, faces)  # (B, F, 3)
    faces_long = faces.long()
    summed = torch.zeros_like(batched_verts)
    for corner in range(3):
        summed = summed.index_add(1, faces_long[:, corner], cross)  # (B, V, 3)
    normals = _safe_normalize(summed)
    return normals[0] if unbatched else normals


def _as_face_array(faces: np.ndarray | Tensor) -> np.ndarray:
    faces = to_numpy(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise InputError(
            f"faces must be an (F, 3) integer array, got shape {faces.shape} dtype {faces.dtype}; "
            "pass triangle vertex indices"
        )
    if faces.size and faces.min() < 0:
        raise InputError(f"faces must hold non-negative vertex indices, got minimum {faces.min()}; fix the face list")
    return faces.astype(np.int64, copy=False)


def _directed_edges(faces: np.ndarray) -> np.ndarray:
    """Directed edges (v_i -> v_{i+1}) of every face: (3F, 2)."""
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=0)


def _edge_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges (E, 2) and how many faces use each (E,)."""
    undirected = np.sort(_directed_edges(faces), axis=1)
    edges, counts = np.unique(undirected, axis=0, return_counts=True)
    return edges, counts


def boundary_loops(faces: np.ndarray | Tensor) -> list[np.ndarray]:
    """Ordered vertex loops of the open boundary of a triangle mesh.

    A boundary edge is an undirected edge used by exactly one face. Each loop follows the direction the edge has
    in its face (so the mesh lies to the left when walking the loop with outward normals up) and starts at the
    loop's smallest vertex index, so results are deterministic.

    Args:
        faces: (F, 3) int, vertex indices.

    Returns:
        loops: list of (L,) int64 arrays, one per closed loop; empty for a closed mesh.
    """
    faces = _as_face_array(faces)
    if faces.shape[0] == 0:
        return []
    directed = _directed_edges(faces)
    undirected = np.sort(directed, axis=1)
    _, inverse, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
    on_boundary = counts[inverse.reshape(-1)] == 1
    boundary = directed[on_boundary]  # (E_b, 2), oriented as in their faces

    successors: dict[int, list[int]] = defaultdict(list)
    for start, end in boundary.tolist():
        successors[start].append(end)
    loops: list[np.ndarray] = []
    remaining = sum(len(ends) for ends in successors.values())
    while remaining:
        first = min(v for v, ends in successors.items() if ends)
        loop = [first]
        current = first
        while True:
            ends = successors[current]
            if not ends:  # a broken chain (non-manifold input): keep what was walked
                break
            nxt = ends.pop(0)
            remaining -= 1
            if nxt == first:
                break
            loop.append(nxt)
            current = nxt
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def cap_boundary(faces: np.ndarray | Tensor) -> np.ndarray:
    """Close every boundary loop with a fan of triangles from the loop's first vertex (no new vertices).

    A loop of L vertices gets L - 2 faces (a 16-vertex MANO wrist gets 14), wound opposite to the loop so that
    every capped edge is used once in each direction, consistent with the existing faces. The fan suits convex,
    roughly planar holes such as the MANO wrist.

    Args:
        faces: (F, 3) int, vertex indices of an open mesh.

    Returns:
        capped: (F + sum(L - 2), 3) int64, the original faces followed by the cap faces.
    """
    faces = _as_face_array(faces)
    caps = []
    for loop in boundary_loops(faces):
        if loop.shape[0] < 3:
            continue
        middle = loop[1:-1]
        following = loop[2:]
        # Loop edge (l_i -> l_{i+1}) is matched by cap edge (l_{i+1} -> l_i).
        caps.append(np.stack([np.full_like(middle, loop[0]), following, middle], axis=1))
    if not caps:
        return faces.copy()
    return np.concatenate([faces, *caps], axis=0)


def is_watertight(faces: np.ndarray | Tensor) -> bool:
    """Whether every undirected edge is shared by exactly two faces (the usual closed-surface test).

    Args:
        faces: (F, 3) int, vertex indices.

    Returns:
        True for a non-empty closed mesh.
    """
    faces = _as_face_array(faces)
    if faces.shape[0] == 0:
        return False
    _, counts = _edge_counts(faces)
    return bool(np.all(counts == 2))
