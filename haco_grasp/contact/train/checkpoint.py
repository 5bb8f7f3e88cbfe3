"""Checkpoint stripping: a training checkpoint reduced to the model weights (optionally float16)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from haco_grasp.atomic import atomic_open, atomic_write_bytes


def strip_checkpoint(source: str | os.PathLike[str], target: str | os.PathLike[str], half: bool = False) -> Path:
    """Copy a training checkpoint without optimizer state (and its HacoConfig JSON), for shipping.

    Args:
        source: ``last.ckpt`` of a run
        target: destination ``.ckpt``
        half: store floating weights as float16 (load_state_dict casts them back)

    Returns:
        the written path
    """
    from haco_grasp.contact.checkpoint import config_path_for, read_checkpoint

    state = read_checkpoint(source)
    weights = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in state["state_dict"].items()
    }
    payload = {
        "epoch": state["epoch"],
        "global_step": state["global_step"],
        "state_dict": weights,
        "optimizer": None,
        "scheduler": state.get("scheduler"),
    }
    destination = Path(target)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(destination) as stream:
        torch.save(payload, stream)
    config_json = config_path_for(source)
    if config_json.is_file():
        atomic_write_bytes(config_path_for(destination), config_json.read_bytes())
    return destination
