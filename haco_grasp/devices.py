"""One device resolver for every part of a run (optimizer, contact predictors, training, benchmarks)."""

from __future__ import annotations

import os

import torch

from haco_grasp.errors import InputError

__all__ = ["auto_batch_size", "resolve_device"]


def resolve_device(device: str | torch.device | None = "auto", what: str = "device") -> torch.device:
    """The torch device a run's parts should use.

    ``None`` or ``"auto"``: ``cuda:<LOCAL_RANK>`` when CUDA is available, else the CPU. Plain ``"cuda"`` means
    ``cuda:<LOCAL_RANK>`` (0 outside torchrun), so every rank of a ``torchrun`` job uses its own GPU for every part.

    Args:
        device: "auto", "cpu", "cuda", "cuda:N", a torch.device, or None.
        what: the name used in error messages (e.g. "--device").

    Returns:
        torch.device.

    Raises:
        InputError: an unparsable name, or CUDA asked for where none is available.
    """
    local_rank = os.environ.get("LOCAL_RANK", "0")
    if not local_rank.isdigit():
        raise InputError(f"$LOCAL_RANK: expected a non-negative integer, got {local_rank!r}; launch with torchrun")
    if device is None or str(device) == "auto":
        return torch.device("cuda", int(local_rank)) if torch.cuda.is_available() else torch.device("cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"{what}: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{what}={device}: CUDA is not available here; use 'cpu' (or 'auto')")
        if parsed.index is None:
            parsed = torch.device("cuda", int(local_rank))
        if parsed.index >= torch.cuda.device_count():
            raise InputError(f"{what}={device}: only {torch.cuda.device_count()} CUDA device(s) here")
    return parsed


#: Grasps per optimizer call on the CPU (larger batches gain little there and hold more memory).
CPU_BATCH_SIZE = 16
# Device memory one grasp needs during refinement (4 restarts of the `fast` preset, float32, with autograd), bytes;
# generous, so that a batch chosen from free memory leaves room for the rest of the run.
_BYTES_PER_GRASP = 6_000_000


def auto_batch_size(device: torch.device | str) -> int:
    """Grasps per optimizer call that fill ``device``: 16 on the CPU; on CUDA as many as half the free memory holds
    (at 6 MB a grasp), between 64 and 8,192."""
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_BATCH_SIZE
    free, _total = torch.cuda.mem_get_info(device)
    return int(max(64, min(8192, (free // 2) // _BYTES_PER_GRASP)))
