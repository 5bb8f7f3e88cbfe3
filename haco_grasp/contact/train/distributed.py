"""torchrun: the process group of a DDP run (gloo on CPU, nccl on CUDA), joined through :mod:`haco_grasp.distributed`
(the setup ``haco-grasp refine`` uses too)."""

from __future__ import annotations

import torch

from haco_grasp.distributed import ProcessGroup, connect_timeout, torchrun_env

#: Timeout of the collectives, seconds: rank 0 evaluates alone while the others wait.
COLLECTIVE_TIMEOUT_S = 30 * 60.0
#: Seconds the ranks wait for each other at the start (``$HACO_GRASP_DIST_CONNECT_TIMEOUT_S`` overrides it).
CONNECT_TIMEOUT_S = 120.0


def _init_distributed(device: torch.device) -> tuple[int, int]:
    """Join torchrun's process group (nccl on CUDA, else gloo); returns (rank, world size), (0, 1) outside torchrun."""
    rank, world = torchrun_env()
    if world <= 1:
        return 0, 1
    backend = "nccl" if device.type == "cuda" else "gloo"
    ProcessGroup(rank, world, backend, connect_timeout_s=connect_timeout(CONNECT_TIMEOUT_S),
                 timeout_s=COLLECTIVE_TIMEOUT_S)  # fmt: skip
    return rank, world
