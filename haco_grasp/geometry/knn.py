"""K nearest neighbours between batched point clouds, memory-bounded and differentiable.

The neighbour search runs without gradients (``pytorch3d.ops.knn_points`` when importable, else chunked pure
torch); the squared distances are then recomputed from the gathered neighbours so that gradients flow to both
point sets. Padding convention: a padded or missing neighbour has ``sq_dist = inf`` and ``idx = -1``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from haco_grasp.errors import InputError

__all__ = ["KNNResult", "knn_points", "knn_gather"]

try:  # optional accelerator, never required
    from pytorch3d.ops import knn_points as _p3d_knn_points  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - pytorch3d is not installed in CI
    _p3d_knn_points = None

# Bytes of pairwise distances the pure-torch search may materialise at once: on CUDA a quarter of the free memory
# (at least 256 MiB), on the CPU 1 GiB. Large chunks keep the number of torch operations per search nearly
# independent of the batch (each chunk is ~6 operations).
_CPU_PAIRWISE_BYTES = 1 << 30
_MIN_PAIRWISE_BYTES = 256 << 20


def _pairwise_budget(device: torch.device, element_size: int) -> int:
    """Number of pairwise distances one chunk of the search may hold on ``device``."""
    budget = _CPU_PAIRWISE_BYTES
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        budget = max(free // 4, _MIN_PAIRWISE_BYTES)
    return max(1, budget // element_size)  # one (b, r, P2) tensor per chunk, masked in place


class KNNResult(NamedTuple):
    """Result of :func:`knn_points`.

    sq_dist: (B, P1, K) float, squared distances, ascending; inf where padded.
    idx: (B, P1, K) long, indices into points2; -1 where padded.
    """

    sq_dist: Tensor
    idx: Tensor


def _check_lengths(lengths: Tensor | None, batch: int, size: int, name: str, device: torch.device) -> Tensor | None:
    if lengths is None:
        return None
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.shape != (batch,) or lengths.dtype.is_floating_point:
        raise InputError(
            f"{name} must be a ({batch},) integer tensor of valid point counts, got shape {tuple(lengths.shape)} "
            f"dtype {lengths.dtype}; pass one count per cloud"
        )
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > size):
        raise InputError(
            f"{name} must lie in 0..{size}, got {int(lengths.min())}..{int(lengths.max())}; counts cannot exceed P"
        )
    return lengths.to(device=device, dtype=torch.long)


def _search_torch(points1: Tensor, points2: Tensor, k: int, lengths2: Tensor | None) -> Tensor:
    """Indices (B, P1, k) of the k nearest points2 (k <= P2), chunked over P1 (and B when P2 is huge).

    K = 1 takes a ``min`` over the distances (``topk`` is a radix select, several times slower on a GPU). The search
    ranks ``|p2|^2 - 2 a.p2``: ``|a|^2`` is the same for every candidate of a row, so it is left out (the exact
    distances are recomputed from the gathered neighbours by :func:`knn_points`), and each chunk is one ``baddbmm``
    (in-place mask) and one ``argmin``: a few operations per chunk, and few chunks.
    """
    batch, num1, _ = points1.shape
    num2 = points2.shape[1]
    max_entries = _pairwise_budget(points1.device, points1.element_size())
    # Centre both clouds on points2's mean to limit cancellation in |p2|^2 - 2 a.p2.
    centre = points2.mean(dim=1, keepdim=True)
    p1 = points1 - centre
    p2 = points2 - centre
    p2_sq = (p2 * p2).sum(-1)[:, None, :]  # (B, 1, P2)
    p2_t = p2.transpose(1, 2)  # (B, D, P2)
    invalid2 = None
    if lengths2 is not None:
        invalid2 = (torch.arange(num2, device=points2.device)[None, :] >= lengths2[:, None])[:, None, :]  # (B, 1, P2)
    batch_step = batch if batch * num1 * num2 <= max_entries else max(1, max_entries // max(num1 * num2, 1))
    batch_step = min(batch_step, batch)
    pieces = []
    for b0 in range(0, batch, batch_step):  # unsliced when one chunk holds everything: fewer operations
        b1 = min(batch, b0 + batch_step)
        parts = (p1, p2_sq, p2_t, invalid2)
        if batch_step < batch:
            parts = tuple(None if t is None else t[b0:b1] for t in parts)
        q1, q2_sq, q2_t, invalid = parts
        rows = max(1, max_entries // ((b1 - b0) * num2))
        row_pieces = []
        for r0 in range(0, num1, rows):
            a = q1 if rows >= num1 else q1[:, r0 : r0 + rows]  # (b, r, D)
            score = torch.baddbmm(q2_sq, a, q2_t, alpha=-2.0)  # (b, r, P2): |p2|^2 - 2 a.p2
            if invalid is not None:
                score.masked_fill_(invalid, float("inf"))
            if k == 1:
                row_pieces.append(score.argmin(dim=-1, keepdim=True))
            else:
                row_pieces.append(score.topk(k, dim=-1, largest=False, sorted=True).indices)
        pieces.append(row_pieces[0] if len(row_pieces) == 1 else torch.cat(row_pieces, dim=1))
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0)


def _search(points1: Tensor, points2: Tensor, k: int, lengths1: Tensor | None, lengths2: Tensor | None) -> Tensor:
    if _p3d_knn_points is not None:
        try:
            return _p3d_knn_points(points1, points2, lengths1=lengths1, lengths2=lengths2, K=k).idx
        except (RuntimeError, ValueError, TypeError):  # unsupported dtype/device combination: fall back
            pass
    return _search_torch(points1, points2, k, lengths2)


def knn_points(
    points1: Tensor,
    points2: Tensor,
    k: int = 1,
    lengths1: Tensor | None = None,
    lengths2: Tensor | None = None,
) -> KNNResult:
    """The k nearest points2 of every point in points1, with squared distances sorted ascending.

    Differentiable w.r.t. both point sets (the distances are recomputed from the gathered neighbours).
    Memory-bounded: the pure-torch search never holds more than ~64M pairwise distances at once.

    Args:
        points1: (B, P1, D) float, query points.
        points2: (B, P2, D) float, reference points.
        k: number of neighbours K >= 1; if K exceeds the valid points2 count the extra slots are padding.
        lengths1: (B,) long or None, valid query counts; rows past them are padding.
        lengths2: (B,) long or None, valid reference counts; points past them are never returned.

    Returns:
        KNNResult with sq_dist (B, P1, K) float (squared, inf where padded) and idx (B, P1, K) long (-1 where padded).
    """
    for name, pts in (("points1", points1), ("points2", points2)):
        if not isinstance(pts, Tensor) or pts.ndim != 3 or not pts.is_floating_point():
            got = f"shape {tuple(pts.shape)} dtype {pts.dtype}" if isinstance(pts, Tensor) else type(pts).__name__
            raise InputError(f"{name} must be a (B, P, D) float tensor, got {got}; add a batch axis with [None]")
    batch, num1, dim = points1.shape
    if points2.shape[0] != batch or points2.shape[2] != dim:
        raise InputError(
            f"points2 must be (B={batch}, P2, D={dim}) to match points1, got {tuple(points2.shape)}; "
            "use the same batch size and dimension"
        )
    if points2.device != points1.device or points2.dtype != points1.dtype:
        raise InputError(
            f"points1 and points2 must share device and dtype, got {points1.device}/{points1.dtype} and "
            f"{points2.device}/{points2.dtype}; move one with .to()"
        )
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a positive int, got {k!r}; ask for at least one neighbour")
    num2 = points2.shape[1]
    lengths1 = _check_lengths(lengths1, batch, num1, "lengths1", points1.device)
    lengths2 = _check_lengths(lengths2, batch, num2, "lengths2", points1.device)

    found = min(k, num2)
    if batch == 0 or num1 == 0 or found == 0:
        idx = torch.full((batch, num1, k), -1, dtype=torch.long, device=points1.device)
        sq_dist = torch.full((batch, num1, k), float("inf"), dtype=points1.dtype, device=points1.device)
        return KNNResult(sq_dist, idx)

    with torch.no_grad():
        idx = _search(points1.detach(), points2.detach(), found, lengths1, lengths2)  # (B, P1, found)
    valid = torch.ones_like(idx, dtype=torch.bool)
    if lengths2 is not None:
        valid &= idx < lengths2[:, None, None]
        # A slot past the valid count may hold an arbitrary index: neutralise it before gathering.
        slot = torch.arange(found, device=idx.device)[None, None, :]
        valid &= slot < lengths2[:, None, None]
    if lengths1 is not None:
        valid &= (torch.arange(num1, device=idx.device)[None, :] < lengths1[:, None])[..., None]
    safe_idx = torch.where(valid, idx, torch.zeros_like(idx))
    neighbours = knn_gather(points2, safe_idx)  # (B, P1, found, D)
    diff = points1[:, :, None, :] - neighbours
    sq_dist = (diff * diff).sum(-1)  # (B, P1, found)
    sq_dist = torch.where(valid, sq_dist, torch.full_like(sq_dist, float("inf")))
    idx = torch.where(valid, idx, torch.full_like(idx, -1))
    if found > 1:
        # Re-sort on the exact recomputed distances so the order matches the returned values.
        sq_dist, order = sq_dist.sort(dim=-1)
        idx = idx.gather(-1, order)
    if found < k:
        pad = k - found
        sq_dist = torch.cat([sq_dist, sq_dist.new_full((batch, num1, pad), float("inf"))], dim=-1)
        idx = torch.cat([idx, idx.new_full((batch, num1, pad), -1)], dim=-1)
    return KNNResult(sq_dist, idx)


def knn_gather(x: Tensor, idx: Tensor) -> Tensor:
    """Gather per-neighbour features; padded indices (-1) give zeros.

    Args:
        x: (B, P2, C) float, features of the reference points.
        idx: (B, P1, K) long, indices into P2 (or -1 for padding).

    Returns:
        gathered: (B, P1, K, C) float.
    """
    if not isinstance(x, Tensor) or x.ndim != 3:
        raise InputError(f"x must be a (B, P2, C) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(idx, Tensor) or idx.ndim != 3 or idx.shape[0] != x.shape[0] or idx.dtype != torch.long:
        raise InputError(
            f"idx must be a (B={x.shape[0]}, P1, K) long tensor, got {getattr(idx, 'shape', type(idx).__name__)} "
            f"{getattr(idx, 'dtype', '')}; pass KNNResult.idx"
        )
    batch, num1, k = idx.shape
    channels = x.shape[2]
    padded = idx < 0
    safe_idx = idx.clamp_min(0).reshape(batch, num1 * k, 1).expand(-1, -1, channels)
    if x.shape[1] == 0:
        return x.new_zeros(batch, num1, k, channels)
    gathered = x.gather(1, safe_idx).reshape(batch, num1, k, channels)
    return gathered.masked_fill(padded[..., None], 0.0)
