"""Contact-estimation training datasets behind one interface (:class:`ContactDataset`).

Every dataset returns, for ``dataset[i]``, a dict:

- ``image``: (3, S, S) float32, the crop warped to S×S (HACO: 256), scaled to [0, 1] and normalised with the
  backbone's mean/std (:class:`Normalization`; ImageNet for ViT/hamer, identity for HACO's resnet loaders);
- ``contact``: (778,) float32 labels in {0, 1};
- ``joints_2d``: (21, 2) float32, the hand's 21 joints (DexYCB order) in pixels of the returned crop, after the
  augmentation's warp (NaN where the source has none); used by the keypoint term of :mod:`~haco_grasp.contact.train`;
- ``sample_id``: str; ``meta``: dict of JSON-able values (index, source, object name, ...);

and ``labels()`` returns all (N, 778) labels without loading images (for :mod:`~haco_grasp.contact.stats` and
:mod:`~haco_grasp.contact.sampling`). ``train=True`` applies HACO's augmentations (:mod:`~.augment`) seeded by
``(seed, epoch, index)``: call ``set_epoch`` every epoch for new draws.

Implemented here
----------------
- :class:`ImageFolderContactDataset`: the generic "images + box + 778 contact labels" format of
  :func:`haco_grasp.data.images.write_image_dataset` (the images are the crops; the box is the whole image).
- :class:`SyntheticContactDataset`: synthetic grasps (:func:`haco_grasp.data.synthetic.generate_grasps`) rendered
  with random views, generated once into a cache folder (``grasps/chunk_XXXX.npz`` + ``views/chunk_XXXX/`` image
  folders) and then read like an image folder; or rendered on the fly (``render_on_the_fly=True``).
- :class:`ShardedContactDataset`: crops + labels of a dataset prepared by ``haco-grasp prepare-data``
  (:mod:`haco_grasp.data.shards`), memory-mapped per shard, split by object.
- :class:`DexYCBContactDataset`: DexYCB frames (:class:`haco_grasp.data.dexycb.DexYCB`): the image is the
  ``color_file``, the box HACO's ``bbox_ho`` (tight box of the 2D joints and the projected 8 corners of the grasped
  object's 3D bounding box, enlarged 1.3× about its centre, warped anisotropically), the labels
  :func:`haco_grasp.geometry.labels.hand_contact_labels` at 1 cm. Right hands only (left-hand frames are skipped).

Length: past 600 lines because the four datasets share :class:`_CropDataset` (crop, augmentation, normalisation)
and one item format, and each is a thin reader of its source; a split would scatter that one contract.

The other HACO training datasets (haco.md §7), same interface, not implemented: HACO's repository documents only
its own preprocessed layout (``annot_data/<sample_id>.npz`` + ``contact_data/<sample_id>.npy``, haco.md §6), not the
raw formats, so they are left to a loader of that layout.

| Dataset | Interaction | Threshold (§6) | Crop enlargement (§6) | Status |
|---|---|---|---|---|
| ObMan | rigid object (synthetic) | 1 cm | 1.3 | not implemented |
| MOW | rigid object (in the wild) | 3.5 (MOW units) | 1.3 | not implemented |
| HO3D | rigid object | 1 cm | 1.3 | not implemented |
| H2O3D | rigid object + hand | 1 cm | 1.3 | not implemented |
| ARCTIC (egocentric) | articulated object + hand | 1 cm | 1.3 | not implemented |
| HOI4D (every 5th, rigid) | rigid object + hand | 1 cm | 1.3 | not implemented |
| H2O | rigid object + hand | 1 cm | 1.3 | not implemented |
| InterHand2.6M (every 10th) | hand | 0.5 cm | 2.0 | not implemented |
| HIC | hand | 0.5 cm | 2.0 | not implemented |
| PROX (quantitative) | scene | 1 cm | 2.5 | not implemented |
| RICH (BSTRO split) | scene | provided labels | 2.5 | not implemented |
| Decaf (every 5th) | face / body | provided labels | not documented | not implemented |
| Hi4D | whole body | provided labels | not documented | not implemented |
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import Dataset

from haco_grasp.atomic import atomic_open
from haco_grasp.contact.augment import AugmentConfig, augment_crop, sample_augment_params, transform_points
from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import AssetError, InputError

__all__ = [
    "IMAGENET_NORMALIZATION",
    "UNIT_NORMALIZATION",
    "ContactDataset",
    "DexYCBContactDataset",
    "ImageFolderContactDataset",
    "Normalization",
    "ShardedContactDataset",
    "SyntheticContactDataset",
    "enlarged_box",
    "load_grasps",
    "save_grasps",
]

logger = logging.getLogger(__name__)


class Normalization(NamedTuple):
    """Per-channel image normalisation (x − mean)/std applied to [0, 1] images."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


#: ImageNet statistics (HACO's hamer and ViT loaders).
IMAGENET_NORMALIZATION = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: No normalisation beyond [0, 1] (HACO's resnet / handoccnet test loaders).
UNIT_NORMALIZATION = Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


@runtime_checkable
class ContactDataset(Protocol):
    """What the training stack needs from a contact dataset."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...

    def labels(self) -> np.ndarray: ...


class _CropDataset(Dataset):
    """Shared crop / augmentation / normalisation logic."""

    def __init__(
        self,
        train: bool,
        augment: AugmentConfig | None,
        normalization: Normalization,
        size: int,
        seed: int,
    ) -> None:
        if not (isinstance(size, int) and size >= 8):
            raise InputError(f"size must be an int >= 8, got {size!r}")
        self.train = bool(train)
        self.augment = augment or AugmentConfig(size=size)
        self.normalization = Normalization(*normalization)
        self.size = size
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of epoch ``epoch``."""
        self.epoch = int(epoch)

    def _crop(
        self, image: np.ndarray, box: np.ndarray, index: int, joints_2d: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised (3, S, S) crop, (21, 2) float32 joints in crop pixels, NaN when ``joints_2d`` is None)."""
        params = None
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            params = sample_augment_params(rng, self.augment)
        result = augment_crop(image, box, params, self.size)
        crop = result.image  # (3, S, S) in [0, 1]
        mean = torch.tensor(self.normalization.mean, dtype=crop.dtype)[:, None, None]
        std = torch.tensor(self.normalization.std, dtype=crop.dtype)[:, None, None]
        if joints_2d is None:
            joints = np.full((21, 2), np.nan, dtype=np.float32)
        else:
            joints = transform_points(np.asarray(joints_2d, dtype=np.float64).reshape(21, 2), result.affine)
        return (crop - mean) / std, torch.from_numpy(np.asarray(joints, dtype=np.float32))


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise AssetError(f"image file not found: {path}")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# --------------------------------------------------------------------------------------------------------------
# generic image folders


class ImageFolderContactDataset(_CropDataset):
    """One or several folders written by :func:`haco_grasp.data.images.write_image_dataset`.

    Args:
        roots: a dataset folder or a list of them (concatenated in order).
        train: apply the augmentations.
        augment: AugmentConfig (default HACO's).
        normalization: the backbone's image normalisation.
        size: output side S.
        objects: keep only these object names (None: all).
        exclude_objects: drop these object names (held-out objects for validation).
        seed: augmentation seed.
    """

    def __init__(
        self,
        roots: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        train: bool = False,
        augment: AugmentConfig | None = None,
        normalization: Normalization = IMAGENET_NORMALIZATION,
        size: int = 256,
        objects: Sequence[str] | None = None,
        exclude_objects: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(train, augment, normalization, size, seed)
        folders = [Path(roots)] if isinstance(roots, (str, os.PathLike)) else [Path(r) for r in roots]
        if not folders:
            raise InputError("roots must name at least one dataset folder")
        files: list[Path] = []
        contact: list[np.ndarray] = []
        names: list[str] = []
        joints: list[np.ndarray] = []
        source: list[tuple[int, int]] = []
        for folder_index, folder in enumerate(folders):
            annotations = folder / "annotations.npz"
            if not annotations.is_file():
                raise AssetError(
                    f"{annotations} not found; write the dataset with haco_grasp.data.images.write_image_dataset"
                )
            with np.load(annotations, allow_pickle=False) as data:
                for key in ("image_files", "hand_contact", "object_names"):
                    if key not in data.files:
                        raise InputError(f"{annotations} lacks {key!r}; it is not a write_image_dataset folder")
                files.extend(folder / str(f) for f in data["image_files"])
                contact.append(np.asarray(data["hand_contact"], dtype=np.float32))
                names.extend(str(n) for n in data["object_names"])
                count = len(data["image_files"])
                if "joints_2d" in data.files:
                    joints.append(np.asarray(data["joints_2d"], dtype=np.float64).reshape(count, 21, 2))
                else:
                    joints.append(np.full((count, 21, 2), np.nan))
                source.extend((folder_index, i) for i in range(len(data["image_files"])))
        labels = np.concatenate(contact, axis=0)
        keep = np.ones(len(files), dtype=bool)
        if objects is not None:
            keep &= np.isin(names, list(objects))
        if exclude_objects is not None:
            keep &= ~np.isin(names, list(exclude_objects))
        self.folders = folders
        self.files = [f for f, k in zip(files, keep, strict=True) if k]
        self.object_names = [n for n, k in zip(names, keep, strict=True) if k]
        self.source = [s for s, k in zip(source, keep, strict=True) if k]
        self._labels = labels[keep]
        self._joints = np.concatenate(joints, axis=0)[keep]

    def __len__(self) -> int:
        return len(self.files)

    def labels(self) -> np.ndarray:
        """(N, 778) float32 contact labels."""
        return self._labels

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = index % len(self)
        image = _read_rgb(self.files[index])
        height, width = image.shape[:2]
        box = np.array([0.0, 0.0, width, height])  # the stored image is the crop (augment.py's box convention)
        folder_index, row = self.source[index]
        crop, joints = self._crop(image, box, index, self._joints[index])
        return {
            "image": crop,
            "joints_2d": joints,
            "contact": torch.from_numpy(self._labels[index].copy()),
            "sample_id": f"{self.folders[folder_index].name}/{row:06d}",
            "meta": {"index": index, "object_name": self.object_names[index], "source": "image_folder"},
        }


# --------------------------------------------------------------------------------------------------------------
# synthetic grasps

_GRASP_ARRAYS = tuple(
    f.name for f in fields(Grasp) if f.name not in ("object_name", "side", "grasp_type", "meta", "contact_threshold")
)  # contact_threshold is not stored: a loaded grasp's geometric labels are recomputed when a source needs them


def save_grasps(grasps: Sequence[Grasp], path: str | os.PathLike[str]) -> Path:
    """Write grasps to one ``.npz`` (no pickle): arrays as ``<i>/<field>``, strings and meta as JSON.

    Args:
        grasps: sequence of Grasp
        path: destination ``.npz``

    Returns:
        the written path
    """
    arrays: dict[str, np.ndarray] = {}
    header = []
    for i, grasp in enumerate(grasps):
        for name in _GRASP_ARRAYS:
            arrays[f"{i}/{name}"] = np.asarray(getattr(grasp, name))
        header.append({k: v for k, v in asdict(grasp).items() if k in ("object_name", "side", "grasp_type", "meta")})
    arrays["header"] = np.array(json.dumps(header, default=float))
    target = Path(path)
    with atomic_open(target) as stream:
        np.savez_compressed(stream, **arrays)
    return target


def load_grasps(path: str | os.PathLike[str]) -> list[Grasp]:
    """Read grasps written by :func:`save_grasps`.

    Args:
        path: the ``.npz`` file

    Returns:
        list of Grasp
    """
    source = Path(path)
    if not source.is_file():
        raise AssetError(f"grasp cache not found: {source}; write it with save_grasps")
    with np.load(source, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        grasps = []
        for i, strings in enumerate(header):
            values = {name: data[f"{i}/{name}"] for name in _GRASP_ARRAYS}
            values["object_id"] = int(values["object_id"])
            grasps.append(Grasp(**values, **strings))
    return grasps


def synthetic_chunk_types(chunk: int, grasp_types: Sequence[str]) -> tuple[str, ...]:
    """Grasp types of chunk ``chunk``: ``grasp_types`` rotated by ``chunk``, so consecutive chunks cycle types."""
    shift = chunk % len(grasp_types)
    return tuple(grasp_types[shift:]) + tuple(grasp_types[:shift])


class SyntheticContactDataset(ImageFolderContactDataset):
    """Rendered synthetic grasps, generated once into ``cache_dir`` (or rendered on the fly).

    The grasps come in chunks of one grasp per object: chunk c is ``generate_grasps(len(objects), seed=seed + c,
    objects=objects, grasp_types=synthetic_chunk_types(c, grasp_types))``, saved to ``grasps/chunk_{c:04d}.npz``;
    each grasp is rendered ``views_per_grasp`` times (``write_image_dataset`` with seed ``render_seed + c``) into
    ``views/chunk_{c:04d}/``. Existing chunks are reused, so a cache grows when ``num_chunks`` grows.

    Args:
        cache_dir: the cache folder.
        num_chunks: number of chunks (grasps = num_chunks · len(objects)).
        views_per_grasp: rendered views per grasp.
        objects: procedural object names (default all of ``OBJECT_NAMES``).
        exclude_objects / include_objects: filter images by object (held-out objects for validation).
        seed, render_seed: seeds of the grasps and the views.
        image_config: :class:`haco_grasp.data.images.ImageConfig` of the renders.
        render_on_the_fly: keep the grasps in memory and render image i on access (no image files).
        train, augment, normalization, size, augment_seed: as :class:`ImageFolderContactDataset`.
        progress: show progress bars while generating.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        num_chunks: int = 1,
        views_per_grasp: int = 4,
        objects: Sequence[str] | None = None,
        exclude_objects: Sequence[str] | None = None,
        include_objects: Sequence[str] | None = None,
        seed: int = 1000,
        render_seed: int = 5000,
        grasp_types: Sequence[str] = ("power", "precision", "pinch"),
        image_config: Any = None,
        render_on_the_fly: bool = False,
        train: bool = False,
        augment: AugmentConfig | None = None,
        normalization: Normalization = IMAGENET_NORMALIZATION,
        size: int = 256,
        augment_seed: int = 0,
        progress: bool = True,
    ) -> None:
        from haco_grasp.data.images import ImageConfig
        from haco_grasp.objects.procedural import OBJECT_NAMES

        if not (isinstance(num_chunks, int) and num_chunks >= 1):
            raise InputError(f"num_chunks must be a positive int, got {num_chunks!r}")
        if not (isinstance(views_per_grasp, int) and views_per_grasp >= 1):
            raise InputError(f"views_per_grasp must be a positive int, got {views_per_grasp!r}")
        self.cache_dir = Path(cache_dir)
        self.object_list = tuple(objects) if objects is not None else tuple(OBJECT_NAMES)
        self.views_per_grasp = views_per_grasp
        self.image_config = image_config or ImageConfig(supersample=1)
        self.render_seed = int(render_seed)
        self.render_on_the_fly = bool(render_on_the_fly)
        self.grasps: list[Grasp] = []
        chunk_grasps = []
        for chunk in range(num_chunks):
            grasp_file = self.cache_dir / "grasps" / f"chunk_{chunk:04d}.npz"
            if grasp_file.is_file():
                grasps = load_grasps(grasp_file)
            else:
                from haco_grasp.data.synthetic import generate_grasps

                logger.info("generating synthetic grasp chunk %d into %s", chunk, grasp_file)
                grasps = generate_grasps(
                    len(self.object_list),
                    seed=int(seed) + chunk,
                    objects=list(self.object_list),
                    grasp_types=synthetic_chunk_types(chunk, grasp_types),
                    progress=progress,
                )
                save_grasps(grasps, grasp_file)
            chunk_grasps.append(grasps)
            self.grasps.extend(grasps)
        if self.render_on_the_fly:
            _CropDataset.__init__(self, train, augment, normalization, size, augment_seed)
            views = [(c, g, v) for c, grasps in enumerate(chunk_grasps) for g in range(len(grasps))
                     for v in range(views_per_grasp)]  # fmt: skip
            names = [chunk_grasps[c][g].object_name for c, g, _ in views]
            keep = _object_filter(names, include_objects, exclude_objects)
            self._views = [v for v, k in zip(views, keep, strict=True) if k]
            self._chunk_grasps = chunk_grasps
            self.object_names = [n for n, k in zip(names, keep, strict=True) if k]
            self._labels = np.stack(
                [np.asarray(chunk_grasps[c][g].hand_contact, np.float32) for c, g, _ in self._views]
            ) if self._views else np.zeros((0, 778), np.float32)  # fmt: skip
            return
        from haco_grasp.data.images import write_image_dataset

        folders = []
        for chunk, grasps in enumerate(chunk_grasps):
            folder = self.cache_dir / "views" / f"chunk_{chunk:04d}"
            if not (folder / "annotations.npz").is_file():
                repeated = [grasp for grasp in grasps for _ in range(views_per_grasp)]
                write_image_dataset(repeated, folder, self.render_seed + chunk, self.image_config, progress=progress)
            folders.append(folder)
        super().__init__(folders, train, augment, normalization, size, include_objects, exclude_objects, augment_seed)

    def __len__(self) -> int:
        return len(self._views) if self.render_on_the_fly else super().__len__()

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not self.render_on_the_fly:
            return super().__getitem__(index)
        from haco_grasp.data.images import render_grasp_image

        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = index % len(self)
        chunk, grasp_index, view = self._views[index]
        grasps = self._chunk_grasps[chunk]
        # the same stream as write_image_dataset: SeedSequence(render_seed + chunk).spawn(n)[grasp * views + view]
        streams = np.random.SeedSequence(self.render_seed + chunk).spawn(len(grasps) * self.views_per_grasp)
        rendered = render_grasp_image(
            grasps[grasp_index], np.random.default_rng(streams[grasp_index * self.views_per_grasp + view]),
            self.image_config,
        )  # fmt: skip
        size = rendered.image.shape[0]
        box = np.array([0.0, 0.0, size, size])
        crop, joints = self._crop(rendered.image, box, index, rendered.joints_2d)
        return {
            "image": crop,
            "joints_2d": joints,
            "contact": torch.from_numpy(self._labels[index].copy()),
            "sample_id": f"chunk_{chunk:04d}/{grasp_index * self.views_per_grasp + view:06d}",
            "meta": {"index": index, "object_name": self.object_names[index], "source": "synthetic"},
        }


def _object_filter(names: Sequence[str], include: Sequence[str] | None, exclude: Sequence[str] | None) -> np.ndarray:
    keep = np.ones(len(names), dtype=bool)
    if include is not None:
        keep &= np.isin(names, list(include))
    if exclude is not None:
        keep &= ~np.isin(names, list(exclude))
    return keep


# --------------------------------------------------------------------------------------------------------------
# prepared shards (haco-grasp prepare-data)


class ShardedContactDataset(_CropDataset):
    """HACO crops of one split of a prepared shard dataset (:mod:`haco_grasp.data.shards`), memory-mapped.

    Only the (N, 778) labels are held in memory (for :meth:`labels`, the statistics and the balanced sampler);
    each crop is read from its shard's memory-mapped ``haco_images.npy`` on access. Needs numpy and torch only (no
    open3d, no renderer): the GPU training path.

    Args:
        roots: a dataset root or a list of them (concatenated in order).
        split: "train" or "test" (the split by object of ``prepare-data``).
        train, augment, normalization, size, seed: as :class:`ImageFolderContactDataset`.
        objects / exclude_objects: further filters by object name (None: all of the split).
    """

    def __init__(
        self,
        roots: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        split: str = "train",
        train: bool = False,
        augment: AugmentConfig | None = None,
        normalization: Normalization = IMAGENET_NORMALIZATION,
        size: int = 256,
        objects: Sequence[str] | None = None,
        exclude_objects: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        from haco_grasp.data.shards import ShardTable

        super().__init__(train, augment, normalization, size, seed)
        folders = [Path(roots)] if isinstance(roots, (str, os.PathLike)) else [Path(r) for r in roots]
        if not folders:
            raise InputError("roots must name at least one prepared dataset")
        self.tables = [ShardTable.open(folder, split, "crops") for folder in folders]
        rows: list[tuple[int, int, int]] = []  # (table, shard, row)
        labels, names, joints = [], [], []
        for t, table in enumerate(self.tables):
            for shard in range(len(table.folders)):
                count = int(table.counts[shard])
                if count == 0:
                    continue
                rows.extend((t, shard, r) for r in range(count))
                labels.append(np.asarray(table.array(shard, "haco_contact"), dtype=np.float32))
                joints.append(np.asarray(table.array(shard, "haco_joints_2d"), dtype=np.float64))
                objects_of_grasp = np.asarray(table.array(shard, "grasp_objects"))
                names.extend(str(objects_of_grasp[g]) for g in np.asarray(table.array(shard, "haco_grasp")))
        keep = _object_filter(names, objects, exclude_objects)
        self.split = split
        self._rows = [r for r, k in zip(rows, keep, strict=True) if k]
        self.object_names = [n for n, k in zip(names, keep, strict=True) if k]
        self._labels = np.concatenate(labels)[keep] if labels else np.zeros((0, 778), np.float32)
        self._joints = np.concatenate(joints)[keep] if joints else np.zeros((0, 21, 2))

    def __len__(self) -> int:
        return len(self._rows)

    def labels(self) -> np.ndarray:
        """(N, 778) float32 contact labels."""
        return self._labels

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = index % len(self)
        t, shard, row = self._rows[index]
        table = self.tables[t]
        image = np.array(table.array(shard, "haco_images")[row])  # (S, S, 3) uint8, one crop read from the map
        height, width = image.shape[:2]
        box = np.array([0.0, 0.0, width, height])
        crop, joints = self._crop(image, box, index, self._joints[index])
        return {
            "image": crop,
            "joints_2d": joints,
            "contact": torch.from_numpy(self._labels[index].copy()),
            "sample_id": f"{table.root.name}/{self.split}/{table.folders[shard].name}/{row:05d}",
            "meta": {"index": index, "object_name": self.object_names[index], "source": "shards"},
        }


# --------------------------------------------------------------------------------------------------------------
# DexYCB


def enlarged_box(points: np.ndarray, factor: float = 1.3) -> np.ndarray:
    """Tight box of 2D points enlarged ``factor`` times about its centre (HACO's ``bbox_ho`` rule, not squared).

    Args:
        points: (P, 2) float pixels
        factor: enlargement (HACO: 1.3 hand–object, 2.0 hand-only, 2.5 hand–scene)

    Returns:
        (4,) float64 (x0, y0, x1, y1)
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
        raise InputError(f"points must have shape (P, 2) with P >= 1, got {pts.shape}")
    low, high = pts.min(axis=0), pts.max(axis=0)
    center, half = (low + high) / 2.0, np.maximum((high - low) / 2.0 * factor, 0.5)
    return np.concatenate([center - half, center + half])


class DexYCBContactDataset(_CropDataset):
    """DexYCB frames with HACO's ``bbox_ho`` crop and 1 cm contact labels (right hands with annotations only).

    Args:
        dexycb: a :class:`haco_grasp.data.dexycb.DexYCB` split.
        contact_threshold: label distance, metres (HACO: 0.01).
        crop_scale: enlargement of the tight box (HACO: 1.3).
        label_cache: optional ``.npz`` file caching the (N, 778) labels (written on first use).
        train, augment, normalization, size, seed: as :class:`ImageFolderContactDataset`.
    """

    def __init__(
        self,
        dexycb: Any,
        contact_threshold: float = 0.01,
        crop_scale: float = 1.3,
        label_cache: str | os.PathLike[str] | None = None,
        train: bool = False,
        augment: AugmentConfig | None = None,
        normalization: Normalization = IMAGENET_NORMALIZATION,
        size: int = 256,
        seed: int = 0,
    ) -> None:
        from haco_grasp.objects.ycb import object_provider

        super().__init__(train, augment, normalization, size, seed)
        if not (isinstance(contact_threshold, (int, float)) and contact_threshold > 0):
            raise InputError(f"contact_threshold must be a positive number of metres, got {contact_threshold!r}")
        self.dexycb = dexycb
        self.contact_threshold = float(contact_threshold)
        self.crop_scale = float(crop_scale)
        self.label_cache = Path(label_cache) if label_cache is not None else None
        self._meshes = object_provider(Path(dexycb.root) / "models")
        self.positions = [
            p for p in range(len(dexycb)) if dexycb.sample(p).has_hand and dexycb.sample(p).mano_side == "right"
        ]
        self._labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def box(self, index: int) -> np.ndarray:
        """HACO's ``bbox_ho`` of sample ``index``: (4,) float64 (x0, y0, x1, y1), image pixels."""
        sample = self.dexycb.sample(self.positions[index])
        mesh = self._meshes(sample.grasped_ycb_id)
        verts = np.asarray(mesh.verts, dtype=np.float64)
        low, high = verts.min(axis=0), verts.max(axis=0)
        corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
        pose = sample.obj_pose
        cam = corners @ pose[:, :3].T + pose[:, 3]  # (8, 3) camera frame
        pixels = cam @ sample.intrinsics.K.T
        pixels = pixels[:, :2] / pixels[:, 2:3]
        joints = np.asarray(sample.joint_2d, dtype=np.float64).reshape(-1, 2)
        return enlarged_box(np.concatenate([joints, pixels], axis=0), self.crop_scale)

    def _contact(self, index: int) -> np.ndarray:
        grasp = self.dexycb.grasp(self.positions[index], contact_threshold=self.contact_threshold)
        return np.asarray(grasp.hand_contact, dtype=np.float32)

    def labels(self) -> np.ndarray:
        """(N, 778) float32 labels (computed once, from the label cache when given)."""
        if self._labels is None:
            if self.label_cache is not None and self.label_cache.is_file():
                with np.load(self.label_cache, allow_pickle=False) as data:
                    labels = np.asarray(data["labels"], dtype=np.float32)
                if labels.shape[0] != len(self):
                    raise InputError(f"{self.label_cache} holds {labels.shape[0]} labels, the dataset {len(self)}")
            else:
                labels = np.stack([self._contact(i) for i in range(len(self))]) if len(self) else np.zeros((0, 778))
                if self.label_cache is not None:
                    self.label_cache.parent.mkdir(parents=True, exist_ok=True)
                    np.savez_compressed(self.label_cache, labels=labels)
            self._labels = labels.astype(np.float32)
        return self._labels

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = index % len(self)
        sample = self.dexycb.sample(self.positions[index])
        image = _read_rgb(Path(self.dexycb.root) / sample.color_file)
        contact = self._labels[index] if self._labels is not None else self._contact(index)
        joints_2d = np.asarray(sample.joint_2d, dtype=np.float64).reshape(-1, 2)
        crop, joints = self._crop(image, self.box(index), index, joints_2d if joints_2d.shape == (21, 2) else None)
        return {
            "image": crop,
            "joints_2d": joints,
            "contact": torch.from_numpy(np.array(contact, dtype=np.float32)),
            "sample_id": sample.sample_id,
            "meta": {"index": index, "source": "dexycb", "color_file": sample.color_file},
        }
