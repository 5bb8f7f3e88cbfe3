"""Shared numeric assertions of the test suite."""

from __future__ import annotations

from typing import Any

import numpy as np

from haco_grasp.arrays import to_numpy


def assert_close(actual: Any, expected: Any, *, atol: float, rtol: float, msg: str = "") -> None:
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise (numpy's and torch's rule).

    Both sides may be torch tensors (any device, with or without grad), numpy arrays, nested sequences or scalars;
    they are compared in float64. The tolerances are required so that every test states them.

    Args:
        actual: (...) numbers under test.
        expected: (...) reference numbers, broadcastable to ``actual``'s shape (e.g. a scalar).
        atol: absolute tolerance, >= 0.
        rtol: relative tolerance, >= 0, relative to ``|expected|``.
        msg: context prepended to the failure message.

    Raises:
        AssertionError: the shapes disagree, or some element is outside the tolerance (a NaN on either side
            always is); the message gives the count, the worst element, its absolute and relative error and the
            tolerances.
    """
    if atol < 0 or rtol < 0:
        raise ValueError(f"assert_close: atol and rtol must be >= 0, got atol={atol}, rtol={rtol}")
    prefix = f"{msg}: " if msg else ""
    actual_np = to_numpy(actual, np.float64)
    expected_np = to_numpy(expected, np.float64)
    try:
        expected_np = np.broadcast_to(expected_np, actual_np.shape)
    except ValueError:
        raise AssertionError(
            f"{prefix}shape mismatch: actual {actual_np.shape}, expected {expected_np.shape}"
        ) from None
    error = np.abs(actual_np - expected_np)
    tolerance = atol + rtol * np.abs(expected_np)
    bad = ~(error <= tolerance)  # NaN compares False, so a NaN is always bad
    if not bad.any():
        return
    worst = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(error - tolerance, nan=np.inf), -np.inf)), bad.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = error[worst] / np.abs(expected_np[worst])
    raise AssertionError(
        f"{prefix}{int(bad.sum())} of {bad.size} elements differ beyond atol={atol:g} + rtol={rtol:g} * |expected|; "
        f"worst at index {tuple(int(i) for i in worst)}: actual {float(actual_np[worst])!r}, "
        f"expected {float(expected_np[worst])!r}, "
        f"abs error {error[worst]:.3g}, rel error {relative:.3g}"
    )
