"""Balanced contact sampling: scores, edges against the formula, bins, resampling counts, drops, the sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
from torch.utils.data import DataLoader

from haco_grasp.contact.sampling import (
    BalancedContactSampler,
    balance_bin_edges,
    balanced_indices,
    contact_balance_scores,
)
from haco_grasp.errors import InputError


def make_labels(seed: int = 0, n: int = 200, v: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.05, 0.6, size=v)
    labels = (rng.random((n, v)) < rates[None] * rng.uniform(0.2, 1.5, size=(n, 1))).astype(np.float64)
    labels[:7] = 0.0  # zero-contact samples
    return labels


def test_scores_match_loop() -> None:
    labels = make_labels(n=30, v=9)
    mean = labels.mean(axis=0)
    got = contact_balance_scores(labels)
    for i in range(30):
        a = sum(labels[i, v] * (1 - mean[v]) for v in range(9)) / 9
        b = sum(labels[i, v] * mean[v] for v in range(9)) / 9
        assert got[i] == pytest.approx(a - b, abs=1e-12)
    other = np.full(9, 0.25)
    np.testing.assert_allclose(contact_balance_scores(labels, other), (labels * 0.75).mean(1) - (labels * 0.25).mean(1))


def test_edges_match_formula_and_reference_values() -> None:
    edges = balance_bin_edges(-1.0, 3.0)
    x = np.linspace(1e-5, 1.0, 6)
    for k in range(6):
        assert edges[k] == pytest.approx(-1.0 + 4.0 * math.log(1 + 5 * x[k]) / math.log(6))
    relative = (edges - edges[0]) / 4.0
    np.testing.assert_allclose(relative, [0.0, 0.39, 0.61, 0.77, 0.90, 1.0], atol=0.01)  # haco.md §4
    assert edges[0] > -1.0 and edges[-1] == pytest.approx(3.0)
    assert np.all(np.diff(np.diff(edges)) < 0)  # bins narrow towards high scores


def test_official_mode_bins_counts_and_drops() -> None:
    labels = make_labels()
    result = balanced_indices(labels, seed=3)
    scores = result.scores
    zero = np.flatnonzero(labels.sum(1) == 0)
    np.testing.assert_array_equal(result.dropped_zero_contact, zero)
    kept = np.setdiff1d(np.arange(len(labels)), zero)
    s_min, s_max = scores[kept].min(), scores[kept].max()
    np.testing.assert_allclose(result.edges, balance_bin_edges(s_min, s_max))
    # naive half-open binning
    expected_bins = np.full(len(labels), -1)
    for i in kept:
        for k in range(5):
            if result.edges[k] <= scores[i] < result.edges[k + 1]:
                expected_bins[i] = k
    np.testing.assert_array_equal(result.bin_of, expected_bins)
    # the min- and max-score samples are the edge drops
    dropped = set(result.dropped_edges.tolist())
    assert set(kept[scores[kept] == s_max]) <= dropped and set(kept[scores[kept] == s_min]) <= dropped
    assert dropped == set(kept[expected_bins[kept] < 0])
    # every non-empty bin resampled to int(mean bin size)
    sizes = np.bincount(expected_bins[expected_bins >= 0], minlength=5)
    np.testing.assert_array_equal(result.bin_sizes, sizes)
    target = int(sizes.mean())
    assert result.target_per_bin == target
    per_bin = np.bincount(result.bin_of[result.indices], minlength=5)
    np.testing.assert_array_equal(per_bin, np.where(sizes > 0, target, 0))
    # larger bins subsampled without replacement, smaller ones oversampled
    for k in range(5):
        chosen = result.indices[result.bin_of[result.indices] == k]
        if sizes[k] >= target:
            assert len(np.unique(chosen)) == len(chosen)
        elif sizes[k] > 0:
            assert len(np.unique(chosen)) <= sizes[k]
    assert not np.isin(result.indices, zero).any()


def test_inclusive_mode_keeps_min_and_max() -> None:
    labels = make_labels(1)
    result = balanced_indices(labels, seed=0, edge_mode="inclusive")
    assert result.dropped_edges.size == 0
    kept = labels.sum(1) > 0
    assert np.all(result.bin_of[kept] >= 0) and np.all(result.bin_of[~kept] == -1)


def test_seeded_and_shuffled() -> None:
    labels = make_labels(2)
    a, b = balanced_indices(labels, seed=5), balanced_indices(labels, seed=5)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, np.sort(a.indices))


def test_all_zero_contact() -> None:
    result = balanced_indices(np.zeros((4, 3)))
    assert result.indices.size == 0 and result.dropped_zero_contact.tolist() == [0, 1, 2, 3]
    with pytest.raises(InputError, match="zero contact"):
        BalancedContactSampler(np.zeros((4, 3)))


def test_sampler_epochs_shards_and_dataloader() -> None:
    labels = make_labels(3)
    sampler = BalancedContactSampler(labels, seed=1)
    first = list(sampler)
    assert sorted(first) == sorted(sampler.indices.tolist())
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == sorted(first) and second != first
    shards = [list(BalancedContactSampler(labels, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    merged = sorted(sum(shards, []))
    assert set(merged) == set(first) and len(merged) >= len(first)
    loader = DataLoader(list(range(len(labels))), batch_size=8, sampler=sampler)
    assert sum(len(batch) for batch in loader) == len(sampler)


def test_sampler_concatenated_datasets_offset() -> None:
    a, b = make_labels(4, n=50), make_labels(5, n=60)
    sampler = BalancedContactSampler([a, b], seed=0)
    first, second = sampler.results
    np.testing.assert_array_equal(
        np.sort(sampler.indices), np.sort(np.concatenate([first.indices, second.indices + 50]))
    )
