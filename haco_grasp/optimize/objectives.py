"""The refinement objective as pure functions over batched tensors (the optimizer owns the variables).

Per sample (``shared/reference/contactopt.md`` §4, plus the MAP prior of :mod:`haco_grasp.optimize.noise`)::

    L = w_obj · asymL1(T_obj, C_obj) + w_hand · asymL1(T_hand, C_hand) + w_pen · L_pen + Σ_i prior_i · z_i²

Every function here runs a fixed number of torch operations whatever the batch holds (one packed SDF gather for
all objects, K = 1 neighbours by ``min``), validates nothing (the public :func:`~haco_grasp.optimize.optimize_grasp`
validated its inputs once) and never synchronises with the host.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from haco_grasp.geometry.constants import scalar
from haco_grasp.geometry.contact import (
    asymmetric_l1_kernel,
    capsule_contact_kernel,
    hinge_kernel,
    sdf_contact_kernel,
    sdf_penetration_kernel,
)
from haco_grasp.geometry.knn import knn_points
from haco_grasp.geometry.sdf import SdfLookup
from haco_grasp.optimize.config import OptimizeConfig

__all__ = ["LOSS_TERMS", "Neighbours", "Scene", "needs_neighbours", "nearest_neighbours", "objective_terms"]

#: Loss terms reported per iteration (already weighted); "total" is their sum.
LOSS_TERMS = ("total", "obj_contact", "hand_contact", "penetration", "prior")


class Scene(NamedTuple):
    """Per-sample constants of the objective, in each object's canonical frame (N = grasps × restarts).

    points: (N, P, 3) float, object surface samples, metres. normals: (N, P, 3) float, their outward normals.
    allowance: (N, 1) float, tolerated penetration depth, metres. sdf: each sample's signed-distance lookup into the
    batch's packed grids (None when no SDF model is used).
    hand_target: (N, V) float contact values or None. obj_target: (N, P) float contact values or None.
    prior_weight: (W,) float, the prior's weight per optimised variable (0 where no prior).
    """

    points: Tensor
    normals: Tensor
    allowance: Tensor
    sdf: SdfLookup | None
    hand_target: Tensor | None
    obj_target: Tensor | None
    prior_weight: Tensor


class Neighbours(NamedTuple):
    """Nearest-neighbour indices kept between refreshes. hand: (N, V) into the object points; obj: (N, P) into the
    hand vertices; None where the configuration does not need them."""

    hand: Tensor | None
    obj: Tensor | None


def needs_neighbours(scene: Scene, config: OptimizeConfig) -> tuple[bool, bool]:
    """Whether the hand→object and object→hand neighbour indices are needed."""
    need_hand = config.penetration_model == "hinge" or (
        config.contact_model == "capsule" and scene.hand_target is not None
    )
    return need_hand, scene.obj_target is not None


def nearest_neighbours(hand: Tensor, scene: Scene, config: OptimizeConfig) -> Neighbours:
    """Nearest object point of every hand vertex and nearest hand vertex of every object point (no gradient).

    Args:
        hand: (N, V, 3) float, hand vertices in the object's canonical frame, metres.

    Returns:
        Neighbours.
    """
    need_hand, need_obj = needs_neighbours(scene, config)
    with torch.no_grad():
        detached = hand.detach()
        hand_nn = knn_points(detached, scene.points, k=1).idx[..., 0] if need_hand else None  # (N, V)
        obj_nn = knn_points(scene.points, detached, k=1).idx[..., 0] if need_obj else None  # (N, P)
    return Neighbours(hand_nn, obj_nn)


def objective_terms(
    hand: Tensor, z: Tensor, scene: Scene, neighbours: Neighbours, config: OptimizeConfig
) -> dict[str, Tensor]:
    """Weighted loss terms per sample.

    Args:
        hand: (N, V, 3) float, hand vertices in each object's canonical frame, metres.
        z: (N, W) float, the optimised variables (in prior units when a noise profile is used).
        scene: the per-sample constants.
        neighbours: indices from :func:`nearest_neighbours` (refreshed by the caller).
        config: the optimizer settings (weights, contact and penetration models).

    Returns:
        term name (:data:`LOSS_TERMS`) -> (N,) float.
    """
    zero = hand.new_zeros(hand.shape[0])
    sdf = None
    if config.contact_model == "sdf" or config.penetration_model == "sdf":
        sdf = scene.sdf.query(hand)  # (N, V)

    hand_term = zero
    if scene.hand_target is not None and config.w_hand_contact > 0:
        if config.contact_model == "sdf":
            current = sdf_contact_kernel(sdf)
        else:
            current = capsule_contact_kernel(hand, scene.points, scene.normals, neighbours.hand)
        hand_term = scalar(config.w_hand_contact, hand) * asymmetric_l1_kernel(scene.hand_target, current, config.asym)
    obj_term = zero
    if scene.obj_target is not None and config.w_obj_contact > 0:
        nearest_hand = torch.gather(hand, 1, neighbours.obj[..., None].expand(-1, -1, 3))  # (N, P, 3)
        own = torch.arange(scene.points.shape[1], device=hand.device).expand(scene.points.shape[0], -1)  # (N, P)
        current = capsule_contact_kernel(nearest_hand, scene.points, scene.normals, own)
        obj_term = scalar(config.w_obj_contact, hand) * asymmetric_l1_kernel(scene.obj_target, current, config.asym)
    if config.penetration_model == "sdf":
        pen = sdf_penetration_kernel(sdf, scene.allowance)
    else:
        pen = hinge_kernel(hand, scene.points, scene.normals, scene.allowance, neighbours.hand)
    pen_term = scalar(config.w_pen, hand) * pen
    prior_term = (scene.prior_weight * z * z).sum(-1)
    return {
        "total": obj_term + hand_term + pen_term + prior_term,
        "obj_contact": obj_term,
        "hand_contact": hand_term,
        "penetration": pen_term,
        "prior": prior_term,
    }
