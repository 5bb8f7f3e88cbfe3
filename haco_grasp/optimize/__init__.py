"""Contact-guided grasp optimisation (ContactOpt-style objective, batched over grasps and restarts)."""

from haco_grasp.optimize.config import CONTACTOPT, FAST, HACO, PRESETS, OptimizeConfig, get_config
from haco_grasp.optimize.optimizer import LOSS_TERMS, OptimizeResult, optimize_grasp
from haco_grasp.optimize.targets import map_contact_target

__all__ = [
    "CONTACTOPT",
    "FAST",
    "HACO",
    "LOSS_TERMS",
    "PRESETS",
    "OptimizeConfig",
    "OptimizeResult",
    "get_config",
    "map_contact_target",
    "optimize_grasp",
]
