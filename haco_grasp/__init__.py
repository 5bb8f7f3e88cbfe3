"""haco_grasp: contact-guided 3D grasp refinement.

Units: metres inside the toolkit; millimetres and cm³ only in reports.
``from haco_grasp import optimize_grasp`` is resolved lazily so that ``import haco_grasp`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["optimize_grasp", "OptimizeConfig", "OptimizeResult", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("optimize_grasp", "OptimizeConfig", "OptimizeResult"):
        from haco_grasp import optimize

        return getattr(optimize, name)
    raise AttributeError(f"module 'haco_grasp' has no attribute {name!r}")
