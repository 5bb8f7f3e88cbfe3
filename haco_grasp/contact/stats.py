"""Label statistics of a contact dataset: per-vertex means, the stacked labels and the class-count tables.

HACO (haco.md §3 and §4) needs three statistics of its training labels:

- the **count tables** of the VCB loss: for every vertex the number of samples without / with contact
  (``vertex_counts`` (V, 2), columns ``[n_0, n_1]``) and the same for all vertices pooled (``global_counts`` (2,));
- the **per-vertex mean** contact (``means`` (V,)), the target of the regularisation term and the reference of the
  balanced sampler's score;
- the **stacked labels** (N, V) themselves (HACO's ``contact_data_all.npy``), which the sampler scores.

:class:`ContactStats` holds all of them, is built from any labelled dataset (anything with ``labels()`` returning
(N, V) binary labels, see :mod:`haco_grasp.contact.datasets`) or from a label array, and is saved to / loaded from
one ``.npz`` file (no pickle).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from haco_grasp.errors import AssetError, InputError

__all__ = ["ContactStats", "rescale_counts"]

_STATS_FORMAT_VERSION = 1


def rescale_counts(counts: np.ndarray, total: float = 1000.0) -> np.ndarray:
    """Rescale each row of a class-count table to sum to ``total`` (HACO rescales every pair to 1000).

    Args:
        counts: (..., 2) non-negative counts ``[n_0, n_1]``; a row summing to 0 becomes ``[total/2, total/2]``
        total: the target row sum

    Returns:
        (..., 2) float64 rescaled counts
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.shape[-1:] != (2,):
        raise InputError(f"counts must have shape (..., 2) (columns n_0, n_1), got {table.shape}")
    if np.any(table < 0) or not np.all(np.isfinite(table)):
        raise InputError("counts must be finite and non-negative; pass class counts [n_0, n_1]")
    sums = table.sum(axis=-1, keepdims=True)
    safe = np.where(sums > 0, sums, 1.0)
    return np.where(sums > 0, table / safe * total, total / 2.0)


def _binary_labels(labels: Any, name: str = "labels") -> np.ndarray:
    try:
        array = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be a numeric (N, V) array, got {type(labels).__name__}: {error}") from None
    if array.ndim != 2:
        raise InputError(f"{name} must have shape (N, V), got {array.shape}; stack one row of labels per sample")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contains NaN or inf; drop invalid samples first")
    return array >= 0.5


@dataclass
class ContactStats:
    """Statistics of the binary contact labels of one (or several pooled) datasets.

    Attributes:
        means: (V,) float64, per-vertex fraction of samples in contact
        vertex_counts: (V, 2) int64, per-vertex counts ``[n_0, n_1]`` (samples without / with contact)
        global_counts: (2,) int64, counts over all vertices and samples ``[n_0, n_1]``
        labels: (N, V) uint8 stacked labels, or None when not kept
        num_samples: N
    """

    means: np.ndarray
    vertex_counts: np.ndarray
    global_counts: np.ndarray
    labels: np.ndarray | None
    num_samples: int

    @property
    def num_verts(self) -> int:
        """V, the number of vertices the labels cover (778 for MANO)."""
        return int(self.means.shape[0])

    @classmethod
    def from_labels(cls, labels: Any, keep_labels: bool = True) -> ContactStats:
        """Statistics of a label array (values >= 0.5 count as contact).

        Args:
            labels: (N, V) binary or float labels, N >= 1
            keep_labels: store the (N, V) uint8 labels (needed by the balanced sampler)

        Returns:
            ContactStats
        """
        binary = _binary_labels(labels)
        if binary.shape[0] == 0:
            raise InputError("labels must hold at least one sample, got N = 0")
        ones = binary.sum(axis=0).astype(np.int64)  # (V,)
        zeros = binary.shape[0] - ones
        vertex_counts = np.stack([zeros, ones], axis=1)  # (V, 2)
        return cls(
            means=binary.mean(axis=0),
            vertex_counts=vertex_counts,
            global_counts=vertex_counts.sum(axis=0),
            labels=binary.astype(np.uint8) if keep_labels else None,
            num_samples=int(binary.shape[0]),
        )

    @classmethod
    def from_dataset(cls, dataset: Any, keep_labels: bool = True) -> ContactStats:
        """Statistics of a dataset with a ``labels()`` method returning (N, V) labels.

        Args:
            dataset: a :class:`~haco_grasp.contact.datasets.ContactDataset` (or several: pass a list to pool them)
            keep_labels: store the stacked labels

        Returns:
            ContactStats
        """
        parts = dataset if isinstance(dataset, (list, tuple)) else [dataset]
        arrays = []
        for part in parts:
            if not callable(getattr(part, "labels", None)):
                raise InputError(
                    f"dataset must have a labels() method returning (N, V) contact labels, got {type(part).__name__}"
                )
            arrays.append(np.asarray(part.labels()))
        return cls.from_labels(np.concatenate(arrays, axis=0), keep_labels=keep_labels)

    def rescaled_vertex_counts(self, total: float = 1000.0) -> np.ndarray:
        """(V, 2) float64 per-vertex counts rescaled so that every row sums to ``total``."""
        return rescale_counts(self.vertex_counts, total)

    def rescaled_global_counts(self, total: float = 1000.0) -> np.ndarray:
        """(2,) float64 global counts rescaled to sum to ``total``."""
        return rescale_counts(self.global_counts, total)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the statistics to one ``.npz`` file (labels included when kept).

        Args:
            path: destination file (``.npz`` is appended by numpy when missing)

        Returns:
            the written path
        """
        target = Path(path)
        if target.suffix != ".npz":
            target = target.with_name(target.name + ".npz")
        target.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "format_version": np.array(_STATS_FORMAT_VERSION),
            "means": self.means,
            "vertex_counts": self.vertex_counts,
            "global_counts": self.global_counts,
            "num_samples": np.array(self.num_samples),
        }
        if self.labels is not None:
            arrays["labels"] = self.labels
        np.savez_compressed(target, **arrays)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ContactStats:
        """Read statistics written by :meth:`save`.

        Args:
            path: the ``.npz`` file

        Returns:
            ContactStats
        """
        source = Path(path)
        if not source.is_file():
            raise AssetError(f"contact statistics file not found: {source}; write one with ContactStats.save")
        with np.load(source, allow_pickle=False) as data:
            missing = {"means", "vertex_counts", "global_counts", "num_samples"} - set(data.files)
            if missing:
                raise InputError(f"{source} is not a ContactStats file: missing {sorted(missing)}")
            return cls(
                means=np.asarray(data["means"], dtype=np.float64),
                vertex_counts=np.asarray(data["vertex_counts"], dtype=np.int64),
                global_counts=np.asarray(data["global_counts"], dtype=np.int64),
                labels=np.asarray(data["labels"], dtype=np.uint8) if "labels" in data.files else None,
                num_samples=int(data["num_samples"]),
            )
