"""Tests for haco_grasp.geometry.knn against scipy's cKDTree and naive loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

import haco_grasp.geometry.knn as knn_module
from haco_grasp.errors import InputError
from haco_grasp.geometry.knn import knn_gather, knn_points

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _kdtree_reference(points1: np.ndarray, points2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    dist, idx = cKDTree(points2).query(points1, k=k)
    return np.asarray(dist).reshape(len(points1), k) ** 2, np.asarray(idx).reshape(len(points1), k)


@pytest.mark.parametrize(
    ("batch", "num1", "num2", "dim", "k"), [(1, 50, 80, 3, 1), (3, 40, 100, 3, 5), (2, 7, 30, 2, 4)]
)
def test_matches_kdtree(batch, num1, num2, dim, k):
    rng = np.random.default_rng(batch * 100 + k)
    p1 = rng.normal(size=(batch, num1, dim))
    p2 = rng.normal(size=(batch, num2, dim)) + 0.5  # off-centre clouds
    result = knn_points(torch.as_tensor(p1), torch.as_tensor(p2), k=k)
    assert result.sq_dist.shape == (batch, num1, k) and result.idx.dtype == torch.long
    for b in range(batch):
        sq_dist, idx = _kdtree_reference(p1[b], p2[b], k)
        np.testing.assert_array_equal(result.idx[b].numpy(), idx)
        np.testing.assert_allclose(result.sq_dist[b].numpy(), sq_dist, rtol=1e-10, atol=1e-12)
    assert torch.all(result.sq_dist[..., 1:] >= result.sq_dist[..., :-1])


def test_float32_far_from_origin_matches_kdtree():
    rng = np.random.default_rng(3)
    p1 = rng.normal(scale=0.05, size=(1, 300, 3)) + np.array([0.3, -0.2, 0.8])  # a hand in camera frame
    p2 = rng.normal(scale=0.05, size=(1, 2000, 3)) + np.array([0.3, -0.2, 0.8])
    result = knn_points(torch.as_tensor(p1, dtype=torch.float32), torch.as_tensor(p2, dtype=torch.float32), k=3)
    sq_dist, _ = _kdtree_reference(p1[0], p2[0], 3)
    np.testing.assert_allclose(result.sq_dist[0].numpy(), sq_dist, rtol=1e-4, atol=1e-10)


def test_chunked_search_equals_single_block(monkeypatch):
    rng = np.random.default_rng(4)
    p1 = torch.tensor(rng.normal(size=(3, 37, 3)))
    p2 = torch.tensor(rng.normal(size=(3, 23, 3)))
    whole = knn_points(p1, p2, k=4)
    nearest = knn_points(p1, p2, k=1)
    for budget in (50, 10):  # 50 < B * P2: per-batch loop; 10 < P2: one row at a time
        monkeypatch.setattr(knn_module, "_pairwise_budget", lambda device, element_size, budget=budget: budget)
        chunked = knn_points(p1, p2, k=4)
        torch.testing.assert_close(chunked.sq_dist, whole.sq_dist)
        torch.testing.assert_close(chunked.idx, whole.idx)
        chunked_nearest = knn_points(p1, p2, k=1)  # the min path, chunked
        torch.testing.assert_close(chunked_nearest.idx, whole.idx[..., :1])
        torch.testing.assert_close(chunked_nearest.sq_dist, nearest.sq_dist)


def test_nearest_neighbour_min_path_matches_kdtree():
    """K = 1 uses argmin over squared distances (no topk): same indices and distances as scipy's k-d tree."""
    rng = np.random.default_rng(6)
    p1 = rng.normal(scale=0.05, size=(4, 200, 3)) + np.array([0.3, -0.2, 0.8])
    p2 = rng.normal(scale=0.05, size=(4, 500, 3)) + np.array([0.3, -0.2, 0.8])
    result = knn_points(torch.as_tensor(p1), torch.as_tensor(p2), k=1)
    for b in range(4):
        sq_dist, idx = _kdtree_reference(p1[b], p2[b], 1)
        np.testing.assert_array_equal(result.idx[b].numpy(), idx)
        np.testing.assert_allclose(result.sq_dist[b].numpy(), sq_dist, rtol=1e-10)


def test_padded_lengths():
    rng = np.random.default_rng(5)
    p1 = rng.normal(size=(2, 12, 3))
    p2 = rng.normal(size=(2, 9, 3))
    lengths1 = torch.tensor([12, 7])
    lengths2 = torch.tensor([3, 9])
    result = knn_points(torch.as_tensor(p1), torch.as_tensor(p2), k=5, lengths1=lengths1, lengths2=lengths2)
    # batch 0: only 3 valid neighbours, so slots 3..4 are padding
    sq_dist, idx = _kdtree_reference(p1[0], p2[0, :3], 3)
    np.testing.assert_array_equal(result.idx[0, :, :3].numpy(), idx)
    np.testing.assert_allclose(result.sq_dist[0, :, :3].numpy(), sq_dist, rtol=1e-10)
    assert torch.all(result.idx[0, :, 3:] == -1) and torch.all(torch.isinf(result.sq_dist[0, :, 3:]))
    # batch 1: rows 7.. are padded queries
    sq_dist, idx = _kdtree_reference(p1[1, :7], p2[1], 5)
    np.testing.assert_array_equal(result.idx[1, :7].numpy(), idx)
    assert torch.all(result.idx[1, 7:] == -1) and torch.all(torch.isinf(result.sq_dist[1, 7:]))


def test_k_larger_than_cloud_and_empty_inputs():
    p1 = torch.rand(1, 4, 3, dtype=torch.float64)
    p2 = torch.rand(1, 2, 3, dtype=torch.float64)
    result = knn_points(p1, p2, k=3)
    assert torch.all(result.idx[..., 2] == -1) and torch.all(torch.isinf(result.sq_dist[..., 2]))
    assert torch.all(result.idx[..., :2] >= 0)
    empty_query = knn_points(torch.zeros(2, 0, 3), torch.rand(2, 5, 3), k=2)
    assert empty_query.sq_dist.shape == (2, 0, 2)
    no_reference = knn_points(torch.rand(1, 3, 3), torch.zeros(1, 0, 3), k=2)
    assert torch.all(no_reference.idx == -1) and torch.all(torch.isinf(no_reference.sq_dist))


def test_gradients_match_naive_and_gradcheck():
    rng = np.random.default_rng(6)
    p1 = torch.tensor(rng.normal(size=(2, 6, 3)), requires_grad=True)
    p2 = torch.tensor(rng.normal(size=(2, 9, 3)), requires_grad=True)
    result = knn_points(p1, p2, k=2)
    result.sq_dist.sum().backward()
    neighbours = knn_gather(p2.detach(), result.idx)  # (B, P1, K, 3)
    expected_p1 = 2.0 * (p1.detach()[:, :, None] - neighbours).sum(2)
    torch.testing.assert_close(p1.grad, expected_p1)
    expected_p2 = torch.zeros_like(p2)
    for b in range(2):
        for i in range(6):
            for j in range(2):
                expected_p2[b, result.idx[b, i, j]] -= 2.0 * (p1[b, i] - p2[b, result.idx[b, i, j]]).detach()
    torch.testing.assert_close(p2.grad, expected_p2)

    small1 = torch.tensor(rng.normal(size=(2, 4, 3)), requires_grad=True)
    small2 = torch.tensor(rng.normal(size=(2, 5, 3)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: knn_points(a, b, k=3).sq_dist, (small1, small2))


def test_knn_gather_matches_loop_and_zeroes_padding():
    rng = np.random.default_rng(7)
    x = torch.tensor(rng.normal(size=(2, 5, 4)))
    idx = torch.tensor([[[0, 4], [2, -1]], [[3, 3], [-1, -1]]])
    out = knn_gather(x, idx)
    assert out.shape == (2, 2, 2, 4)
    for b in range(2):
        for i in range(2):
            for j in range(2):
                expected = torch.zeros(4, dtype=x.dtype) if idx[b, i, j] < 0 else x[b, idx[b, i, j]]
                torch.testing.assert_close(out[b, i, j], expected)


def test_invalid_inputs_raise_input_error():
    with pytest.raises(InputError):
        knn_points(torch.rand(5, 3), torch.rand(1, 5, 3))
    with pytest.raises(InputError):
        knn_points(torch.rand(1, 5, 3), torch.rand(2, 5, 3))
    with pytest.raises(InputError):
        knn_points(torch.rand(1, 5, 3), torch.rand(1, 5, 3), k=0)
    with pytest.raises(InputError):
        knn_points(torch.rand(1, 5, 3), torch.rand(1, 5, 3), lengths2=torch.tensor([6]))
    with pytest.raises(InputError):
        knn_gather(torch.rand(1, 5, 3), torch.zeros(1, 2, 2, dtype=torch.int32))


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu():
    rng = np.random.default_rng(8)
    p1 = torch.tensor(rng.normal(size=(2, 100, 3)), dtype=torch.float32)
    p2 = torch.tensor(rng.normal(size=(2, 300, 3)), dtype=torch.float32)
    cpu = knn_points(p1, p2, k=4, lengths2=torch.tensor([300, 120]))
    gpu = knn_points(p1.cuda(), p2.cuda(), k=4, lengths2=torch.tensor([300, 120]).cuda())
    torch.testing.assert_close(gpu.sq_dist.cpu(), cpu.sq_dist)
    torch.testing.assert_close(gpu.idx.cpu(), cpu.idx)
