"""DeepContact's per-point input features and input-cloud normalisation (ContactOpt, contactopt.md §6).

Each of the 778 hand vertices and P sampled object points gets 25 features (:data:`FEATURE_NAMES`):

====  ===========================  ==================================================================
 0    ``is_hand``                  1 for hand vertices, 0 for object points
 1    ``dot_to_other_centroid``    ``(p - c_other) . n_p``; c_other = centroid of the other body
 2    ``dist_to_nearest``          ``|q - p|``, q = nearest point of the other body (hand vertices /
                                   sampled object points)
 3    ``nearest_along_normal``     ``(q - p) . n_p`` (positive when the other body lies in front)
 4-24 ``dist_to_joint_{j}``        ``|p - J_j|`` for the 21 hand joints (toolkit / manopth order)
====  ===========================  ==================================================================

Centroids: the hand centroid is the mean of the 778 vertices; the object centroid is the mean of the *sampled*
object points (area-uniform surface samples, so an area-weighted centroid; ContactOpt uses the mean of the mesh
vertices). Hand normals are area-weighted vertex normals of the hand mesh; object normals are those of the
samples. All features are invariant to rigid motions, so they are computed in the world frame.

Normalisation (:func:`normalizing_transform`): origin at the object centroid, +x towards the hand centroid. The
remaining axes are fixed deterministically: z is world +z made orthogonal to x (world +y when x is within ~25° of
±z), y = z × x. An optional roll θ about x then rotates y and z (ContactOpt always draws a random roll, also at
test time; here it is off unless asked for).

Left hands (:func:`mirror_grasp`): DeepContact is trained on right hands. A left grasp is mirrored (x -> -x) into a
right grasp with the same vertex ids (vertex i of MANO_LEFT mirrors vertex i of MANO_RIGHT, as in ContactOpt and
HACO), so :func:`grasp_inputs` returns, for a left grasp, the inputs of its mirror image; per-vertex and per-point
outputs then belong to the left grasp unchanged, and points / normals map back by negating x.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError
from haco_grasp.geometry.knn import knn_points
from haco_grasp.geometry.mesh import vertex_normals
from haco_grasp.geometry.sampling import sample_surface
from haco_grasp.hand.conventions import mirror_axis_angle

__all__ = [
    "FEATURE_NAMES",
    "NUM_FEATURES",
    "GraspInputs",
    "NormalizingTransform",
    "PointFeatures",
    "apply_transform",
    "grasp_inputs",
    "mirror_grasp",
    "normalizing_transform",
    "pointnet_features",
    "sample_object_points",
]

NUM_JOINTS = 21
FEATURE_NAMES: tuple[str, ...] = (
    "is_hand",
    "dot_to_other_centroid",
    "dist_to_nearest",
    "nearest_along_normal",
) + tuple(f"dist_to_joint_{j}" for j in range(NUM_JOINTS))
#: 25 features per point.
NUM_FEATURES = len(FEATURE_NAMES)

# |x . z| above this switches the reference axis from world z to world y (about 25 degrees from z).
_POLE_COS = 0.9


class PointFeatures(NamedTuple):
    """Result of :func:`pointnet_features`.

    Attributes:
        hand: (B, V, 25) float, features of the hand vertices.
        obj: (B, P, 25) float, features of the object points.
    """

    hand: Tensor
    obj: Tensor


class NormalizingTransform(NamedTuple):
    """Rigid map to the network frame: ``p_net = (p - origin) @ rotation.T``.

    Attributes:
        rotation: (B, 3, 3) float, rows are the network x, y, z axes in world coordinates.
        origin: (B, 3) float, metres, the object centroid.
    """

    rotation: Tensor
    origin: Tensor


class GraspInputs(NamedTuple):
    """Network inputs of :func:`grasp_inputs`, world frame, metres.

    Attributes:
        hand_verts: (B, V, 3)
        hand_normals: (B, V, 3)
        hand_joints: (B, 21, 3).
        obj_points: (B, P, 3)
        obj_normals: (B, P, 3) unit outward.
        hand_feats: (B, V, 25)
        obj_feats: (B, P, 25).
    """

    hand_verts: Tensor
    hand_normals: Tensor
    hand_joints: Tensor
    obj_points: Tensor
    obj_normals: Tensor
    hand_feats: Tensor
    obj_feats: Tensor


def _check(name: str, x: object, last: int, batch: int | None = None) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != last or not x.is_floating_point():
        got = f"shape {tuple(x.shape)} dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"{name} must be a (B, N, {last}) float tensor, got {got}; add a batch axis with [None]")
    if batch is not None and x.shape[0] != batch:
        raise InputError(f"{name} has batch {x.shape[0]}, expected {batch}; pass matching batches")
    return x


def _one_side(
    points: Tensor, normals: Tensor, other: Tensor, other_centroid: Tensor, joints: Tensor, is_hand: bool
) -> Tensor:
    """(B, N, 25) features of ``points`` against the ``other`` body."""
    nearest_idx = knn_points(points, other, k=1).idx[..., 0]  # (B, N)
    nearest = other.gather(1, nearest_idx[..., None].expand(-1, -1, 3))  # (B, N, 3)
    offset = nearest - points  # (B, N, 3)
    flag = torch.full_like(points[..., :1], 1.0 if is_hand else 0.0)
    dot_centroid = ((points - other_centroid[:, None, :]) * normals).sum(-1, keepdim=True)
    dist_nearest = offset.norm(dim=-1, keepdim=True)
    along_normal = (offset * normals).sum(-1, keepdim=True)
    joint_dist = (points[:, :, None, :] - joints[:, None, :, :]).norm(dim=-1)  # (B, N, 21)
    return torch.cat([flag, dot_centroid, dist_nearest, along_normal, joint_dist], dim=-1)


def pointnet_features(
    hand_verts: Tensor, hand_normals: Tensor, hand_joints: Tensor, obj_points: Tensor, obj_normals: Tensor
) -> PointFeatures:
    """The 25 DeepContact features of every hand vertex and object point (module docstring: definitions).

    Args:
        hand_verts: (B, V, 3) float, metres.
        hand_normals: (B, V, 3) float, unit hand vertex normals.
        hand_joints: (B, 21, 3) float, metres.
        obj_points: (B, P, 3) float, metres.
        obj_normals: (B, P, 3) float, unit outward normals of obj_points.

    Returns:
        PointFeatures with hand (B, V, 25) and obj (B, P, 25).
    """
    _check("hand_verts", hand_verts, 3)
    batch = hand_verts.shape[0]
    _check("hand_normals", hand_normals, 3, batch)
    _check("hand_joints", hand_joints, 3, batch)
    _check("obj_points", obj_points, 3, batch)
    _check("obj_normals", obj_normals, 3, batch)
    if hand_normals.shape != hand_verts.shape or obj_normals.shape != obj_points.shape:
        raise InputError("normals must match their points one to one; pass one normal per vertex / point")
    if hand_joints.shape[1] != NUM_JOINTS:
        raise InputError(f"hand_joints must hold {NUM_JOINTS} joints, got {hand_joints.shape[1]}")
    if hand_verts.shape[1] == 0 or obj_points.shape[1] == 0:
        raise InputError("features need at least one hand vertex and one object point; check the inputs")
    hand_centroid = hand_verts.mean(1)  # (B, 3)
    obj_centroid = obj_points.mean(1)  # (B, 3)
    hand = _one_side(hand_verts, hand_normals, obj_points, obj_centroid, hand_joints, True)
    obj = _one_side(obj_points, obj_normals, hand_verts, hand_centroid, hand_joints, False)
    return PointFeatures(hand, obj)


def normalizing_transform(hand_points: Tensor, obj_points: Tensor, roll: Tensor | None = None) -> NormalizingTransform:
    """DeepContact's input frame: origin at the object centroid, +x towards the hand centroid, optional roll.

    Args:
        hand_points: (B, V, 3) float, metres.
        obj_points: (B, P, 3) float, metres.
        roll: (B,) float radians about +x, or None for no roll (deterministic).

    Returns:
        NormalizingTransform with rotation (B, 3, 3) and origin (B, 3).
    """
    _check("hand_points", hand_points, 3)
    batch = hand_points.shape[0]
    _check("obj_points", obj_points, 3, batch)
    origin = obj_points.mean(1)  # (B, 3)
    towards = hand_points.mean(1) - origin
    length = towards.norm(dim=-1, keepdim=True)
    fallback = torch.zeros_like(towards)
    fallback[:, 0] = 1.0
    x_axis = torch.where(length > 1e-12, towards / length.clamp_min(1e-12), fallback)  # (B, 3)
    world_z = torch.zeros_like(x_axis)
    world_z[:, 2] = 1.0
    world_y = torch.zeros_like(x_axis)
    world_y[:, 1] = 1.0
    near_pole = x_axis[:, 2].abs() > _POLE_COS
    ref = torch.where(near_pole[:, None], world_y, world_z)
    z_axis = ref - (ref * x_axis).sum(-1, keepdim=True) * x_axis
    z_axis = z_axis / z_axis.norm(dim=-1, keepdim=True)
    y_axis = torch.linalg.cross(z_axis, x_axis)
    if roll is not None:
        if not isinstance(roll, Tensor) or roll.shape != (batch,):
            raise InputError(f"roll must be a ({batch},) tensor of radians or None, got {getattr(roll, 'shape', roll)}")
        cos, sin = roll.cos()[:, None].to(x_axis.dtype), roll.sin()[:, None].to(x_axis.dtype)
        y_axis, z_axis = cos * y_axis + sin * z_axis, -sin * y_axis + cos * z_axis
    rotation = torch.stack([x_axis, y_axis, z_axis], dim=1)  # (B, 3, 3), rows = axes
    return NormalizingTransform(rotation, origin)


def apply_transform(points: Tensor, transform: NormalizingTransform) -> Tensor:
    """Map world points to the network frame: ``(p - origin) @ rotation.T``.

    Args:
        points: (B, N, 3) float, metres.
        transform: from :func:`normalizing_transform`.

    Returns:
        points: (B, N, 3) float, metres, network frame.
    """
    return torch.einsum("bij,bnj->bni", transform.rotation, points - transform.origin[:, None, :])  # (B, N, 3)


def sample_object_points(grasp: Grasp, num_points: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Area-uniform surface samples of a grasp's posed object, world frame.

    Args:
        grasp: the grasp (its object is posed by ``obj_rotation`` / ``obj_translation``).
        num_points: P.
        generator: seeded torch generator.

    Returns:
        (points (P, 3) float64 metres, normals (P, 3) float64 unit outward).
    """
    return sample_surface(np.asarray(grasp.obj_verts), np.asarray(grasp.obj_faces), num_points, generator)


#: The reflection x -> -x between left and right hands (points are row vectors: ``p * MIRROR``).
MIRROR = np.array([-1.0, 1.0, 1.0])


def mirror_grasp(grasp: Grasp) -> Grasp:
    """The mirror image (x -> -x) of a grasp: a left grasp becomes a right one and vice versa, same vertex ids.

    Hand vertices and joints are reflected, hand and object faces re-wound (normals stay outward), the object's
    canonical vertices reflected and its pose conjugated (``R' = M R M``, ``t' = M t``, so the posed object is the
    reflection of the original). MANO parameters: ``mirror_axis_angle`` of the rotations, ``transl' = M t`` (the
    exact MANO parameters of the mirrored hand when the left model mirrors the right one, as the synthetic hand;
    approximate for the official files). Mirroring twice returns the original arrays exactly.

    Args:
        grasp: any grasp.

    Returns:
        Grasp of the other side; ``meta["mirrored"]`` toggled.
    """
    flip = np.diag(MIRROR)
    return grasp.with_hand(
        hand_verts=np.asarray(grasp.hand_verts) * MIRROR,
        hand_joints=np.asarray(grasp.hand_joints) * MIRROR,
        hand_faces=np.ascontiguousarray(np.asarray(grasp.hand_faces)[:, ::-1]),
        global_orient=np.asarray(mirror_axis_angle(np.asarray(grasp.global_orient))),
        hand_pose=np.asarray(mirror_axis_angle(np.asarray(grasp.hand_pose))),
        transl=np.asarray(grasp.transl) * MIRROR,
        obj_verts_canonical=np.asarray(grasp.obj_verts_canonical) * MIRROR,
        obj_faces=np.ascontiguousarray(np.asarray(grasp.obj_faces)[:, ::-1]),
        obj_rotation=flip @ np.asarray(grasp.obj_rotation) @ flip,
        obj_translation=np.asarray(grasp.obj_translation) * MIRROR,
        side="right" if grasp.side == "left" else "left",
        meta={**grasp.meta, "mirrored": not grasp.meta.get("mirrored", False)},
    )


def grasp_inputs(
    grasps: Sequence[Grasp], n_obj_points: int = 2048, seed: int = 0, dtype: torch.dtype = torch.float32
) -> GraspInputs:
    """Sample the object points and compute the network inputs of each grasp (CPU tensors).

    Grasp i samples its object with ``torch.Generator().manual_seed(seed * 1_000_003 + i)`` so results do not
    depend on the batch composition beyond the index.

    Args:
        grasps: grasps with 778-vertex hands; left hands are mirrored (:func:`mirror_grasp`), so the tensors of a
            left grasp describe its mirror image (negate x of points and normals to map them back).
        n_obj_points: P, object points per grasp.
        seed: non-negative int.
        dtype: float dtype of the returned tensors.

    Returns:
        GraspInputs (world frame).
    """
    if len(grasps) == 0:
        raise InputError("grasps is empty; pass at least one Grasp")
    if not isinstance(n_obj_points, int) or n_obj_points < 1:
        raise InputError(f"n_obj_points must be a positive int, got {n_obj_points!r}")
    hand_verts, hand_normals, hand_joints, obj_points, obj_normals = [], [], [], [], []
    for index, grasp in enumerate(grasps):
        if not isinstance(grasp, Grasp):
            raise InputError(f"grasps[{index}] must be a Grasp, got {type(grasp).__name__}")
        if grasp.side == "left":
            grasp = mirror_grasp(grasp)
        verts = torch.as_tensor(np.asarray(grasp.hand_verts), dtype=torch.float64)
        if verts.shape != (778, 3):
            raise InputError(f"grasps[{index}].hand_verts must be (778, 3), got {tuple(verts.shape)}")
        faces = torch.as_tensor(np.asarray(grasp.hand_faces), dtype=torch.long)
        generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + index)
        points, normals = sample_object_points(grasp, n_obj_points, generator)
        hand_verts.append(verts)
        hand_normals.append(vertex_normals(verts, faces))
        hand_joints.append(torch.as_tensor(np.asarray(grasp.hand_joints), dtype=torch.float64))
        obj_points.append(points)
        obj_normals.append(normals)
    stacked = [torch.stack(x) for x in (hand_verts, hand_normals, hand_joints, obj_points, obj_normals)]
    feats = pointnet_features(*stacked)
    return GraspInputs(*(x.to(dtype) for x in (*stacked, feats.hand, feats.obj)))
