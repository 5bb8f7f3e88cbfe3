"""ContactOpt's differentiable contact model (capsules on object points) and its loss terms.

This follows ContactOpt (Grady et al., CVPR 2021, ``contactopt/diffcontact.py`` and ``optimize_pose.py``; see
``shared/reference/contactopt.md`` §3-4). Each object point ``o`` with normal ``n`` carries a capsule whose axis
runs from ``a = o + top * n`` (0.5 mm outside the surface) to ``b = o + bottom * n`` (1 mm inside) with radius
``r`` = 1 mm. The contact value of a point ``h`` against that capsule is::

    t = clamp(((h - a) . (b - a)) / |b - a|^2, 0, 1)      # position of the closest axis point
    d = |h - a - t (b - a)|                               # distance to the capsule axis, metres
    C = clamp(1 / (d / r + 1e-4), 0, 1)                   # method 0 falloff

so ``C`` = 1 within about 1 mm of the axis and ``C`` ≈ r / d beyond it (0.5 at 2 mm, 0.2 at 5 mm, 0.1 at 1 cm,
0.05 at 2 cm); it never reaches 0.

Mapping to "within 1 cm" contact labels (HACO): HACO's binary labels say a hand vertex lies within 1 cm of the
object *surface*. ContactOpt's falloff is in the distance ``d`` to the capsule *axis*. The explicit mapping is
:func:`distance_to_contact_value` / :func:`contact_value_to_distance`: a 1 cm axis distance is contact value
≈ 0.1 (``distance_to_contact_value(0.01)`` = 1 / (10 + 1e-4)); a vertex 1 cm outside the surface along the normal
is 1 cm - ``CAPSULE_TOP`` = 9.5 mm from the axis, i.e. ≈ 0.105. Thresholding a ContactOpt map at 0.1 therefore
selects the points within about 1 cm of the object, and a binary HACO target of 1 corresponds to "within 1 mm".

Documented inconsistency kept from ContactOpt: the ground-truth contact of ``HandObject.calc_dist_contact`` uses a
capsule bottom of -1.5 mm (``GT_CAPSULE_BOTTOM``) while the optimiser uses -1.0 mm (``CAPSULE_BOTTOM``).

All functions are batched, differentiable with respect to the point coordinates (and normals), device-agnostic,
and free of NaN for coincident points and zero normals.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor

from haco_grasp.errors import InputError
from haco_grasp.geometry.constants import scalar
from haco_grasp.geometry.knn import knn_points

__all__ = [
    "CAPSULE_BOTTOM",
    "CAPSULE_RADIUS",
    "CAPSULE_TOP",
    "GT_CAPSULE_BOTTOM",
    "PENETRATION_ALLOWANCE",
    "ContactMaps",
    "asymmetric_l1",
    "asymmetric_l1_kernel",
    "capsule_contact",
    "capsule_contact_kernel",
    "contact_maps",
    "contact_value_to_distance",
    "distance_to_contact_value",
    "falloff_kernel",
    "hinge_kernel",
    "penetration_hinge",
    "sdf_contact",
    "sdf_contact_kernel",
    "sdf_penetration",
    "sdf_penetration_kernel",
    "sdf_to_contact",
    "sharpen_contact",
]

#: Capsule axis start, metres along the object normal (outside the surface).
CAPSULE_TOP = 0.0005
#: Capsule axis end used by ContactOpt's optimiser, metres along the normal (inside the surface).
CAPSULE_BOTTOM = -0.001
#: Capsule radius, metres; it alone sets the falloff of the contact value.
CAPSULE_RADIUS = 0.001
#: Capsule axis end that ContactOpt's ``calc_dist_contact`` uses for ground-truth contact (signature default).
GT_CAPSULE_BOTTOM = -0.0015
#: Penetration depth tolerated by the hinge, metres (ContactOpt uses 0 for thin objects).
PENETRATION_ALLOWANCE = 0.002

#: The ``1e-4`` of ContactOpt's ``1 / (s + 1e-4)``: keeps the falloff finite on the axis.
_FALLOFF_EPS = 1e-4
_METHODS = (0, 1, 2, 3, 4)

_ArrayOrTensor = TypeVar("_ArrayOrTensor", float, np.ndarray, Tensor)


class ContactMaps(NamedTuple):
    """Hand and object contact maps of :func:`contact_maps`.

    Attributes:
        hand: (B, V) float in [0, 1], contact of each hand vertex against its nearest object point's capsule.
        obj: (B, P) float in [0, 1], contact of each object point's capsule against its nearest hand vertex.
        hand_nn_idx: (B, V) long, index (into P) of the nearest object point of each hand vertex.
        obj_nn_idx: (B, P) long, index (into V) of the nearest hand vertex of each object point.
    """

    hand: Tensor
    obj: Tensor
    hand_nn_idx: Tensor
    obj_nn_idx: Tensor


# --------------------------------------------------------------------------------------------------------------
# validation


def _is_real(value: object) -> bool:
    """True for Python and numpy real scalars (not bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def _check_points(name: str, x: object, batch: int | None = None) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != 3 or not x.is_floating_point():
        raise InputError(f"{name} must be a (B, N, 3) float tensor, got {_describe(x)}; add a batch axis with x[None]")
    if batch is not None and x.shape[0] != batch:
        raise InputError(f"{name} has batch size {x.shape[0]} but the other inputs have {batch}; pass matching batches")
    return x


def _check_pair(points_name: str, points: Tensor, normals_name: str, normals: Tensor) -> None:
    if normals.shape != points.shape:
        raise InputError(
            f"{normals_name} must match {points_name} {tuple(points.shape)}, got {tuple(normals.shape)}; "
            "pass one normal per point"
        )


def _check_index(name: str, idx: object, shape: tuple[int, int], size: int) -> Tensor:
    if not isinstance(idx, Tensor) or idx.dtype not in (torch.int64, torch.int32) or tuple(idx.shape) != shape:
        raise InputError(
            f"{name} must be a {shape} long tensor, got {_describe(idx)}; pass knn indices with K squeezed"
        )
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= size):
        raise InputError(
            f"{name} must index 0..{size - 1}, got values {int(idx.min())}..{int(idx.max())}; "
            "check which point set it indexes"
        )
    return idx.long()


def _check_method(method: int) -> None:
    if method not in _METHODS:
        raise InputError(
            f"method must be one of {_METHODS}, got {method!r}; ContactOpt's method 5 is method 0 with an offset "
            "penetration query, handled by the optimiser, not by the falloff"
        )


def _check_radius(radius: float) -> None:
    if not (_is_real(radius) and np.isfinite(radius) and radius > 0):
        raise InputError(f"radius must be a positive number of metres, got {radius!r}; pass e.g. CAPSULE_RADIUS=0.001")


# --------------------------------------------------------------------------------------------------------------
# kernels


def _as_scalar(value: float | Tensor, like: Tensor) -> Tensor:
    """A number as a cached 0-dim tensor of ``like``'s dtype (a tensor passes through)."""
    return value if torch.is_tensor(value) else scalar(value, like)


def _mean_last(values: Tensor) -> Tensor:
    """Mean over the last axis as a sum times a cached 1/n (``Tensor.mean`` dispatches ~4× the operations)."""
    return values.sum(-1) * scalar(1.0 / values.shape[-1], values)


def _gather_points(x: Tensor, idx: Tensor) -> Tensor:
    """x: (B, N, C), idx: (B, M) long -> (B, M, C)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _safe_norm(vectors: Tensor) -> Tensor:
    """Euclidean norm over the last axis, exactly 0 for zero vectors, with finite (zero) gradient there."""
    sq_norm = (vectors * vectors).sum(-1)
    nonzero = sq_norm > scalar(0.0, sq_norm)
    return torch.where(nonzero, torch.where(nonzero, sq_norm, scalar(1.0, sq_norm)).sqrt(), scalar(0.0, sq_norm))


def _capsule_axis_distance(query: Tensor, centres: Tensor, normals: Tensor, top: float, bottom: float) -> Tensor:
    """Distance from each query point to the capsule axis of the matching centre (all inputs (B, P, 3)) -> (B, P)."""
    start = centres + scalar(top, query) * normals  # a: (B, P, 3)
    axis = scalar(bottom - top, query) * normals  # b - a: (B, P, 3)
    rel = query - start  # h - a
    axis_sq = (axis * axis).sum(-1)  # |b - a|^2: (B, P)
    valid = axis_sq > scalar(torch.finfo(axis_sq.dtype).tiny, axis_sq)  # zero normals make the axis a point: t = 0
    safe_axis_sq = torch.where(valid, axis_sq, scalar(1.0, axis_sq))
    along = torch.where(valid, (rel * axis).sum(-1) / safe_axis_sq, scalar(0.0, axis_sq))
    along = along.clamp(scalar(0.0, along), scalar(1.0, along))  # t
    return _safe_norm(rel - along.unsqueeze(-1) * axis)  # d = |h - a - t (b - a)|


def sdf_to_contact(
    dist: Tensor, radius: float = CAPSULE_RADIUS, method: int = 0, normal_dot: Tensor | None = None
) -> Tensor:
    """ContactOpt's falloff from a distance to a contact value in [0, 1] (``diffcontact.sdf_to_contact``).

    With ``s = dist / radius``: method 0 = 1 / (s + 1e-4) (default); 1 = 2 - s; 2 = (1 / (s + 1e-4))²;
    3 = sigmoid(2.5 - s); 4 = ((1 - normal_dot) / 2) / (s + 1e-4). Every result is clamped to [0, 1].
    Method 4 divides by ``s + 1e-4`` (like method 0) so that a zero distance stays finite.

    Args:
        dist: (...) float, non-negative distance to the capsule axis, metres.
        radius: capsule radius, metres.
        method: falloff 0..4 (ContactOpt's ``cont_method``; its method 5 uses falloff 0).
        normal_dot: (...) float, dot product of hand and object unit normals; required for method 4 only.

    Returns:
        contact: (...) float in [0, 1], same shape, dtype and device as ``dist``.
    """
    if not isinstance(dist, Tensor) or not dist.is_floating_point():
        raise InputError(f"dist must be a float tensor, got {_describe(dist)}; pass torch.as_tensor(dist)")
    _check_radius(radius)
    _check_method(method)
    if method == 4 and (not isinstance(normal_dot, Tensor) or normal_dot.shape != dist.shape):
        raise InputError(
            f"method 4 needs normal_dot with the shape of dist {tuple(dist.shape)}, got {_describe(normal_dot)}; "
            "pass the hand-object normal dot products"
        )
    return falloff_kernel(dist, radius, method, normal_dot)


def falloff_kernel(dist: Tensor, radius: float, method: int = 0, normal_dot: Tensor | None = None) -> Tensor:
    """The unvalidated core of :func:`sdf_to_contact` (same arguments; for hot loops that validated once)."""
    scaled = dist * scalar(1.0 / radius, dist)  # s
    if method == 0:
        # positive: only the upper bound of [0, 1] can bind (the cheaper one-sided clamp)
        return (scaled + scalar(_FALLOFF_EPS, dist)).reciprocal().clamp(max=scalar(1.0, dist))
    if method == 1:
        contact = 2.0 - scaled
    elif method == 2:
        contact = (1.0 / (scaled + _FALLOFF_EPS)) ** 2
    elif method == 3:
        contact = torch.sigmoid(2.5 - scaled)
    else:
        contact = (1.0 - normal_dot) / 2.0 / (scaled + _FALLOFF_EPS)
    return contact.clamp(0.0, 1.0)


def capsule_contact(
    query: Tensor,
    centres: Tensor,
    normals: Tensor,
    idx: Tensor,
    top: float = CAPSULE_TOP,
    bottom: float = CAPSULE_BOTTOM,
    radius: float = CAPSULE_RADIUS,
    method: int = 0,
    normal_dot: Tensor | None = None,
) -> Tensor:
    """Contact value of each query point against the capsule of the object point ``centres[idx]``.

    Capsule axis ``a = o + top * n`` to ``b = o + bottom * n``; see the module docstring for the formula.
    Differentiable with respect to ``query``, ``centres`` and ``normals``; ``idx`` is constant.

    Args:
        query: (B, P, 3) float, metres, the points whose contact is measured (e.g. hand vertices).
        centres: (B, Q, 3) float, metres, capsule centres on the object surface.
        normals: (B, Q, 3) float, outward normals of the centres (unit length in ContactOpt; zero is allowed).
        idx: (B, P) long, index into Q of the capsule used by each query point.
        top: axis start along the normal, metres (default +0.5 mm).
        bottom: axis end along the normal, metres (default -1 mm; ``GT_CAPSULE_BOTTOM`` for ContactOpt's GT).
        radius: capsule radius, metres.
        method: falloff of :func:`sdf_to_contact`.
        normal_dot: (B, P) float, hand-object normal dot products; required for method 4 only.

    Returns:
        contact: (B, P) float in [0, 1].
    """
    _check_points("query", query)
    batch = query.shape[0]
    _check_points("centres", centres, batch)
    _check_points("normals", normals, batch)
    _check_pair("centres", centres, "normals", normals)
    idx = _check_index("idx", idx, (batch, query.shape[1]), centres.shape[1])
    _check_radius(radius)
    _check_method(method)
    if method == 4 and (not isinstance(normal_dot, Tensor) or normal_dot.shape != (batch, query.shape[1])):
        raise InputError(f"method 4 needs normal_dot of shape {(batch, query.shape[1])}, got {_describe(normal_dot)}")
    return capsule_contact_kernel(query, centres, normals, idx, top, bottom, radius, method, normal_dot)


def capsule_contact_kernel(
    query: Tensor, centres: Tensor, normals: Tensor, idx: Tensor, top: float = CAPSULE_TOP,
    bottom: float = CAPSULE_BOTTOM, radius: float = CAPSULE_RADIUS, method: int = 0, normal_dot: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """The unvalidated core of :func:`capsule_contact` (same arguments and shapes; ``idx`` must be in range)."""
    dist = _capsule_axis_distance(query, _gather_points(centres, idx), _gather_points(normals, idx), top, bottom)
    return falloff_kernel(dist, radius, method, normal_dot)


def contact_maps(
    hand_verts: Tensor,
    obj_points: Tensor,
    obj_normals: Tensor,
    top: float = CAPSULE_TOP,
    bottom: float = CAPSULE_BOTTOM,
    radius: float = CAPSULE_RADIUS,
    method: int = 0,
    hand_normals: Tensor | None = None,
) -> ContactMaps:
    """ContactOpt's hand and object contact maps (``caps_on_hand=False``).

    Object contact: each object point's own capsule against its nearest hand vertex. Hand contact: each hand
    vertex against the capsule of its nearest object point. Nearest neighbours are Euclidean (kNN, K = 1) on the
    points, computed without gradient; the contact values are differentiable with respect to ``hand_verts``,
    ``obj_points`` and ``obj_normals``.

    Args:
        hand_verts: (B, V, 3) float, metres (V = 778 for MANO).
        obj_points: (B, P, 3) float, metres, sampled object surface points.
        obj_normals: (B, P, 3) float, outward unit normals of ``obj_points``.
        top: capsule axis start along the normal, metres.
        bottom: capsule axis end along the normal, metres.
        radius: capsule radius, metres.
        method: falloff of :func:`sdf_to_contact` (0 in ContactOpt's default).
        hand_normals: (B, V, 3) float, unit hand vertex normals; required for method 4 only (ContactOpt computes
            them under ``no_grad``, e.g. with ``haco_grasp.geometry.mesh.vertex_normals``).

    Returns:
        ContactMaps with ``hand`` (B, V), ``obj`` (B, P), ``hand_nn_idx`` (B, V) and ``obj_nn_idx`` (B, P).
    """
    _check_points("hand_verts", hand_verts)
    batch = hand_verts.shape[0]
    _check_points("obj_points", obj_points, batch)
    _check_points("obj_normals", obj_normals, batch)
    _check_pair("obj_points", obj_points, "obj_normals", obj_normals)
    if hand_verts.shape[1] == 0 or obj_points.shape[1] == 0:
        raise InputError(
            f"contact needs at least one hand vertex and one object point, got V={hand_verts.shape[1]}, "
            f"P={obj_points.shape[1]}; check the inputs are not empty"
        )
    _check_radius(radius)
    _check_method(method)
    if method == 4:
        _check_points("hand_normals", hand_normals, batch)
        _check_pair("hand_verts", hand_verts, "hand_normals", hand_normals)

    with torch.no_grad():
        hand_nn_idx = knn_points(hand_verts.detach(), obj_points.detach(), k=1).idx[..., 0]  # (B, V)
        obj_nn_idx = knn_points(obj_points.detach(), hand_verts.detach(), k=1).idx[..., 0]  # (B, P)

    nn_points = _gather_points(obj_points, hand_nn_idx)  # (B, V, 3)
    nn_normals = _gather_points(obj_normals, hand_nn_idx)  # (B, V, 3)
    hand_dist = _capsule_axis_distance(hand_verts, nn_points, nn_normals, top, bottom)  # (B, V)
    nearest_hand = _gather_points(hand_verts, obj_nn_idx)  # (B, P, 3)
    obj_dist = _capsule_axis_distance(nearest_hand, obj_points, obj_normals, top, bottom)  # (B, P)

    hand_dot = obj_dot = None
    if method == 4:
        hand_dot = (hand_normals * nn_normals).sum(-1)  # (B, V)
        obj_dot = (_gather_points(hand_normals, obj_nn_idx) * obj_normals).sum(-1)  # (B, P)
    return ContactMaps(
        hand=sdf_to_contact(hand_dist, radius, method, hand_dot),
        obj=sdf_to_contact(obj_dist, radius, method, obj_dot),
        hand_nn_idx=hand_nn_idx,
        obj_nn_idx=obj_nn_idx,
    )


def penetration_hinge(
    hand_verts: Tensor,
    obj_points: Tensor,
    obj_normals: Tensor,
    allowance: float | Tensor = PENETRATION_ALLOWANCE,
    nn_idx: Tensor | None = None,
) -> Tensor:
    """ContactOpt's linear penetration hinge: mean over hand vertices of relu(-(h - o_nn) . n_nn - allowance).

    ``o_nn`` and ``n_nn`` are the nearest object point of each hand vertex and its normal, so the depth of a vertex
    is measured below the tangent plane of that point. Differentiable with respect to all point coordinates.

    Args:
        hand_verts: (B, V, 3) float, metres.
        obj_points: (B, P, 3) float, metres.
        obj_normals: (B, P, 3) float, outward unit normals of ``obj_points``.
        allowance: tolerated depth δ, metres (2 mm; 0 for thin objects): a number or a (B,) tensor.
        nn_idx: (B, V) long, nearest object point of each hand vertex (e.g. ``ContactMaps.hand_nn_idx``);
            computed with kNN when ``None``.

    Returns:
        loss: (B,) float, metres.
    """
    _check_points("hand_verts", hand_verts)
    batch = hand_verts.shape[0]
    _check_points("obj_points", obj_points, batch)
    _check_points("obj_normals", obj_normals, batch)
    _check_pair("obj_points", obj_points, "obj_normals", obj_normals)
    if hand_verts.shape[1] == 0 or obj_points.shape[1] == 0:
        raise InputError(
            f"the penetration hinge needs at least one hand vertex and one object point, got V={hand_verts.shape[1]}, "
            f"P={obj_points.shape[1]}; check the inputs are not empty"
        )
    allowance = _check_allowance(allowance, batch, hand_verts)
    if nn_idx is None:
        with torch.no_grad():
            nn_idx = knn_points(hand_verts.detach(), obj_points.detach(), k=1).idx[..., 0]  # (B, V)
    else:
        nn_idx = _check_index("nn_idx", nn_idx, (batch, hand_verts.shape[1]), obj_points.shape[1])
    return hinge_kernel(hand_verts, obj_points, obj_normals, allowance, nn_idx)


def hinge_kernel(
    hand_verts: Tensor, obj_points: Tensor, obj_normals: Tensor, allowance: float | Tensor, nn_idx: Tensor
) -> Tensor:
    """The unvalidated core of :func:`penetration_hinge`; ``allowance`` a number or a (B, 1) tensor."""
    nn_points = _gather_points(obj_points, nn_idx)  # (B, V, 3)
    nn_normals = _gather_points(obj_normals, nn_idx)  # (B, V, 3)
    depth = ((nn_points - hand_verts) * nn_normals).sum(-1)  # (B, V), positive below the tangent plane
    return _mean_last(torch.relu(depth - _as_scalar(allowance, depth)))


def _check_allowance(allowance: float | Tensor, batch: int, like: Tensor) -> float | Tensor:
    """A non-negative allowance: a number, or a (B,) tensor returned as (B, 1) for broadcasting over vertices."""
    if torch.is_tensor(allowance):
        if allowance.shape != (batch,) or not torch.isfinite(allowance).all() or (allowance < 0).any():
            raise InputError(
                f"allowance must be a number or a (B,) tensor of non-negative metres, got shape "
                f"{tuple(allowance.shape)}; pass e.g. 0.002"
            )
        return allowance.to(like.dtype)[:, None]
    if not (_is_real(allowance) and np.isfinite(allowance) and allowance >= 0):
        raise InputError(f"allowance must be a non-negative number of metres, got {allowance!r}; pass e.g. 0.002")
    return allowance


def sdf_contact(
    sdf: Tensor,
    top: float = CAPSULE_TOP,
    bottom: float = CAPSULE_BOTTOM,
    radius: float = CAPSULE_RADIUS,
    method: int = 0,
) -> Tensor:
    """ContactOpt's capsule falloff evaluated from signed distances (densely sampled capsules).

    With a capsule on every surface point, the distance of a point at signed distance ``s`` to the nearest capsule
    axis is ``relu(s - top) + relu(bottom - s)`` (zero between ``bottom`` and ``top``). ContactOpt's capsules sit
    on 2048 sampled points only, so between samples its values are lower; this form removes that sampling
    dependence and costs one grid lookup per vertex.

    Args:
        sdf: (B, V) float, signed distance of each hand vertex to the object surface, metres, negative inside.
        top, bottom, radius, method: as in :func:`capsule_contact`.

    Returns:
        contact: (B, V) float in [0, 1].
    """
    if not torch.is_tensor(sdf) or not sdf.is_floating_point():
        raise InputError(f"sdf must be a float tensor of signed distances, got {_describe(sdf)}")
    _check_radius(radius)
    _check_method(method)
    if method == 4:
        raise InputError("sdf_contact: method 4 needs normals; use capsule_contact for it")
    return sdf_contact_kernel(sdf, top, bottom, radius, method)


def sdf_contact_kernel(
    sdf: Tensor, top: float = CAPSULE_TOP, bottom: float = CAPSULE_BOTTOM, radius: float = CAPSULE_RADIUS,
    method: int = 0,
) -> Tensor:  # fmt: skip
    """The unvalidated core of :func:`sdf_contact` (same arguments)."""
    dist = torch.relu(sdf - scalar(top, sdf)) + torch.relu(scalar(bottom, sdf) - sdf)
    return falloff_kernel(dist, radius, method)


def sdf_penetration(sdf: Tensor, allowance: float | Tensor = PENETRATION_ALLOWANCE) -> Tensor:
    """The penetration hinge with exact depths: mean over vertices of relu(-sdf - allowance).

    Args:
        sdf: (B, V) float, signed distances of the hand vertices, metres, negative inside.
        allowance: tolerated depth, metres: a number or a (B,) tensor (0 for thin objects).

    Returns:
        loss: (B,) float, metres.
    """
    if not torch.is_tensor(sdf) or sdf.ndim != 2 or not sdf.is_floating_point():
        raise InputError(f"sdf must be a (B, V) float tensor, got {_describe(sdf)}")
    allowance = _check_allowance(allowance, sdf.shape[0], sdf)
    return sdf_penetration_kernel(sdf, allowance)


def sdf_penetration_kernel(sdf: Tensor, allowance: float | Tensor) -> Tensor:
    """The unvalidated core of :func:`sdf_penetration`; ``allowance`` a number or a (B, 1) tensor."""
    return _mean_last(torch.relu(_as_scalar(-allowance, sdf) - sdf))


def asymmetric_l1(target: Tensor, current: Tensor, asym: float = 2.0) -> Tensor:
    """ContactOpt's asymmetric L1: mean of |w(T - C)| with w(x) = x + asym * relu(x).

    Missing contact (T > C) costs (1 + asym) times as much as extra contact.

    Args:
        target: (B, N) float, target contact T.
        current: (B, N) float, current contact C.
        asym: extra weight of missing contact (ContactOpt's ``w_cont_asym``: 2, or 4 for the fine split).

    Returns:
        loss: (B,) float.
    """
    for name, x in (("target", target), ("current", current)):
        if not isinstance(x, Tensor) or x.ndim != 2 or not x.is_floating_point():
            raise InputError(f"{name} must be a (B, N) float tensor, got {_describe(x)}; add a batch axis with x[None]")
    if target.shape != current.shape or target.shape[1] == 0:
        raise InputError(
            f"target and current must have the same non-empty (B, N) shape, got {tuple(target.shape)} and "
            f"{tuple(current.shape)}; compare maps of the same points"
        )
    if not (_is_real(asym) and np.isfinite(asym) and asym >= 0):
        raise InputError(f"asym must be a non-negative number, got {asym!r}; pass e.g. 2.0")
    return asymmetric_l1_kernel(target, current, asym)


def asymmetric_l1_kernel(target: Tensor, current: Tensor, asym: float) -> Tensor:
    """The unvalidated core of :func:`asymmetric_l1` (same arguments)."""
    diff = target - current
    return _mean_last((diff + scalar(asym, diff) * torch.relu(diff)).abs())


def sharpen_contact(target: Tensor, theta: float, slope: float = 2.0) -> Tensor:
    """ContactOpt's optional target sharpening: clamp(slope * (T - θ) + θ, 0, 1).

    Args:
        target: (...) float in [0, 1], contact target T.
        theta: pivot θ in [0, 1] (ContactOpt's fine split uses 0.3).
        slope: steepness (2 in ContactOpt).

    Returns:
        sharpened: (...) float in [0, 1].
    """
    if not isinstance(target, Tensor) or not target.is_floating_point():
        raise InputError(f"target must be a float tensor, got {_describe(target)}; pass torch.as_tensor(target)")
    if not (_is_real(theta) and 0.0 <= theta <= 1.0):
        raise InputError(f"theta must be a number in [0, 1], got {theta!r}; pass e.g. 0.3")
    if not (_is_real(slope) and np.isfinite(slope) and slope > 0):
        raise InputError(f"slope must be a positive number, got {slope!r}; pass e.g. 2.0")
    return (slope * (target - theta) + theta).clamp(0.0, 1.0)


def distance_to_contact_value(dist: _ArrayOrTensor, radius: float = CAPSULE_RADIUS) -> _ArrayOrTensor:
    """Method-0 contact value at a given capsule-axis distance: min(1, 1 / (d / r + 1e-4)).

    The explicit bridge between distance-based labels and ContactOpt values, e.g. 1 cm ↔ 0.1, 2 cm ↔ 0.05,
    5 mm ↔ 0.2 (see the module docstring for surface versus axis distance).

    Args:
        dist: float, (...) numpy array or (...) tensor, non-negative distance to the capsule axis, metres.
        radius: capsule radius, metres.

    Returns:
        contact: same type and shape as ``dist``, in (0, 1].
    """
    _check_radius(radius)
    if isinstance(dist, Tensor):
        return (1.0 / (dist / radius + _FALLOFF_EPS)).clamp(max=1.0)
    array = np.asarray(dist, dtype=np.float64)
    if np.any(~(array >= 0)):
        raise InputError(f"dist must be non-negative metres, got values down to {np.nanmin(array)!r}; pass |distance|")
    value = np.minimum(1.0, 1.0 / (array / radius + _FALLOFF_EPS))
    return float(value) if np.ndim(dist) == 0 and not isinstance(dist, np.ndarray) else value


def contact_value_to_distance(contact: _ArrayOrTensor, radius: float = CAPSULE_RADIUS) -> _ArrayOrTensor:
    """Inverse of the method-0 falloff: the capsule-axis distance d = r (1 / c - 1e-4) with contact value ``c``.

    For ``c = 1`` this is the largest distance still giving 1 (≈ r, since every closer point also gives 1);
    ``c = 0`` maps to infinity. E.g. 0.1 → 1 cm, 0.05 → 2 cm.

    Args:
        contact: float, (...) numpy array or (...) tensor, contact values in [0, 1].
        radius: capsule radius, metres.

    Returns:
        dist: same type and shape as ``contact``, metres.
    """
    _check_radius(radius)
    if isinstance(contact, Tensor):
        return radius * (1.0 / contact - _FALLOFF_EPS)
    array = np.asarray(contact, dtype=np.float64)
    if np.any(~((array >= 0) & (array <= 1))):
        raise InputError(f"contact values must lie in [0, 1], got range {np.nanmin(array)}..{np.nanmax(array)}")
    with np.errstate(divide="ignore"):
        dist = radius * (1.0 / array - _FALLOFF_EPS)
    return float(dist) if np.ndim(contact) == 0 and not isinstance(contact, np.ndarray) else dist
