"""Exact point-to-triangle-mesh distance, batched, memory-bounded and differentiable.

The nearest face of every point is found without gradients by an exact brute force with a safe pruning step:
the centroid of a face lies on the face, so ``min_f |p - centroid_f|`` bounds the point-mesh distance from above,
and ``|p - centroid_f| - radius_f`` bounds the distance to face f from below; only faces whose lower bound does
not exceed the upper bound are evaluated exactly. The closest point on the winning face is then recomputed with
autograd, so gradients flow to the points and to the mesh vertices.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from haco_grasp.errors import InputError

__all__ = ["PointMeshResult", "closest_point_on_triangles", "point_mesh_distance"]

# Pairs (point, candidate face) evaluated exactly at once.
_CANDIDATE_BLOCK = 1 << 18


class PointMeshResult(NamedTuple):
    """Result of :func:`point_mesh_distance`.

    Attributes:
        sq_dist: (B, P) float, squared distance to the mesh, metres^2.
        closest: (B, P, 3) float, closest point on the mesh, metres.
        face_idx: (B, P) long, index of the face holding the closest point.
    """

    sq_dist: Tensor
    closest: Tensor
    face_idx: Tensor


def _safe_denominator(den: Tensor) -> tuple[Tensor, Tensor]:
    """(den where it is safely positive else 1, mask of safe entries); keeps forward and backward finite."""
    threshold = torch.finfo(den.dtype).max ** (-1.0 / 3.0)
    ok = den > threshold
    return torch.where(ok, den, torch.ones_like(den)), ok


def _voronoi_weights(d1: Tensor, d2: Tensor, aa: Tensor, bb: Tensor, abac: Tensor) -> tuple[Tensor, Tensor]:
    """Weights (s, t) of the closest point a + s*ab + t*ac, by Voronoi region of the triangle.

    d1 = ab.ap, d2 = ac.ap, aa = ab.ab, bb = ac.ac, abac = ab.ac; every division is guarded, so the result is
    finite everywhere (and exact on non-degenerate triangles); the weights are clamped to the triangle.
    """
    d3 = d1 - aa  # ab.bp
    d4 = d2 - abac  # ac.bp
    d5 = d1 - abac  # ab.cp
    d6 = d2 - bb  # ac.cp
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4
    zero = torch.zeros_like(d1)
    one = torch.ones_like(d1)

    # Face interior (lowest priority); later regions override earlier ones.
    den, _ = _safe_denominator(va + vb + vc)
    s = vb / den
    t = vc / den
    # Edge BC.
    den, _ = _safe_denominator((d4 - d3) + (d5 - d6))
    w = ((d4 - d3) / den).clamp(0.0, 1.0)
    region = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    s = torch.where(region, 1.0 - w, s)
    t = torch.where(region, w, t)
    # Edge AC.
    den, _ = _safe_denominator(bb)
    w = (d2 / den).clamp(0.0, 1.0)
    region = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    s = torch.where(region, zero, s)
    t = torch.where(region, w, t)
    # Vertex C.
    region = (d6 >= 0) & (d5 <= d6)
    s = torch.where(region, zero, s)
    t = torch.where(region, one, t)
    # Edge AB.
    den, _ = _safe_denominator(aa)
    w = (d1 / den).clamp(0.0, 1.0)
    region = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    s = torch.where(region, w, s)
    t = torch.where(region, zero, t)
    # Vertex B.
    region = (d3 >= 0) & (d4 <= d3)
    s = torch.where(region, one, s)
    t = torch.where(region, zero, t)
    # Vertex A.
    region = (d1 <= 0) & (d2 <= 0)
    s = torch.where(region, zero, s)
    t = torch.where(region, zero, t)

    # Round-off can leave interior weights slightly outside the triangle: project back onto it.
    s = s.clamp_min(0.0)
    t = t.clamp_min(0.0)
    total = s + t
    over = total > 1.0
    total_safe = torch.where(over, total, one)
    return torch.where(over, s / total_safe, s), torch.where(over, t / total_safe, t)


def _closest_on_segments(points: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Closest point on the segment start-end (a zero-length segment gives start); (..., 3)."""
    direction = end - start
    length_sq = (direction * direction).sum(-1)
    den, ok = _safe_denominator(length_sq)
    w = (((points - start) * direction).sum(-1) / den).clamp(0.0, 1.0)
    w = torch.where(ok, w, torch.zeros_like(w))
    return start + w[..., None] * direction


def closest_point_on_triangles(points: Tensor, tri_a: Tensor, tri_b: Tensor, tri_c: Tensor) -> Tensor:
    """Exact closest point on each triangle (Voronoi-region method), robust to degenerate triangles.

    Triangles that are zero-area or nearly so (``|ab x ac|^2 <= 1000 eps max_edge^4``) also try their three edges as
    segments and keep the nearer answer, so collapsed triangles are exact too. Never produces NaN; differentiable
    w.r.t. all inputs (almost everywhere).

    Args:
        points: (..., 3) float, query points, metres.
        tri_a: (..., 3) float, first triangle corners (broadcastable with points).
        tri_b: (..., 3) float, second corners.
        tri_c: (..., 3) float, third corners.

    Returns:
        closest: (..., 3) float, the broadcast shape of the inputs, the closest point on each triangle.
    """
    for name, value in (("points", points), ("tri_a", tri_a), ("tri_b", tri_b), ("tri_c", tri_c)):
        if not isinstance(value, Tensor) or value.ndim == 0 or value.shape[-1] != 3 or not value.is_floating_point():
            got = f"shape {tuple(value.shape)} dtype {value.dtype}" if isinstance(value, Tensor) else type(value)
            raise InputError(f"{name} must be a (..., 3) float tensor, got {got}; pass xyz rows")
    try:
        points, tri_a, tri_b, tri_c = torch.broadcast_tensors(points, tri_a, tri_b, tri_c)
    except RuntimeError as exc:
        raise InputError(f"points and triangle corners must broadcast together: {exc}") from None
    return _closest_point(points, tri_a, tri_b, tri_c)


def _closest_point(points: Tensor, tri_a: Tensor, tri_b: Tensor, tri_c: Tensor) -> Tensor:
    ab = tri_b - tri_a
    ac = tri_c - tri_a
    ap = points - tri_a
    aa = (ab * ab).sum(-1)
    bb = (ac * ac).sum(-1)
    abac = (ab * ac).sum(-1)
    d1 = (ab * ap).sum(-1)
    d2 = (ac * ap).sum(-1)
    s, t = _voronoi_weights(d1, d2, aa, bb, abac)
    closest = tri_a + s[..., None] * ab + t[..., None] * ac

    bc = tri_c - tri_b
    cc = (bc * bc).sum(-1)
    normal = torch.linalg.cross(ab, ac, dim=-1)
    normal_sq = (normal * normal).sum(-1)
    longest_sq = torch.maximum(torch.maximum(aa, bb), cc)
    eps = torch.finfo(points.dtype).eps
    _, normal_ok = _safe_denominator(normal_sq)
    near_degenerate = (normal_sq <= 1000.0 * eps * longest_sq * longest_sq) | ~normal_ok
    if bool(near_degenerate.any()):
        best = closest
        best_sq = ((points - best) ** 2).sum(-1)
        for start, end in ((tri_a, tri_b), (tri_a, tri_c), (tri_b, tri_c)):
            candidate = _closest_on_segments(points, start, end)
            candidate_sq = ((points - candidate) ** 2).sum(-1)
            better = near_degenerate & (candidate_sq < best_sq)
            best = torch.where(better[..., None], candidate, best)
            best_sq = torch.where(better, candidate_sq, best_sq)
        closest = best
    return closest


def _check_inputs(points: Tensor, verts: Tensor, faces: Tensor) -> None:
    if not isinstance(points, Tensor) or points.ndim != 3 or points.shape[-1] != 3 or not points.is_floating_point():
        got = f"shape {tuple(points.shape)} dtype {points.dtype}" if isinstance(points, Tensor) else type(points)
        raise InputError(f"points must be a (B, P, 3) float tensor, got {got}; add a batch axis with [None]")
    if (
        not isinstance(verts, Tensor)
        or verts.ndim not in (2, 3)
        or verts.shape[-1] != 3
        or (verts.ndim == 3 and verts.shape[0] not in (1, points.shape[0]))
    ):
        got = tuple(verts.shape) if isinstance(verts, Tensor) else type(verts)
        raise InputError(
            f"verts must be (V, 3) or (B={points.shape[0]}, V, 3) float, got {got}; one mesh per batch item"
        )
    if verts.dtype != points.dtype or verts.device != points.device:
        raise InputError(
            f"points and verts must share dtype and device, got {points.dtype}/{points.device} and "
            f"{verts.dtype}/{verts.device}; move one with .to()"
        )
    if (
        not isinstance(faces, Tensor)
        or faces.ndim != 2
        or faces.shape[1] != 3
        or faces.dtype
        not in (
            torch.int32,
            torch.int64,
        )
    ):
        got = f"shape {tuple(faces.shape)} dtype {faces.dtype}" if isinstance(faces, Tensor) else type(faces)
        raise InputError(f"faces must be an (F, 3) long tensor, got {got}; use torch.as_tensor(faces).long()")
    if faces.shape[0] == 0:
        raise InputError("faces must hold at least one triangle, got 0 faces; pass a non-empty mesh")
    if int(faces.min()) < 0 or int(faces.max()) >= verts.shape[-2]:
        raise InputError(
            f"faces index vertices 0..{verts.shape[-2] - 1}, got {int(faces.min())}..{int(faces.max())}; "
            "check that faces belong to these vertices"
        )


def _nearest_face(points: Tensor, verts: Tensor, faces: Tensor, chunk: int) -> Tensor:
    """Index (B, P) of the face nearest to every point (exact; no gradients). verts: (Bv, V, 3), Bv in {1, B}."""
    batch, num_points, _ = points.shape
    num_faces = faces.shape[0]
    centre = verts.mean(dim=1, keepdim=True)  # (Bv, 1, 3); centring limits cancellation below
    pts = points - centre  # (B, P, 3)
    vts = verts - centre  # (Bv, V, 3)
    tri_a, tri_b, tri_c = vts[:, faces[:, 0]], vts[:, faces[:, 1]], vts[:, faces[:, 2]]  # (Bv, F, 3) each
    centroid = (tri_a + tri_b + tri_c) / 3.0  # (Bv, F, 3)
    radius = torch.stack([(corner - centroid).norm(dim=-1) for corner in (tri_a, tri_b, tri_c)], -1).amax(-1)
    centroid_sq = (centroid * centroid).sum(-1)  # (Bv, F)
    scale = max(float(pts.abs().amax()) if pts.numel() else 0.0, float(vts.abs().amax()), 1e-12)
    # Both bounds come from |p|^2 + |c|^2 - 2 p.c; its rounding error in distance is below ~sqrt(eps) * scale.
    tolerance = 16.0 * (torch.finfo(points.dtype).eps ** 0.5) * scale
    shared_mesh = verts.shape[0] == 1

    face_idx = torch.zeros(batch, num_points, dtype=torch.long, device=points.device)
    rows = max(1, chunk // max(1, num_faces))
    for b in range(batch):
        vb = 0 if shared_mesh else b
        for r0 in range(0, num_points, rows):
            r1 = min(num_points, r0 + rows)
            query = pts[b, r0:r1]  # (R, 3)
            # |p - centroid|^2 = |p|^2 + |centroid|^2 - 2 p.centroid  # (R, F)
            centre_sq = torch.addmm(centroid_sq[vb][None, :], query, centroid[vb].T, alpha=-2.0)
            centre_sq += (query * query).sum(-1, keepdim=True)
            upper = centre_sq.amin(dim=1, keepdim=True).clamp_min(0.0).sqrt()  # (R, 1)
            # Candidate iff |p - centroid| - radius <= upper (+ tolerance), compared squared (both sides >= 0).
            reach = radius[vb][None, :] + (upper + tolerance)  # (R, F)
            row, col = (centre_sq <= reach * reach).nonzero(as_tuple=True)
            best_sq = torch.full((r1 - r0,), float("inf"), dtype=points.dtype, device=points.device)
            best_face = torch.full((r1 - r0,), num_faces, dtype=torch.long, device=points.device)
            for c0 in range(0, row.numel(), _CANDIDATE_BLOCK):
                pr = row[c0 : c0 + _CANDIDATE_BLOCK]
                fc = col[c0 : c0 + _CANDIDATE_BLOCK]
                q = query[pr]
                closest = _closest_point(q, tri_a[vb, fc], tri_b[vb, fc], tri_c[vb, fc])
                sq = ((q - closest) ** 2).sum(-1)
                # Keep the smallest distance, ties broken by the smallest face index.
                block_best = torch.full_like(best_sq, float("inf")).scatter_reduce(0, pr, sq, "amin")
                improved = block_best < best_sq
                best_sq = torch.minimum(best_sq, block_best)
                winner = torch.where(sq <= best_sq[pr], fc, torch.full_like(fc, num_faces))
                block_face = torch.full_like(best_face, num_faces).scatter_reduce(0, pr, winner, "amin")
                best_face = torch.where(improved, block_face, torch.minimum(best_face, block_face))
            face_idx[b, r0:r1] = best_face
    return face_idx


def point_mesh_distance(points: Tensor, verts: Tensor, faces: Tensor, chunk: int = 1 << 22) -> PointMeshResult:
    """Exact squared distance from points to a triangle mesh, with the closest point and its face.

    Brute force over all faces (with exact bound-based pruning), in blocks of at most ``chunk`` point-face pairs,
    so memory stays bounded. Differentiable w.r.t. points and verts: the closest point on the nearest face is
    recomputed with autograd. Works on CPU and CUDA.

    Args:
        points: (B, P, 3) float, query points, metres.
        verts: (B, V, 3) or (V, 3) float, mesh vertices, metres ((V, 3) or (1, V, 3) is shared by the batch).
        faces: (F, 3) long, triangle vertex indices (F >= 1).
        chunk: most point-face pairs held in memory at once by the search (at least one point against all F).

    Returns:
        PointMeshResult with sq_dist (B, P) float metres^2, closest (B, P, 3) float metres, face_idx (B, P) long.
    """
    _check_inputs(points, verts, faces)
    if not isinstance(chunk, int) or chunk < 1:
        raise InputError(f"chunk must be a positive int of point-face pairs, got {chunk!r}; e.g. 1 << 22")
    faces = faces.long()
    batched_verts = verts if verts.ndim == 3 else verts[None]  # (Bv, V, 3)
    batch, num_points, _ = points.shape
    with torch.no_grad():
        face_idx = _nearest_face(points.detach(), batched_verts.detach(), faces, chunk)  # (B, P)
    corner_idx = faces[face_idx]  # (B, P, 3)
    expanded = batched_verts.expand(batch, -1, -1)  # (B, V, 3)
    corners = [expanded.gather(1, corner_idx[..., i, None].expand(-1, -1, 3)) for i in range(3)]  # 3 x (B, P, 3)
    closest = _closest_point(points, *corners)
    sq_dist = ((points - closest) ** 2).sum(-1)
    return PointMeshResult(sq_dist, closest, face_idx)
