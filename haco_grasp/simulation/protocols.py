"""Simulation protocols (:class:`SimProtocol`, the ``obman`` and ``hold`` presets) and per-grasp results.

Pure data: imports numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import numpy as np

from haco_grasp.errors import HacoGraspError, InputError

_AXES = ((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, -1.0))


class SimulationError(HacoGraspError, RuntimeError):
    """A convex decomposition or simulation failed (caught per grasp by :func:`simulate_grasps`)."""


# --------------------------------------------------------------------------------------------------------------
# protocols


@dataclass(frozen=True)
class SimProtocol:
    """Settings of one simulation protocol. Lengths in metres, times in seconds.

    Attributes:
        name: preset name (recorded with results).
        timestep: integration step, s.
        steps: number of steps per gravity direction.
        gravity: magnitude of gravity, m/s².
        directions: unit gravity directions in the grasp's world frame; each is simulated from the same start and
            the largest displacement is reported.
        friction: sliding friction coefficient of hand and object (MuJoCo combines them with max).
        object_mass: kg; the centre of mass is the mean of the object's vertices (ObMan), the inertia that of a
            uniform solid of the closed mesh.
        solver_iterations: MuJoCo constraint-solver iterations.
        stay_threshold: a grasp stayed when the displacement is below this, metres (DeepSimHO's success rate: 1 cm).
        hand_margin: contact margin of the hand's pieces, metres: 0 makes contact only where shapes touch or overlap.
        grip: total force, N, with which the hand pulls the object at its contacts (MuJoCo adhesion on the hand's
            body, shared among the contacts, DeepSimHO's device for a static hand that can squeeze); 0: none.
        contact_timeconst: time constant of MuJoCo's soft contacts, s; None: 2 × timestep, the stiffest MuJoCo
            integrates stably (a box resting on a plane then sinks about 0.4 mm; MuJoCo's default 0.02 s sinks
            2 mm in 35 steps).
        part_overlap: a hand vertex also joins the hull of every MANO part on which its skinning weight is at
            least this (neighbouring hulls overlap across joints).
        max_inside_fraction: a grasp with more than this share of hand vertices inside the object is not simulated
            (the hand is inside the object rather than around it).
        coacd_threshold: CoACD concavity threshold (smaller: more, finer pieces).
        coacd_max_pieces: at most this many convex pieces per object (-1: no limit).
    """

    name: str = "custom"
    timestep: float = 1.0 / 240.0
    steps: int = 35
    gravity: float = 9.8
    directions: tuple[tuple[float, float, float], ...] = ((0.0, 1.0, 0.0),)
    friction: float = 3.0
    object_mass: float = 1.0
    solver_iterations: int = 150
    stay_threshold: float = 0.01
    hand_margin: float = 0.0
    grip: float = 0.0
    contact_timeconst: float | None = None
    part_overlap: float = 0.3
    max_inside_fraction: float = 0.5
    coacd_threshold: float = 0.05
    coacd_max_pieces: int = 32

    def __post_init__(self) -> None:
        def positive(name: str, value: float) -> None:
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                raise InputError(f"SimProtocol.{name}: expected a positive number, got {value!r}")

        for name in ("timestep", "gravity", "object_mass", "stay_threshold", "coacd_threshold"):
            positive(name, getattr(self, name))
        for name in ("steps", "solver_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"SimProtocol.{name}: expected a positive int, got {value!r}")
        if isinstance(self.friction, bool) or not isinstance(self.friction, (int, float)) or not self.friction >= 0:
            raise InputError(f"SimProtocol.friction: expected a coefficient >= 0, got {self.friction!r}")
        if self.contact_timeconst is not None and not (
            isinstance(self.contact_timeconst, (int, float)) and self.contact_timeconst >= 2 * self.timestep
        ):
            raise InputError(
                f"SimProtocol.contact_timeconst: expected None or >= 2 * timestep = {2 * self.timestep:.4g} s, got "
                f"{self.contact_timeconst!r}"
            )
        if not (isinstance(self.grip, (int, float)) and 0 <= self.grip < math.inf):
            raise InputError(f"SimProtocol.grip: expected a force >= 0 in N, got {self.grip!r}")
        if not (isinstance(self.hand_margin, (int, float)) and 0 <= self.hand_margin < 0.01):
            raise InputError(f"SimProtocol.hand_margin: expected metres in [0, 0.01), got {self.hand_margin!r}")
        if not (0 < self.part_overlap <= 1 and 0 < self.max_inside_fraction <= 1):
            raise InputError(
                f"SimProtocol.part_overlap / max_inside_fraction: expected values in (0, 1], got "
                f"{self.part_overlap!r} / {self.max_inside_fraction!r}"
            )
        directions = np.asarray(self.directions, dtype=np.float64)
        if directions.ndim != 2 or directions.shape[1] != 3 or directions.shape[0] == 0:
            raise InputError(f"SimProtocol.directions: expected (D, 3) unit vectors, got shape {directions.shape}")
        if not np.allclose(np.linalg.norm(directions, axis=1), 1.0, atol=1e-6):
            raise InputError(f"SimProtocol.directions: expected unit vectors, got {self.directions!r}")

    @property
    def duration(self) -> float:
        """Simulated time per direction, s."""
        return self.steps * self.timestep

    def to_dict(self) -> dict:
        """JSON-ready settings."""
        return asdict(self)


PROTOCOLS: dict[str, SimProtocol] = {
    "obman": SimProtocol(name="obman"),
    "hold": SimProtocol(name="hold", steps=240, grip=30.0, hand_margin=0.002),
}
# The six axis directions, for a worst-of-several protocol: ``with_protocol("hold", directions=AXIS_DIRECTIONS)``.
AXIS_DIRECTIONS = _AXES


def get_protocol(protocol: str | SimProtocol) -> SimProtocol:
    """A preset by name (``"obman"``, ``"hold"``) or a :class:`SimProtocol` unchanged.

    Raises:
        InputError: unknown name (the message lists the presets).
    """
    if isinstance(protocol, SimProtocol):
        return protocol
    if isinstance(protocol, str) and protocol in PROTOCOLS:
        return PROTOCOLS[protocol]
    raise InputError(f"protocol: expected one of {sorted(PROTOCOLS)} or a SimProtocol, got {protocol!r}")


def with_protocol(protocol: str | SimProtocol, **changes) -> SimProtocol:
    """A copy of a preset with some fields changed, e.g. ``with_protocol("obman", hand_margin=0.001)``."""
    return replace(get_protocol(protocol), **changes)


# --------------------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class SimResult:
    """Outcome of one grasp.

    Attributes:
        simulated: False when the grasp was skipped; ``reason`` then says why and the values are NaN / None / -1.
        reason: "" when simulated.
        displacement_cm: largest centre-of-mass displacement over the protocol's directions, cm.
        stayed: displacement below the protocol's ``stay_threshold``.
        contacts: MuJoCo hand–object contact count at the start (before gravity acts).
        contacts_end: the count after the last step of the worst direction.
        worst_direction: (3,) gravity direction that gave ``displacement_cm``.
        seconds: wall time of building and simulating this grasp (excludes validation and decomposition).
    """

    simulated: bool
    reason: str = ""
    displacement_cm: float = math.nan
    stayed: bool | None = None
    contacts: int = -1
    contacts_end: int = -1
    worst_direction: tuple[float, float, float] | None = None
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """``"simulated"`` or ``"not simulated: <reason>"`` (the per-frame value written to outputs)."""
        return "simulated" if self.simulated else f"not simulated: {self.reason}"

    def to_dict(self) -> dict:
        """JSON-ready per-frame values (NaN becomes None)."""
        values = asdict(self)
        values["status"] = self.status
        if not math.isfinite(values["displacement_cm"]):
            values["displacement_cm"] = None
        return values


class SimSummary(NamedTuple):
    """Summary over frames; the statistics are over simulated frames only.

    Attributes:
        n: frames.
        n_simulated: frames simulated.
        mean_displacement_cm / median_displacement_cm: cm (NaN if none).
        stable_share: share of simulated frames that stayed.
        contact_share: share with at least one MuJoCo contact.
    """

    n: int
    n_simulated: int
    mean_displacement_cm: float
    median_displacement_cm: float
    stable_share: float
    contact_share: float


def summarize_simulation(results: Sequence[SimResult]) -> SimSummary:
    """Mean / median displacement, stable share and contact share over the simulated frames."""
    done = [r for r in results if r.simulated]
    if not done:
        return SimSummary(len(results), 0, math.nan, math.nan, math.nan, math.nan)
    displacement = np.array([r.displacement_cm for r in done])
    return SimSummary(
        n=len(results),
        n_simulated=len(done),
        mean_displacement_cm=float(displacement.mean()),
        median_displacement_cm=float(np.median(displacement)),
        stable_share=float(np.mean([bool(r.stayed) for r in done])),
        contact_share=float(np.mean([r.contacts > 0 for r in done])),
    )
