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
