"""Solid hand-object intersection volume (CPF style) and penetration depth.

The object's interior is voxelised on a regular grid aligned to its bounding-box minimum (voxel centres that lie
inside the closed mesh: a filled interior, not surface voxels); the volume is the number of those centres inside
the closed (wrist-capped) hand times the voxel volume. Inside tests use open3d ray parity, or the winding number
where open3d is absent (see ``sdf.py``).
Volumes are returned in cm^3, depths in metres.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from haco_grasp.arrays import to_numpy
from haco_grasp.errors import InputError
from haco_grasp.geometry.mesh import cap_boundary, is_watertight
from haco_grasp.geometry.sdf import _inside, _signed_distance_numpy, _to_numpy_mesh

__all__ = ["voxelize_interior", "intersection_volume", "intersection_volume_batch", "penetration_depths"]

_M3_TO_CM3 = 1e6


def _check_pitch(pitch: float) -> float:
    if isinstance(pitch, bool) or not isinstance(pitch, (int, float)) or not (pitch > 0 and np.isfinite(pitch)):
        raise InputError(f"pitch must be a positive number of metres, got {pitch!r}; e.g. 0.002 for 2 mm voxels")
    return float(pitch)


def _grid_index_range(bbox_min: np.ndarray, counts: np.ndarray, pitch: float, low: np.ndarray, high: np.ndarray):
    """Per-axis [first, last] voxel indices whose centre bbox_min + (i + 0.5) pitch lies within [low, high]."""
    first = np.maximum(np.ceil((low - bbox_min) / pitch - 0.5).astype(np.int64), 0)
    last = np.minimum(np.floor((high - bbox_min) / pitch - 0.5).astype(np.int64), counts - 1)
    return first, last


def _grid_centres(bbox_min: np.ndarray, pitch: float, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Voxel centres (N, 3) for index ranges first..last (inclusive) per axis, x slowest."""
    if np.any(last < first):
        return np.zeros((0, 3), dtype=np.float64)
    axes = [bbox_min[i] + (np.arange(first[i], last[i] + 1) + 0.5) * pitch for i in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _object_interior(
    obj_verts: np.ndarray,
    obj_faces: np.ndarray,
    pitch: float,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> np.ndarray:
    """Interior voxel centres of the object grid (aligned to its bbox min), optionally only within [low, high]."""
    bbox_min = obj_verts.min(axis=0)
    bbox_max = obj_verts.max(axis=0)
    counts = np.maximum(np.ceil((bbox_max - bbox_min) / pitch).astype(np.int64), 1)
    low = bbox_min if low is None else np.maximum(low, bbox_min)
    high = bbox_max if high is None else np.minimum(high, bbox_max)
    first, last = _grid_index_range(bbox_min, counts, pitch, low, high)
    centres = _grid_centres(bbox_min, pitch, first, last)
    if centres.shape[0] == 0:
        return centres
    return centres[_inside(obj_verts, obj_faces, centres)]


def voxelize_interior(verts: np.ndarray | Tensor, faces: np.ndarray | Tensor, pitch: float) -> np.ndarray:
    """Centres of the filled interior voxels of a closed mesh.

    The grid starts at the bounding-box minimum with the given pitch; a voxel is kept when its centre is inside
    the mesh (so each kept voxel stands for pitch^3 of solid, with unbiased boundary error).

    Args:
        verts: (V, 3) float, closed-mesh vertices, metres; numpy or torch.
        faces: (F, 3) int, triangle vertex indices.
        pitch: voxel edge length, metres.

    Returns:
        centres: (N, 3) float64, metres.
    """
    pitch = _check_pitch(pitch)
    verts_np, faces_np = _to_numpy_mesh(verts, faces)
    return _object_interior(verts_np.astype(np.float64), faces_np, pitch)


def _closed_hand_faces(hand_faces: np.ndarray, cap_hand: bool) -> np.ndarray:
    if cap_hand and not is_watertight(hand_faces):
        return cap_boundary(hand_faces)
    return hand_faces


def _hand_array(hand_verts: np.ndarray | Tensor, batched: bool) -> np.ndarray:
    array = to_numpy(hand_verts)
    expected_ndim = 3 if batched else 2
    if array.ndim != expected_ndim or array.shape[-1] != 3 or not np.issubdtype(array.dtype, np.floating):
        shape = "(B, V, 3)" if batched else "(V, 3)"
        raise InputError(
            f"hand_verts must be a {shape} float array, got shape {array.shape} dtype {array.dtype}; "
            + ("use intersection_volume for one hand" if batched else "use intersection_volume_batch for a batch")
        )
    return array.astype(np.float64, copy=False)


def intersection_volume(
    hand_verts: np.ndarray | Tensor,
    hand_faces: np.ndarray | Tensor,
    obj_verts: np.ndarray | Tensor,
    obj_faces: np.ndarray | Tensor,
    pitch: float = 0.002,
    cap_hand: bool = True,
) -> float:
    """Solid intersection volume of one hand and one object, cm^3.

    Object interior voxel centres (grid aligned to the object's bbox minimum; only the part inside the hand's
    bounding box is generated) are counted when they are inside the hand; volume = count * pitch^3.

    Args:
        hand_verts: (V, 3) float, hand vertices, metres; numpy or torch.
        hand_faces: (F, 3) int, hand faces; an open hand (MANO) is capped with :func:`cap_boundary` if cap_hand.
        obj_verts: (V_o, 3) float, closed object vertices, metres.
        obj_faces: (F_o, 3) int, object faces.
        pitch: voxel edge length, metres. At 2 mm the error is within 3 % for overlaps from ~3 cm^3 and within
            ~0.15 cm^3 below that; use 1 mm when small overlaps must be accurate to 3 %.
        cap_hand: close the hand's open boundary before the inside test.

    Returns:
        volume in cm^3 (0.0 when the meshes do not overlap).
    """
    pitch = _check_pitch(pitch)
    hand_np, hand_faces_np = _to_numpy_mesh(_hand_array(hand_verts, batched=False), hand_faces)
    obj_np, obj_faces_np = _to_numpy_mesh(obj_verts, obj_faces)
    hand_faces_np = _closed_hand_faces(hand_faces_np, cap_hand)
    centres = _object_interior(obj_np.astype(np.float64), obj_faces_np, pitch, hand_np.min(0), hand_np.max(0))
    if centres.shape[0] == 0:
        return 0.0
    count = int(_inside(hand_np, hand_faces_np, centres).sum())
    return count * pitch**3 * _M3_TO_CM3


def intersection_volume_batch(
    hand_verts: np.ndarray | Tensor,
    hand_faces: np.ndarray | Tensor,
    obj_verts: np.ndarray | Tensor,
    obj_faces: np.ndarray | Tensor,
    pitch: float = 0.002,
    cap_hand: bool = True,
) -> np.ndarray:
    """Solid intersection volumes of B hands with one object, reusing one object voxelisation, cm^3.

    Args:
        hand_verts: (B, V, 3) float, hand vertices, metres; numpy or torch.
        hand_faces: (F, 3) int, hand faces shared by the batch (capped if open and cap_hand).
        obj_verts: (V_o, 3) float, closed object vertices, metres.
        obj_faces: (F_o, 3) int, object faces.
        pitch: voxel edge length, metres.
        cap_hand: close the hand's open boundary before the inside test.

    Returns:
        volumes: (B,) float64, cm^3.
    """
    pitch = _check_pitch(pitch)
    hands = _hand_array(hand_verts, batched=True)
    obj_np, obj_faces_np = _to_numpy_mesh(obj_verts, obj_faces)
    volumes = np.zeros(hands.shape[0], dtype=np.float64)
    if hands.shape[0] == 0:
        return volumes
    _, hand_faces_np = _to_numpy_mesh(hands[0], hand_faces)
    hand_faces_np = _closed_hand_faces(hand_faces_np, cap_hand)
    centres = _object_interior(
        obj_np.astype(np.float64), obj_faces_np, pitch, hands.min(axis=(0, 1)), hands.max(axis=(0, 1))
    )
    for b, hand in enumerate(hands):
        _to_numpy_mesh(hand, hand_faces_np)  # validates finiteness of this hand
        in_box = np.all((centres >= hand.min(0)) & (centres <= hand.max(0)), axis=1)
        if not in_box.any():
            continue
        count = int(_inside(hand, hand_faces_np, centres[in_box]).sum())
        volumes[b] = count * pitch**3 * _M3_TO_CM3
    return volumes


def penetration_depths(
    hand_verts: np.ndarray | Tensor, obj_verts: np.ndarray | Tensor, obj_faces: np.ndarray | Tensor
) -> np.ndarray:
    """Depth of each hand vertex inside the object, metres (0 for vertices outside).

    The report metric, the deepest one in millimetres, is :func:`haco_grasp.metrics.max_penetration_depth`.

    Args:
        hand_verts: (V, 3) float, hand vertices, metres; numpy or torch.
        obj_verts: (V_o, 3) float, closed object vertices, metres.
        obj_faces: (F_o, 3) int, object faces.

    Returns:
        depths: (V,) float64, metres, >= 0 (open3d float32 precision).
    """
    hand_np = _hand_array(hand_verts, batched=False)
    obj_np, obj_faces_np = _to_numpy_mesh(obj_verts, obj_faces)
    if hand_np.shape[0] == 0:
        return np.zeros(0)
    sdf = _signed_distance_numpy(hand_np, obj_np, obj_faces_np)
    return np.maximum(0.0, -np.asarray(sdf, dtype=np.float64))
