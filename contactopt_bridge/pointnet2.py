"""PointNet++ building blocks in pure torch: batched, dense, CPU and CUDA, no torch_cluster / PyG needed.

ContactOpt's DeepContact is PyTorch Geometric's PointNet++ segmentation example (``fps``, ``radius``,
``PointConv``, ``knn_interpolate``). Here every cloud of a batch has the same number of points, so the ops work
on dense ``(B, N, ...)`` tensors:

- :func:`farthest_point_sampling`: greedy farthest point sampling; ``ceil(ratio * N)`` centres per cloud, as
  torch_cluster's ``fps`` chooses. torch_cluster starts from a random point; here the start is point 0 unless
  ``start`` is given, so the network is deterministic.
- :func:`radius_neighbors`: up to K points within ``radius`` of each centre (the centre itself included). When
  more than K points lie in the ball, the K *nearest* are kept (torch_cluster keeps an unspecified subset).
  Missing slots are padded with ``idx = -1`` and ``mask = False``.
- :func:`knn_interpolate`: inverse-squared-distance weighted mean of the k nearest source features (weights
  ``1 / max(d², 1e-16)``, as PyG).
- :class:`PointConv`: PyG's ``PointConv`` / ``PointNetConv`` with max aggregation: messages ``[x_j, p_j - p_i]``
  through ``local_nn``. The MLP runs densely on (B, M, K) edges, padded slots repeating the nearest neighbour:
  the max is unchanged; in training mode the BatchNorm batch statistics then count those repeats (PyG counts each
  real edge once), which only matters for balls holding fewer than K points.
- :class:`SetAbstraction`, :class:`GlobalSetAbstraction`, :class:`FeaturePropagation` and :func:`mlp`: the
  modules of PyG's example, with the same attribute names (``conv.local_nn``, ``nn``) so state_dict keys match.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from haco_grasp.errors import InputError
from haco_grasp.geometry.knn import knn_gather, knn_points

__all__ = [
    "FeaturePropagation",
    "GlobalSetAbstraction",
    "PointConv",
    "RadiusNeighbors",
    "SetAbstraction",
    "farthest_point_sampling",
    "gather_points",
    "knn_interpolate",
    "mlp",
    "num_fps_samples",
    "radius_neighbors",
]


class RadiusNeighbors(NamedTuple):
    """Result of :func:`radius_neighbors`.

    Attributes:
        idx: (B, M, K) long, indices into the points; -1 where padded.
        mask: (B, M, K) bool, True for real neighbours (within the radius).
    """

    idx: Tensor
    mask: Tensor


def _check_cloud(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != 3 or not x.is_floating_point():
        got = f"shape {tuple(x.shape)} dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"{name} must be a (B, N, 3) float tensor, got {got}; add a batch axis with [None]")
    return x


def num_fps_samples(num_points: int, ratio: float) -> int:
    """Number of centres farthest point sampling keeps: ``ceil(ratio * num_points)`` (torch_cluster's rule).

    Args:
        num_points: points per cloud N.
        ratio: fraction in (0, 1].

    Returns:
        M, at least 1 when N > 0.
    """
    if not (0.0 < ratio <= 1.0):
        raise InputError(f"ratio must lie in (0, 1], got {ratio!r}; pass e.g. 0.2")
    return int(math.ceil(ratio * num_points - 1e-9)) if num_points > 0 else 0


def farthest_point_sampling(points: Tensor, num_samples: int, start: Tensor | None = None) -> Tensor:
    """Greedy farthest point sampling, batched (each step picks the point farthest from all chosen so far).

    Ties go to the lowest index (``argmax``'s rule). Not differentiable (returns indices).

    Args:
        points: (B, N, 3) float, metres.
        num_samples: M, 1 <= M <= N.
        start: (B,) long, index of the first centre of each cloud; None starts at point 0.

    Returns:
        idx: (B, M) long, indices into N; ``idx[:, 0] == start``.
    """
    _check_cloud("points", points)
    batch, num_points, _ = points.shape
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or not (1 <= num_samples <= num_points):
        raise InputError(f"num_samples must be an int in 1..{num_points}, got {num_samples!r}")
    device = points.device
    if start is None:
        current = torch.zeros(batch, dtype=torch.long, device=device)
    else:
        if not isinstance(start, Tensor) or start.shape != (batch,) or start.dtype.is_floating_point:
            raise InputError(f"start must be a ({batch},) integer tensor, got {getattr(start, 'shape', start)!r}")
        if batch and (int(start.min()) < 0 or int(start.max()) >= num_points):
            raise InputError(f"start indices must lie in 0..{num_points - 1}")
        current = start.to(device=device, dtype=torch.long)
    if points.device.type == "cpu":
        # numpy loop: on CPU, hundreds of tiny multi-threaded torch ops spend most of their time synchronising.
        chosen = _fps_numpy(points.detach().numpy(), num_samples, current.numpy())
        return torch.from_numpy(chosen).to(device)
    return _fps_torch(points.detach(), num_samples, current)


def _fps_torch(pts: Tensor, num_samples: int, current: Tensor) -> Tensor:
    """The greedy loop in torch (any device): pts (B, N, 3), current (B,) start -> (B, M) long."""
    batch, num_points, _ = pts.shape
    device = pts.device
    idx = torch.empty(batch, num_samples, dtype=torch.long, device=device)
    min_sq_dist = torch.full((batch, num_points), float("inf"), dtype=pts.dtype, device=device)
    rows = torch.arange(batch, device=device)
    for step in range(num_samples):
        idx[:, step] = current
        last = pts[rows, current]  # (B, 3)
        sq = ((pts - last[:, None, :]) ** 2).sum(-1)  # (B, N)
        min_sq_dist = torch.minimum(min_sq_dist, sq)
        current = min_sq_dist.argmax(dim=1)
    return idx


def _fps_numpy(points: np.ndarray, num_samples: int, start: np.ndarray) -> np.ndarray:
    """The same greedy loop in numpy: points (B, N, 3), start (B,) -> (B, M) int64."""
    batch, num_points, _ = points.shape
    idx = np.empty((batch, num_samples), dtype=np.int64)
    min_sq_dist = np.full((batch, num_points), np.inf, dtype=points.dtype)
    rows = np.arange(batch)
    current = start.astype(np.int64)
    for step in range(num_samples):
        idx[:, step] = current
        diff = points - points[rows, current][:, None, :]  # (B, N, 3)
        np.minimum(min_sq_dist, np.einsum("bnd,bnd->bn", diff, diff), out=min_sq_dist)
        current = min_sq_dist.argmax(axis=1)
    return idx


def gather_points(x: Tensor, idx: Tensor) -> Tensor:
    """Rows of a batched tensor: ``out[b, m] = x[b, idx[b, m]]``.

    Args:
        x: (B, N, C) float.
        idx: (B, M) long, indices into N.

    Returns:
        out: (B, M, C).
    """
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))


def radius_neighbors(points: Tensor, centres: Tensor, radius: float, max_neighbors: int = 64) -> RadiusNeighbors:
    """Up to ``max_neighbors`` points within ``radius`` (inclusive) of each centre, nearest first.

    Args:
        points: (B, N, 3) float, metres.
        centres: (B, M, 3) float, metres (usually a subset of points, so each has itself as a neighbour).
        radius: ball radius, metres.
        max_neighbors: K >= 1.

    Returns:
        RadiusNeighbors with idx (B, M, K) long (-1 padded) and mask (B, M, K) bool.
    """
    _check_cloud("points", points)
    _check_cloud("centres", centres)
    if not (isinstance(radius, (int, float)) and radius > 0):
        raise InputError(f"radius must be a positive number of metres, got {radius!r}")
    if not isinstance(max_neighbors, int) or max_neighbors < 1:
        raise InputError(f"max_neighbors must be a positive int, got {max_neighbors!r}")
    with torch.no_grad():
        result = knn_points(centres.detach(), points.detach(), k=max_neighbors)
    mask = (result.idx >= 0) & (result.sq_dist <= radius * radius)
    idx = torch.where(mask, result.idx, torch.full_like(result.idx, -1))
    return RadiusNeighbors(idx, mask)


def knn_interpolate(features: Tensor, points: Tensor, targets: Tensor, k: int = 3) -> Tensor:
    """Inverse-squared-distance interpolation of source features at target points (PyG's ``knn_interpolate``).

    ``out_t = sum_j w_tj f_j / sum_j w_tj`` over the k nearest sources j, ``w = 1 / max(|p_j - t|², 1e-16)``.
    Differentiable w.r.t. features and both point sets.

    Args:
        features: (B, S, C) float, source features.
        points: (B, S, 3) float, source positions, metres.
        targets: (B, T, 3) float, target positions, metres.
        k: neighbours used (clipped to S).

    Returns:
        out: (B, T, C) float.
    """
    _check_cloud("points", points)
    _check_cloud("targets", targets)
    if not isinstance(features, Tensor) or features.ndim != 3 or features.shape[:2] != points.shape[:2]:
        raise InputError(
            f"features must be (B, S, C) matching points {tuple(points.shape[:2])}, got "
            f"{getattr(features, 'shape', type(features).__name__)}"
        )
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive int, got {k!r}")
    k = min(k, points.shape[1])
    result = knn_points(targets, points, k=k)
    weights = 1.0 / result.sq_dist.clamp_min(1e-16)  # (B, T, k)
    neighbours = knn_gather(features, result.idx)  # (B, T, k, C)
    return (weights[..., None] * neighbours).sum(2) / weights.sum(2, keepdim=True)


def mlp(channels: list[int] | tuple[int, ...]) -> nn.Sequential:
    """PyG-example MLP: ``Sequential(Sequential(Linear, ReLU, BatchNorm1d), ...)`` over consecutive channel pairs.

    Args:
        channels: widths [C_in, C_1, ..., C_out].

    Returns:
        A module mapping (E, C_in) to (E, C_out); keys ``{i}.0.weight`` (Linear) and ``{i}.2.*`` (BatchNorm).
    """
    if len(channels) < 2:
        raise InputError(f"mlp needs at least two channel widths, got {channels!r}")
    return nn.Sequential(
        *[
            nn.Sequential(nn.Linear(channels[i - 1], channels[i]), nn.ReLU(), nn.BatchNorm1d(channels[i]))
            for i in range(1, len(channels))
        ]
    )


class PointConv(nn.Module):
    """PointNet convolution with max aggregation: ``out_i = max_j local_nn([x_j, p_j - p_i])`` over neighbours j.

    The attribute name ``local_nn`` mirrors PyG, so state_dict keys read ``conv.local_nn...``.
    """

    def __init__(self, local_nn: nn.Module) -> None:
        super().__init__()
        self.local_nn = local_nn

    def forward(self, features: Tensor | None, points: Tensor, centres: Tensor, neighbors: RadiusNeighbors) -> Tensor:
        """Aggregate neighbour messages at each centre.

        Args:
            features: (B, N, C) float or None, per-point input features.
            points: (B, N, 3) float, metres.
            centres: (B, M, 3) float, metres.
            neighbors: idx / mask (B, M, K) from :func:`radius_neighbors`; every centre needs >= 1 neighbour.

        Returns:
            out: (B, M, C_out) float.
        """
        idx, mask = neighbors
        # Padded slots repeat the nearest neighbour (slot 0): a max ignores duplicates, and the MLP runs densely.
        has_any = mask[..., :1]  # (B, M, 1)
        idx = torch.where(mask, idx, idx[..., :1].clamp_min(0))  # (B, M, K)
        rel = knn_gather(points, idx) - centres[:, :, None, :]  # (B, M, K, 3)
        message = rel if features is None else torch.cat([knn_gather(features, idx), rel], dim=-1)
        batch, num, k, channels = message.shape
        # max with indices, not amax: its backward scatters each gradient to one slot instead of building a
        # (B, M, K, C) tie mask (ties are duplicates of one message, so the parameter gradients are the same)
        out = self.local_nn(message.reshape(batch * num * k, channels)).reshape(batch, num, k, -1).max(dim=2).values
        return out * has_any.to(out.dtype)  # a centre without neighbours gives 0 (PyG's empty max)


class SetAbstraction(nn.Module):
    """FPS + radius grouping + :class:`PointConv` (PyG's ``SAModule``)."""

    def __init__(self, ratio: float, radius: float, local_nn: nn.Module, max_neighbors: int = 64) -> None:
        super().__init__()
        self.ratio = ratio
        self.radius = radius
        self.max_neighbors = max_neighbors
        self.conv = PointConv(local_nn)

    def forward(self, features: Tensor | None, points: Tensor, start: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Downsample and aggregate.

        Args:
            features: (B, N, C) float or None.
            points: (B, N, 3) float, metres.
            start: (B,) long or None, first FPS index.

        Returns:
            (features (B, M, C_out), centres (B, M, 3)) with M = ceil(ratio * N).
        """
        idx = farthest_point_sampling(points, num_fps_samples(points.shape[1], self.ratio), start)  # (B, M)
        centres = gather_points(points, idx)  # (B, M, 3)
        neighbors = radius_neighbors(points, centres, self.radius, self.max_neighbors)
        return self.conv(features, points, centres, neighbors), centres


class GlobalSetAbstraction(nn.Module):
    """``nn([x, p])`` on every point, then a max over the cloud (PyG's ``GlobalSAModule``); the output sits at 0."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.nn = net

    def forward(self, features: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """Pool a cloud to one feature vector.

        Args:
            features: (B, N, C) float.
            points: (B, N, 3) float, metres.

        Returns:
            (features (B, 1, C_out), points (B, 1, 3) zeros).
        """
        batch, num, _ = features.shape
        x = self.nn(torch.cat([features, points], dim=-1).reshape(batch * num, -1))  # (B*N, C_out)
        pooled = x.reshape(batch, num, -1).amax(dim=1, keepdim=True)  # (B, 1, C_out)
        return pooled, points.new_zeros(batch, 1, 3)


class FeaturePropagation(nn.Module):
    """kNN interpolation to the finer level, concatenation with its skip features, then ``nn`` (PyG's FPModule)."""

    def __init__(self, k: int, net: nn.Module) -> None:
        super().__init__()
        self.k = k
        self.nn = net

    def forward(self, features: Tensor, points: Tensor, skip_features: Tensor | None, skip_points: Tensor) -> Tensor:
        """Upsample coarse features.

        Args:
            features: (B, S, C) float, coarse features.
            points: (B, S, 3) float, coarse positions.
            skip_features: (B, T, C_skip) float or None, features of the finer level.
            skip_points: (B, T, 3) float, finer positions.

        Returns:
            out: (B, T, C_out) float.
        """
        x = knn_interpolate(features, points, skip_points, self.k)  # (B, T, C)
        if skip_features is not None:
            x = torch.cat([x, skip_features], dim=-1)
        batch, num, channels = x.shape
        return self.nn(x.reshape(batch * num, channels)).reshape(batch, num, -1)
