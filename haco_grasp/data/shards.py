"""A sharded on-disk store of training samples: written once, resumable, read by memory map.

Layout (one dataset root; ``split`` is ``"train"`` or ``"test"``)::

    <root>/
        index.json                      format, version, the resolved preparation config, the split by object,
                                        per-split counts, one entry per finished shard (rebuilt after every shard)
        <split>/shard_00000/            one finished shard: a folder of .npy arrays + shard.json
            shard.json                  split, index, seeds, objects, counts, seconds, array names and shapes
            <name>.npy                  one array per name (np.load(..., mmap_mode="r"), no pickle)
        <split>/.shard_00003.tmp-<pid>-<n>/   a shard being written (removed when a run resumes)

**Atomic shards.** A shard is written into a temporary folder beside its final place and renamed in one
``os.replace`` (atomic on one filesystem), so a shard folder either holds every array and its ``shard.json`` or does
not exist. A killed run leaves at most temporary folders, which :func:`remove_stale_shards` deletes; a resumed run
skips finished shards (:func:`is_finished`) and redoes the rest. ``index.json`` is written atomically
(:func:`haco_grasp.atomic.atomic_write_bytes`) from the ``shard.json`` files, so it never lists a shard that is
not there.

**Reading.** :class:`ShardTable` lists the finished shards of a split in index order and maps a global sample
number to (shard, row); :meth:`ShardTable.array` memory-maps one array of one shard, so a map-style dataset reads
only the rows it is asked for and never holds the whole split in memory. This module imports numpy only: reading
prepared shards (the GPU training path) needs neither open3d nor the renderer.

The producers live with their models: HACO crops in :func:`haco_crop_arrays` (here, over
:mod:`haco_grasp.data.images`), DeepContact samples in :mod:`contactopt_bridge.shards`; the command that plans,
parallelises and resumes a whole dataset is ``haco-grasp prepare-data`` (:mod:`haco_grasp.prepare_data`).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from haco_grasp.atomic import atomic_write_bytes
from haco_grasp.errors import AssetError, InputError

logger = logging.getLogger(__name__)

#: Format name and version written to ``index.json`` and every ``shard.json``.
SHARD_FORMAT = "haco_grasp.shards"
SHARD_FORMAT_VERSION = 1
#: The splits a dataset holds (split by object: no object of "test" appears in "train").
SPLITS: tuple[str, ...] = ("train", "test")
_COUNTER = itertools.count()


def shard_name(index: int) -> str:
    """Folder name of shard ``index`` (``shard_00012``)."""
    return f"shard_{int(index):05d}"


def shard_dir(root: str | os.PathLike[str], split: str, index: int) -> Path:
    """Final folder of shard ``index`` of ``split``."""
    _check_split(split)
    return Path(root) / split / shard_name(index)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def is_finished(root: str | os.PathLike[str], split: str, index: int) -> bool:
    """Whether shard ``index`` of ``split`` was written completely (its folder exists with ``shard.json``)."""
    return (shard_dir(root, split, index) / "shard.json").is_file()


def remove_stale_shards(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary folders of shards whose writer was killed; returns what was removed.

    Only call this while no other process writes under ``root`` (``prepare-data`` calls it before starting its
    workers).
    """
    removed = []
    for split in SPLITS:
        folder = Path(root) / split
        if not folder.is_dir():
            continue
        for stale in sorted(folder.glob(".shard_*.tmp-*")):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    if removed:
        logger.info("removed %d unfinished shard folder(s) left by a killed run under %s", len(removed), root)
    return removed


def write_shard(
    root: str | os.PathLike[str], split: str, index: int, arrays: dict[str, np.ndarray], record: dict[str, Any]
) -> Path:
    """Write one shard atomically: arrays as ``<name>.npy`` and ``record`` (+ array shapes) as ``shard.json``.

    Args:
        root: dataset root.
        split: "train" or "test".
        index: shard number within the split.
        arrays: name -> array (numeric, bool or fixed-width unicode; no objects).
        record: JSON-serialisable description (seeds, objects, counts, seconds).

    Returns:
        The final shard folder.

    Raises:
        InputError: on an object array or a bad name.
    """
    final = shard_dir(root, split, index)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.parent / f".{final.name}.tmp-{os.getpid()}-{next(_COUNTER)}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        shapes = {}
        for name, array in arrays.items():
            value = np.asarray(array)
            if value.dtype == object or not name.replace("_", "").isalnum():
                raise InputError(f"shard array {name!r} must have a plain name and a non-object dtype")
            np.save(temporary / f"{name}.npy", value, allow_pickle=False)
            shapes[name] = {"shape": list(value.shape), "dtype": str(value.dtype)}
        full = {"format": SHARD_FORMAT, "format_version": SHARD_FORMAT_VERSION, "split": split, "index": int(index)}
        full.update(record)
        full["arrays"] = shapes
        (temporary / "shard.json").write_text(json.dumps(full, indent=2, default=_json_default) + "\n")
        try:
            os.replace(temporary, final)
        except OSError:  # another writer finished the same shard first: keep theirs
            if not is_finished(root, split, index):
                raise
            shutil.rmtree(temporary, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def read_shard_record(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``shard.json`` of a finished shard folder."""
    path = Path(folder) / "shard.json"
    if not path.is_file():
        raise AssetError(f"{path} not found: {folder} is not a finished shard")
    return json.loads(path.read_text())


def finished_shards(root: str | os.PathLike[str], split: str) -> list[dict[str, Any]]:
    """Records of the finished shards of ``split``, in index order."""
    _check_split(split)
    folder = Path(root) / split
    if not folder.is_dir():
        return []
    records = [read_shard_record(path) for path in sorted(folder.glob("shard_*")) if (path / "shard.json").is_file()]
    return sorted(records, key=lambda r: r["index"])


def write_index(
    root: str | os.PathLike[str],
    config: dict[str, Any],
    split_objects: dict[str, Sequence[str]],
    provenance: dict[str, Any] | None = None,
) -> Path:
    """(Re)write ``index.json`` from the finished shards (atomically).

    Args:
        root: dataset root.
        config: the resolved preparation config (JSON-serialisable).
        split_objects: split -> object names of that split (the split by object).
        provenance: who wrote it (command, commit, versions, date), stored as given.

    Returns:
        The index path.
    """
    index: dict[str, Any] = {
        "format": SHARD_FORMAT,
        "format_version": SHARD_FORMAT_VERSION,
        "config": config,
        "provenance": provenance or {},
        "split_by_object": {split: sorted(names) for split, names in split_objects.items()},
        "counts": {},
        "shards": {},
    }
    for split in SPLITS:
        records = finished_shards(root, split)
        counts: dict[str, int] = {}
        for record in records:
            for key, value in record.get("counts", {}).items():
                counts[key] = counts.get(key, 0) + int(value)
        index["counts"][split] = {"shards": len(records), **counts}
        index["shards"][split] = [
            {"name": f"{split}/{shard_name(r['index'])}", "index": r["index"], "counts": r.get("counts", {}),
             "seeds": r.get("seeds", {}), "objects": r.get("objects", [])}
            for r in records
        ]  # fmt: skip
    path = Path(root) / "index.json"
    atomic_write_bytes(path, (json.dumps(index, indent=2, default=_json_default) + "\n").encode())
    return path


def read_index(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``index.json`` of a dataset root.

    Raises:
        AssetError: when the root holds no index (not a prepared dataset).
    """
    path = Path(root) / "index.json"
    if not path.is_file():
        raise AssetError(f"{path} not found; prepare the dataset with `haco-grasp prepare-data --out {root}`")
    index = json.loads(path.read_text())
    if index.get("format") != SHARD_FORMAT:
        raise InputError(f"{path} is not a {SHARD_FORMAT} index (format {index.get('format')!r})")
    return index


def is_shard_root(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a prepared shard dataset (holds an ``index.json`` of this format)."""
    index = Path(path) / "index.json"
    if not index.is_file():
        return False
    try:
        return json.loads(index.read_text()).get("format") == SHARD_FORMAT
    except (OSError, ValueError):
        return False


@dataclass
class ShardTable:
    """The finished shards of one split and how many samples of one kind each holds.

    Attributes:
        root: dataset root.
        split: "train" or "test".
        count_key: the ``counts`` entry that sizes a shard ("crops" for HACO, "samples" for DeepContact).
        folders: shard folders in index order.
        counts: (S,) int64 samples per shard.
        offsets: (S + 1,) int64 cumulative counts (sample i lives in shard ``searchsorted(offsets, i, "right") - 1``).
    """

    root: Path
    split: str
    count_key: str
    folders: list[Path]
    counts: np.ndarray
    offsets: np.ndarray

    @classmethod
    def open(cls, root: str | os.PathLike[str], split: str, count_key: str) -> ShardTable:
        """List the finished shards of ``split`` under ``root`` (which must hold an ``index.json``)."""
        read_index(root)
        records = finished_shards(root, split)
        folders = [shard_dir(root, split, r["index"]) for r in records]
        counts = np.array([int(r.get("counts", {}).get(count_key, 0)) for r in records], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(Path(root), split, count_key, folders, counts, offsets)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(shard number, row) of global sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples in {self.root}/{self.split}")
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return shard, int(index - self.offsets[shard])

    def array(self, shard: int, name: str) -> np.ndarray:
        """Memory-mapped array ``name`` of shard ``shard`` (read-only)."""
        path = self.folders[shard] / f"{name}.npy"
        if not path.is_file():
            raise AssetError(f"{path} not found; the shard was written without {name!r}")
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def concatenated(self, name: str) -> np.ndarray:
        """Array ``name`` of every shard, concatenated (for small per-sample arrays such as labels)."""
        parts = [np.asarray(self.array(s, name)) for s in range(len(self.folders)) if self.counts[s] > 0]
        if not parts:
            raise InputError(f"{self.root}/{self.split} holds no samples of {self.count_key!r}")
        return np.concatenate(parts)


# --------------------------------------------------------------------------------------------------------------
# HACO crops


def haco_crop_arrays(grasps: Sequence[Any], views: int, seed: int, image_config: Any = None) -> dict[str, np.ndarray]:
    """Render ``views`` crops of every grasp with their contact labels (the HACO part of a shard).

    Crop ``g * views + v`` shows grasp ``g`` with the stream ``SeedSequence(seed).spawn(G * views)[g * views + v]``
    (as :func:`haco_grasp.data.images.write_image_dataset` of the grasps each repeated ``views`` times).

    Args:
        grasps: G Grasp records with 778-vertex hands and hand_contact labels.
        views: V >= 1 crops per grasp.
        seed: non-negative int.
        image_config: :class:`haco_grasp.data.images.ImageConfig` (None: defaults, the ray-cast renderer).

    Returns:
        dict: haco_images (G*V, S, S, 3) uint8; haco_contact (G*V, 778) uint8 in {0, 1}; haco_joints_2d (G*V, 21, 2)
        float32 crop pixels; haco_grasp (G*V,) int32 grasp row in the shard; haco_K (G*V, 3, 3) float32 crop
        intrinsics; haco_hand_pixels (G*V,) int32 visible hand pixels.
    """
    from haco_grasp.data.images import ImageConfig, render_grasp_image

    config = image_config or ImageConfig()
    streams = np.random.SeedSequence(int(seed)).spawn(len(grasps) * views)
    images, contact, joints, grasp_row, intrinsics, hand_pixels = [], [], [], [], [], []
    for g, grasp in enumerate(grasps):
        labels = (np.asarray(grasp.hand_contact) > 0.5).astype(np.uint8)
        for v in range(views):
            rendered = render_grasp_image(grasp, np.random.default_rng(streams[g * views + v]), config)
            images.append(rendered.image)
            contact.append(labels)
            joints.append(rendered.joints_2d.astype(np.float32))
            grasp_row.append(g)
            intrinsics.append(rendered.K.astype(np.float32))
            hand_pixels.append(int(rendered.hand_mask.sum()))
    return {
        "haco_images": np.stack(images),
        "haco_contact": np.stack(contact),
        "haco_joints_2d": np.stack(joints),
        "haco_grasp": np.asarray(grasp_row, dtype=np.int32),
        "haco_K": np.stack(intrinsics),
        "haco_hand_pixels": np.asarray(hand_pixels, dtype=np.int32),
    }
