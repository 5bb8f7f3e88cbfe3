"""Narrow workarounds for the installed stack (see README, "Installation notes")."""

from __future__ import annotations

import importlib
import logging
import sys
import types
from typing import Any

logger = logging.getLogger(__name__)

_TORCHVISION_NMS_ERROR = "operator torchvision::nms does not exist"


def import_timm() -> Any:
    """Import timm, working around PyPI's CUDA-built torchvision on a CPU-only torch.

    On these machines ``pip`` pairs torch 2.13 (CPU) with a torchvision wheel built for CUDA; importing it fails in
    ``torchvision/_meta_registrations.py`` with "operator torchvision::nms does not exist", and timm imports
    torchvision. Only when exactly that error occurs, an empty ``torchvision._meta_registrations`` module is
    registered and the import retried: timm's models then build and run, while ``torchvision.ops`` stays unusable
    (the toolkit never calls it). Any other import error propagates unchanged.
    """
    try:
        return importlib.import_module("timm")
    except RuntimeError as exc:
        if _TORCHVISION_NMS_ERROR not in str(exc):
            raise
    for name in [m for m in sys.modules if m == "timm" or m.startswith(("timm.", "torchvision"))]:
        del sys.modules[name]
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    logger.info("torchvision is a CUDA build on a CPU torch: skipped its meta registrations to import timm")
    return importlib.import_module("timm")
