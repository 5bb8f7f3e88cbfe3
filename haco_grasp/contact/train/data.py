"""Training data: per-backbone normalisation and threshold, the datasets of a config, batching, progress bars."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from haco_grasp.contact.augment import AugmentConfig
from haco_grasp.contact.datasets import (
    ImageFolderContactDataset,
    Normalization,
    ShardedContactDataset,
    SyntheticContactDataset,
)
from haco_grasp.contact.train.config import TrainConfig
from haco_grasp.data.shards import is_shard_root
from haco_grasp.errors import InputError


def _normalization(backbone: str) -> Normalization:
    from haco_grasp.contact.backbones import get_backbone_spec

    spec = get_backbone_spec(backbone)
    return Normalization(tuple(spec.mean), tuple(spec.std))


def _threshold(config_threshold: float | None, backbone: str) -> float:
    if config_threshold is not None:
        return float(config_threshold)
    from haco_grasp.contact.backbones import get_backbone_spec

    return float(get_backbone_spec(backbone).eval_threshold)


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """Training and validation datasets of a config (validation None when there is nothing to validate on).

    Returns:
        (train dataset, validation dataset or None), both :class:`~haco_grasp.contact.datasets.ContactDataset`
    """
    normalization = _normalization(config.backbone)
    augment = AugmentConfig(size=config.image_size)
    common = {"normalization": normalization, "size": config.image_size}
    if config.train_data and all(is_shard_root(root) for root in config.train_data):
        # Prepared shards (haco-grasp prepare-data): train on the train split, validate on the held-out objects.
        train_set = ShardedContactDataset(
            list(config.train_data), split="train", train=config.augment, augment=augment, seed=config.seed, **common
        )
        if config.val_data:
            val_set = _validation_set(list(config.val_data), common)
        else:
            val_set = ShardedContactDataset(list(config.train_data), split="test", **common)
    elif config.train_data:
        exclude = None if config.val_data else (config.val_objects or None)
        train_set = ImageFolderContactDataset(
            list(config.train_data), train=config.augment, augment=augment, exclude_objects=exclude,
            seed=config.seed, **common,
        )  # fmt: skip
        if config.val_data:
            val_set = _validation_set(list(config.val_data), common)
        elif config.val_objects:
            val_set = ImageFolderContactDataset(list(config.train_data), objects=config.val_objects, **common)
        else:
            val_set = None
    else:
        synthetic = {
            "cache_dir": config.synthetic_cache,
            "num_chunks": config.synthetic_chunks,
            "views_per_grasp": config.views_per_grasp,
            "progress": config.progress,
            **common,
        }
        train_set = SyntheticContactDataset(
            exclude_objects=config.val_objects or None, train=config.augment, augment=augment,
            augment_seed=config.seed, **synthetic,
        )  # fmt: skip
        val_set = (
            SyntheticContactDataset(include_objects=config.val_objects, **synthetic) if config.val_objects else None
        )
    if val_set is not None and len(val_set) == 0:
        val_set = None
    if len(train_set) == 0:
        raise InputError("the training set is empty; check train_data / val_objects")
    return train_set, val_set


def _validation_set(roots: list[str], common: dict[str, Any]) -> Dataset:
    """Validation data from image folders, or the held-out split of prepared shard datasets."""
    if all(is_shard_root(root) for root in roots):
        return ShardedContactDataset(roots, split="test", **common)
    return ImageFolderContactDataset(roots, train=False, **common)


def _collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    nan_joints = torch.full((21, 2), float("nan"))
    return {
        "image": torch.stack([item["image"] for item in batch]),
        "joints_2d": torch.stack([item.get("joints_2d", nan_joints) for item in batch]),
        "contact": torch.stack([item["contact"] for item in batch]),
        "sample_id": [item["sample_id"] for item in batch],
    }


def _progress(iterable: Any, enabled: bool, **kwargs: Any) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
