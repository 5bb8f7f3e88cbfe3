"""HACO's balanced contact sampling (BCS, haco.md §4) as a pure function and a seeded torch ``Sampler``.

Procedure (:func:`balanced_indices`), run once per training dataset:

1. **Score** every sample: s_i = mean_v[c_iv (1 − m_v)] − mean_v[c_iv m_v], with m the per-vertex mean contact of
   *that dataset* (computed from all its labels, zero-contact samples included, unless given). High scores mean
   contact at rarely touched vertices (the paper's "contact balance score", the code's "difficulty").
2. **Drop** samples without any contact.
3. **Bins**: K = 5 log-spaced edges τ_k = s_min + (s_max − s_min)·ln(1 + c·x_k)/ln(1 + c), curvature c = 5,
   x = linspace(1e-5, 1, K + 1); relative edges ≈ 0, 0.39, 0.61, 0.77, 0.90, 1, so the bins narrow towards high
   scores. s_min / s_max are over the kept (non-zero-contact) samples.
4. **Half-open bins** [τ_{k−1}, τ_k). Edge effect of the reference, kept by default (``edge_mode="official"``): the
   sample(s) with the maximum score fall in no bin, and so do those with the minimum score, because τ_0 sits just
   above s_min (x_0 = 1e-5). ``edge_mode="inclusive"`` fixes this (the first bin starts at s_min, the last is
   closed at s_max), so only zero-contact samples are dropped.
5. **Resample** every bin to int(mean bin size) (mean over the K bins, empty ones included): bins with more samples
   are subsampled without replacement, bins with fewer are oversampled with replacement. An empty bin (the
   reference crashes there) is skipped, so the result may hold fewer than K·int(mean) indices. Deviation for tiny
   datasets only: the target is at least 1 (the reference's int(mean) is 0 for fewer than K kept samples).
6. **Shuffle** the concatenation.

:class:`BalancedContactSampler` wraps this for a ``torch.utils.data.DataLoader``: the balanced index list is drawn
once (seeded), every epoch yields a fresh permutation of it (seeded by ``seed`` and :meth:`set_epoch`, like
``DistributedSampler``), and ``num_replicas`` / ``rank`` shard it for DDP.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Sampler

from haco_grasp.contact.stats import _binary_labels
from haco_grasp.errors import InputError

__all__ = [
    "BalancedContactSampler",
    "BalancedSampling",
    "balance_bin_edges",
    "balanced_indices",
    "contact_balance_scores",
]

EdgeMode = Literal["official", "inclusive"]


def contact_balance_scores(labels: Any, means: Any | None = None) -> np.ndarray:
    """HACO's contact balance score s_i = mean_v[c_iv (1 − m_v)] − mean_v[c_iv m_v].

    Args:
        labels: (N, V) binary labels (>= 0.5 is contact)
        means: (V,) per-vertex mean contact; None computes it from ``labels``

    Returns:
        (N,) float64 scores
    """
    binary = _binary_labels(labels).astype(np.float64)
    mean = binary.mean(axis=0) if means is None else np.asarray(means, dtype=np.float64)
    if mean.shape != (binary.shape[1],):
        raise InputError(f"means must have shape ({binary.shape[1]},), got {mean.shape}")
    return (binary * (1.0 - mean)).mean(axis=1) - (binary * mean).mean(axis=1)


def balance_bin_edges(score_min: float, score_max: float, num_bins: int = 5, curvature: float = 5.0) -> np.ndarray:
    """Log-spaced bin edges τ_k = s_min + (s_max − s_min)·ln(1 + c x_k)/ln(1 + c), x = linspace(1e-5, 1, K + 1).

    Args:
        score_min, score_max: the score range
        num_bins: K
        curvature: c (> 0)

    Returns:
        (K + 1,) float64 increasing edges (τ_0 slightly above s_min, τ_K = s_max)
    """
    if not (isinstance(num_bins, int) and num_bins >= 1):
        raise InputError(f"num_bins must be a positive int, got {num_bins!r}")
    if not (curvature > 0 and math.isfinite(curvature)):
        raise InputError(f"curvature must be a positive number, got {curvature!r}")
    x = np.linspace(1e-5, 1.0, num_bins + 1)
    return score_min + (score_max - score_min) * np.log1p(curvature * x) / math.log1p(curvature)


@dataclass
class BalancedSampling:
    """Result of :func:`balanced_indices`.

    Attributes:
        indices: (M,) int64 indices into the dataset, shuffled (with repeats where bins were oversampled)
        scores: (N,) float64 balance score of every sample
        edges: (K + 1,) float64 bin edges (NaN when no sample has contact)
        bin_of: (N,) int64 bin of every sample, −1 for dropped ones
        bin_sizes: (K,) int64 samples per bin before resampling
        target_per_bin: max(1, int(mean bin size)), the size of every non-empty bin after resampling
        dropped_zero_contact: (D0,) int64 indices of samples without contact
        dropped_edges: (D1,) int64 indices of samples with contact that fell in no bin (official edge mode)
    """

    indices: np.ndarray
    scores: np.ndarray
    edges: np.ndarray
    bin_of: np.ndarray
    bin_sizes: np.ndarray
    target_per_bin: int
    dropped_zero_contact: np.ndarray
    dropped_edges: np.ndarray


def balanced_indices(
    labels: Any,
    means: Any | None = None,
    seed: int | np.random.Generator = 0,
    num_bins: int = 5,
    curvature: float = 5.0,
    edge_mode: EdgeMode = "official",
) -> BalancedSampling:
    """Balanced contact sampling of one dataset (module docstring, steps 1–6).

    Args:
        labels: (N, V) binary labels of the dataset
        means: (V,) the dataset's per-vertex mean contact; None computes it from ``labels``
        seed: int seed or numpy Generator for the resampling and the shuffle
        num_bins: K (HACO: 5)
        curvature: c of the log spacing (HACO: 5)
        edge_mode: "official" (drop the min/max-score samples, as the reference) or "inclusive"

    Returns:
        BalancedSampling
    """
    if edge_mode not in ("official", "inclusive"):
        raise InputError(f"edge_mode must be 'official' or 'inclusive', got {edge_mode!r}")
    binary = _binary_labels(labels)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    scores = contact_balance_scores(binary, means)
    has_contact = binary.any(axis=1)
    kept = np.flatnonzero(has_contact)
    bin_of = np.full(binary.shape[0], -1, dtype=np.int64)
    empty_int = np.zeros(0, dtype=np.int64)
    if kept.size == 0:
        return BalancedSampling(
            empty_int, scores, np.full(num_bins + 1, np.nan), bin_of, np.zeros(num_bins, np.int64), 0,
            np.flatnonzero(~has_contact), empty_int,
        )  # fmt: skip
    kept_scores = scores[kept]
    edges = balance_bin_edges(float(kept_scores.min()), float(kept_scores.max()), num_bins, curvature)
    members: list[np.ndarray] = []
    for k in range(num_bins):
        low, high = edges[k], edges[k + 1]
        if edge_mode == "inclusive" and k == 0:
            low = -np.inf
        if edge_mode == "inclusive" and k == num_bins - 1:
            inside = kept_scores >= low
        else:
            inside = (kept_scores >= low) & (kept_scores < high)
        inside &= bin_of[kept] < 0  # an index belongs to one bin only
        bin_of[kept[inside]] = k
        members.append(kept[inside])
    bin_sizes = np.array([m.size for m in members], dtype=np.int64)
    target = max(1, int(bin_sizes.mean()))  # the reference's int(mean) is 0 for fewer than K samples
    chosen = []
    for group in members:
        if group.size == 0 or target == 0:
            continue
        chosen.append(rng.choice(group, size=target, replace=group.size < target))
    indices = np.concatenate(chosen) if chosen else empty_int
    indices = indices[rng.permutation(indices.size)].astype(np.int64)
    dropped_edges = kept[bin_of[kept] < 0]
    return BalancedSampling(
        indices=indices,
        scores=scores,
        edges=edges,
        bin_of=bin_of,
        bin_sizes=bin_sizes,
        target_per_bin=target,
        dropped_zero_contact=np.flatnonzero(~has_contact),
        dropped_edges=dropped_edges,
    )


class BalancedContactSampler(Sampler[int]):
    """A seeded ``Sampler`` yielding HACO's balanced index list, reshuffled every epoch, optionally sharded.

    The balanced list is drawn once at construction (as HACO does per dataset). Several datasets concatenated
    (``torch.utils.data.ConcatDataset``) are balanced separately when ``labels`` is a list of per-dataset label
    arrays, each with its own means, and the indices are offset accordingly.
    """

    def __init__(
        self,
        labels: Any,
        means: Any | None = None,
        seed: int = 0,
        num_bins: int = 5,
        curvature: float = 5.0,
        edge_mode: EdgeMode = "official",
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        """Draw the balanced list.

        Args:
            labels: (N, V) binary labels, or a list of (N_d, V) arrays (one per concatenated dataset)
            means: (V,) means (single array only); None uses each dataset's own means
            seed: seed of the draw and the per-epoch shuffles
            num_bins, curvature, edge_mode: see :func:`balanced_indices`
            num_replicas, rank: DDP sharding (every rank gets ceil(M / num_replicas) indices, padded by wrapping)
        """
        if not (isinstance(num_replicas, int) and num_replicas >= 1 and isinstance(rank, int)):
            raise InputError(f"num_replicas must be >= 1 and rank an int, got {num_replicas!r}, {rank!r}")
        if not 0 <= rank < num_replicas:
            raise InputError(f"rank must be in [0, {num_replicas}), got {rank}")
        parts = labels if isinstance(labels, (list, tuple)) else [labels]
        if len(parts) > 1 and means is not None:
            raise InputError("means can only be given for a single label array; per-dataset means are computed")
        rng = np.random.default_rng(seed)
        offset = 0
        selected = []
        self.results: list[BalancedSampling] = []
        for part in parts:
            result = balanced_indices(part, means, rng, num_bins, curvature, edge_mode)
            self.results.append(result)
            selected.append(result.indices + offset)
            offset += result.scores.shape[0]
        self.indices = np.concatenate(selected) if selected else np.zeros(0, dtype=np.int64)
        if self.indices.size == 0:
            raise InputError("balanced sampling kept no sample: every sample has zero contact (or too few samples)")
        self.seed = int(seed)
        self.epoch = 0
        self.num_replicas = num_replicas
        self.rank = rank

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of epoch ``epoch`` (call before iterating, as with ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.indices.size / self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        order = self.indices[torch.randperm(self.indices.size, generator=generator).numpy()]
        total = len(self) * self.num_replicas
        if total > order.size:
            order = np.resize(order, total)  # wrap around to give every rank the same length
        return iter(order[self.rank : total : self.num_replicas].tolist())
