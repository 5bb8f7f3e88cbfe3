"""torchrun: the process group of a DDP run (gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import datetime
import os

import torch

# --------------------------------------------------------------------------------------------------------------
# distributed helpers


def _init_distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))  # rank 0 evaluates alone
    return dist.get_rank(), dist.get_world_size()
