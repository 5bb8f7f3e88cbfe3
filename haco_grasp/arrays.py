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


def to_numpy(
    value: Any,
    dtype: DTypeLike | None = None,
    *,
    name: str | None = None,
    shape: tuple[int | None, ...] | None = None,
) -> np.ndarray:
    """``value`` as a numpy array: a tensor is detached and moved to the CPU, anything else goes to ``np.asarray``.

    No copy is made when none is needed (a CPU tensor of the requested dtype shares its memory with the result,
    as ``Tensor.numpy`` does).

    Args:
        value: a ``torch.Tensor`` (any device, any ``requires_grad``), a numpy array, or a nested sequence.
        dtype: numpy dtype of the result; None keeps the value's own (a bfloat16 tensor then raises, as numpy
            has no bfloat16; with a dtype it is widened to float32 first).
        name: the argument's name for the error message; None lets numpy's own ``TypeError`` / ``ValueError``
            through unchanged.
        shape: check the value too (a predictor's output, a stored array): it must be a numeric (float or integer)
            array of this shape (None: any size along that axis) and, after the ``dtype`` conversion, finite.
            None: no check.

    Returns:
        The array, shape unchanged.

    Raises:
        InputError: only when ``name`` or ``shape`` is given and the value cannot be converted (a ragged list, a string
            with a numeric ``dtype``, an unrelated object), or, with ``shape``, has another shape, a non-numeric
            dtype or a NaN / inf; the message names the argument (``name``) and what was received.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach()
        if dtype is not None and value.dtype == torch.bfloat16:
            value = value.float()  # numpy has no bfloat16; float32 holds every bfloat16 value exactly
        value = value.cpu().numpy()
    if name is None and shape is None:
        return np.asarray(value, dtype=dtype)
    label = name or "value"
    try:
        array = np.asarray(value, dtype=dtype if shape is None else None)
    except (TypeError, ValueError) as error:
        raise InputError(f"{label} must be a numeric array or tensor, got {type(value).__name__}: {error}") from None
    if shape is None:
        return array
    same = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape, strict=False))
    if not same or array.dtype.kind not in "fiu":
        raise InputError(f"{label}: expected a float array of shape {shape}, got {array.dtype} {array.shape}")
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError(f"{label}: contains NaN or inf")
    return array
