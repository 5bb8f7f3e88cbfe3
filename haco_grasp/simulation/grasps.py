"""Simulation of :class:`~haco_grasp.data.grasp.Grasp` records: validation, MANO hand parts, the batch driver."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from haco_grasp.errors import HacoGraspError, InputError
from haco_grasp.simulation.decompose import decompose_object
from haco_grasp.simulation.protocols import SimProtocol, SimResult, SimulationError, get_protocol
from haco_grasp.simulation.scene import simulate_pieces

if TYPE_CHECKING:
    from haco_grasp.data.grasp import Grasp

logger = logging.getLogger(__name__)


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
