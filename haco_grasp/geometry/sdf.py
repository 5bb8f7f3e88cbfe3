"""Signed distance to closed triangle meshes (negative inside, metres) and cached SDF grids.

Inside tests and signed distances use open3d's ``RaycastingScene`` (CPU, float32, ray-parity sign); the
differentiable path for torch inputs uses :func:`point_mesh_distance` for the magnitude. Where open3d cannot be
imported (a GPU machine it cannot travel to), the same functions answer in brute-force torch instead, on CUDA when
available: the magnitude from :func:`point_mesh_distance`, the sign from the generalised winding number
(:func:`winding_number`, inside above 1/2); results agree with open3d's to float32 precision away from the surface.
:class:`SdfGrid` samples the signed distance on a regular grid once per object and answers batched, differentiable
trilinear queries.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from haco_grasp.atomic import atomic_open
from haco_grasp.errors import InputError
from haco_grasp.geometry.constants import scalar

__all__ = [
    "inside_mesh", "signed_distance", "SdfGrid", "PackedSdfGrids", "SdfLookup", "trilinear_lookup", "sdf_grid",
    "clear_sdf_grid_cache", "winding_number",
]

logger = logging.getLogger(__name__)

# Rays per point for the inside test; odd. Three rays vote, which removes the rare parity error of a ray that
# grazes an edge or a vertex, for about twice the cost of one ray.
_OCCUPANCY_RAYS = 3
_DEFAULT_MAX_CELLS = 16_000_000
_CACHE_SIZE = 32
# Grid points tested against a mesh at once by open3d (bounds memory of huge grids).
_QUERY_BLOCK = 2_000_000
_OPEN3D: bool | None = None  # whether open3d imports (see _open3d_available)
_MAX_OBJECT_EXTENT_M = 5.0  # sdf_grid refuses larger meshes: millimetres read as metres


def _to_numpy_mesh(verts: np.ndarray | Tensor, faces: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(verts, Tensor):
        verts = verts.detach().cpu().numpy()
    if isinstance(faces, Tensor):
        faces = faces.detach().cpu().numpy()
    verts = np.asarray(verts)
    faces = np.asarray(faces)
    if verts.ndim != 2 or verts.shape[1] != 3 or not np.issubdtype(verts.dtype, np.floating):
        raise InputError(
            f"verts must be a (V, 3) float array, got shape {verts.shape} dtype {verts.dtype}; pass one mesh"
        )
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer) or faces.shape[0] == 0:
        raise InputError(
            f"faces must be a non-empty (F, 3) integer array, got shape {faces.shape} dtype {faces.dtype}; "
            "pass triangle vertex indices"
        )
    if faces.min() < 0 or faces.max() >= verts.shape[0]:
        raise InputError(
            f"faces index vertices 0..{verts.shape[0] - 1}, got {faces.min()}..{faces.max()}; "
            "check that faces belong to these vertices"
        )
    if not np.all(np.isfinite(verts)):
        raise InputError("verts must be finite, got NaN or inf; check the mesh or pose that produced them")
    return verts, faces


def _open3d_available() -> bool:
    """Whether open3d imports here (asked once per process; without it the torch fallbacks answer)."""
    global _OPEN3D
    if _OPEN3D is None:
        try:
            import open3d  # noqa: F401
        except ImportError:
            _OPEN3D = False
            logger.info("open3d is not importable: inside tests and signed distances use the torch fallback")
        else:
            _OPEN3D = True
    return _OPEN3D


def winding_number(points: Tensor, verts: Tensor, faces: Tensor, max_pairs: int | None = None) -> Tensor:
    """Generalised winding number of a triangle mesh at points: 1 inside a closed mesh, 0 outside.

    The sum over triangles of the signed solid angle each subtends at the point (Van Oosterom and Strackee's
    formula), divided by 4 pi; brute force in blocks of points, on the points' device, float64.

    Args:
        points: (N, 3) float, metres.
        verts: (V, 3) float, metres.
        faces: (F, 3) int, consistently oriented (outward normals give +1 inside).
        max_pairs: point-triangle pairs per block (default: 2**20 on the CPU, 2**22 on CUDA: about 1 GB, so that
            one GPU serves a process per CPU core).

    Returns:
        (N,) float64.
    """
    device = points.device
    corners = verts.to(device, torch.float64)[faces.to(device).long()]  # (F, 3, 3)
    pts = points.to(torch.float64)
    out = torch.zeros(pts.shape[0], dtype=torch.float64, device=device)
    count = corners.shape[0]
    if count == 0 or pts.shape[0] == 0:
        return out
    block = max(1, (max_pairs or (2**22 if device.type == "cuda" else 2**20)) // count)
    for begin in range(0, pts.shape[0], block):
        rel = corners[None] - pts[begin : begin + block, None, None, :]  # (n, F, 3, 3)
        a, b, c = rel[:, :, 0], rel[:, :, 1], rel[:, :, 2]  # (n, F, 3)
        la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
        numerator = (a * torch.linalg.cross(b, c)).sum(-1)
        denominator = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
        out[begin : begin + block] = torch.atan2(numerator, denominator).sum(-1) / (2.0 * torch.pi)
    return out


def _torch_inside(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Inside mask of (N, 3) points by the winding number (the fallback without open3d)."""
    from haco_grasp.devices import resolve_device

    device = resolve_device("auto")
    number = winding_number(
        torch.from_numpy(np.asarray(points, dtype=np.float64)).to(device),
        torch.from_numpy(np.asarray(verts, dtype=np.float64)),
        torch.from_numpy(np.asarray(faces, dtype=np.int64)),
    )
    return np.abs(number.cpu().numpy()) > 0.5  # either orientation of the faces


def _inside(verts: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Boolean inside mask of (N, 3) points: open3d's voting rays (in blocks of ``_QUERY_BLOCK`` points, bounding
    the memory of huge grids), else the winding number."""
    if points.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    if not _open3d_available():
        return _torch_inside(points, verts, faces)
    scene = _scene(verts, faces)
    blocks = range(0, points.shape[0], _QUERY_BLOCK)
    return np.concatenate([_occupancy(scene, points[i : i + _QUERY_BLOCK]) for i in blocks])


def _scene(verts: np.ndarray, faces: np.ndarray):
    """open3d ray-casting scene of one mesh (imported lazily: open3d is heavy)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(verts, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)),
    )
    return scene


def _o3d_points(points: np.ndarray):
    import open3d as o3d

    return o3d.core.Tensor(np.ascontiguousarray(points.reshape(-1, 3), dtype=np.float32))


def _points_numpy(points: np.ndarray | Tensor) -> np.ndarray:
    array = points.detach().cpu().numpy() if isinstance(points, Tensor) else np.asarray(points)
    if array.ndim < 1 or array.shape[-1] != 3 or not np.issubdtype(array.dtype, np.number):
        raise InputError(f"points must be a (..., 3) float array, got shape {array.shape} dtype {array.dtype}")
    return array


def _occupancy(scene, points: np.ndarray) -> np.ndarray:
    """Boolean inside mask of (N, 3) points against a scene."""
    if points.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return scene.compute_occupancy(_o3d_points(points), nsamples=_OCCUPANCY_RAYS).numpy() > 0.5


def inside_mesh(
    points: np.ndarray | Tensor, verts: np.ndarray | Tensor, faces: np.ndarray | Tensor
) -> np.ndarray | Tensor:
    """Whether each point lies inside a closed mesh (open3d ray-parity occupancy, 3 voting rays).

    Args:
        points: (..., 3) float, query points, metres; numpy or torch.
        verts: (V, 3) float, vertices of a closed (watertight) mesh, metres.
        faces: (F, 3) int, triangle vertex indices.

    Returns:
        inside: (...) bool, numpy for numpy points, else a torch tensor on the points' device.
    """
    array = _points_numpy(points)
    verts_np, faces_np = _to_numpy_mesh(verts, faces)
    flat = array.reshape(-1, 3)
    inside = _inside(verts_np, faces_np, flat).reshape(array.shape[:-1])
    if isinstance(points, Tensor):
        return torch.from_numpy(inside).to(points.device)
    return inside


def _signed_distance_numpy(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Signed distance (float32 precision) of (N, 3) points; negative inside."""
    if points.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    if not _open3d_available():
        from haco_grasp.devices import resolve_device
        from haco_grasp.geometry.mesh_distance import point_mesh_distance

        device = resolve_device("auto")
        query = torch.from_numpy(np.asarray(points, dtype=np.float64)).to(device)
        mesh = torch.from_numpy(np.asarray(verts, dtype=np.float64)).to(device)
        sq_dist = point_mesh_distance(query[None], mesh, torch.from_numpy(faces.astype(np.int64)).to(device)).sq_dist
        distance = sq_dist[0].clamp_min(0.0).sqrt().cpu().numpy()
        return np.where(_torch_inside(points, verts, faces), -distance, distance)
    scene = _scene(verts, faces)
    distance = scene.compute_distance(_o3d_points(points)).numpy().astype(np.float64)
    inside = _occupancy(scene, points)
    return np.where(inside, -distance, distance)


def signed_distance(
    points: np.ndarray | Tensor, verts: np.ndarray | Tensor, faces: np.ndarray | Tensor
) -> np.ndarray | Tensor:
    """Signed distance from points to a closed mesh, negative inside, metres.

    numpy inputs, and torch inputs that need no gradient, use open3d (float32 precision, about 1e-7 m). When points
    or verts require grad, the magnitude comes from the exact, differentiable :func:`point_mesh_distance` and only
    the sign from open3d's inside test.

    Args:
        points: (..., 3) float, query points, metres; or (B, P, 3) with batched verts.
        verts: (V, 3) float, closed-mesh vertices, metres; torch verts may be (B, V, 3) for (B, P, 3) points.
        faces: (F, 3) int, triangle vertex indices.

    Returns:
        sdf: (...) float, same kind as points (numpy, or torch on the points' device and dtype).
    """
    if not isinstance(points, Tensor):
        array = _points_numpy(points)
        verts_np, faces_np = _to_numpy_mesh(verts, faces)
        sdf = _signed_distance_numpy(array.reshape(-1, 3), verts_np, faces_np)
        out_dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64
        return sdf.reshape(array.shape[:-1]).astype(out_dtype, copy=False)

    verts_t = torch.as_tensor(verts, device=points.device)
    faces_t = torch.as_tensor(faces, device=points.device)
    if not points.is_floating_point() or points.ndim < 1 or points.shape[-1] != 3:
        raise InputError(f"points must be a (..., 3) float tensor, got shape {tuple(points.shape)} {points.dtype}")
    if verts_t.ndim == 3:
        if points.ndim != 3 or points.shape[0] != verts_t.shape[0]:
            raise InputError(
                f"with batched verts {tuple(verts_t.shape)} points must be (B={verts_t.shape[0]}, P, 3), "
                f"got {tuple(points.shape)}; give one point set per mesh"
            )
        return torch.stack([signed_distance(points[b], verts_t[b], faces_t) for b in range(points.shape[0])])

    # Decided by requires_grad alone (not the grad mode) so that values do not change under torch.no_grad().
    needs_grad = points.requires_grad or verts_t.requires_grad
    verts_np, faces_np = _to_numpy_mesh(verts_t, faces_t)
    flat = points.reshape(-1, 3)
    if not needs_grad:
        sdf = _signed_distance_numpy(flat.detach().cpu().numpy(), verts_np, faces_np)
        return torch.from_numpy(sdf).to(device=points.device, dtype=points.dtype).reshape(points.shape[:-1])

    from haco_grasp.geometry.mesh_distance import point_mesh_distance

    result = point_mesh_distance(flat[None], verts_t.to(points.dtype), faces_t.long())
    sq_dist = result.sq_dist[0]  # (N,)
    positive = sq_dist > 0
    distance = torch.where(positive, torch.where(positive, sq_dist, torch.ones_like(sq_dist)).sqrt(), sq_dist * 0.0)
    inside = torch.from_numpy(_inside(verts_np, faces_np, flat.detach().cpu().numpy()))
    sign = torch.where(inside.to(points.device), -1.0, 1.0).to(points.dtype)
    return (sign * distance).reshape(points.shape[:-1])


@dataclass(frozen=True, eq=False)
class SdfGrid:
    """Signed distance sampled on a regular grid; differentiable trilinear queries.

    ``values[i, j, k]`` is the signed distance (metres, negative inside) at ``origin + pitch * (i, j, k)``
    (i along x, j along y, k along z).

    values: (D, H, W) float, signed distances, metres.
    origin: (3,) float, position of sample (0, 0, 0), metres.
    pitch: sample spacing, metres.
    """

    values: Tensor
    origin: Tensor
    pitch: float

    def __post_init__(self) -> None:
        if not isinstance(self.values, Tensor) or self.values.ndim != 3 or min(self.values.shape) < 2:
            raise InputError(
                f"values must be a (D, H, W) tensor with every side >= 2, got "
                f"{getattr(self.values, 'shape', type(self.values).__name__)}; build grids with SdfGrid.from_mesh"
            )
        if not isinstance(self.origin, Tensor) or self.origin.shape != (3,):
            raise InputError(f"origin must be a (3,) tensor, got {getattr(self.origin, 'shape', self.origin)}")
        if not self.pitch > 0:
            raise InputError(f"pitch must be positive metres, got {self.pitch!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of samples along x, y, z."""
        return tuple(self.values.shape)  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.values.device

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SdfGrid:
        """A copy on another device and/or dtype (the grid itself is immutable)."""
        return SdfGrid(
            self.values.to(device=device, dtype=dtype), self.origin.to(device=device, dtype=dtype), self.pitch
        )

    @classmethod
    def from_mesh(
        cls,
        verts: np.ndarray | Tensor,
        faces: np.ndarray | Tensor,
        pitch: float = 0.002,
        padding: float = 0.02,
        max_cells: int = _DEFAULT_MAX_CELLS,
    ) -> SdfGrid:
        """Sample the signed distance of a closed mesh on a grid covering its bounding box plus padding.

        Args:
            verts: (V, 3) float, closed-mesh vertices, metres.
            faces: (F, 3) int, triangle vertex indices.
            pitch: grid spacing, metres.
            padding: margin added around the bounding box on every side, metres.
            max_cells: refuse grids with more samples than this (memory guard).

        Returns:
            SdfGrid with float32 values on the CPU.
        """
        verts_np, faces_np = _to_numpy_mesh(verts, faces)
        if not (isinstance(pitch, (int, float)) and pitch > 0 and np.isfinite(pitch)):
            raise InputError(f"pitch must be a positive number of metres, got {pitch!r}; e.g. 0.002")
        if not (isinstance(padding, (int, float)) and padding >= 0 and np.isfinite(padding)):
            raise InputError(f"padding must be a non-negative number of metres, got {padding!r}; e.g. 0.02")
        low = verts_np.min(axis=0) - padding
        high = verts_np.max(axis=0) + padding
        counts = np.maximum(np.ceil((high - low) / pitch).astype(np.int64) + 1, 2)
        cells = int(np.prod(counts))
        if cells > max_cells:
            raise InputError(
                f"an SDF grid of {counts.tolist()} = {cells} samples exceeds max_cells={max_cells}; "
                "raise pitch, lower padding or raise max_cells"
            )
        started = time.perf_counter()
        axes = [low[i] + pitch * np.arange(counts[i]) for i in range(3)]
        grid_points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)  # (D*H*W, 3)
        values = _signed_distance_numpy(grid_points, verts_np, faces_np).reshape(tuple(counts))
        logger.debug("SdfGrid %s built in %.2f s", counts.tolist(), time.perf_counter() - started)
        return cls(
            torch.from_numpy(values.astype(np.float32)),
            torch.from_numpy(low.astype(np.float32)),
            float(pitch),
        )

    def query(self, points: Tensor) -> Tensor:
        """Trilinearly interpolated signed distance; differentiable w.r.t. points.

        Points outside the grid box get the value at the nearest point of the box plus the distance to the box,
        a safe over-estimate of the true signed distance.

        Args:
            points: (..., 3) float, e.g. (B, P, 3), metres, on the grid's device.

        Returns:
            sdf: (...) float, metres, negative inside, in the points' dtype.
        """
        if not isinstance(points, Tensor) or points.ndim < 1 or points.shape[-1] != 3 or not points.is_floating_point():
            got = f"shape {tuple(points.shape)} dtype {points.dtype}" if isinstance(points, Tensor) else type(points)
            raise InputError(f"points must be a (..., 3) float tensor, got {got}")
        if points.device != self.values.device:
            raise InputError(
                f"points are on {points.device} but the grid is on {self.values.device}; call grid.to(points.device)"
            )
        values = self.values if self.values.dtype == points.dtype else self.values.to(points.dtype)
        size = torch.tensor(values.shape, dtype=torch.long, device=points.device)[None]  # (1, 3)
        origin = self.origin.to(points.dtype)[None]  # (1, 3)
        pitch = torch.full((1,), self.pitch, dtype=points.dtype, device=points.device)
        offset = torch.zeros(1, dtype=torch.long, device=points.device)
        flat = points.reshape(1, -1, 3)  # (1, N, 3)
        return trilinear_lookup(values.reshape(-1), offset, size, origin, pitch, flat).reshape(points.shape[:-1])


# Corner offsets of a grid cell, (8, 3) in (x, y, z) order; the weight of a corner is prod(frac or 1 - frac).
_CORNERS = ((0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1))


class SdfLookup(NamedTuple):
    """Per-sample constants of a packed trilinear lookup, prepared once (:meth:`PackedSdfGrids.select`) so that each
    query runs only the arithmetic (no conversions, no constant tensors).

    values: (total,) float, every grid's samples. first: (B, 1, 8) long, flat index of each cell corner at cell
    (0, 0, 0) of the sample's grid. stride: (B, 1, 3) long, flat steps along x, y, z. upper: (B, 1, 3) float, last
    sample index per axis. origin: (B, 1, 3) float, metres. scale: (B, 1, 1) float, pitch in metres.
    is_x_slope: (4,) bool, True for the row of the x slope.
    """

    values: Tensor
    first: Tensor
    stride: Tensor
    upper: Tensor
    origin: Tensor
    scale: Tensor
    is_x_slope: Tensor

    def query(self, points: Tensor) -> Tensor:
        """Signed distance (B, P) of (B, P, 3) points, metres; differentiable w.r.t. points (one-product backward)."""
        if points.requires_grad and torch.is_grad_enabled():
            return _TrilinearLookup.apply(points, self)
        with torch.no_grad():
            return _trilinear_forward(points, self)[0]


def _prepare_lookup(
    values: Tensor, offset: Tensor, size: Tensor, origin: Tensor, pitch: Tensor, dtype: torch.dtype
) -> SdfLookup:
    """The :class:`SdfLookup` of per-sample grid parameters (offset (B,), size (B, 3), origin (B, 3), pitch (B,))."""
    device = values.device
    stride = torch.stack([size[:, 1] * size[:, 2], size[:, 2], torch.ones_like(size[:, 2])], dim=-1)  # (B, 3)
    corners = torch.tensor(_CORNERS, dtype=torch.long, device=device)  # (8, 3)
    first = offset[:, None] + (corners * stride[:, None]).sum(-1)  # (B, 8)
    return SdfLookup(
        values=values.to(dtype),
        first=first[:, None],
        stride=stride[:, None],
        upper=(size - 1).to(dtype)[:, None],
        origin=origin.to(dtype)[:, None],
        scale=pitch.to(dtype)[:, None, None],
        is_x_slope=torch.tensor([False, True, False, False], device=device),
    )


def _trilinear_forward(points: Tensor, lookup: SdfLookup) -> tuple[Tensor, Tensor]:
    """Signed distance (B, P) and its gradient with respect to the points (B, P, 3), computed together."""
    grid_coord = (points - lookup.origin) / lookup.scale  # (B, P, 3), in samples
    zero, one = scalar(0.0, grid_coord), scalar(1.0, grid_coord)  # cached constants (no per-call conversions)
    clamped = torch.clamp(grid_coord, min=zero, max=lookup.upper)
    outside = (grid_coord - clamped) * lookup.scale  # (B, P, 3), metres to the box
    outside_sq = (outside * outside).sum(-1, keepdim=True)  # (B, P, 1)
    is_outside = outside_sq > zero
    outside_dist = torch.where(is_outside, outside_sq, one).sqrt()  # (B, P, 1)
    base = torch.minimum(clamped.floor(), lookup.upper - one)  # (B, P, 3), lower corner
    frac = clamped - base  # (B, P, 3) in [0, 1]
    # index contract: flat[b, p, k] = first[b, k] + sum_c base[b, p, c] * stride[b, c]
    flat_index = lookup.first + (base.long() * lookup.stride).sum(-1, keepdim=True)  # (B, P, 8)
    cube = lookup.values[flat_index].unflatten(-1, (2, 2, 2))  # (B, P, 2, 2, 2): corner [i, j, k]
    fx, fy, fz = frac.unbind(-1)  # (B, P) each
    # contract one axis at a time (z, y, x), carrying the slope along each contracted axis
    low_z, high_z = cube.unbind(-1)  # (B, P, 2, 2)
    along_z = torch.lerp(low_z, high_z, fz[..., None, None])  # (B, P, 2, 2)
    slope_z = high_z - low_z  # (B, P, 2, 2)
    low_y, high_y = along_z.unbind(-1)  # (B, P, 2)
    slope_z_low, slope_z_high = slope_z.unbind(-1)
    along_y = torch.lerp(low_y, high_y, fy[..., None])  # (B, P, 2)
    slope_y = high_y - low_y  # (B, P, 2)
    slope_zy = torch.lerp(slope_z_low, slope_z_high, fy[..., None])  # (B, P, 2)
    # x: value and the three slopes at once, (B, P, 4, 2) -> (B, P, 4)
    low_x, high_x = torch.stack([along_y, along_y, slope_y, slope_zy], dim=-2).unbind(-1)  # (B, P, 4) each
    rows = torch.lerp(low_x, high_x, fx[..., None])  # (B, P, 4): value, (unused), d/dy, d/dz in samples
    rows = torch.where(lookup.is_x_slope, high_x - low_x, rows)  # row 1 is d/dx
    inside_box = grid_coord == clamped  # (B, P, 3): clamping stops the slope on that axis
    # d/dp: the in-box slope on unclamped axes, plus (outside the box) the unit direction away from the box
    slopes = torch.where(inside_box, rows[..., 1:], zero) / lookup.scale  # (B, P, 3)
    gradient = torch.where(is_outside, slopes + outside / outside_dist, slopes)  # (B, P, 3)
    distance = rows[..., 0] + torch.where(is_outside[..., 0], outside_dist[..., 0], zero)
    return distance, gradient


class _TrilinearLookup(torch.autograd.Function):
    """Trilinear lookup whose backward is one product with the gradient computed in the forward pass."""

    @staticmethod
    def forward(ctx, points, lookup):  # noqa: D102
        distance, gradient = _trilinear_forward(points, lookup)
        ctx.save_for_backward(gradient)
        return distance

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102
        (gradient,) = ctx.saved_tensors
        return grad_output[..., None] * gradient, None


def trilinear_lookup(
    values: Tensor, offset: Tensor, size: Tensor, origin: Tensor, pitch: Tensor, points: Tensor
) -> Tensor:
    """Trilinear signed-distance lookup of G grids packed into one flat tensor: one gather for every sample.

    The kernel behind :meth:`SdfGrid.query` and :meth:`PackedSdfGrids.query` (no validation). Its number of torch
    operations is fixed whatever the batch holds, and its backward pass is a single product: the gradient with
    respect to the points is computed with the value (a custom autograd function). Sample ``b`` looks its points up
    in the grid whose samples start at ``offset[b]`` of ``values`` (x-major, then y, then z). Points outside a grid's
    box get the value at the nearest point of the box plus the distance to the box. In a loop, prepare the
    per-sample constants once with :meth:`PackedSdfGrids.select` and call :meth:`SdfLookup.query`.

    Args:
        values: (total,) float, the grids' samples back to back, metres.
        offset: (B,) long, start of each sample's grid in ``values``.
        size: (B, 3) long, samples along x, y, z of each sample's grid (each >= 2).
        origin: (B, 3) float, position of each grid's sample (0, 0, 0), metres.
        pitch: (B,) float, each grid's spacing, metres.
        points: (B, P, 3) float, query points in each grid's frame, metres.

    Returns:
        sdf: (B, P) float, metres, negative inside; differentiable w.r.t. points (not w.r.t. the grid).
    """
    return _prepare_lookup(values, offset, size, origin, pitch, points.dtype).query(points)


@dataclass(frozen=True, eq=False)
class PackedSdfGrids:
    """Several :class:`SdfGrid` packed back to back, so that a batch mixing objects is looked up in one gather.

    values: (total,) float, every grid's samples, x-major.
    offset: (G,) long, start of grid g in ``values``.
    size: (G, 3) long, samples along x, y, z of grid g.
    origin: (G, 3) float, metres.
    pitch: (G,) float, metres.
    """

    values: Tensor
    offset: Tensor
    size: Tensor
    origin: Tensor
    pitch: Tensor

    @classmethod
    def pack(
        cls, grids: list[SdfGrid], device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> PackedSdfGrids:
        """Pack grids (in order: grid g of the list is index g of :meth:`query`).

        Args:
            grids: one or more SdfGrid.
            device, dtype: where and in which float type the packed tensors live (default: the first grid's).

        Returns:
            PackedSdfGrids.
        """
        if not grids or not all(isinstance(g, SdfGrid) for g in grids):
            raise InputError(f"grids: expected a non-empty list of SdfGrid, got {grids!r:.80}")
        device = grids[0].device if device is None else torch.device(device)
        dtype = grids[0].values.dtype if dtype is None else dtype
        counts = [g.values.numel() for g in grids]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return cls(
            values=torch.cat([g.values.reshape(-1).to(device, dtype) for g in grids]),
            offset=torch.as_tensor(starts, device=device),
            size=torch.tensor([list(g.shape) for g in grids], dtype=torch.long, device=device),
            origin=torch.stack([g.origin.to(device, dtype) for g in grids]),
            pitch=torch.tensor([g.pitch for g in grids], dtype=dtype, device=device),
        )

    def query(self, points: Tensor, grid_index: Tensor) -> Tensor:
        """Signed distance of each sample's points in its own grid.

        Args:
            points: (B, P, 3) float, metres, in the frame of each sample's grid, on the grids' device.
            grid_index: (B,) long, which packed grid each sample uses.

        Returns:
            sdf: (B, P) float, metres, negative inside; differentiable w.r.t. points.
        """
        return self.select(grid_index, points.dtype).query(points)

    def select(self, grid_index: Tensor, dtype: torch.dtype | None = None) -> SdfLookup:
        """The per-sample lookup constants of a batch (prepare once, query every iteration).

        Args:
            grid_index: (B,) long, which packed grid each sample uses.
            dtype: float type of the queries (default: the packed values').

        Returns:
            SdfLookup.
        """
        return _prepare_lookup(
            self.values, self.offset[grid_index], self.size[grid_index], self.origin[grid_index],
            self.pitch[grid_index], dtype or self.values.dtype,
        )  # fmt: skip


_CACHE: OrderedDict[str, SdfGrid] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _grid_key(verts: np.ndarray, faces: np.ndarray, pitch: float, padding: float) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(verts, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
    digest.update(np.asarray([pitch, padding], dtype=np.float64).tobytes())
    return digest.hexdigest()[:32]


def _load_npz(path: Path) -> SdfGrid | None:
    try:
        with np.load(path) as data:
            return SdfGrid(torch.from_numpy(data["values"]), torch.from_numpy(data["origin"]), float(data["pitch"]))
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("ignoring unreadable SDF cache file %s (%s); rebuilding", path, exc)
        return None


def _save_npz(path: Path, grid: SdfGrid) -> None:
    with atomic_open(path) as stream:
        np.savez(
            stream, values=grid.values.cpu().numpy(), origin=grid.origin.cpu().numpy(), pitch=np.float64(grid.pitch)
        )


def sdf_grid(
    verts: np.ndarray | Tensor,
    faces: np.ndarray | Tensor,
    pitch: float = 0.002,
    padding: float = 0.02,
    cache_dir: str | os.PathLike | None = None,
    max_cells: int = _DEFAULT_MAX_CELLS,
) -> SdfGrid:
    """The SdfGrid of a mesh, built once: in-memory LRU cache, then optional ``.npz`` files in cache_dir.

    The key hashes the vertex and face bytes (as float64 / int64), pitch and padding. Returned grids are shared
    between callers; they are immutable (use ``grid.to(...)`` for a moved copy).

    Args:
        verts: (V, 3) float, closed-mesh vertices, metres.
        faces: (F, 3) int, triangle vertex indices.
        pitch: grid spacing, metres.
        padding: margin around the bounding box, metres.
        cache_dir: folder for ``sdf_<key>.npz`` files (written atomically), or None for memory only.
        max_cells: see :meth:`SdfGrid.from_mesh`.

    Returns:
        SdfGrid (CPU, float32).
    """
    verts_np, faces_np = _to_numpy_mesh(verts, faces)
    extent = float(np.ptp(verts_np, axis=0).max())
    if extent > _MAX_OBJECT_EXTENT_M:  # before any grid is allocated
        raise InputError(
            f"object mesh spans {extent:.4g} m (grasped objects span < 0.5 m); object looks like millimetres; scale "
            "its vertices by 0.001"
        )
    key = _grid_key(verts_np, faces_np, float(pitch), float(padding))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    path = Path(cache_dir) / f"sdf_{key}.npz" if cache_dir is not None else None
    grid = _load_npz(path) if path is not None and path.is_file() else None
    if grid is None:
        grid = SdfGrid.from_mesh(verts_np, faces_np, pitch=pitch, padding=padding, max_cells=max_cells)
        if path is not None:
            _save_npz(path, grid)
    with _CACHE_LOCK:
        _CACHE[key] = grid
        _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return grid


def clear_sdf_grid_cache() -> None:
    """Empty the in-memory SdfGrid cache (files in cache_dir are kept)."""
    with _CACHE_LOCK:
        _CACHE.clear()
