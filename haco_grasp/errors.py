"""One error family for the whole toolkit.

Every message says what was expected, what was received and how to fix it, in one line.
"""

from __future__ import annotations


class HacoGraspError(Exception):
    """Base class of every error haco_grasp raises on purpose."""


class InputError(HacoGraspError, ValueError):
    """A user-supplied value, array or file has the wrong shape, type or content."""


class AssetError(HacoGraspError, FileNotFoundError):
    """A required asset file (MANO model, dataset, checkpoint) is missing."""


class UnsafePickleError(HacoGraspError):
    """A pickle asked for a class or function that the restricted unpickler does not allow."""


def torch_load_reason(exc: BaseException) -> str:
    """One short line saying why ``torch.load`` failed; for a weights-only refusal, the line naming what was blocked
    (e.g. ``Unsupported global: GLOBAL os.system``), not torch's generic first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or line.startswith("Unsupported"):
            return line[:200]
    return f"{type(exc).__name__}: {lines[0][:160]}" if lines else type(exc).__name__
