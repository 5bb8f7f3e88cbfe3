"""One conversion to numpy for values that may be torch tensors (any device, with or without grad) or array-likes.

A leaf module: it imports nothing from the package, so every layer (``geometry/`` included) may use it; and it
does not import torch (a value can only be a tensor once torch is imported), so torch-free modules stay torch-free.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["to_numpy"]


def to_numpy(value: Any, dtype: DTypeLike | None = None) -> np.ndarray:
    """``value`` as a numpy array: a tensor is detached and moved to the CPU, anything else goes to ``np.asarray``.

    No copy is made when none is needed (a CPU tensor of the requested dtype shares its memory with the result,
    as ``Tensor.numpy`` does).

    Args:
        value: a ``torch.Tensor`` (any device, any ``requires_grad``), a numpy array, or a nested sequence.
        dtype: numpy dtype of the result; None keeps the value's own (a bfloat16 tensor then raises, as numpy
            has no bfloat16; with a dtype it is widened to float32 first).

    Returns:
        The array, shape unchanged.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach()
        if dtype is not None and value.dtype == torch.bfloat16:
            value = value.float()  # numpy has no bfloat16; float32 holds every bfloat16 value exactly
        value = value.cpu().numpy()
    return np.asarray(value, dtype=dtype)
