"""Ground-truth contact labels: the distance rule HACO trains on, for hand vertices and object points.

HACO (``lib/utils/contact_utils.py``, haco.md §6) labels a hand vertex as in contact when its *unsigned* distance
to the object surface, from ``trimesh.proximity.ProximityQuery(mesh).on_surface``, is strictly below a per-dataset
threshold (1 cm for DexYCB, ObMan, HO3D, ...; :data:`CONTACT_THRESHOLDS`).

- :func:`haco_contact_labels` is that rule exactly (use it to regenerate HACO's labels).
- :func:`hand_contact_labels` is the toolkit's rule: HACO's rule **or** the vertex lies inside the object.
  Deviation, and why: the unsigned rule calls a vertex that sits deeper than the threshold inside the object
  "no contact", so a grossly interpenetrating hand (a perturbed or badly predicted pose: a finger sunk 15 mm into
  a can) would lose its labels exactly where it touches most. Counting inside vertices as contact keeps the labels
  monotone in penetration. On physically valid grasps (penetration far below the threshold) both rules agree.
  The inside test needs a closed object mesh; for an open mesh (some YCB scans) it is skipped with a warning and
  the rule falls back to HACO's.
- :func:`object_contact_labels` is the mirror rule on object points: distance to the hand surface with MANO's
  open wrist closed by a fan cap (:func:`haco_grasp.geometry.mesh.cap_boundary`), or inside that closed hand.

Inputs are metres, numpy arrays or torch tensors (any device; labels come back as numpy bool).
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np
from torch import Tensor

from haco_grasp.arrays import to_numpy
from haco_grasp.errors import InputError
from haco_grasp.geometry.mesh import cap_boundary, is_watertight
from haco_grasp.geometry.sdf import inside_mesh

__all__ = [
    "CONTACT_THRESHOLDS",
    "haco_contact_labels",
    "hand_contact_labels",
    "object_contact_labels",
    "surface_distance",
]

logger = logging.getLogger(__name__)

#: HACO's per-dataset contact thresholds, metres (haco.md §6). MOW's value is in MOW's own scaled units.
CONTACT_THRESHOLDS: dict[str, float] = {
    "obman": 0.01,
    "dexycb": 0.01,
    "ho3d": 0.01,
    "h2o3d": 0.01,
    "arctic": 0.01,
    "hoi4d": 0.01,
    "h2o": 0.01,
    "prox": 0.01,
    "interhand": 0.005,
    "hic": 0.005,
    "mow": 0.035,
}


# --------------------------------------------------------------------------------------------------------------
# input checks


def _float_array(x: object, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        return to_numpy(x, np.float64)
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be a numeric (N, 3) array or tensor, got {type(x).__name__}: {error}") from None


def _points(x: object, name: str) -> np.ndarray:
    array = _float_array(x, name)
    if array.ndim != 2 or array.shape[1] != 3:
        raise InputError(f"{name} must have shape (N, 3), got {array.shape}; label one frame at a time")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contains NaN or inf; drop invalid frames first")
    return array


def _mesh(verts: object, faces: object, verts_name: str, faces_name: str) -> tuple[np.ndarray, np.ndarray]:
    verts_np = _points(verts, verts_name)
    faces_src = to_numpy(faces)
    if faces_src.ndim != 2 or faces_src.shape[1] != 3 or faces_src.shape[0] == 0 or faces_src.dtype.kind not in "iu":
        raise InputError(
            f"{faces_name} must be a non-empty (F, 3) integer array, got shape {faces_src.shape} {faces_src.dtype}"
        )
    faces_np = faces_src.astype(np.int64)
    if faces_np.min() < 0 or faces_np.max() >= verts_np.shape[0]:
        raise InputError(
            f"{faces_name} must index 0..{verts_np.shape[0] - 1}, got {faces_np.min()}..{faces_np.max()}; "
            f"check that the faces belong to {verts_name}"
        )
    return verts_np, faces_np


def _check_threshold(threshold: float) -> float:
    ok = isinstance(threshold, numbers.Real) and not isinstance(threshold, bool)
    if not (ok and math.isfinite(threshold) and threshold > 0):
        raise InputError(f"threshold must be a positive number of metres, got {threshold!r}; HACO uses 0.01")
    return float(threshold)


# --------------------------------------------------------------------------------------------------------------
# distances and rules


def surface_distance(points: np.ndarray | Tensor, verts: np.ndarray | Tensor, faces: np.ndarray | Tensor) -> np.ndarray:
    """Unsigned distance from points to a triangle mesh surface (trimesh ``ProximityQuery.on_surface``), metres.

    Args:
        points: (P, 3) float, metres.
        verts: (V, 3) float, mesh vertices, metres.
        faces: (F, 3) int, triangles.

    Returns:
        dist: (P,) float64, metres, >= 0.
    """
    import trimesh

    points_np = _points(points, "points")
    verts_np, faces_np = _mesh(verts, faces, "verts", "faces")
    if points_np.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    mesh = trimesh.Trimesh(vertices=verts_np, faces=faces_np, process=False)
    _, dist, _ = trimesh.proximity.ProximityQuery(mesh).on_surface(points_np)
    return np.asarray(dist, dtype=np.float64)


def haco_contact_labels(
    hand_verts: np.ndarray | Tensor,
    obj_verts: np.ndarray | Tensor,
    obj_faces: np.ndarray | Tensor,
    threshold: float = 0.01,
) -> np.ndarray:
    """HACO's rule exactly: unsigned hand-vertex-to-object-surface distance strictly below ``threshold``.

    A vertex deeper inside the object than ``threshold`` is *not* in contact under this rule (see
    :func:`hand_contact_labels` for the toolkit's rule).

    Args:
        hand_verts: (V, 3) float, metres (V = 778 for MANO).
        obj_verts: (Vo, 3) float, metres, same frame.
        obj_faces: (Fo, 3) int, object triangles.
        threshold: contact distance, metres (:data:`CONTACT_THRESHOLDS`).

    Returns:
        labels: (V,) bool.
    """
    threshold = _check_threshold(threshold)
    hand = _points(hand_verts, "hand_verts")
    verts, faces = _mesh(obj_verts, obj_faces, "obj_verts", "obj_faces")
    if hand.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return surface_distance(hand, verts, faces) < threshold


def _inside_closed(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, what: str) -> np.ndarray:
    if not is_watertight(faces):
        logger.warning("%s mesh is not closed: inside points are not counted as contact (HACO's unsigned rule)", what)
        return np.zeros(points.shape[0], dtype=bool)
    return np.asarray(inside_mesh(points, verts, faces), dtype=bool)


def hand_contact_labels(
    hand_verts: np.ndarray | Tensor,
    obj_verts: np.ndarray | Tensor,
    obj_faces: np.ndarray | Tensor,
    threshold: float = 0.01,
) -> np.ndarray:
    """Ground-truth hand contact: HACO's rule (unsigned distance < threshold, strict) or inside the object.

    Inside vertices count as contact whatever their depth (module docstring: deviation from HACO and why). The
    inside test (open3d ray parity, :func:`haco_grasp.geometry.sdf.inside_mesh`) needs a closed object mesh; for
    an open mesh it is skipped with a warning.

    Args:
        hand_verts: (V, 3) float, metres (V = 778 for MANO).
        obj_verts: (Vo, 3) float, metres, same frame.
        obj_faces: (Fo, 3) int, object triangles, outward-wound and closed for the inside rule.
        threshold: contact distance, metres (:data:`CONTACT_THRESHOLDS`; 1 cm for DexYCB-like data).

    Returns:
        labels: (V,) bool.
    """
    near = haco_contact_labels(hand_verts, obj_verts, obj_faces, threshold)
    if near.shape[0] == 0:
        return near
    hand = _points(hand_verts, "hand_verts")
    verts, faces = _mesh(obj_verts, obj_faces, "obj_verts", "obj_faces")
    return near | _inside_closed(hand, verts, faces, "object")


def object_contact_labels(
    obj_points: np.ndarray | Tensor,
    hand_verts: np.ndarray | Tensor,
    hand_faces: np.ndarray | Tensor,
    threshold: float = 0.01,
) -> np.ndarray:
    """Object-side contact: distance to the wrist-capped hand surface < threshold (strict), or inside the hand.

    The open MANO wrist is closed with a fan of triangles (:func:`~haco_grasp.geometry.mesh.cap_boundary`), so
    object points near the wrist opening and inside the hand volume are labelled consistently.

    Args:
        obj_points: (P, 3) float, object points (vertices or surface samples), metres.
        hand_verts: (V, 3) float, metres, same frame.
        hand_faces: (F, 3) int, hand triangles (open or closed).
        threshold: contact distance, metres.

    Returns:
        labels: (P,) bool.
    """
    threshold = _check_threshold(threshold)
    points = _points(obj_points, "obj_points")
    verts, faces = _mesh(hand_verts, hand_faces, "hand_verts", "hand_faces")
    if points.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    closed = faces if is_watertight(faces) else cap_boundary(faces)
    near = surface_distance(points, verts, closed) < threshold
    return near | _inside_closed(points, verts, closed, "hand")
