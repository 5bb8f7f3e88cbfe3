"""HACO contact: the model (official-checkpoint compatible), inference and the training stack.

Public names are resolved lazily (``from haco_grasp.contact import build_haco``) so that importing a light
submodule does not import timm. The contact labels live in :mod:`haco_grasp.geometry.labels` (pure geometry);
``hand_contact_labels`` and ``object_contact_labels`` stay importable from here.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_haco": "haco_model",
    "HACO": "haco_model",
    "HacoConfig": "haco_model",
    "HacoOutput": "haco_model",
    "load_haco": "checkpoint",
    "save_haco_checkpoint": "checkpoint",
    "predict_hand_contact": "predictor",
    "HacoPredictor": "predictor",
    "create_backbone": "backbones",
    "list_backbones": "backbones",
    "build_contact_regressors": "regressors",
    "coarse_labels": "regressors",
    "hand_contact_labels": "haco_grasp.geometry.labels",
    "haco_loss": "losses",
    "ContactStats": "stats",
    "BalancedContactSampler": "sampling",
    "TrainConfig": "train",
    "train": "train",
    "ImageFolderContactDataset": "datasets",
    "SyntheticContactDataset": "datasets",
    "DexYCBContactDataset": "datasets",
    "object_contact_labels": "haco_grasp.geometry.labels",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = _EXPORTS[name]
        return getattr(importlib.import_module(module if "." in module else f"haco_grasp.contact.{module}"), name)
    raise AttributeError(f"module 'haco_grasp.contact' has no attribute {name!r}")
