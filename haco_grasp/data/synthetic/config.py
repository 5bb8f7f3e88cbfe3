"""Configuration of the synthetic grasp world: grasp types, the planner's joint limits, :class:`GraspWorldConfig`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from haco_grasp.errors import InputError

#: Grasp types the planner knows.
GRASP_TYPES: tuple[str, ...] = ("power", "precision", "pinch")

#: Version of the planner, stored in ``Grasp.meta["generator"]``.
GENERATOR_VERSION = "synthetic-grasp-v1"

# Digits in the toolkit's order (thumb, index, middle, ring, pinky) and their MANO joints, proximal to distal.
_DIGIT_NAMES: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")
_DIGIT_JOINTS: tuple[tuple[int, int, int], ...] = ((13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))
_NUM_DIGITS = 5
_NUM_LEVELS = 3
# Direction of the thumb's pad in the rest pose: a mix of the palm normal and the direction towards the fingers.
_THUMB_PAD_MIX = (0.6, 0.8)
# Flexion limits, radians: fingers (MCP, PIP, DIP), thumb (CMC, MCP, IP); and the largest path parameter.
_FINGER_LIMITS = (1.6, 1.8, 1.2)
_THUMB_LIMITS = (1.3, 1.0, 1.3)
_MAX_PATH = 2.0
_MAX_THUMB_CMC_PATH = 1.2  # the thumb's CMC path also abducts and twists: do not extrapolate it far
_MIN_PATH = -0.3  # digits may open a little beyond the open family while clearing the object
_OPEN_STEP = 0.15  # path step of a digit that opens to clear the object


@dataclass(frozen=True)
class GraspWorldConfig:
    """Tunable constants of the grasp planner (metres, radians, cm³). The defaults are the documented procedure.

    Attributes:
        candidates_per_round: candidates drawn per missing grasp and round.
        max_rounds: rounds of candidates per grasp type before trying the next type the object affords (after the
            last type, the best candidate is returned).
        max_batch: candidates simulated together in one torch batch.
        sdf_pitch: spacing of the object's SdfGrid, metres.
        touch_distance: a link stops closing when its grid distance falls below this, metres.
        clearance: no approach or closing step may bring a vertex below this grid distance, metres.
        flex_step: largest flexion step, radians.
        min_flex_step: a joint whose safe step falls below this is blocked, radians.
        max_penetration: largest exact penetration depth of a kept grasp, metres.
        quality_distance: a digit or the palm is "in contact" within this exact distance, metres.
        max_volume_cm3: largest hand-object intersection volume of a kept grasp, cm³ (voxels of ``volume_pitch``).
        volume_pitch: voxel size of the intersection volume, metres.
        betas_std: standard deviation of the random shape coefficients (clipped to 3 std).
        roll_jitter_deg: random roll about the approach axis, degrees (uniform in +-).
        surface_samples: object surface samples used to measure extents at grasp sites.
        site_candidates: surface samples scored as sites.
        num_threads: torch CPU threads during generation (restored afterwards). The batched ops are small and one
            thread avoids OpenMP spin-waiting on busy machines (20x slower with 2 threads under load); None leaves
            torch's setting unchanged.
    """

    candidates_per_round: int = 6
    max_rounds: int = 5
    max_batch: int = 96
    sdf_pitch: float = 0.002
    touch_distance: float = 0.001
    clearance: float = 0.0002
    flex_step: float = 0.06
    min_flex_step: float = 0.003
    max_penetration: float = 0.001
    quality_distance: float = 0.002
    max_volume_cm3: float = 0.5
    volume_pitch: float = 0.002
    betas_std: float = 0.5
    roll_jitter_deg: float = 12.0
    surface_samples: int = 3000
    site_candidates: int = 500
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        counts = ("candidates_per_round", "max_rounds", "max_batch", "surface_samples", "site_candidates")
        for name in counts:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"GraspWorldConfig.{name}: expected a positive int, got {value!r}")
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in counts or name == "num_threads":
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InputError(f"GraspWorldConfig.{name}: expected a non-negative number, got {value!r}")
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            raise InputError(f"GraspWorldConfig.num_threads: expected None or a positive int, got {self.num_threads!r}")


@dataclass(frozen=True)
class _TypeSpec:
    """How one grasp type is planned."""

    family: str  # pose family of synthetic_grasp_poses reached at path parameter t = 1
    preshape: tuple[float, float]  # pre-shape path parameter range of the closing fingers
    thumb_preshape: tuple[float, float]  # pre-shape path parameter range of the thumb (power: already opposed)
    closing: tuple[bool, ...]  # digits that close (thumb, index, middle, ring, pinky); the others sit at t = 1
    depth: float  # target depth of the grasp centre below the surface (inf: until the palm touches), metres
    extent: tuple[float, float]  # valid object extent along the opposition axis, metres
    window: float  # half-length of the extent window along the opposition axis, metres
    band: float  # half-width of the finger band (perpendicular to the opposition axis), metres


_TYPE_SPECS: dict[str, _TypeSpec] = {
    "power": _TypeSpec("power", (0.0, 0.1), (0.5, 0.9), (True,) * 5, math.inf, (0.015, 0.09), 0.065, 0.02),
    "precision": _TypeSpec("precision", (0.3, 0.5), (0.3, 0.5), (True,) * 5, 0.010, (0.02, 0.07), 0.055, 0.015),
    "pinch": _TypeSpec(
        "pinch", (0.3, 0.5), (0.3, 0.5), (True, True, True, False, False), 0.008, (0.002, 0.03), 0.035, 0.01
    ),
}
_POWER_DEPTH_RANGE = (0.015, 0.09)  # object depth behind a power site, metres
