"""Evaluation metrics, reported in millimetres and cm³ (inputs are always metres).

- :func:`mpjpe` / :func:`mpvpe`: mean per-joint / per-vertex position error in mm, with a named alignment
  (``"none"``: absolute, ``"root"``: root-relative, ``"procrustes"``: similarity-aligned, PA-MPJPE).
- :func:`contact_prf`: per-frame contact precision / recall / F1 on the 778 hand vertices, HACO convention.
- :func:`contact_labels`: HACO's ground-truth contact rule (unsigned hand-vertex-to-surface distance < threshold),
  re-exported from :func:`haco_grasp.geometry.labels.haco_contact_labels` with :data:`CONTACT_THRESHOLDS`.
- :func:`contact_fraction`: fraction of frames in which the hand touches the object under that rule.
- :func:`contact_ratio`: GraspTTA's contact ratio, the fraction of frames with a hand vertex inside the object or
  within 5 mm of it (:func:`frames_in_contact` gives the per-frame flags).
- :func:`intersection_volume` (cm³) and :func:`max_penetration_depth` (mm, the toolkit's one penetration-depth
  metric): thin wrappers over ``haco_grasp.geometry.volume``.
- :func:`simulate_grasps`: simulation displacement (cm), stable share, MuJoCo contacts; re-exported from
  :mod:`haco_grasp.simulation` on first use (MuJoCo is not imported with this module).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from torch import Tensor

from haco_grasp.arrays import to_numpy
from haco_grasp.errors import InputError
from haco_grasp.geometry.labels import CONTACT_THRESHOLDS
from haco_grasp.geometry.labels import haco_contact_labels as contact_labels

__all__ = [
    "ObjectPoseError",
    "object_pose_error",
    "CONTACT_THRESHOLDS",
    "ContactPRF",
    "contact_fraction",
    "contact_labels",
    "contact_prf",
    "contact_ratio",
    "frames_in_contact",
    "intersection_volume",
    "max_penetration_depth",
    "mpjpe",
    "mpvpe",
    "simulate_grasps",
]

Alignment = Literal["none", "root", "procrustes"]
_ALIGNMENTS = ("none", "root", "procrustes")


# --------------------------------------------------------------------------------------------------------------
# input conversion


def _is_real(value: object) -> bool:
    """True for Python and numpy real scalars (not bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_batched_points(x: object, name: str) -> np.ndarray:
    array = to_numpy(x, np.float64, name=name)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[-1] != 3 or array.shape[1] == 0:
        raise InputError(f"{name} must have shape (B, N, 3) or (N, 3) with N >= 1, got {array.shape}; pass xyz rows")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contains NaN or inf; remove invalid frames (e.g. DexYCB's -1 joints) first")
    return array


# --------------------------------------------------------------------------------------------------------------
# position errors


def _procrustes_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Similarity transform (scale, proper rotation, translation) of source onto target, per batch element.

    Umeyama's least-squares solution with the reflection fix: ``s R x + t`` with det(R) = +1. A source whose
    points all coincide has no defined rotation or scale and maps to the target's centroid.

    Args:
        source: (B, N, 3) float64.
        target: (B, N, 3) float64.

    Returns:
        aligned: (B, N, 3) float64, the transformed source.
    """
    source_mean = source.mean(axis=1, keepdims=True)
    target_mean = target.mean(axis=1, keepdims=True)
    x = source - source_mean  # (B, N, 3)
    y = target - target_mean
    cov = np.einsum("bni,bnj->bij", y, x)  # (B, 3, 3): sum_n y_n x_n^T
    u, sing, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u @ vt))  # -1 where the best orthogonal map is a reflection
    sign[sign == 0] = 1.0
    fix = np.ones_like(sing)
    fix[:, -1] = sign
    rot = np.einsum("bij,bj,bjk->bik", u, fix, vt)  # (B, 3, 3) proper rotation, y ≈ s R x
    var_x = (x * x).sum(axis=(1, 2))  # (B,)
    trace = (sing * fix).sum(axis=1)
    scale = np.where(var_x > 0, trace / np.where(var_x > 0, var_x, 1.0), 0.0)  # (B,)
    return scale[:, None, None] * np.einsum("bnj,bij->bni", x, rot) + target_mean  # s x R^T + mean_y


def _position_error(
    pred: np.ndarray, gt: np.ndarray, align: str, pred_root: np.ndarray, gt_root: np.ndarray
) -> np.ndarray:
    if align == "root":
        pred = pred - pred_root[:, None, :]
        gt = gt - gt_root[:, None, :]
    elif align == "procrustes":
        pred = _procrustes_align(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=1) * 1000.0


def _check_pair(pred: object, gt: object, align: str) -> tuple[np.ndarray, np.ndarray]:
    if align not in _ALIGNMENTS:
        raise InputError(f"align must be one of {_ALIGNMENTS}, got {align!r}")
    pred_np = _as_batched_points(pred, "pred")
    gt_np = _as_batched_points(gt, "gt")
    if pred_np.shape != gt_np.shape:
        raise InputError(f"pred and gt must have the same shape, got {pred_np.shape} and {gt_np.shape}")
    return pred_np, gt_np


def mpjpe(
    pred: np.ndarray | Tensor, gt: np.ndarray | Tensor, align: Alignment = "none", root_index: int = 0
) -> np.ndarray:
    """Mean per-joint position error of each frame, in millimetres.

    Alignments: ``"none"`` compares positions as given (absolute MPJPE); ``"root"`` subtracts joint
    ``root_index`` of each skeleton from itself (root-relative MPJPE; 0 = wrist in the toolkit's order);
    ``"procrustes"`` maps ``pred`` onto ``gt`` with the least-squares similarity transform (scale, proper
    rotation, translation; reflections are never used) before measuring (PA-MPJPE).

    Args:
        pred: (B, J, 3) or (J, 3) float, metres, numpy or torch.
        gt: (B, J, 3) or (J, 3) float, metres.
        align: ``"none"``, ``"root"`` or ``"procrustes"``.
        root_index: joint used by ``align="root"``.

    Returns:
        errors: (B,) float64, millimetres (B = 1 for unbatched input).
    """
    pred_np, gt_np = _check_pair(pred, gt, align)
    num_joints = pred_np.shape[1]
    if not isinstance(root_index, int | np.integer) or not 0 <= root_index < num_joints:
        raise InputError(f"root_index must be an int in [0, {num_joints}), got {root_index!r}; 0 is the wrist")
    return _position_error(pred_np, gt_np, align, pred_np[:, root_index], gt_np[:, root_index])


def mpvpe(
    pred: np.ndarray | Tensor,
    gt: np.ndarray | Tensor,
    align: Alignment = "none",
    root_pred: np.ndarray | Tensor | None = None,
    root_gt: np.ndarray | Tensor | None = None,
) -> np.ndarray:
    """Mean per-vertex position error of each frame, in millimetres.

    ``align="root"`` subtracts ``root_pred`` from ``pred`` and ``root_gt`` from ``gt`` when both are given (pass
    the wrist joints to match root-relative MPJPE); without them each mesh's vertex mean is subtracted instead
    (centroid-relative error). ``"procrustes"`` is the similarity alignment of :func:`mpjpe` over the vertices.

    Args:
        pred: (B, V, 3) or (V, 3) float, metres.
        gt: (B, V, 3) or (V, 3) float, metres.
        align: ``"none"``, ``"root"`` or ``"procrustes"``.
        root_pred: (B, 3) or (3,) float, metres, root of each predicted hand (e.g. joint 0), or None.
        root_gt: (B, 3) or (3,) float, metres, root of each ground-truth hand, or None.

    Returns:
        errors: (B,) float64, millimetres.
    """
    pred_np, gt_np = _check_pair(pred, gt, align)
    if (root_pred is None) != (root_gt is None):
        raise InputError("root_pred and root_gt must be given together (or neither, to use the vertex means)")
    if root_pred is None:
        pred_root, gt_root = pred_np.mean(axis=1), gt_np.mean(axis=1)
    else:
        batch = pred_np.shape[0]
        pred_root = to_numpy(root_pred, np.float64, name="root_pred")
        gt_root = to_numpy(root_gt, np.float64, name="root_gt")
        if pred_root.shape not in ((3,), (batch, 3)) or gt_root.shape not in ((3,), (batch, 3)):
            raise InputError(
                f"root_pred and root_gt must have shape ({batch}, 3) or (3,), got {pred_root.shape} and "
                f"{gt_root.shape}; pass one root point per frame"
            )
        pred_root = np.broadcast_to(pred_root, (batch, 3))
        gt_root = np.broadcast_to(gt_root, (batch, 3))
    return _position_error(pred_np, gt_np, align, pred_root, gt_root)


# --------------------------------------------------------------------------------------------------------------
# contact precision / recall / F1


@dataclass(frozen=True)
class ContactPRF:
    """Contact precision, recall and F1 (HACO convention) averaged over frames.

    Attributes:
        precision: mean precision over the frames used (NaN if none).
        recall: mean recall over the frames used (NaN if none).
        f1: mean F1 over the frames used (NaN if none).
        precision_per_frame: (B,) float64, NaN where undefined (no predicted contact).
        recall_per_frame: (B,) float64, NaN where undefined (no ground-truth contact).
        f1_per_frame: (B,) float64, NaN where precision or recall is undefined.
        n_frames: total number of frames B.
        n_frames_used: frames entering the F1 mean (B with ``empty="zero"``; frames with a defined F1 with
            ``empty="skip"``, where the precision and recall means may use more frames: see the per-frame arrays).
        empty: the rule used for undefined values, ``"skip"`` or ``"zero"``.
    """

    precision: float
    recall: float
    f1: float
    precision_per_frame: np.ndarray
    recall_per_frame: np.ndarray
    f1_per_frame: np.ndarray
    n_frames: int
    n_frames_used: int
    empty: str


def _as_contact_array(x: object, name: str) -> np.ndarray:
    array = to_numpy(x, np.float64, name=name)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise InputError(f"{name} must have shape (B, V) or (V,), got {array.shape}; pass one value per hand vertex")
    if np.any(np.isnan(array)):
        raise InputError(f"{name} contains NaN; fill or drop those frames first")
    return array


def contact_prf(
    pred: np.ndarray | Tensor,
    gt: np.ndarray | Tensor,
    threshold: float = 0.5,
    empty: Literal["skip", "zero"] = "skip",
) -> ContactPRF:
    """Per-frame contact precision, recall and F1 on hand vertices, averaged over frames (HACO's convention).

    Per frame: a vertex is predicted in contact when ``pred >= threshold`` and in ground-truth contact when
    ``gt >= 0.5`` (so binary labels work as is). With TP the vertices in both sets:
    P = TP / #predicted, R = TP / #ground truth, F1 = 2PR / (P + R).

    Undefined values: P is undefined for a frame with no predicted contact, R for a frame with no ground-truth
    contact, and F1 whenever P or R is undefined; F1 = 0 when P + R = 0. ``empty="zero"`` counts every
    undefined value as 0 and averages over all frames (HACO's ``test.py``); ``empty="skip"`` drops undefined
    values from each mean separately (the HACO paper's rule of skipping non-contact frames).

    The threshold applies to ``pred`` as given: pass probabilities (HACO's ``test.py`` passed raw logits, so its
    0.5 meant σ ≈ 0.62).

    Args:
        pred: (B, V) or (V,) float, contact probabilities (or bool).
        gt: (B, V) or (V,) binary or float labels (thresholded at 0.5).
        threshold: decision threshold on ``pred``.
        empty: ``"skip"`` or ``"zero"``, see above.

    Returns:
        ContactPRF with the means, the (B,) per-frame arrays (NaN where undefined) and frame counts.
    """
    if empty not in ("skip", "zero"):
        raise InputError(f"empty must be 'skip' or 'zero', got {empty!r}")
    if not (_is_real(threshold) and math.isfinite(threshold)):
        raise InputError(f"threshold must be a finite number, got {threshold!r}; pass e.g. 0.5")
    pred_np = _as_contact_array(pred, "pred")
    gt_np = _as_contact_array(gt, "gt")
    if pred_np.shape != gt_np.shape:
        raise InputError(f"pred and gt must have the same shape, got {pred_np.shape} and {gt_np.shape}")
    if pred_np.shape[0] == 0:
        raise InputError("contact_prf needs at least one frame, got B = 0")
    pred_on = pred_np >= threshold  # (B, V)
    gt_on = gt_np >= 0.5
    true_pos = (pred_on & gt_on).sum(axis=1).astype(np.float64)  # (B,)
    n_pred = pred_on.sum(axis=1).astype(np.float64)
    n_gt = gt_on.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, true_pos / n_pred, np.nan)
        recall = np.where(n_gt > 0, true_pos / n_gt, np.nan)
        denom = precision + recall
        f1 = np.where(denom > 0, 2.0 * precision * recall / np.where(denom > 0, denom, 1.0), 0.0)
    f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, f1)

    def _mean(values: np.ndarray) -> float:
        if empty == "zero":
            return float(np.nan_to_num(values, nan=0.0).mean())
        defined = values[~np.isnan(values)]
        return float(defined.mean()) if defined.size else math.nan

    n_frames = int(pred_np.shape[0])
    return ContactPRF(
        precision=_mean(precision),
        recall=_mean(recall),
        f1=_mean(f1),
        precision_per_frame=precision,
        recall_per_frame=recall,
        f1_per_frame=f1,
        n_frames=n_frames,
        n_frames_used=n_frames if empty == "zero" else int((~np.isnan(f1)).sum()),
        empty=empty,
    )


# --------------------------------------------------------------------------------------------------------------
# distance-based contact


def _object_arrays(obj_verts: object, obj_faces: object, batch: int | None) -> tuple[np.ndarray, np.ndarray]:
    verts = to_numpy(obj_verts, np.float64, name="obj_verts")
    faces_src = to_numpy(obj_faces)
    if faces_src.ndim != 2 or faces_src.shape[1] != 3 or faces_src.shape[0] == 0 or faces_src.dtype.kind not in "iu":
        raise InputError(f"obj_faces must be a non-empty (F, 3) integer array, got {faces_src.shape} {faces_src.dtype}")
    faces = faces_src.astype(np.int64)
    ok_ndim = (2,) if batch is None else (2, 3)
    if verts.ndim not in ok_ndim or verts.shape[-1] != 3 or (verts.ndim == 3 and verts.shape[0] != batch):
        expected = "(Vo, 3)" if batch is None else f"(Vo, 3) or ({batch}, Vo, 3)"
        raise InputError(f"obj_verts must have shape {expected}, got {verts.shape}; one object mesh per frame")
    if faces.min() < 0 or faces.max() >= verts.shape[-2]:
        raise InputError(f"obj_faces must index 0..{verts.shape[-2] - 1}, got {faces.min()}..{faces.max()}")
    return verts, faces


def _surface_distance(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unsigned distance (P,) from points (P, 3) to the surface of the mesh (verts, faces), via trimesh."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
    _, distance, _ = trimesh.proximity.ProximityQuery(mesh).on_surface(points)
    return np.asarray(distance, dtype=np.float64)


def _check_threshold(threshold: float) -> None:
    if not (_is_real(threshold) and math.isfinite(threshold) and threshold > 0):
        raise InputError(f"threshold must be a positive number of metres, got {threshold!r}; HACO uses 0.01")


def contact_fraction(
    hand_verts: np.ndarray | Tensor,
    obj_verts: np.ndarray | Tensor,
    obj_faces: np.ndarray | Tensor,
    threshold: float = 0.01,
) -> float:
    """Fraction of frames in which at least one hand vertex is within ``threshold`` of the object surface.

    A frame is "in contact" when :func:`contact_labels` marks any vertex, i.e. the minimum unsigned
    hand-vertex-to-surface distance is below the threshold.

    Args:
        hand_verts: (B, V, 3) or (V, 3) float, metres.
        obj_verts: (Vo, 3) float (one object shared by all frames) or (B, Vo, 3) float (one pose per frame), metres.
        obj_faces: (F, 3) int, object triangles.
        threshold: contact distance, metres.

    Returns:
        fraction: float in [0, 1].
    """
    _check_threshold(threshold)
    hand = _as_batched_points(hand_verts, "hand_verts")
    batch = hand.shape[0]
    verts, faces = _object_arrays(obj_verts, obj_faces, batch)
    touching = 0
    for frame in range(batch):
        frame_verts = verts if verts.ndim == 2 else verts[frame]
        if float(_surface_distance(hand[frame], frame_verts, faces).min()) < threshold:
            touching += 1
    return touching / batch


def frames_in_contact(
    hand_verts: np.ndarray | Tensor,
    obj_verts: np.ndarray | Tensor,
    obj_faces: np.ndarray | Tensor,
    threshold: float = 0.005,
) -> np.ndarray:
    """Per frame: is any hand vertex inside the object or within ``threshold`` of its surface (GraspTTA's rule)?

    Unlike :func:`contact_fraction` (unsigned distance), a hand buried in the object counts as in contact.

    Args:
        hand_verts: (B, V, 3) or (V, 3) float, metres.
        obj_verts: (Vo, 3) float (one object shared by all frames) or (B, Vo, 3) float (one pose per frame), metres.
        obj_faces: (F, 3) int, object triangles (closed mesh: the inside test needs it).
        threshold: contact distance, metres (GraspTTA: 5 mm).

    Returns:
        in_contact: (B,) bool.
    """
    from haco_grasp.geometry.sdf import signed_distance

    _check_threshold(threshold)
    hand = _as_batched_points(hand_verts, "hand_verts")
    verts, faces = _object_arrays(obj_verts, obj_faces, hand.shape[0])
    flags = np.zeros(hand.shape[0], dtype=bool)
    for frame in range(hand.shape[0]):
        frame_verts = verts if verts.ndim == 2 else verts[frame]
        flags[frame] = float(np.min(signed_distance(hand[frame], frame_verts, faces))) < threshold
    return flags


def contact_ratio(
    hand_verts: np.ndarray | Tensor,
    obj_verts: np.ndarray | Tensor,
    obj_faces: np.ndarray | Tensor,
    threshold: float = 0.005,
) -> float:
    """GraspTTA's contact ratio: the fraction of frames :func:`frames_in_contact` marks (inside or within 5 mm).

    Args:
        hand_verts: (B, V, 3) or (V, 3) float, metres.
        obj_verts: (Vo, 3) or (B, Vo, 3) float, metres.
        obj_faces: (F, 3) int, closed object triangles.
        threshold: contact distance, metres.

    Returns:
        ratio: float in [0, 1].
    """
    return float(frames_in_contact(hand_verts, obj_verts, obj_faces, threshold).mean())


# --------------------------------------------------------------------------------------------------------------
# volumes and depths (wrappers over haco_grasp.geometry.volume)


def intersection_volume(
    hand_verts: np.ndarray | Tensor,
    hand_faces: np.ndarray | Tensor,
    obj_verts: np.ndarray | Tensor,
    obj_faces: np.ndarray | Tensor,
    pitch: float = 0.002,
    cap_hand: bool = True,
) -> float:
    """Hand-object intersection volume in cm³; see ``haco_grasp.geometry.volume.intersection_volume``.

    Args:
        hand_verts: (V, 3) float, metres.
        hand_faces: (F, 3) int, hand triangles (the open MANO wrist is capped when ``cap_hand``).
        obj_verts: (Vo, 3) float, metres.
        obj_faces: (Fo, 3) int, object triangles (watertight).
        pitch: voxel size, metres (record it with the result).
        cap_hand: close the hand's open boundary before the inside test.

    Returns:
        volume: float, cm³.
    """
    from haco_grasp.geometry.volume import intersection_volume as _intersection_volume

    return float(_intersection_volume(hand_verts, hand_faces, obj_verts, obj_faces, pitch=pitch, cap_hand=cap_hand))


def max_penetration_depth(
    hand_verts: np.ndarray | Tensor, obj_verts: np.ndarray | Tensor, obj_faces: np.ndarray | Tensor
) -> float:
    """Deepest hand vertex inside the object, in millimetres (0 without penetration).

    The toolkit's one penetration-depth metric (GraspTTA's definition: the distance to the surface of the deepest
    hand vertex inside the object).

    Built on ``haco_grasp.geometry.volume.penetration_depths`` (per vertex, metres).

    Args:
        hand_verts: (V, 3) float, metres.
        obj_verts: (Vo, 3) float, metres.
        obj_faces: (Fo, 3) int, object triangles (watertight).

    Returns:
        depth: float, millimetres.
    """
    from haco_grasp.geometry.volume import penetration_depths

    depths = penetration_depths(hand_verts, obj_verts, obj_faces)  # (V,) metres
    return 1000.0 * float(depths.max()) if depths.size else 0.0


def simulate_grasps(grasps, *args, **kwargs):
    """Simulation displacement of grasps (MuJoCo); see :func:`haco_grasp.simulation.simulate_grasps`.

    Imported on first call so that ``import haco_grasp.metrics`` does not load MuJoCo.
    """
    from haco_grasp.simulation import simulate_grasps as _simulate_grasps

    return _simulate_grasps(grasps, *args, **kwargs)


# --------------------------------------------------------------------------------------------------------------
# object pose


class ObjectPoseError(NamedTuple):
    """Per-frame object pose errors (:func:`object_pose_error`), each (B,) float64.

    Attributes:
        add_mm: mean distance between corresponding model vertices under the two poses (ADD).
        adds_mm: mean distance from each ground-truth-posed vertex to the nearest predicted-posed vertex (ADD-S, for
            symmetric objects).
        rotation_deg: angle of R_pred R_gtᵀ.
        translation_mm: distance between the translations.
    """

    add_mm: np.ndarray
    adds_mm: np.ndarray
    rotation_deg: np.ndarray
    translation_mm: np.ndarray


def object_pose_error(
    pred_rotation: np.ndarray,
    pred_translation: np.ndarray,
    gt_rotation: np.ndarray,
    gt_translation: np.ndarray,
    canonical_verts: Sequence[np.ndarray],
) -> ObjectPoseError:
    """ADD, ADD-S, rotation and translation error of predicted object poses, in millimetres and degrees.

    Poses map canonical vertices to the world as ``x @ R.T + t``.

    Args:
        pred_rotation: (B, 3, 3) float. pred_translation: (B, 3) float, metres.
        gt_rotation: (B, 3, 3) float. gt_translation: (B, 3) float, metres.
        canonical_verts: B arrays (V_b, 3) float, metres, each frame's object model.

    Returns:
        ObjectPoseError.
    """
    from scipy.spatial import cKDTree

    pred_r, gt_r = np.asarray(pred_rotation, np.float64), np.asarray(gt_rotation, np.float64)
    pred_t, gt_t = np.asarray(pred_translation, np.float64), np.asarray(gt_translation, np.float64)
    batch = len(canonical_verts)
    if pred_r.shape != (batch, 3, 3) or gt_r.shape != (batch, 3, 3) or pred_t.shape != (batch, 3) or gt_t.shape != (
        batch, 3,
    ):  # fmt: skip
        raise InputError(f"object_pose_error: expected rotations ({batch}, 3, 3) and translations ({batch}, 3), got "
                         f"{pred_r.shape}, {pred_t.shape}, {gt_r.shape}, {gt_t.shape}")  # fmt: skip
    add, adds = np.empty(batch), np.empty(batch)
    for b, verts in enumerate(canonical_verts):
        verts = np.asarray(verts, dtype=np.float64)
        pred = verts @ pred_r[b].T + pred_t[b]
        true = verts @ gt_r[b].T + gt_t[b]
        add[b] = np.linalg.norm(pred - true, axis=-1).mean()
        adds[b] = cKDTree(pred).query(true)[0].mean()
    relative = pred_r @ gt_r.transpose(0, 2, 1)
    cos = np.clip((np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return ObjectPoseError(
        add_mm=1000.0 * add,
        adds_mm=1000.0 * adds,
        rotation_deg=np.degrees(np.arccos(cos)),
        translation_mm=1000.0 * np.linalg.norm(pred_t - gt_t, axis=-1),
    )
