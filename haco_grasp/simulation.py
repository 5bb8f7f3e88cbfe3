"""Simulation displacement: does the object stay in a static hand under gravity? (MuJoCo)

The field's physical-plausibility test (ObMan's, reused by GraspTTA, CPF, DeepSimHO): the hand is fixed in space,
the object is a free rigid body under gravity, and after a short simulation the distance its centre of mass moved is
the *simulation displacement* (SD, reported in cm). A grasp *stayed* when SD is under the protocol's threshold.

Collision shapes (MuJoCo collides convex shapes only):

- object: decomposed once into convex pieces with CoACD (a concave mug or bowl keeps its opening; a convex hull of
  it would let the fingers rest on a lid that does not exist). The pieces are cached on disk under
  ``cache_dir()/coacd`` keyed by a hash of the canonical mesh, the CoACD settings and the seed; CoACD runs in a
  child process because it can abort the interpreter on some meshes (slivers: the mesh is first welded at 10 µm).
- hand: one convex hull per MANO part (16 joints), from the vertices whose skinning weight on that joint is the
  largest or at least ``part_overlap`` (so neighbouring parts overlap across each joint and leave no gap),
  recomputed for every grasp from its posed vertices. A single hull of the whole hand would fill the space between
  the fingers and the palm, i.e. the object itself, and turn every grasp into a deep penetration.

Protocols (:data:`PROTOCOLS`, or any :class:`SimProtocol`):

- ``obman``: ObMan's published settings: time step 1/240 s, 35 steps (0.146 s), friction 3, object mass 1 kg with
  its centre at the mean of its vertices, gravity 9.8 m/s² along +y of the grasp's world frame (the camera frame of
  DexYCB/HFL-Net grasps: y points down in the image; the object's canonical frame for synthetic grasps),
  150 solver iterations. PyBullet's restitution (hand 0 × object 0.5) multiplies to 0; MuJoCo's default critically
  damped contacts do not bounce either. Both engines integrate semi-implicitly, so 35 steps of free fall cover
  g·dt²·35·36/2 = 10.7 cm, 2.9 % more than ½·g·t².
- ``hold``: 1 s (240 steps) under gravity along +y, and the hand *grips*: it pulls the object with 30 N in total
  at its contacts (MuJoCo adhesion, as DeepSimHO's adhesion actuator) and makes contact from 2 mm away. A static
  hand without grip holds an object only by interpenetration (the soft-contact springs push back) or by caging it:
  on planned ground-truth grasps that touch the surface without penetrating, ``obman`` mostly reports a fall (see
  README, "Simulation"). ``with_protocol("hold", directions=AXIS_DIRECTIONS)`` takes the worst of ±x, ±y, ±z
  instead (much harsher: hardly any grasp survives it).

Bad input never stops a run: a grasp with a non-watertight or degenerate object, a hand with most of its vertices
inside the object, or a failed decomposition or simulation gets ``status == "not simulated: <reason>"`` and one
logged warning line.

One module of ~750 lines: the protocol, the decomposition cache, the scene and the batch driver share private types
and are read together. Import cost: this module imports numpy only; MuJoCo, CoACD, torch-based geometry and the
MANO files are loaded on first use, and worker processes (``workers > 1``) import MuJoCo and numpy only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from haco_grasp.errors import HacoGraspError, InputError

if TYPE_CHECKING:
    from haco_grasp.data.grasp import Grasp

__all__ = [
    "AXIS_DIRECTIONS",
    "PROTOCOLS",
    "SimProtocol",
    "SimulationError",
    "SimResult",
    "SimSummary",
    "decompose_object",
    "get_protocol",
    "hand_part_indices",
    "simulate_grasps",
    "simulate_pieces",
    "summarize_simulation",
    "with_protocol",
]

logger = logging.getLogger(__name__)

_AXES = ((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, -1.0))
# Bump when the decomposition recipe (welding, fallbacks, file layout) changes: old cache files are then ignored.
_DECOMPOSITION_VERSION = 1
_WELD_DIGITS = 5  # weld vertices at 1e-5 m before CoACD (procedural CSG meshes carry slivers CoACD asserts on)


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

    n: frames. n_simulated: frames simulated. mean_displacement_cm / median_displacement_cm: cm (NaN if none).
    stable_share: share of simulated frames that stayed. contact_share: share with at least one MuJoCo contact.
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


# --------------------------------------------------------------------------------------------------------------
# hand parts


def hand_part_indices(weights: np.ndarray, overlap: float = 0.3) -> list[np.ndarray]:
    """Vertex ids of each MANO part for per-part convex hulls.

    A vertex belongs to the part of its dominant skinning joint and to every part on which its weight is at least
    ``overlap``.

    Args:
        weights: (V, J) float, skinning weights (MANO: V = 778, J = 16).
        overlap: weight from which a vertex also joins a non-dominant part.

    Returns:
        J int64 arrays of vertex ids (parts with fewer than 4 vertices are left out).
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[0] < 4:
        raise InputError(f"weights: expected (V, J) skinning weights, got shape {weights.shape}")
    member = weights >= overlap  # (V, J)
    member[np.arange(weights.shape[0]), weights.argmax(axis=1)] = True
    parts = [np.flatnonzero(member[:, j]) for j in range(weights.shape[1])]
    return [p for p in parts if p.size >= 4]


def _skinning_weights(side: str, mano_root: str | os.PathLike | None) -> np.ndarray:
    """(V, 16) skinning weights of the MANO model (None: the license-free synthetic hand)."""
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path

    root = synthetic_mano_root() if mano_root is None else mano_root
    return np.asarray(read_mano_pickle(resolve_mano_path(side, root)).weights, dtype=np.float64)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------
# object decomposition (CoACD, cached)


def _decomposition_key(verts: np.ndarray, faces: np.ndarray, protocol: SimProtocol, seed: int) -> str:
    import coacd

    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(verts, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
    settings = {
        "version": _DECOMPOSITION_VERSION,
        "coacd": getattr(coacd, "__version__", "?"),
        "threshold": protocol.coacd_threshold,
        "max_pieces": protocol.coacd_max_pieces,
        "seed": int(seed),
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:24]


def _decompose_main(argv: list[str]) -> None:
    """Child-process entry: ``in.npz out.npz settings.json`` -> convex pieces (CoACD may abort the process)."""
    import coacd
    import trimesh

    source, target, settings = argv[0], argv[1], json.loads(argv[2])
    with np.load(source) as data:
        mesh = trimesh.Trimesh(data["verts"], data["faces"], process=False)
    mesh.merge_vertices(digits_vertex=_WELD_DIGITS)
    mesh.update_faces(mesh.nondegenerate_faces(height=1e-8))
    mesh.remove_unreferenced_vertices()
    coacd.set_log_level("error")
    pieces = coacd.run_coacd(
        coacd.Mesh(np.asarray(mesh.vertices), np.asarray(mesh.faces)),
        threshold=settings["threshold"],
        max_convex_hull=settings["max_pieces"],
        preprocess_mode=settings["preprocess_mode"],
        preprocess_resolution=settings["preprocess_resolution"],
        seed=settings["seed"],
    )
    verts = [np.asarray(v, dtype=np.float64) for v, _ in pieces]
    np.savez(target, verts=np.concatenate(verts), counts=np.array([len(v) for v in verts], dtype=np.int64))


def _run_coacd(verts: np.ndarray, faces: np.ndarray, protocol: SimProtocol, seed: int) -> list[np.ndarray]:
    """CoACD in a child process: first its default preprocessing, then (if it crashed) a full remeshing."""
    attempts = [("auto", 50), ("on", 40)]
    errors = []
    with tempfile.TemporaryDirectory(prefix="haco_coacd_") as folder:
        source, target = Path(folder) / "in.npz", Path(folder) / "out.npz"
        np.savez(source, verts=verts, faces=faces)
        for mode, resolution in attempts:
            settings = {
                "threshold": protocol.coacd_threshold,
                "max_pieces": protocol.coacd_max_pieces,
                "preprocess_mode": mode,
                "preprocess_resolution": resolution,
                "seed": int(seed),
            }
            command = [
                sys.executable,
                "-c",
                "import sys; from haco_grasp.simulation import _decompose_main; _decompose_main(sys.argv[1:])",
                str(source),
                str(target),
                json.dumps(settings),
            ]
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            if done.returncode == 0 and target.is_file():
                with np.load(target) as data:
                    return np.split(data["verts"], np.cumsum(data["counts"])[:-1])
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
            errors.append(f"preprocess={mode}: exit {done.returncode}: {tail}")
    raise SimulationError("CoACD failed: " + "; ".join(errors))


def decompose_object(
    verts: np.ndarray, faces: np.ndarray, protocol: str | SimProtocol = "obman", seed: int = 0
) -> list[np.ndarray]:
    """Convex pieces of a closed mesh (CoACD), computed once and cached on disk by mesh hash.

    The cache file is ``cache_dir()/coacd/<hash>.npz``; the hash covers the vertices, faces, CoACD settings of the
    protocol, the seed and the CoACD version.

    Args:
        verts: (V, 3) float, metres (pass the canonical mesh so that every pose reuses one decomposition).
        faces: (F, 3) int.
        protocol: preset name or :class:`SimProtocol` (its ``coacd_*`` fields are used).
        seed: CoACD's random seed.

    Returns:
        pieces: list of (Pi, 3) float64 arrays, the vertices of each convex piece, metres, same frame as ``verts``.

    Raises:
        SimulationError: CoACD failed with both preprocessing modes.
    """
    from haco_grasp.atomic import atomic_open
    from haco_grasp.hand.assets import cache_dir

    protocol = get_protocol(protocol)
    verts = np.ascontiguousarray(verts, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    path = cache_dir() / "coacd" / f"{_decomposition_key(verts, faces, protocol, seed)}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                return np.split(data["verts"], np.cumsum(data["counts"])[:-1])
        except (OSError, ValueError, KeyError) as error:
            logger.warning("decomposition cache %s unreadable (%s); recomputing", path, error)
    started = time.perf_counter()
    pieces = _run_coacd(verts, faces, protocol, seed)
    logger.info("CoACD: %d pieces in %.1f s -> %s", len(pieces), time.perf_counter() - started, path)
    with atomic_open(path) as stream:
        np.savez(stream, verts=np.concatenate(pieces), counts=np.array([len(p) for p in pieces], dtype=np.int64))
    return pieces


# --------------------------------------------------------------------------------------------------------------
# the MuJoCo scene


class _Outcome(NamedTuple):
    displacement: float  # metres
    contacts: int
    contacts_end: int
    direction: tuple[float, float, float]


def _mujoco_model(
    object_pieces: Sequence[np.ndarray],
    hand_pieces: Sequence[np.ndarray],
    com: np.ndarray,
    inertia: np.ndarray,
    protocol: SimProtocol,
):
    """Compile the scene: static hand hulls in the world body, one free body of object hulls."""
    import mujoco

    spec = mujoco.MjSpec()
    spec.option.timestep = protocol.timestep
    spec.option.iterations = protocol.solver_iterations
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_EULER
    friction = [protocol.friction, 0.005, 0.0001]
    condim = 3 if protocol.friction > 0 else 1  # MuJoCo clamps a zero friction to 1e-5, which stiffens the cone
    solref = [protocol.contact_timeconst or 2.0 * protocol.timestep, 1.0]  # critically damped: no bounce
    hand = spec.worldbody.add_body(name="hand")  # no joint: welded to the world, static
    for index, points in enumerate(hand_pieces):
        mesh = spec.add_mesh(name=f"hand{index}")
        mesh.uservert = np.asarray(points, dtype=np.float64).ravel().tolist()
        geom = hand.add_geom(name=f"hand{index}", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"hand{index}")
        geom.friction = friction
        geom.condim = condim
        geom.solref = solref
        geom.margin = protocol.hand_margin
    if protocol.grip > 0 and hand_pieces:
        actuator = spec.add_actuator(name="grip", target="hand", trntype=mujoco.mjtTrn.mjTRN_BODY)
        actuator.set_to_adhesion(gain=protocol.grip)
        actuator.ctrlrange = [0.0, 1.0]
    body = spec.worldbody.add_body(name="object")
    body.add_freejoint()
    body.explicitinertial = True
    body.mass = protocol.object_mass
    body.ipos = np.asarray(com, dtype=np.float64).tolist()
    i = np.asarray(inertia, dtype=np.float64)
    body.fullinertia = [i[0, 0], i[1, 1], i[2, 2], i[0, 1], i[0, 2], i[1, 2]]
    for index, points in enumerate(object_pieces):
        mesh = spec.add_mesh(name=f"object{index}")
        mesh.uservert = np.asarray(points, dtype=np.float64).ravel().tolist()
        geom = body.add_geom(name=f"object{index}", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"object{index}")
        geom.friction = friction
        geom.condim = condim
        geom.solref = solref
        geom.mass = 0.0
    return spec.compile()


def _box_inertia(points: np.ndarray, mass: float) -> np.ndarray:
    """(3, 3) inertia of a uniform box spanning the points' bounding box (fallback when no mesh is given)."""
    extent = np.ptp(points, axis=0)
    sq = extent**2
    return mass / 12.0 * np.diag([sq[1] + sq[2], sq[0] + sq[2], sq[0] + sq[1]])


def simulate_pieces(
    object_pieces: Sequence[np.ndarray],
    hand_pieces: Sequence[np.ndarray],
    protocol: str | SimProtocol = "obman",
    com: np.ndarray | None = None,
    inertia: np.ndarray | None = None,
) -> _Outcome:
    """Simulate one object (convex pieces, dynamic) against static convex hand pieces.

    Args:
        object_pieces: list of (Pi, 3) float arrays, vertices of each convex object piece, world frame, metres.
        hand_pieces: list of (Qi, 3) float arrays, vertices of each static convex piece (may be empty).
        protocol: preset name or :class:`SimProtocol`.
        com: (3,) centre of mass, metres; default the mean of all object piece vertices.
        inertia: (3, 3) inertia about ``com`` in the world frame, kg·m²; default a uniform box over the pieces.

    Returns:
        ``(displacement, contacts, contacts_end, direction)``: the largest centre-of-mass displacement in metres over
        the protocol's directions, the start and end hand–object contact counts, and the worst direction.

    Raises:
        SimulationError: MuJoCo could not compile the scene (e.g. a flat piece) or the simulation diverged.
    """
    import mujoco

    protocol = get_protocol(protocol)
    everything = np.concatenate([np.asarray(p, dtype=np.float64) for p in object_pieces])
    com = everything.mean(axis=0) if com is None else np.asarray(com, dtype=np.float64)
    inertia = _box_inertia(everything, protocol.object_mass) if inertia is None else inertia
    try:
        model = _mujoco_model(object_pieces, hand_pieces, com, inertia, protocol)
    except ValueError as error:
        raise SimulationError(f"MuJoCo could not build the scene: {str(error).splitlines()[0][:200]}") from None
    data = mujoco.MjData(model)
    object_id = model.body("object").id
    object_geom = model.geom_bodyid == object_id  # (G,)

    def hand_contacts() -> int:
        pairs = data.contact.geom[: data.ncon]  # (ncon, 2)
        return int(np.sum(object_geom[pairs[:, 0]] != object_geom[pairs[:, 1]]))

    worst = _Outcome(-1.0, 0, 0, (0.0, 0.0, 0.0))
    for direction in protocol.directions:
        mujoco.mj_resetData(model, data)
        data.ctrl[:] = 1.0  # grip on (no actuator without grip)
        model.opt.gravity[:] = protocol.gravity * np.asarray(direction)
        mujoco.mj_forward(model, data)
        start = data.xipos[object_id].copy()
        contacts = hand_contacts()
        for _ in range(protocol.steps):
            mujoco.mj_step(model, data)
        if data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number > 0 or not np.all(np.isfinite(data.qpos)):
            raise SimulationError("the simulation diverged (MuJoCo bad acceleration)")
        mujoco.mj_forward(model, data)  # positions and contacts of the final state (mj_step leaves them one step old)
        displacement = float(np.linalg.norm(data.xipos[object_id] - start))
        if displacement > worst.displacement:
            worst = _Outcome(displacement, contacts, hand_contacts(), tuple(float(x) for x in direction))
    return worst


# --------------------------------------------------------------------------------------------------------------
# grasps


class _Task(NamedTuple):
    """One grasp's scene, ready for a worker (numpy and a protocol only: cheap to send to a process)."""

    object_pieces: list[np.ndarray]
    hand_pieces: list[np.ndarray]
    com: np.ndarray
    inertia: np.ndarray
    protocol: SimProtocol


def _run_task(task: _Task) -> SimResult:
    started = time.perf_counter()
    try:
        outcome = simulate_pieces(task.object_pieces, task.hand_pieces, task.protocol, task.com, task.inertia)
    except SimulationError as error:
        return SimResult(simulated=False, reason=str(error), seconds=time.perf_counter() - started)
    except Exception as error:  # noqa: BLE001 - one grasp's failure must not end the run; it is reported instead
        message = (str(error).splitlines() or [""])[0][:200]
        reason = f"simulation failed ({type(error).__name__}: {message})"
        return SimResult(simulated=False, reason=reason, seconds=time.perf_counter() - started)
    return SimResult(
        simulated=True,
        displacement_cm=100.0 * outcome.displacement,
        stayed=outcome.displacement < task.protocol.stay_threshold,
        contacts=outcome.contacts,
        contacts_end=outcome.contacts_end,
        worst_direction=outcome.direction,
        seconds=time.perf_counter() - started,
    )


def _run_chunk(tasks: list[_Task]) -> list[SimResult]:
    return [_run_task(task) for task in tasks]


@dataclass
class _Prepared:
    """Validation output of one grasp: a task or the reason it is skipped."""

    task: _Task | None = None
    reason: str = ""


def _object_check(verts: np.ndarray, faces: np.ndarray) -> str:
    """'' when the object can be simulated, else the reason."""
    from haco_grasp.geometry.mesh import is_watertight

    if verts.ndim != 2 or verts.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        return f"degenerate object mesh (verts {verts.shape}, faces {faces.shape})"
    if verts.shape[0] < 4 or faces.shape[0] < 4 or not np.all(np.isfinite(verts)):
        finite = bool(np.isfinite(verts).all())
        return f"degenerate object mesh ({verts.shape[0]} vertices, {faces.shape[0]} faces, finite: {finite})"
    if faces.min() < 0 or faces.max() >= verts.shape[0]:
        return "degenerate object mesh (face indices out of range)"
    if not is_watertight(faces):
        return "object mesh is not watertight"
    if np.min(np.ptp(verts, axis=0)) < 1e-4:
        return f"degenerate object mesh (flat: extents {np.ptp(verts, axis=0).round(5).tolist()} m)"
    return ""


def _mass_properties(verts: np.ndarray, faces: np.ndarray, mass: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Vertex mean (3,), inertia (3, 3) about it of a uniform solid of ``mass``, and the enclosed volume (m³)."""
    import trimesh

    mesh = trimesh.Trimesh(verts, faces, process=False)
    volume = abs(float(mesh.volume))
    com = verts.mean(axis=0)
    if volume < 1e-9:
        return com, np.zeros((3, 3)), volume
    # about the volume centroid; inward-facing normals flip the sign of both integrals, so the ratio stays right
    inertia_centroid = np.asarray(mesh.moment_inertia) * (mass / float(mesh.mass))
    offset = com - np.asarray(mesh.center_mass)
    inertia = inertia_centroid + mass * (offset @ offset * np.eye(3) - np.outer(offset, offset))  # parallel axis
    return com, inertia, volume


def _prepare(
    grasp: Grasp,
    pieces_canonical: list[np.ndarray] | str,
    parts: list[np.ndarray],
    protocol: SimProtocol,
) -> _Prepared:
    from haco_grasp.geometry.sdf import signed_distance

    if isinstance(pieces_canonical, str):
        return _Prepared(reason=pieces_canonical)
    rotation = np.asarray(grasp.obj_rotation, dtype=np.float64)
    translation = np.asarray(grasp.obj_translation, dtype=np.float64)
    verts = np.asarray(grasp.obj_verts_canonical, dtype=np.float64) @ rotation.T + translation
    faces = np.asarray(grasp.obj_faces, dtype=np.int64)
    hand = np.asarray(grasp.hand_verts, dtype=np.float64)
    if hand.ndim != 2 or hand.shape[1] != 3 or not np.all(np.isfinite(hand)):
        return _Prepared(reason=f"hand vertices must be finite (V, 3), got shape {hand.shape}")
    if parts and hand.shape[0] <= max(int(p.max()) for p in parts):
        needed = 1 + max(int(p.max()) for p in parts)
        return _Prepared(reason=f"hand has {hand.shape[0]} vertices; the MANO part map needs {needed}")
    com, inertia, volume = _mass_properties(verts, faces, protocol.object_mass)
    if volume < 1e-9:
        return _Prepared(reason=f"degenerate object mesh (volume {volume * 1e6:.3g} cm³)")
    inside = np.asarray(signed_distance(hand, verts, faces)) < 0  # (V,)
    if inside.mean() > protocol.max_inside_fraction:
        return _Prepared(reason=f"hand inside the object ({100 * inside.mean():.0f} % of hand vertices inside)")
    object_pieces = [p @ rotation.T + translation for p in pieces_canonical]
    hand_pieces = [hand[p] for p in parts]
    return _Prepared(task=_Task(object_pieces, hand_pieces, com, inertia, protocol))


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return max(1, min(os.cpu_count() or 1, 8))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers: expected a positive int or None (one per CPU core), got {workers!r}")
    return workers


def simulate_grasps(
    grasps: Sequence[Grasp],
    protocol: str | SimProtocol = "obman",
    workers: int | None = 1,
    seed: int = 0,
    mano_root: str | os.PathLike | None = None,
    progress: bool = False,
) -> list[SimResult]:
    """Simulation displacement of each grasp: static hand, free object under gravity (MuJoCo).

    Results are deterministic for a seed (CoACD's seed; MuJoCo itself is deterministic) and do not depend on
    ``workers``. Grasps that cannot be simulated get ``simulated=False`` and a reason, with one warning logged each.

    Args:
        grasps: :class:`~haco_grasp.data.grasp.Grasp` records (hand vertices and posed object in one world frame).
        protocol: ``"obman"``, ``"hold"`` or a :class:`SimProtocol` (see the module docstring).
        workers: CPU processes (None: one per core up to 8). They are spawned (fresh interpreters importing MuJoCo
            and numpy, ~0.5 s each), so a script calling this with ``workers > 1`` needs the usual
            ``if __name__ == "__main__":`` guard; use 1 for a handful of grasps.
        seed: CoACD seed (part of the decomposition's cache key).
        mano_root: MANO folder whose skinning weights split the hand into parts; None uses ``grasp.meta
            ["mano_root"]`` when set, else the license-free synthetic hand (the synthetic benchmarks' hand).
        progress: show a progress bar.

    Returns:
        One :class:`SimResult` per grasp, in order.

    Raises:
        InputError: a bad argument (a bad grasp is reported in its result instead).
    """
    protocol = get_protocol(protocol)
    workers = _check_workers(workers)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a non-negative int, got {seed!r}")
    grasps = list(grasps)

    parts_by_model: dict[tuple[str, str], list[np.ndarray]] = {}
    pieces_by_key: dict[bytes, list[np.ndarray] | str] = {}
    prepared: list[_Prepared] = []
    for grasp in _progress(grasps, progress, "prepare"):
        try:
            prepared.append(_prepare_one(grasp, protocol, seed, mano_root, parts_by_model, pieces_by_key))
        except (HacoGraspError, ValueError, TypeError, AttributeError, RuntimeError, IndexError) as error:
            prepared.append(_Prepared(reason=f"bad input ({type(error).__name__}: {str(error)[:200]})"))

    results: list[SimResult | None] = [None] * len(grasps)
    todo = [i for i, p in enumerate(prepared) if p.task is not None]
    for i, p in enumerate(prepared):
        if p.task is None:
            results[i] = SimResult(simulated=False, reason=p.reason)
    if workers == 1 or len(todo) < 2:
        for i in _progress(todo, progress, "simulate"):
            results[i] = _run_task(prepared[i].task)  # type: ignore[arg-type]
    else:
        import multiprocessing

        chunks = [todo[k :: workers * 4] for k in range(min(len(todo), workers * 4))]
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_chunk, [prepared[i].task for i in chunk]) for chunk in chunks]
            for chunk, future in zip(chunks, _progress(futures, progress, "simulate"), strict=True):
                for i, result in zip(chunk, future.result(), strict=True):
                    results[i] = result
    for i, result in enumerate(results):
        assert result is not None
        if not result.simulated:
            name = getattr(grasps[i], "object_name", "?")
            logger.warning("grasp %d (%s): not simulated: %s", i, name, result.reason)
    return results  # type: ignore[return-value]


def _prepare_one(
    grasp: Grasp,
    protocol: SimProtocol,
    seed: int,
    mano_root: str | os.PathLike | None,
    parts_by_model: dict,
    pieces_by_key: dict,
) -> _Prepared:
    verts = np.asarray(grasp.obj_verts_canonical, dtype=np.float64)
    faces = np.asarray(grasp.obj_faces)
    reason = _object_check(verts, faces)
    if reason:
        return _Prepared(reason=reason)
    key = hashlib.sha256(verts.tobytes() + faces.astype(np.int64).tobytes()).digest()
    if key not in pieces_by_key:
        try:
            pieces_by_key[key] = decompose_object(verts, faces, protocol, seed)
        except SimulationError as error:
            pieces_by_key[key] = f"convex decomposition failed ({str(error)[:200]})"
    root = mano_root if mano_root is not None else (grasp.meta or {}).get("mano_root")
    model = (str(grasp.side), "" if root is None else str(root))
    if model not in parts_by_model:
        parts_by_model[model] = hand_part_indices(_skinning_weights(grasp.side, root), protocol.part_overlap)
    return _prepare(grasp, pieces_by_key[key], parts_by_model[model], protocol)


def _progress(items, enabled: bool, description: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=f"simulation: {description}", leave=False)


def with_protocol(protocol: str | SimProtocol, **changes) -> SimProtocol:
    """A copy of a preset with some fields changed, e.g. ``with_protocol("obman", hand_margin=0.001)``."""
    return replace(get_protocol(protocol), **changes)
