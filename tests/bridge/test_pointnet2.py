"""Tests for contactopt_bridge.pointnet2 against naive float64 loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import contactopt_bridge.pointnet2 as pn
from contactopt_bridge.pointnet2 import (
    FeaturePropagation,
    GlobalSetAbstraction,
    PointConv,
    SetAbstraction,
    farthest_point_sampling,
    knn_interpolate,
    mlp,
    num_fps_samples,
    radius_neighbors,
)
from haco_grasp.errors import InputError


def _naive_fps(points: np.ndarray, m: int, start: int) -> list[int]:
    chosen = [start]
    for _ in range(m - 1):
        best, best_d = -1, -1.0
        for i in range(len(points)):
            d = min(float(np.sum((points[i] - points[j]) ** 2)) for j in chosen)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
    return chosen


@pytest.mark.parametrize(("batch", "num", "m"), [(1, 30, 1), (2, 40, 9), (3, 25, 25)])
def test_fps_matches_naive_loop(batch, num, m):
    pts = np.random.default_rng(num).normal(size=(batch, num, 3))
    start = torch.arange(batch) % num
    idx = farthest_point_sampling(torch.as_tensor(pts), m, start)
    torch_loop = pn._fps_torch(torch.as_tensor(pts), m, start)  # the path CUDA tensors take
    assert idx.shape == (batch, m) and idx.dtype == torch.long
    for b in range(batch):
        expected = _naive_fps(pts[b], m, int(start[b]))
        assert idx[b].tolist() == expected
        assert torch_loop[b].tolist() == expected
    assert farthest_point_sampling(torch.as_tensor(pts), m)[:, 0].eq(0).all()  # default start is point 0
    if m == num:
        assert all(sorted(row) == list(range(num)) for row in idx.tolist())


def test_fps_float32_and_bad_input():
    pts = torch.rand(2, 50, 3)
    idx = farthest_point_sampling(pts, 10)
    assert idx.unique(dim=1).shape[1] == 10 and len(set(idx[0].tolist())) == 10
    with pytest.raises(InputError):
        farthest_point_sampling(pts, 0)
    with pytest.raises(InputError):
        farthest_point_sampling(pts, 51)
    with pytest.raises(InputError):
        farthest_point_sampling(pts[0], 5)


def test_num_fps_samples_is_ceil():
    assert num_fps_samples(2826, 0.2) == math.ceil(0.2 * 2826) == 566
    assert num_fps_samples(566, 0.25) == 142
    assert num_fps_samples(10, 0.5) == 5 and num_fps_samples(1, 0.2) == 1
    with pytest.raises(InputError):
        num_fps_samples(10, 0.0)


@pytest.mark.parametrize("max_neighbors", [4, 64])
def test_radius_neighbors_matches_brute_force(max_neighbors):
    rng = np.random.default_rng(max_neighbors)
    pts = rng.uniform(-0.1, 0.1, size=(2, 60, 3))
    centres = pts[:, :12] + rng.normal(scale=0.01, size=(2, 12, 3))
    radius = 0.05
    result = radius_neighbors(torch.as_tensor(pts), torch.as_tensor(centres), radius, max_neighbors)
    assert result.idx.shape == (2, 12, max_neighbors)
    for b in range(2):
        for m in range(12):
            d = np.linalg.norm(pts[b] - centres[b, m], axis=1)
            inside = np.flatnonzero(d <= radius)
            expected = inside[np.argsort(d[inside])][:max_neighbors]
            got = result.idx[b, m][result.mask[b, m]].numpy()
            assert sorted(got.tolist()) == sorted(expected.tolist())
            assert (result.idx[b, m][~result.mask[b, m]] == -1).all()


def test_radius_neighbors_fewer_points_than_k():
    pts = torch.rand(1, 5, 3, dtype=torch.float64)
    result = radius_neighbors(pts, pts[:, :2], 10.0, 64)
    assert result.mask.sum(-1).tolist() == [[5, 5]]
    with pytest.raises(InputError):
        radius_neighbors(pts, pts, -1.0)


def _naive_interpolate(feat, src, dst, k):
    out = np.zeros((len(dst), feat.shape[1]))
    for t in range(len(dst)):
        d2 = np.sum((src - dst[t]) ** 2, axis=1)
        nn = np.argsort(d2)[:k]
        w = 1.0 / np.maximum(d2[nn], 1e-16)
        out[t] = (w[:, None] * feat[nn]).sum(0) / w.sum()
    return out


@pytest.mark.parametrize("k", [1, 3])
def test_knn_interpolate_matches_naive(k):
    rng = np.random.default_rng(k)
    feat, src, dst = rng.normal(size=(2, 9, 4)), rng.normal(size=(2, 9, 3)), rng.normal(size=(2, 13, 3))
    out = knn_interpolate(torch.as_tensor(feat), torch.as_tensor(src), torch.as_tensor(dst), k)
    assert out.shape == (2, 13, 4)
    for b in range(2):
        np.testing.assert_allclose(out[b].numpy(), _naive_interpolate(feat[b], src[b], dst[b], k), rtol=1e-10)
    # a target on a source point takes that point's features (weight 1e16)
    exact = knn_interpolate(torch.as_tensor(feat), torch.as_tensor(src), torch.as_tensor(src), 3)
    np.testing.assert_allclose(exact.numpy(), feat, atol=1e-8)
    # k larger than the number of sources is clipped
    assert knn_interpolate(
        torch.as_tensor(feat[:, :2]), torch.as_tensor(src[:, :2]), torch.as_tensor(dst), 3
    ).shape == (
        2,
        13,
        4,
    )


def test_knn_interpolate_gradcheck():
    rng = np.random.default_rng(0)
    feat = torch.tensor(rng.normal(size=(1, 5, 2)), requires_grad=True)
    src = torch.tensor(rng.normal(size=(1, 5, 3)), requires_grad=True)
    dst = torch.tensor(rng.normal(size=(1, 4, 3)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, s, d: knn_interpolate(f, s, d, 3), (feat, src, dst))


def test_point_conv_matches_naive_max_in_eval_mode():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    pts = torch.tensor(rng.uniform(-0.1, 0.1, size=(2, 30, 3)))
    feats = torch.tensor(rng.normal(size=(2, 30, 4)))
    conv = PointConv(mlp([7, 8, 5])).double().eval()
    for module in conv.modules():  # non-trivial running statistics
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    centres = pts[:, :6]
    nbrs = radius_neighbors(pts, centres, 0.06, 8)
    out = conv(feats, pts, centres, nbrs)
    assert out.shape == (2, 6, 5)
    for b in range(2):
        for m in range(6):
            rows = [
                torch.cat([feats[b, j], pts[b, j] - centres[b, m]])
                for j, ok in zip(nbrs.idx[b, m].tolist(), nbrs.mask[b, m].tolist(), strict=True)
                if ok
            ]
            expected = conv.local_nn(torch.stack(rows)).amax(0)
            torch.testing.assert_close(out[b, m], expected)


def test_point_conv_training_gradients_equal_the_amax_reference():
    """The max over neighbours keeps one slot's gradient (``max``), where ``amax`` splits it among ties; padded slots
    repeat a message and ReLU zeros tie too, yet the parameter gradients must be those of the amax formulation."""
    rng = np.random.default_rng(3)
    pts = torch.tensor(rng.uniform(-0.1, 0.1, size=(2, 40, 3)))
    feats = torch.tensor(rng.normal(size=(2, 40, 4)))
    centres = pts[:, :8]
    nbrs = radius_neighbors(pts, centres, 0.05, 12)  # small radius: many padded (repeated) slots
    assert not bool(nbrs.mask.all())
    torch.manual_seed(0)
    conv = PointConv(mlp([7, 16, 6])).double().train()

    def reference(features, points, centres, neighbors):  # the same messages, reduced with amax
        idx, mask = neighbors
        idx = torch.where(mask, idx, idx[..., :1].clamp_min(0))
        rel = pn.knn_gather(points, idx) - centres[:, :, None, :]
        message = torch.cat([pn.knn_gather(features, idx), rel], dim=-1)
        b, m, k, c = message.shape
        out = conv.local_nn(message.reshape(b * m * k, c)).reshape(b, m, k, -1).amax(dim=2)
        return out * mask[..., :1].to(out.dtype)

    weights = torch.tensor(rng.normal(size=(2, 8, 6)))
    grads = []
    for forward in (conv, reference):
        conv.zero_grad()
        (forward(feats, pts, centres, nbrs) * weights).sum().backward()
        grads.append([p.grad.clone() for p in conv.parameters()])
    for ours, expected in zip(*grads, strict=True):
        torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-12)


def test_set_abstraction_shapes_and_gradients():
    torch.manual_seed(0)
    pts = torch.rand(2, 50, 3) * 0.2
    feats = torch.randn(2, 50, 6, requires_grad=True)
    sa = SetAbstraction(0.2, 0.1, mlp([9, 16, 32]))
    out, centres = sa(feats, pts)
    assert out.shape == (2, 10, 32) and centres.shape == (2, 10, 3)
    glob = GlobalSetAbstraction(mlp([35, 16]))
    pooled, origin = glob(out, centres)
    assert pooled.shape == (2, 1, 16) and torch.equal(origin, torch.zeros(2, 1, 3))
    fp = FeaturePropagation(3, mlp([32 + 6, 8]))
    up = fp(out, centres, feats, pts)
    assert up.shape == (2, 50, 8)
    (up.sum() + pooled.sum()).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert all(p.grad is not None for p in sa.parameters())


def test_mlp_layout():
    net = mlp([3, 4, 5])
    assert [k for k in net.state_dict() if k.endswith("weight")] == [
        "0.0.weight",
        "0.2.weight",
        "1.0.weight",
        "1.2.weight",
    ]
    with pytest.raises(InputError):
        mlp([3])


@pytest.mark.cuda
def test_cuda_matches_cpu():
    pts = torch.rand(2, 200, 3, dtype=torch.float64)
    idx_cpu = farthest_point_sampling(pts, 40)
    idx_gpu = farthest_point_sampling(pts.cuda(), 40)
    assert torch.equal(idx_cpu, idx_gpu.cpu())
    feat = torch.rand(2, 200, 5, dtype=torch.float64)
    a = knn_interpolate(feat, pts, pts[:, :7] + 0.01, 3)
    b = knn_interpolate(feat.cuda(), pts.cuda(), pts[:, :7].cuda() + 0.01, 3)
    torch.testing.assert_close(a, b.cpu())
