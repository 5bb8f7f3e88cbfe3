"""Data: the Grasp record, synthetic grasps, perturbations, rendered images, DexYCB, hflnet.pkl and generic .npz.

Public names are resolved lazily (``from haco_grasp.data import generate_grasps``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Grasp": "grasp",
    "generate_grasps": "synthetic",
    "GraspWorldConfig": "synthetic",
    "GRASP_TYPES": "synthetic",
    "perturb_grasp": "perturb",
    "perturb_grasps": "perturb",
    "NOISE_MODELS": "perturb",
    "ImageConfig": "images",
    "render_grasp_image": "images",
    "render_grasp_images": "images",
    "write_image_dataset": "images",
    "DexYCB": "dexycb",
    "DexYCBSample": "dexycb",
    "ManoLayerCache": "haco_grasp.hand.conventions",
    "HFLNetFile": "hflnet",
    "HFLNetPrediction": "hflnet",
    "load_hflnet": "hflnet",
    "save_hflnet": "hflnet",
    "prediction_to_grasp": "hflnet",
    "GenericFile": "generic",
    "GenericFrame": "generic",
    "load_generic": "generic",
    "save_generic": "generic",
    "frame_to_grasp": "generic",
    "write_mini_dexycb": "mini_dexycb",
    "write_mini_hflnet": "mini_dexycb",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = _EXPORTS[name]
        return getattr(importlib.import_module(module if "." in module else f"haco_grasp.data.{module}"), name)
    raise AttributeError(f"module 'haco_grasp.data' has no attribute {name!r}")
