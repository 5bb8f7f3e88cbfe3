"""HACO's training losses: the vertex-level class-balanced (VCB) loss, baselines, smoothness and regularisation.

Notation: z (B, L) logits of one output level (L = 778 vertices, 336 or 84 coarse nodes, 21 joints), y (B, L)
binary labels, p = σ(z), p_t = p where y = 1 and 1 − p where y = 0, BCE(z, y) = −y log p − (1 − y) log(1 − p).
Every loss below is a mean over the B·L elements unless stated.

VCB as implemented by HACO (haco.md §3; :func:`vcb_weights` + :func:`vcb_loss`)
------------------------------------------------------------------------------
1. Count tables ``[n_0, n_1]``: per vertex (V, 2) and global (2,), each pair rescaled to sum to 1000
   (:class:`~haco_grasp.contact.stats.ContactStats`).
2. Blend for epoch e of E: v = 0.3·e/(E − 1) (v = 0 when E = 1); n = v·n_vertex + (1 − v)·n_global; clamp each entry
   to ≥ 20 and rescale each row to 1000 again.
3. Coarse levels: the blended (778, 2) table is multiplied by the level's regressor R (L, 778): n_level = R n.
   Decision (the reference says only "multiplied by the regressor before the weights are computed"): R is applied
   to the table *after* the blend, clamp and renormalisation, and the product is not renormalised (the weights are
   normalised per node in step 4 anyway, so only the ratio n_0 : n_1 and the magnitude through β^n matter).
4. Effective-number weights w_c = (1 − β)/(1 − β^{n_c}), β = 0.9999, normalised per row so that w_0 + w_1 = 1.
5. Loss: mean[BCE(z, y)·w_{·,y}] + 0.5·mean[1(y = 0)·σ(z)] (the second term penalises false positives).
   For soft labels w_{·,y} is read as y·w_1 + (1 − y)·w_0.

``form="paper"`` gives the paper's plain VCB: per-vertex counts only (v = 1, no global blend, no clamp), the same
weights, and no false-positive term.

Baselines (:data:`LOSS_NAMES`; defaults in :class:`BaselineParams`)
-------------------------------------------------------------------
- ``bce``: BCE(z, y).
- ``l1``: |p − y|.   ``l2``: (p − y)².
- ``focal`` (Lin et al. 2017): α_t (1 − p_t)^γ BCE, γ = 2, α = 0.25 (α_t = α for y = 1, 1 − α for y = 0).
- ``cb`` (Cui et al. 2019, class-balanced BCE): w_y·BCE with the effective-number weights of the *global* count
  table rescaled to 1000 (raw pooled counts are in the millions, where β^n = 0 and the weights become equal),
  β = 0.9999, normalised to w_0 + w_1 = 2 (Cui's "sum to the number of classes").
- ``cb-focal``: w_y (1 − p_t)^γ BCE with the same weights, γ = 2.
- ``ldam`` (Cao et al. 2019, binary form): BCE(z − y·Δ_1 + (1 − y)·Δ_0, y) with margins Δ_c ∝ n_c^{−1/4} of the
  rescaled global counts, the larger margin equal to 0.5 (the rarer class gets the larger margin); logit scale 1.
- ``asymmetric`` (Ridnik et al. 2021, ASL): −y (1 − p)^{γ+} log p − (1 − y) p_m^{γ−} log(1 − p_m),
  p_m = max(p − m, 0), γ+ = 0, γ− = 4, m = 0.05 (logs clamped at 1e-8).
- ``poly`` (Poly-1, Leng et al. 2022): BCE + ε (1 − p_t), ε = 1.
- ``vcb`` / ``vcb-paper``: above.

Smoothness (:func:`smoothness_loss`, exactly as HACO's code)
-------------------------------------------------------------
A = Σ over faces of both directions of the three edges, duplicates *not* coalesced (an interior edge shared by two
faces counts twice), plus the identity. With pc = A p and pn = A (1 − p), per sample:
iso = Σ_v |p_v − pc_v/(max pc + 1e-6)| + Σ_v |(1 − p_v) − pn_v/(max pn + 1e-6)|,
L_smooth = mean_b log(1 + iso/(Σ pc + Σ pn + 1e-3)).

Regularisation (:func:`regularization_loss`): L1(σ(z), m̄) = mean |σ(z) − m̄| with m̄ the per-vertex mean.

Total (:func:`haco_loss`): L = L_778 + L_336 + L_84 + L_joint + 0.1·L_reg + 1.0·L_smooth, the per-level loss being
VCB (or the chosen baseline); coarse labels are 1[y Rᵀ > 0].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from haco_grasp.arrays import to_numpy
from haco_grasp.contact.stats import ContactStats, rescale_counts
from haco_grasp.errors import InputError

__all__ = [
    "LEVELS",
    "LOSS_NAMES",
    "BaselineParams",
    "HacoLossOutput",
    "baseline_loss",
    "class_balanced_weights",
    "coarse_targets",
    "haco_loss",
    "mesh_adjacency",
    "regularization_loss",
    "smoothness_loss",
    "vcb_counts",
    "vcb_loss",
    "vcb_weights",
]

#: Loss names accepted by :func:`haco_loss` (``vcb`` is HACO's; the others are the paper's Table 3 baselines).
LOSS_NAMES: tuple[str, ...] = (
    "vcb",
    "vcb-paper",
    "bce",
    "l1",
    "l2",
    "focal",
    "cb",
    "cb-focal",
    "ldam",
    "asymmetric",
    "poly",
)

#: Output levels: (HacoOutput attribute, regressor key). The 778 level has no regressor.
LEVELS: tuple[tuple[str, str | None], ...] = (
    ("contact_logits", None),
    ("contact_336_logits", "336"),
    ("contact_84_logits", "84"),
    ("contact_joint_logits", "joint"),
)

_EPS_LOG = 1e-8


@dataclass(frozen=True)
class BaselineParams:
    """Constants of the baseline losses (defaults from the papers that introduced them).

    Attributes:
        beta: effective-number β of ``cb``, ``cb-focal``, ``vcb``.
        focal_gamma: γ of ``focal`` and ``cb-focal``.
        focal_alpha: α of ``focal`` (weight of the positive class).
        ldam_max_margin: the largest LDAM margin (given to the rarer class).
        asl_gamma_pos, asl_gamma_neg, asl_clip: γ+, γ−, m of ``asymmetric``.
        poly_epsilon: ε of ``poly``.
        count_total: every count pair is rescaled to this sum (HACO: 1000).
    """

    beta: float = 0.9999
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    ldam_max_margin: float = 0.5
    asl_gamma_pos: float = 0.0
    asl_gamma_neg: float = 4.0
    asl_clip: float = 0.05
    poly_epsilon: float = 1.0
    count_total: float = 1000.0


# --------------------------------------------------------------------------------------------------------------
# class-balanced weights


def _check_beta(beta: float) -> None:
    if not (isinstance(beta, (int, float)) and 0.0 <= beta < 1.0):
        raise InputError(f"beta must be in [0, 1), got {beta!r}; HACO uses 0.9999")


def class_balanced_weights(counts: Tensor, beta: float = 0.9999, normalize_to: float = 1.0) -> Tensor:
    """Effective-number class weights w_c = (1 − β)/(1 − β^{n_c}), normalised per row to sum to ``normalize_to``.

    Args:
        counts: (L, 2) or (2,) float class counts ``[n_0, n_1]`` (positive)
        beta: β in [0, 1)
        normalize_to: row sum of the returned weights (VCB: 1; Cui et al.: number of classes, 2)

    Returns:
        (L, 2) or (2,) weights, same dtype and device as ``counts``
    """
    _check_beta(beta)
    if counts.shape[-1:] != (2,):
        raise InputError(f"counts must have shape (..., 2), got {tuple(counts.shape)}")
    if bool((counts <= 0).any()):
        raise InputError("counts must be positive to compute effective-number weights; clamp or smooth them first")
    if beta == 0.0:
        raw = torch.ones_like(counts)
    else:
        # (1 - beta^n) computed as -expm1(n log beta): exact for beta near 1
        raw = (1.0 - beta) / (-torch.expm1(counts * math.log(beta)))
    return raw / raw.sum(dim=-1, keepdim=True) * normalize_to


def vcb_counts(
    vertex_counts: np.ndarray | Tensor,
    global_counts: np.ndarray | Tensor,
    epoch: int,
    num_epochs: int,
    blend_max: float = 0.3,
    min_count: float = 20.0,
    total: float = 1000.0,
) -> np.ndarray:
    """HACO's per-epoch blended count table (steps 1–2 of the module docstring).

    Args:
        vertex_counts: (V, 2) raw or rescaled per-vertex counts ``[n_0, n_1]`` (rescaled to ``total`` here)
        global_counts: (2,) raw or rescaled global counts (rescaled to ``total`` here)
        epoch: current epoch e, 0-based
        num_epochs: E; the blend factor is v = blend_max·e/(E − 1) (0 when E = 1)
        blend_max: the final share of the per-vertex statistics (HACO: 0.3)
        min_count: entries are clamped to at least this before the final renormalisation (HACO: 20)
        total: the row sum (HACO: 1000)

    Returns:
        (V, 2) float64 blended counts, rows summing to ``total``
    """
    if not (isinstance(num_epochs, int) and num_epochs >= 1):
        raise InputError(f"num_epochs must be a positive int, got {num_epochs!r}")
    if not (isinstance(epoch, int) and epoch >= 0):
        raise InputError(f"epoch must be a non-negative int, got {epoch!r}")
    vertex = rescale_counts(to_numpy(vertex_counts, np.float64), total)  # (V, 2)
    pooled = rescale_counts(to_numpy(global_counts, np.float64), total)  # (2,)
    blend = blend_max * epoch / (num_epochs - 1) if num_epochs > 1 else 0.0
    mixed = blend * vertex + (1.0 - blend) * pooled[None, :]
    mixed = np.maximum(mixed, min_count)
    return mixed / mixed.sum(axis=1, keepdims=True) * total


def vcb_weights(
    stats: ContactStats,
    epoch: int,
    num_epochs: int,
    regressor: Tensor | None = None,
    beta: float = 0.9999,
    form: Literal["official", "paper"] = "official",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Per-node VCB weights ``[w_0, w_1]`` (rows sum to 1) for one output level.

    Args:
        stats: the training labels' statistics (vertex and global count tables)
        epoch: current epoch e (0-based)
        num_epochs: E
        regressor: (L, V) float regressor of a coarse level, or None for the vertex level
        beta: β of the effective number
        form: "official" (blend + clamp, haco.md §3) or "paper" (per-vertex counts only)
        device, dtype: of the returned tensor (default: the regressor's device, else CPU)

    Returns:
        (L, 2) weights
    """
    if form == "official":
        table = vcb_counts(stats.vertex_counts, stats.global_counts, epoch, num_epochs)
    elif form == "paper":
        table = np.maximum(stats.rescaled_vertex_counts(), 1e-3)
    else:
        raise InputError(f"form must be 'official' or 'paper', got {form!r}")
    if device is None:
        device = regressor.device if regressor is not None else torch.device("cpu")
    counts = torch.as_tensor(table, dtype=torch.float64, device=device)  # (V, 2)
    if regressor is not None:
        if regressor.ndim != 2 or regressor.shape[1] != counts.shape[0]:
            raise InputError(f"regressor must have shape (L, {counts.shape[0]}), got {tuple(regressor.shape)}")
        counts = regressor.to(device=device, dtype=torch.float64) @ counts  # (L, 2)
        counts = counts.clamp_min(1e-6)
    return class_balanced_weights(counts, beta).to(dtype)


def _check_logits_labels(logits: Tensor, labels: Tensor) -> None:
    if logits.ndim != 2 or logits.shape != labels.shape:
        raise InputError(
            f"logits and labels must both have shape (B, L), got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )


def vcb_loss(logits: Tensor, labels: Tensor, weights: Tensor, false_positive_weight: float = 0.5) -> Tensor:
    """VCB loss of one level: mean[BCE(z, y)·w_{·,y}] + fp·mean[1(y = 0)·σ(z)].

    Args:
        logits: (B, L) float logits z
        labels: (B, L) float labels y in [0, 1]
        weights: (L, 2) per-node weights ``[w_0, w_1]`` (:func:`vcb_weights`)
        false_positive_weight: factor of the false-positive term (HACO: 0.5; the paper's form: 0)

    Returns:
        () scalar loss
    """
    _check_logits_labels(logits, labels)
    if weights.shape != (logits.shape[1], 2):
        raise InputError(f"weights must have shape ({logits.shape[1]}, 2), got {tuple(weights.shape)}")
    labels = labels.to(logits.dtype)
    weights = weights.to(device=logits.device, dtype=logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")  # (B, L)
    w = labels * weights[:, 1] + (1.0 - labels) * weights[:, 0]  # (B, L)
    loss = (bce * w).mean()
    if false_positive_weight:
        loss = loss + false_positive_weight * ((1.0 - labels) * torch.sigmoid(logits)).mean()
    return loss


# --------------------------------------------------------------------------------------------------------------
# baselines


def _pt(prob: Tensor, labels: Tensor) -> Tensor:
    return labels * prob + (1.0 - labels) * (1.0 - prob)


def baseline_loss(
    name: str,
    logits: Tensor,
    labels: Tensor,
    global_counts: Tensor | np.ndarray | None = None,
    params: BaselineParams | None = None,
) -> Tensor:
    """One of the baseline per-level losses of the module docstring, averaged over all elements.

    Args:
        name: one of ``bce, l1, l2, focal, cb, cb-focal, ldam, asymmetric, poly``
        logits: (B, L) float logits
        labels: (B, L) float labels in [0, 1]
        global_counts: (2,) class counts ``[n_0, n_1]`` (raw or rescaled; rescaled to ``params.count_total``),
            needed by ``cb``, ``cb-focal`` and ``ldam``
        params: constants (:class:`BaselineParams`)

    Returns:
        () scalar loss
    """
    _check_logits_labels(logits, labels)
    params = params or BaselineParams()
    labels = labels.to(logits.dtype)
    prob = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    if name == "bce":
        return bce.mean()
    if name == "l1":
        return (prob - labels).abs().mean()
    if name == "l2":
        return ((prob - labels) ** 2).mean()
    if name == "focal":
        alpha_t = labels * params.focal_alpha + (1.0 - labels) * (1.0 - params.focal_alpha)
        return (alpha_t * (1.0 - _pt(prob, labels)) ** params.focal_gamma * bce).mean()
    if name == "asymmetric":
        shifted = (prob - params.asl_clip).clamp_min(0.0)
        positive = labels * (1.0 - prob) ** params.asl_gamma_pos * torch.log(prob.clamp_min(_EPS_LOG))
        negative = (1.0 - labels) * shifted**params.asl_gamma_neg * torch.log((1.0 - shifted).clamp_min(_EPS_LOG))
        return -(positive + negative).mean()
    if name == "poly":
        return (bce + params.poly_epsilon * (1.0 - _pt(prob, labels))).mean()
    if name in ("cb", "cb-focal", "ldam"):
        if global_counts is None:
            raise InputError(f"loss {name!r} needs global_counts (2,) class counts; pass ContactStats.global_counts")
        counts = torch.as_tensor(
            rescale_counts(to_numpy(global_counts, np.float64), params.count_total),
            dtype=logits.dtype,
            device=logits.device,
        )
        if name == "ldam":
            inv = counts.clamp_min(1e-6) ** -0.25
            margins = inv / inv.max() * params.ldam_max_margin  # (2,) [Δ_0, Δ_1]
            shifted_logits = logits - labels * margins[1] + (1.0 - labels) * margins[0]
            return F.binary_cross_entropy_with_logits(shifted_logits, labels)
        weights = class_balanced_weights(counts.clamp_min(1e-6), params.beta, normalize_to=2.0)  # (2,)
        w = labels * weights[1] + (1.0 - labels) * weights[0]
        if name == "cb":
            return (w * bce).mean()
        return (w * (1.0 - _pt(prob, labels)) ** params.focal_gamma * bce).mean()
    raise InputError(f"unknown baseline loss {name!r}; expected one of {', '.join(LOSS_NAMES[2:])}")


# --------------------------------------------------------------------------------------------------------------
# smoothness and regularisation


def mesh_adjacency(faces: Tensor | np.ndarray, num_verts: int) -> tuple[Tensor, Tensor]:
    """Directed edge lists of HACO's smoothing operator A (without the identity, which is added in the op).

    Each face (a, b, c) contributes a→b, b→a, b→c, c→b, c→a, a→c; duplicates are kept (not coalesced).

    Args:
        faces: (F, 3) int vertex indices
        num_verts: V

    Returns:
        (rows (6F,) int64, cols (6F,) int64) so that (A p)_r = p_r + Σ_{e: rows_e = r} p_{cols_e}
    """
    face_array = torch.as_tensor(np.asarray(faces) if not isinstance(faces, Tensor) else faces).long()
    if face_array.ndim != 2 or face_array.shape[1] != 3:
        raise InputError(f"faces must have shape (F, 3), got {tuple(face_array.shape)}")
    if face_array.numel() and (int(face_array.min()) < 0 or int(face_array.max()) >= num_verts):
        raise InputError(f"faces index vertices outside [0, {num_verts}); pass the hand's own faces")
    a, b, c = face_array[:, 0], face_array[:, 1], face_array[:, 2]
    rows = torch.cat([a, b, b, c, c, a])
    cols = torch.cat([b, a, c, b, a, c])
    return rows, cols


def _propagate(values: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    out = values.clone()  # identity part
    return out.index_add(1, rows.to(values.device), values[:, cols.to(values.device)])


def smoothness_loss(logits: Tensor, faces: Tensor | np.ndarray) -> Tensor:
    """HACO's smoothness term (module docstring), differentiable in the logits.

    Args:
        logits: (B, V) float vertex logits
        faces: (F, 3) int mesh faces (MANO right faces, open wrist)

    Returns:
        () scalar mean_b log(1 + iso_b / (Σ pc_b + Σ pn_b + 1e-3))
    """
    if logits.ndim != 2:
        raise InputError(f"logits must have shape (B, V), got {tuple(logits.shape)}")
    rows, cols = mesh_adjacency(faces, logits.shape[1])
    prob = torch.sigmoid(logits)
    pc = _propagate(prob, rows, cols)  # (B, V)
    pn = _propagate(1.0 - prob, rows, cols)
    pc_max = pc.max(dim=1, keepdim=True).values
    pn_max = pn.max(dim=1, keepdim=True).values
    iso = (prob - pc / (pc_max + 1e-6)).abs().sum(dim=1) + ((1.0 - prob) - pn / (pn_max + 1e-6)).abs().sum(dim=1)
    mass = pc.sum(dim=1) + pn.sum(dim=1) + 1e-3
    return torch.log1p(iso / mass).mean()


def regularization_loss(logits: Tensor, mean_contact: Tensor | np.ndarray) -> Tensor:
    """L1 between the predicted probabilities and the per-vertex mean contact.

    Args:
        logits: (B, V) float logits
        mean_contact: (V,) per-vertex mean in [0, 1]

    Returns:
        () scalar mean |σ(z) − m̄|
    """
    if logits.ndim != 2:
        raise InputError(f"logits must have shape (B, V), got {tuple(logits.shape)}")
    mean = torch.as_tensor(mean_contact, dtype=logits.dtype, device=logits.device)
    if mean.shape != (logits.shape[1],):
        raise InputError(f"mean_contact must have shape ({logits.shape[1]},), got {tuple(mean.shape)}")
    return (torch.sigmoid(logits) - mean[None, :]).abs().mean()


# --------------------------------------------------------------------------------------------------------------
# total


def coarse_targets(labels: Tensor, regressor: Tensor) -> Tensor:
    """Coarse ground truth 1[y Rᵀ > 0]: a node is in contact if any contributing vertex is.

    Args:
        labels: (B, V) float labels
        regressor: (L, V) float regressor

    Returns:
        (B, L) float labels in {0, 1}
    """
    reg = regressor.to(device=labels.device, dtype=labels.dtype)
    # (B, V) x (L, V)^T -> (B, L)
    return ((labels @ reg.T) > 0).to(labels.dtype)


@dataclass
class HacoLossOutput:
    """The total loss and its terms.

    Attributes:
        total: () scalar, the optimised loss
        terms: name -> () detached scalar ("778", "336", "84", "joint", "reg", "smooth")
    """

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


def _regressor_for(regressors: Any, key: str) -> Tensor | None:
    if regressors is None:
        return None
    if isinstance(regressors, Mapping):
        value = regressors.get(key)
    else:
        value = getattr(regressors, {"336": "vertex_336", "84": "vertex_84", "joint": "joint"}[key], None)
    return None if value is None else torch.as_tensor(value)


def haco_loss(
    output: Any,
    labels: Tensor,
    stats: ContactStats,
    epoch: int,
    num_epochs: int,
    faces: Tensor | np.ndarray,
    regressors: Mapping[str, Tensor] | Any = None,
    loss: str = "vcb",
    reg_weight: float = 0.1,
    smooth_weight: float = 1.0,
    params: BaselineParams | None = None,
) -> HacoLossOutput:
    """L = Σ_levels L_level + 0.1·L_reg + 1.0·L_smooth (HACO's ``'vcb+reg+smooth'``).

    Args:
        output: object with ``contact_logits`` (B, V) and, optionally, ``contact_336_logits`` (B, 336),
            ``contact_84_logits`` (B, 84), ``contact_joint_logits`` (B, 21) (a ``HacoOutput``); a coarse level enters
            only when both its logits and its regressor are present
        labels: (B, V) float vertex labels in {0, 1}
        stats: training-label statistics (count tables and per-vertex means)
        epoch: current epoch (0-based)
        num_epochs: E (VCB blend schedule)
        faces: (F, 3) int hand faces for the smoothness term
        regressors: mapping "336" / "84" / "joint" -> (L, V) regressor, or a ContactRegressors (vertex_336, vertex_84,
            joint)
        loss: per-level loss name, one of :data:`LOSS_NAMES`
        reg_weight, smooth_weight: factors of the regularisation and smoothness terms
        params: baseline constants

    Returns:
        HacoLossOutput
    """
    if loss not in LOSS_NAMES:
        raise InputError(f"unknown loss {loss!r}; expected one of {', '.join(LOSS_NAMES)}")
    params = params or BaselineParams()
    logits = output.contact_logits
    _check_logits_labels(logits, labels)
    if stats.num_verts != logits.shape[1]:
        raise InputError(f"stats cover {stats.num_verts} vertices but the logits have {logits.shape[1]}")
    labels = labels.to(logits.dtype)
    terms: dict[str, Tensor] = {}
    total = logits.new_zeros(())
    for attribute, key in LEVELS:
        level_logits = getattr(output, attribute, None)
        if level_logits is None:
            continue
        regressor = _regressor_for(regressors, key) if key is not None else None
        if key is not None and regressor is None:
            continue
        level_labels = labels if regressor is None else coarse_targets(labels, regressor)
        if loss in ("vcb", "vcb-paper"):
            weights = vcb_weights(
                stats,
                epoch,
                num_epochs,
                regressor=regressor.to(logits.device) if regressor is not None else None,
                beta=params.beta,
                form="official" if loss == "vcb" else "paper",
                device=logits.device,
                dtype=logits.dtype,
            )
            value = vcb_loss(level_logits, level_labels, weights, 0.5 if loss == "vcb" else 0.0)
        else:
            value = baseline_loss(loss, level_logits, level_labels, stats.global_counts, params)
        terms[key or "778"] = value.detach()
        total = total + value
    if reg_weight:
        reg = regularization_loss(logits, stats.means)
        terms["reg"] = reg.detach()
        total = total + reg_weight * reg
    if smooth_weight:
        smooth = smoothness_loss(logits, faces)
        terms["smooth"] = smooth.detach()
        total = total + smooth_weight * smooth
    return HacoLossOutput(total=total, terms=terms)
