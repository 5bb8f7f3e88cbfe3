"""Shared helpers of the test suite: numeric assertions, and Python run where some packages cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
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


REPO = Path(__file__).resolve().parents[1]

_BLOCK_IMPORTS = """
import importlib.abc, sys
class _Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, _Missing())
"""


def run_python_without(
    blocked: Sequence[str], code: str, timeout: float = 300.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python (cwd and PYTHONPATH: the repository) where importing ``blocked`` fails.

    As on a machine without those packages (the lent GPU machine lacks open3d, ...), except that a blocked
    package's ``find_spec`` raises ModuleNotFoundError instead of returning None.

    Args:
        blocked: top-level package names.
        code: Python source run after the block is installed.
        timeout: seconds.
        env: extra environment variables.

    Returns:
        the CompletedProcess, with text stdout and stderr.
    """
    prelude = f"BLOCKED = {sorted(blocked)!r}\n" + _BLOCK_IMPORTS
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env=environment, check=False,
    )  # fmt: skip


def run_script_without(
    blocked: Sequence[str], script: str | Path, args: Sequence[str], timeout: float = 600.0,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:  # fmt: skip
    """:func:`run_python_without` running a script as ``__main__`` with ``args``."""
    argv = [str(script), *map(str, args)]
    code = f"import runpy, sys\nsys.argv = {argv!r}\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
    return run_python_without(blocked, code, timeout, env)
