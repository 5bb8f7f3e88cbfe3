"""Cached constant tensors for hot loops.

In this torch build an operation between a tensor and a Python number wraps the number in a float64 tensor and
converts it to the tensor's dtype on every call: five dispatched operations instead of one, in the forward and
again in most backward formulas. Inside the optimizer's loop (``reference/gpu.md``: every dispatched operation costs
host time, whatever the batch) the kernels therefore take their constants as 0-dim tensors of the working dtype and
device, made once here and reused.

Constants are created outside inference mode, so a constant first made under ``torch.inference_mode()`` can later
be saved for a backward pass. Treat them as read-only.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["constant", "scalar"]


@lru_cache(maxsize=512)
def _cached(values: float | tuple, dtype: torch.dtype, device: torch.device) -> Tensor:
    with torch.inference_mode(False), torch.no_grad():
        return torch.tensor(values, dtype=dtype, device=device)


def scalar(value: float, like: Tensor) -> Tensor:
    """A cached 0-dim tensor holding ``value`` in ``like``'s dtype and on its device.

    Args:
        value: the number.
        like: any tensor; only its dtype and device are used.

    Returns:
        () tensor, shared between callers: do not modify it in place.
    """
    return _cached(float(value), like.dtype, like.device)


def constant(values: tuple, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A cached tensor built from nested tuples, on ``like``'s device and in ``dtype`` (default: ``like``'s).

    Args:
        values: nested tuples of numbers (hashable), e.g. ``((1, 0, 0), (0, 1, 0), (0, 0, 1))``.
        like: any tensor; its device (and dtype, unless ``dtype`` is given) is used.
        dtype: the constant's dtype.

    Returns:
        a tensor of the tuples' shape, shared between callers: do not modify it in place.
    """
    return _cached(values, like.dtype if dtype is None else dtype, like.device)
