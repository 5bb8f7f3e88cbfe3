"""ContactStats: counts against loops, rescaling by hand, save/load, datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from haco_grasp.contact.stats import ContactStats, rescale_counts
from haco_grasp.errors import AssetError, InputError


def test_counts_match_loop() -> None:
    labels = (np.random.default_rng(0).random((25, 11)) < 0.3).astype(np.float32)
    stats = ContactStats.from_labels(labels)
    for v in range(11):
        ones = sum(1 for n in range(25) if labels[n, v] >= 0.5)
        assert stats.vertex_counts[v].tolist() == [25 - ones, ones]
        assert stats.means[v] == pytest.approx(ones / 25)
    assert stats.global_counts.tolist() == [int((labels < 0.5).sum()), int((labels >= 0.5).sum())]
    assert stats.num_samples == 25 and stats.num_verts == 11
    np.testing.assert_array_equal(stats.labels, labels.astype(np.uint8))


def test_soft_labels_threshold_at_half() -> None:
    stats = ContactStats.from_labels(np.array([[0.49, 0.5, 0.9]]))
    assert stats.vertex_counts[:, 1].tolist() == [0, 1, 1]


def test_rescale_by_hand() -> None:
    np.testing.assert_allclose(rescale_counts(np.array([3, 1])), [750.0, 250.0])
    np.testing.assert_allclose(rescale_counts(np.array([[0, 0], [1, 4]])), [[500.0, 500.0], [200.0, 800.0]])
    with pytest.raises(InputError):
        rescale_counts(np.array([1, 2, 3]))
    with pytest.raises(InputError):
        rescale_counts(np.array([-1, 2]))


@pytest.mark.parametrize("keep", [True, False])
def test_save_load_roundtrip(tmp_path: Path, keep: bool) -> None:
    labels = (np.random.default_rng(1).random((9, 5)) < 0.5).astype(np.float64)
    stats = ContactStats.from_labels(labels, keep_labels=keep)
    path = stats.save(tmp_path / "stats")
    assert path.suffix == ".npz"
    loaded = ContactStats.load(path)
    np.testing.assert_array_equal(loaded.vertex_counts, stats.vertex_counts)
    np.testing.assert_array_equal(loaded.global_counts, stats.global_counts)
    np.testing.assert_allclose(loaded.means, stats.means)
    assert (loaded.labels is None) == (not keep)
    assert loaded.num_samples == 9


def test_from_dataset_pools_several() -> None:
    class Stub:
        def __init__(self, labels: np.ndarray) -> None:
            self._labels = labels

        def labels(self) -> np.ndarray:
            return self._labels

    a, b = np.ones((2, 3)), np.zeros((3, 3))
    stats = ContactStats.from_dataset([Stub(a), Stub(b)])
    np.testing.assert_allclose(stats.means, [0.4, 0.4, 0.4])
    with pytest.raises(InputError, match="labels"):
        ContactStats.from_dataset(object())


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(AssetError):
        ContactStats.load(tmp_path / "missing.npz")
    with pytest.raises(InputError):
        ContactStats.from_labels(np.zeros((0, 4)))
    with pytest.raises(InputError):
        ContactStats.from_labels(np.zeros(4))
