"""One conversion to numpy for values that may be torch tensors (any device, with or without grad) or array-likes.

A leaf module: it imports only :mod:`haco_grasp.errors` (itself a leaf) from the package, so every layer
(``geometry/`` included) may use it; and it does not import torch (a value can only be a tensor once torch is
imported), so torch-free modules stay torch-free.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from haco_grasp.errors import InputError

__all__ = ["to_numpy"]


def to_numpy(value: Any, dtype: DTypeLike | None = None, *, name: str | None = None) -> np.ndarray:
    """``value`` as a numpy array: a tensor is detached and moved to the CPU, anything else goes to ``np.asarray``.

    No copy is made when none is needed (a CPU tensor of the requested dtype shares its memory with the result,
    as ``Tensor.numpy`` does).

    Args:
        value: a ``torch.Tensor`` (any device, any ``requires_grad``), a numpy array, or a nested sequence.
        dtype: numpy dtype of the result; None keeps the value's own (a bfloat16 tensor then raises, as numpy
            has no bfloat16; with a dtype it is widened to float32 first).
        name: the argument's name for the error message; None lets numpy's own ``TypeError`` / ``ValueError``
            through unchanged.

    Returns:
        The array, shape unchanged.

    Raises:
        InputError: only when ``name`` is given and the value cannot be converted (a ragged list, a string with a
            numeric ``dtype``, an unrelated object); the message names the argument, its type and numpy's reason.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach()
        if dtype is not None and value.dtype == torch.bfloat16:
            value = value.float()  # numpy has no bfloat16; float32 holds every bfloat16 value exactly
        value = value.cpu().numpy()
    if name is None:
        return np.asarray(value, dtype=dtype)
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be a numeric array or tensor, got {type(value).__name__}: {error}") from None
