"""HACO losses against naive float64 loops, hand-computed cases and gradcheck."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from haco_grasp.contact.losses import (
    LOSS_NAMES,
    BaselineParams,
    baseline_loss,
    class_balanced_weights,
    coarse_targets,
    haco_loss,
    mesh_adjacency,
    regularization_loss,
    smoothness_loss,
    vcb_counts,
    vcb_loss,
    vcb_weights,
)
from haco_grasp.contact.stats import ContactStats
from haco_grasp.errors import InputError

# ---------------------------------------------------------------------------------------------- naive references


def naive_weights(counts: np.ndarray, beta: float, total: float = 1.0) -> np.ndarray:
    out = np.zeros_like(counts, dtype=np.float64)
    for row in range(counts.shape[0]):
        raw = [(1.0 - beta) / (1.0 - beta ** counts[row, c]) for c in range(2)]
        for c in range(2):
            out[row, c] = raw[c] / (raw[0] + raw[1]) * total
    return out


def naive_vcb_counts(vertex: np.ndarray, pooled: np.ndarray, epoch: int, epochs: int) -> np.ndarray:
    v = 0.3 * epoch / (epochs - 1) if epochs > 1 else 0.0
    g = [pooled[0] / (pooled[0] + pooled[1]) * 1000.0, pooled[1] / (pooled[0] + pooled[1]) * 1000.0]
    out = np.zeros((vertex.shape[0], 2))
    for i in range(vertex.shape[0]):
        s = vertex[i, 0] + vertex[i, 1]
        row = [vertex[i, c] / s * 1000.0 for c in range(2)]
        mixed = [max(v * row[c] + (1 - v) * g[c], 20.0) for c in range(2)]
        for c in range(2):
            out[i, c] = mixed[c] / (mixed[0] + mixed[1]) * 1000.0
    return out


def naive_vcb_loss(z: np.ndarray, y: np.ndarray, w: np.ndarray, fp: float) -> float:
    b, n = z.shape
    total, fp_sum = 0.0, 0.0
    for i in range(b):
        for j in range(n):
            p = 1.0 / (1.0 + math.exp(-z[i, j]))
            bce = -(y[i, j] * math.log(p) + (1 - y[i, j]) * math.log(1 - p))
            total += bce * (w[j, 1] if y[i, j] == 1 else w[j, 0])
            fp_sum += (1 - y[i, j]) * p
    return total / (b * n) + fp * fp_sum / (b * n)


def naive_baseline(name: str, z: np.ndarray, y: np.ndarray, counts: np.ndarray) -> float:
    params = BaselineParams()
    c = counts / counts.sum() * 1000.0
    raw = [(1 - params.beta) / (1 - params.beta ** c[k]) for k in range(2)]
    cbw = [raw[k] / (raw[0] + raw[1]) * 2.0 for k in range(2)]
    inv = [c[k] ** -0.25 for k in range(2)]
    margins = [inv[k] / max(inv) * params.ldam_max_margin for k in range(2)]
    vals = []
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            t, x = y[i, j], z[i, j]
            p = 1 / (1 + math.exp(-x))
            bce = -(t * math.log(p) + (1 - t) * math.log(1 - p))
            pt = p if t == 1 else 1 - p
            if name == "bce":
                vals.append(bce)
            elif name == "l1":
                vals.append(abs(p - t))
            elif name == "l2":
                vals.append((p - t) ** 2)
            elif name == "focal":
                a = params.focal_alpha if t == 1 else 1 - params.focal_alpha
                vals.append(a * (1 - pt) ** params.focal_gamma * bce)
            elif name == "cb":
                vals.append(cbw[int(t)] * bce)
            elif name == "cb-focal":
                vals.append(cbw[int(t)] * (1 - pt) ** params.focal_gamma * bce)
            elif name == "ldam":
                xs = x - margins[1] if t == 1 else x + margins[0]
                ps = 1 / (1 + math.exp(-xs))
                vals.append(-(t * math.log(ps) + (1 - t) * math.log(1 - ps)))
            elif name == "asymmetric":
                pm = max(p - params.asl_clip, 0.0)
                if t == 1:
                    vals.append(-((1 - p) ** params.asl_gamma_pos) * math.log(p))
                else:
                    vals.append(-(pm**params.asl_gamma_neg) * math.log(1 - pm))
            elif name == "poly":
                vals.append(bce + params.poly_epsilon * (1 - pt))
    return float(np.mean(vals))


def naive_smoothness(z: np.ndarray, faces: np.ndarray) -> float:
    n = z.shape[1]
    a = np.eye(n)
    for f in faces:
        for u, v in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            a[u, v] += 1.0
            a[v, u] += 1.0
    out = []
    for row in z:
        p = 1 / (1 + np.exp(-row))
        pc, pn = a @ p, a @ (1 - p)
        iso = np.abs(p - pc / (pc.max() + 1e-6)).sum() + np.abs((1 - p) - pn / (pn.max() + 1e-6)).sum()
        out.append(math.log(1 + iso / (pc.sum() + pn.sum() + 1e-3)))
    return float(np.mean(out))


FACES = np.array([[0, 1, 2], [1, 3, 2], [2, 3, 4], [4, 5, 2]], dtype=np.int64)


def random_case(seed: int, b: int = 3, n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(b, n, generator=gen, dtype=torch.float64) * 2
    y = (torch.rand(b, n, generator=gen, dtype=torch.float64) < 0.3).double()
    return z, y


# ---------------------------------------------------------------------------------------------- weights


@pytest.mark.parametrize("beta", [0.9, 0.999, 0.9999])
def test_class_balanced_weights_match_loop(beta: float) -> None:
    counts = np.array([[900.0, 100.0], [20.0, 980.0], [500.0, 500.0], [3.0, 7.0]])
    got = class_balanced_weights(torch.tensor(counts), beta).numpy()
    np.testing.assert_allclose(got, naive_weights(counts, beta), rtol=1e-10)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)
    assert got[0, 1] > got[0, 0]  # the rarer class weighs more


def test_class_balanced_weights_rejects_zero_counts() -> None:
    with pytest.raises(InputError):
        class_balanced_weights(torch.tensor([[0.0, 5.0]]))


@pytest.mark.parametrize("epochs", [1, 2, 10])
def test_vcb_counts_match_loop(epochs: int) -> None:
    rng = np.random.default_rng(0)
    vertex = rng.integers(1, 500, size=(30, 2)).astype(np.float64)
    vertex[3] = [1000.0, 1.0]  # a vertex almost never in contact: the clamp at 20 applies late in training
    pooled = np.array([7000.0, 1300.0])
    for epoch in range(epochs):
        got = vcb_counts(vertex, pooled, epoch, epochs)
        np.testing.assert_allclose(got, naive_vcb_counts(vertex, pooled, epoch, epochs), rtol=1e-12)
        np.testing.assert_allclose(got.sum(axis=1), 1000.0)


def test_vcb_counts_hand_computed() -> None:
    vertex = np.array([[1000.0, 0.0]])
    pooled = np.array([990.0, 10.0])
    # epoch 0: the global table only, 10 clamped to 20 -> [990, 20] / 1010 * 1000
    np.testing.assert_allclose(vcb_counts(vertex, pooled, 0, 10), [[990.0 / 1010.0 * 1000.0, 20.0 / 1010.0 * 1000.0]])
    # epoch 9 of 10: v = 0.3 -> [0.3*1000 + 0.7*990, 0.7*10] = [993, 7] -> clamp [993, 20] -> /1013*1000
    np.testing.assert_allclose(vcb_counts(vertex, pooled, 9, 10), [[993.0 / 1013.0 * 1000.0, 20.0 / 1013.0 * 1000.0]])


def test_vcb_counts_epoch_zero_clamps_global() -> None:
    # global [995, 5]: 5 < 20 -> [995, 20] -> renormalised
    got = vcb_counts(np.array([[10.0, 10.0]]), np.array([995.0, 5.0]), 0, 10)
    np.testing.assert_allclose(got, [[995.0 / 1015.0 * 1000.0, 20.0 / 1015.0 * 1000.0]])


def test_vcb_weights_coarse_level_uses_regressor_on_counts() -> None:
    labels = (np.random.default_rng(1).random((40, 6)) < 0.3).astype(np.float64)
    labels[0] = 1.0
    stats = ContactStats.from_labels(labels)
    regressor = torch.tensor([[0.5, 0.5, 0, 0, 0, 0], [0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0], [0, 0, 0, 0, 0, 1.0]])
    got = vcb_weights(stats, 4, 10, regressor=regressor, dtype=torch.float64).numpy()
    table = naive_vcb_counts(stats.vertex_counts.astype(np.float64), stats.global_counts.astype(np.float64), 4, 10)
    expected = naive_weights(regressor.double().numpy() @ table, 0.9999)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_vcb_weights_paper_form_uses_per_vertex_counts() -> None:
    labels = np.array([[1, 0], [1, 0], [0, 0], [1, 1]], dtype=np.float64)
    stats = ContactStats.from_labels(labels)
    got = vcb_weights(stats, 0, 10, form="paper", dtype=torch.float64).numpy()
    # vertex 0: [1, 3] of 4 -> [250, 750]; vertex 1: [3, 1] -> [750, 250]
    expected = naive_weights(np.array([[250.0, 750.0], [750.0, 250.0]]), 0.9999)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


# ---------------------------------------------------------------------------------------------- VCB loss


@pytest.mark.parametrize("fp", [0.0, 0.5])
def test_vcb_loss_matches_loop(fp: float) -> None:
    z, y = random_case(0)
    w = torch.rand(z.shape[1], 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    w = w / w.sum(dim=1, keepdim=True)
    got = vcb_loss(z, y, w, fp).item()
    assert got == pytest.approx(naive_vcb_loss(z.numpy(), y.numpy(), w.numpy(), fp), rel=1e-12)


def test_vcb_loss_hand_computed() -> None:
    # z = 0: p = 0.5, BCE = ln 2 for both classes; weights [0.25, 0.75]
    z = torch.zeros(1, 2, dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    w = torch.tensor([[0.25, 0.75], [0.25, 0.75]], dtype=torch.float64)
    expected = (math.log(2) * 0.75 + math.log(2) * 0.25) / 2 + 0.5 * (0.5 / 2)
    assert vcb_loss(z, y, w).item() == pytest.approx(expected, rel=1e-12)


def test_vcb_loss_gradcheck() -> None:
    z, y = random_case(1, b=2, n=4)
    w = torch.tensor([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: vcb_loss(x, y, w), (z,))


# ---------------------------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("name", [n for n in LOSS_NAMES if not n.startswith("vcb")])
def test_baselines_match_loop(name: str) -> None:
    z, y = random_case(2, b=2, n=9)
    counts = np.array([8000.0, 1500.0])
    got = baseline_loss(name, z, y, counts).item()
    assert got == pytest.approx(naive_baseline(name, z.numpy(), y.numpy(), counts), rel=1e-9)


@pytest.mark.parametrize("name", [n for n in LOSS_NAMES if not n.startswith("vcb")])
def test_baselines_gradcheck(name: str) -> None:
    z, y = random_case(4, b=2, n=3)
    z = (z + 0.3).requires_grad_(True)  # away from the kinks of asymmetric's clip and l1's |.|
    counts = torch.tensor([700.0, 300.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: baseline_loss(name, x, y, counts), (z,))


def test_baseline_unknown_name_lists_candidates() -> None:
    z, y = random_case(0)
    with pytest.raises(InputError, match="focal"):
        baseline_loss("hinge", z, y)
    with pytest.raises(InputError, match="global_counts"):
        baseline_loss("cb", z, y)


# ---------------------------------------------------------------------------------------------- smoothness, reg


def test_adjacency_keeps_duplicate_edges() -> None:
    rows, cols = mesh_adjacency(FACES, 6)
    dense = np.zeros((6, 6))
    np.add.at(dense, (rows.numpy(), cols.numpy()), 1.0)
    assert dense[1, 2] == 2.0 and dense[2, 1] == 2.0  # edge 1-2 is shared by two faces
    assert dense[0, 1] == 1.0
    np.testing.assert_array_equal(dense, dense.T)


@pytest.mark.parametrize("batch", [1, 3])
def test_smoothness_matches_dense_loop(batch: int) -> None:
    z, _ = random_case(5, b=batch, n=6)
    assert smoothness_loss(z, FACES).item() == pytest.approx(naive_smoothness(z.numpy(), FACES), rel=1e-12)


def test_smoothness_gradcheck() -> None:
    z, _ = random_case(6, b=2, n=6)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: smoothness_loss(x, FACES), (z,))


def test_smoothness_lower_for_smooth_maps() -> None:
    faces = np.array([[i, i + 1, i + 2] for i in range(20)])
    smooth = torch.linspace(-3, 3, 22, dtype=torch.float64)[None]
    noisy = smooth * torch.tensor([(-1.0) ** i for i in range(22)], dtype=torch.float64)
    assert smoothness_loss(smooth, faces) < smoothness_loss(noisy, faces)


def test_regularization_matches_loop() -> None:
    z, _ = random_case(7)
    mean = np.linspace(0.0, 1.0, z.shape[1])
    p = 1 / (1 + np.exp(-z.numpy()))
    assert regularization_loss(z, mean).item() == pytest.approx(np.abs(p - mean[None]).mean(), rel=1e-12)


def test_coarse_targets_any_vertex() -> None:
    labels = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    regressor = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])
    np.testing.assert_array_equal(coarse_targets(labels, regressor).numpy(), [[1.0, 0.0]])


# ---------------------------------------------------------------------------------------------- total


def test_haco_loss_is_the_weighted_sum() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 6
    labels_np = (np.random.default_rng(0).random((30, n)) < 0.4).astype(np.float64)
    stats = ContactStats.from_labels(labels_np)
    regressors = {key: torch.rand(rows, n, generator=gen, dtype=torch.float64) for key, rows in
                  (("336", 4), ("84", 3), ("joint", 2))}  # fmt: skip
    z = torch.randn(2, n, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(labels_np[:2])
    output = SimpleNamespace(
        contact_logits=z,
        contact_336_logits=z @ regressors["336"].T,
        contact_84_logits=z @ regressors["84"].T,
        contact_joint_logits=z @ regressors["joint"].T,
    )
    result = haco_loss(output, y, stats, 3, 10, FACES, regressors)
    expected = vcb_loss(z, y, vcb_weights(stats, 3, 10, dtype=torch.float64))
    for key, attribute in (
        ("336", "contact_336_logits"),
        ("84", "contact_84_logits"),
        ("joint", "contact_joint_logits"),
    ):
        weights = vcb_weights(stats, 3, 10, regressor=regressors[key], dtype=torch.float64)
        expected = expected + vcb_loss(getattr(output, attribute), coarse_targets(y, regressors[key]), weights)
    expected = expected + 0.1 * regularization_loss(z, stats.means) + smoothness_loss(z, FACES)
    assert result.total.item() == pytest.approx(expected.item(), rel=1e-12)
    assert set(result.terms) == {"778", "336", "84", "joint", "reg", "smooth"}
    result.total.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_haco_loss_rejects_unknown_loss_and_shapes() -> None:
    stats = ContactStats.from_labels(np.ones((2, 6)))
    output = SimpleNamespace(contact_logits=torch.zeros(2, 6))
    with pytest.raises(InputError, match="unknown loss"):
        haco_loss(output, torch.zeros(2, 6), stats, 0, 10, FACES, loss="dice")
    with pytest.raises(InputError, match="shape"):
        haco_loss(output, torch.zeros(2, 5), stats, 0, 10, FACES)
