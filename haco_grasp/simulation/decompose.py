"""Convex decomposition of object meshes with CoACD, run in a child process and cached on disk by mesh hash."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from haco_grasp.simulation.protocols import SimProtocol, SimulationError, get_protocol

logger = logging.getLogger(__name__)

# Bump when the decomposition recipe (welding, fallbacks, file layout) changes: old cache files are then ignored.
_DECOMPOSITION_VERSION = 1
_WELD_DIGITS = 5  # weld vertices at 1e-5 m before CoACD (procedural CSG meshes carry slivers CoACD asserts on)


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
                "import sys; from haco_grasp.simulation.decompose import _decompose_main; "
                "_decompose_main(sys.argv[1:])",
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
