"""Contact-guided grasp optimisation: config and presets, noise profiles, the objective, the optimizer."""

from haco_grasp.optimize.config import CONTACTOPT, FAST, HACO, PRESETS, OptimizeConfig, get_config
from haco_grasp.optimize.noise import NOISE_PROFILES, NoiseProfile, fit_noise_profile, load_noise_profile
from haco_grasp.optimize.objectives import LOSS_TERMS
from haco_grasp.optimize.optimizer import OptimizeResult, optimize_grasp
from haco_grasp.optimize.targets import map_contact_target

__all__ = [
    "CONTACTOPT",
    "FAST",
    "HACO",
    "LOSS_TERMS",
    "NOISE_PROFILES",
    "PRESETS",
    "NoiseProfile",
    "OptimizeConfig",
    "OptimizeResult",
    "fit_noise_profile",
    "get_config",
    "load_noise_profile",
    "map_contact_target",
    "optimize_grasp",
]
