"""The public entry point :func:`generate_grasps`: objects, slots, rounds of candidates, :class:`Grasp` records."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from haco_grasp.data.grasp import Grasp
from haco_grasp.data.synthetic.candidates import _Candidate, _simulate_chunk
from haco_grasp.data.synthetic.config import _DIGIT_NAMES, GENERATOR_VERSION, GRASP_TYPES, GraspWorldConfig
from haco_grasp.data.synthetic.rig import _build_rig, _joint_frames, _rest_joints_and_tips, _Rig, _type_plan, _TypePlan
from haco_grasp.data.synthetic.simulate import _Simulator
from haco_grasp.data.synthetic.sites import _score_sites, _Sites
from haco_grasp.errors import InputError
from haco_grasp.hand.assets import cache_dir
from haco_grasp.objects.procedural import OBJECT_NAMES, ObjectMesh, make_object

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------
# public API


def _resolve_objects(objects: Sequence[str | ObjectMesh] | None) -> list[tuple[ObjectMesh, int]]:
    if objects is None:
        return [(make_object(name), i) for i, name in enumerate(OBJECT_NAMES)]
    if isinstance(objects, (str, ObjectMesh)):
        objects = [objects]
    resolved = []
    for item in objects:
        if isinstance(item, str):
            if item not in OBJECT_NAMES:
                raise InputError(f"objects: unknown object name {item!r}; expected one of {', '.join(OBJECT_NAMES)}")
            resolved.append((make_object(item), OBJECT_NAMES.index(item)))
        elif isinstance(item, ObjectMesh):
            resolved.append((item, OBJECT_NAMES.index(item.name) if item.name in OBJECT_NAMES else -1))
        else:
            raise InputError(
                f"objects: expected names or ObjectMesh instances, got {type(item).__name__}; "
                "pass e.g. ['can', 'mug'] or meshes from haco_grasp.objects.ycb.load_ycb_mesh"
            )
    if not resolved:
        raise InputError("objects: expected at least one object, got an empty sequence")
    return resolved


def _check_args(n: int, seed: int, grasp_types: Sequence[str], side: str, contact_threshold: float) -> tuple[str, ...]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"n: expected a non-negative int, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a non-negative int, got {seed!r}")
    types = (grasp_types,) if isinstance(grasp_types, str) else tuple(grasp_types)
    if not types or any(t not in GRASP_TYPES for t in types):
        raise InputError(f"grasp_types: expected a non-empty subset of {GRASP_TYPES}, got {types!r}")
    if side not in ("right", "left"):
        raise InputError(f"side: expected 'right' or 'left', got {side!r}")
    ok = isinstance(contact_threshold, (int, float)) and not isinstance(contact_threshold, bool)
    if not (ok and math.isfinite(contact_threshold) and contact_threshold > 0):
        raise InputError(f"contact_threshold: expected a positive number of metres, got {contact_threshold!r}")
    return types


def generate_grasps(
    n: int,
    seed: int = 0,
    objects: Sequence[str | ObjectMesh] | None = None,
    grasp_types: Sequence[str] = ("power", "precision", "pinch"),
    mano_root: str | os.PathLike | None = None,
    side: Literal["right", "left"] = "right",
    contact_threshold: float = 0.01,
    progress: bool = True,
    config: GraspWorldConfig | None = None,
    device: str | torch.device | None = None,
) -> list[Grasp]:
    """Plan ``n`` ground-truth grasps on procedural (or given) objects, deterministically for a seed.

    Grasp ``i`` uses object ``objects[i % len(objects)]`` and type ``grasp_types[(i // len(objects)) %
    len(grasp_types)]`` (or another type the object affords). The module docstring gives the procedure and the
    quality rule; ``meta`` records the site, the touching digits, the depth, the volume and whether the grasp
    passed the quality rule.

    Args:
        n: number of grasps.
        seed: random seed (candidate draws, shapes, rolls).
        objects: procedural object names and/or closed :class:`ObjectMesh` instances (e.g. YCB meshes from
            :func:`haco_grasp.objects.ycb.load_ycb_mesh`, which must be watertight); default ``OBJECT_NAMES``.
        grasp_types: subset of :data:`GRASP_TYPES`, cycled.
        mano_root: folder with ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``; None uses the license-free synthetic hand.
        side: "right" or "left".
        contact_threshold: distance of the ``hand_contact`` labels, metres (HACO: 0.01).
        progress: show a progress bar.
        config: planner constants (:class:`GraspWorldConfig`).
        device: torch device of the batched simulation (default CPU).

    Returns:
        n :class:`~haco_grasp.data.grasp.Grasp` records (hand pose in the flat-hand-mean convention; the world frame
        is the object's canonical frame).
    """
    types = _check_args(n, seed, grasp_types, side, contact_threshold)
    config = config or GraspWorldConfig()
    if not isinstance(config, GraspWorldConfig):
        raise InputError(f"config: expected a GraspWorldConfig, got {type(config).__name__}")
    resolved = _resolve_objects(objects)
    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        with torch.no_grad():
            return _generate(n, seed, resolved, types, mano_root, side, contact_threshold, progress, config, device)
    finally:
        torch.set_num_threads(threads)


def _generate(
    n: int,
    seed: int,
    resolved: list[tuple[ObjectMesh, int]],
    types: tuple[str, ...],
    mano_root: str | os.PathLike | None,
    side: str,
    contact_threshold: float,
    progress: bool,
    config: GraspWorldConfig,
    device: str | torch.device | None,
) -> list[Grasp]:
    from haco_grasp.geometry.sdf import sdf_grid
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import load_mano
    from haco_grasp.hand.poses import synthetic_grasp_poses

    torch_device = torch.device(device) if device is not None else torch.device("cpu")
    root = synthetic_mano_root() if mano_root is None else mano_root
    layer = load_mano(side=side, root=root, use_pca=False, flat_hand_mean=True).to(torch_device)
    rig = _build_rig(layer, side)
    families = synthetic_grasp_poses(0)
    if mano_root is None and side == "right":
        source_frames = rig.frames  # the families are defined on this very hand
    else:
        source = load_mano(side="right", root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True)
        _, joints, tips = _rest_joints_and_tips(source)
        source_frames = _joint_frames(joints, tips, "right")[0]
    plans = {name: _type_plan(name, families, source_frames) for name in GRASP_TYPES}
    hand_faces = np.asarray(layer.faces, dtype=np.int64)

    requests = [(i % len(resolved), types[(i // len(resolved)) % len(types)]) for i in range(n)]
    grasps: list[Grasp | None] = [None] * n
    bar = None
    if progress and n > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="synthetic grasps", unit="grasp")
    started = time.perf_counter()
    for obj_index, (obj, object_id) in enumerate(resolved):
        indices = [i for i, (o, _) in enumerate(requests) if o == obj_index]
        if not indices:
            continue
        # on disk beside the optimizer's grids: built once per machine, and a copied cache spares a machine
        # without open3d the (slow, brute-force) fallback
        grid = sdf_grid(obj.verts, obj.faces, pitch=config.sdf_pitch, padding=0.03, cache_dir=cache_dir() / "sdf")
        sites = _score_sites(obj, config)
        available = [t for t in GRASP_TYPES if sites.valid[t].any()]
        if not available:
            raise InputError(f"object {obj.name!r}: no surface site affords any grasp type; is it 1-20 cm in size?")
        orders = {}
        for i in indices:
            wanted = requests[i][1]
            order = [wanted] + [t for t in types if t != wanted] + [t for t in GRASP_TYPES if t not in types]
            orders[i] = [t for t in order if t in available]
        betas = {}
        for i in indices:
            beta_rng = np.random.default_rng([seed, i, 1_000_003])
            limit = 3.0 * config.betas_std
            betas[i] = np.clip(beta_rng.normal(0.0, config.betas_std, size=layer.num_betas), -limit, limit)
        best: dict[int, _Candidate] = {}
        # Each grasp tries its requested type first, then the other types the object affords.
        attempt = {i: 0 for i in indices}
        while attempt:
            retry = {}
            for type_name in GRASP_TYPES:
                slots = [i for i, k in attempt.items() if orders[i][k] == type_name]
                if not slots:
                    continue
                sim = _Simulator(layer, rig, plans[type_name], grid, torch_device)
                failed = _plan_slots(
                    slots, plans[type_name], sites, rig, sim, obj, betas, best, seed, config, hand_faces
                )
                retry.update({i: attempt[i] + 1 for i in failed if attempt[i] + 1 < len(orders[i])})
            attempt = retry
        for i in indices:
            candidate = best[i]
            if not candidate.passed:
                logger.warning(
                    "grasp %d (%s) failed the quality rule with every grasp type; returning the best candidate",
                    i, obj.name,
                )  # fmt: skip
            grasps[i] = _make_grasp(
                candidate, layer, obj, object_id, hand_faces, requests[i][1], seed, i, contact_threshold,
                None if mano_root is None else str(mano_root), side,
            )  # fmt: skip
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    logger.info("generated %d grasps in %.1f s", n, time.perf_counter() - started)
    return [g for g in grasps if g is not None]


def _plan_slots(
    slots: list[int],
    plan: _TypePlan,
    sites: _Sites,
    rig: _Rig,
    sim: _Simulator,
    obj: ObjectMesh,
    betas: dict[int, np.ndarray],
    best: dict[int, _Candidate],
    seed: int,
    config: GraspWorldConfig,
    hand_faces: np.ndarray,
) -> list[int]:
    """Rounds of candidates of one type for some grasp slots; updates ``best``; returns the slots still failing."""
    per_chunk = max(1, config.max_batch // config.candidates_per_round)
    type_index = GRASP_TYPES.index(plan.name)
    pending = list(slots)
    for round_index in range(config.max_rounds):
        if not pending:
            break
        still = []
        for chunk_start in range(0, len(pending), per_chunk):
            chunk = pending[chunk_start : chunk_start + per_chunk]
            rngs = [np.random.default_rng([seed, i, type_index, round_index]) for i in chunk]
            chunk_betas = np.stack([betas[i] for i in chunk])
            results = _simulate_chunk(plan, sites, rig, sim, obj, rngs, chunk_betas, config, hand_faces)
            for i, candidate in zip(chunk, results, strict=True):
                candidate.rounds = round_index + 1
                if i not in best or candidate.score > best[i].score:
                    best[i] = candidate
                if not candidate.passed:
                    still.append(i)
        pending = still
    return pending


def _make_grasp(
    candidate: _Candidate,
    layer: Any,
    obj: ObjectMesh,
    object_id: int,
    hand_faces: np.ndarray,
    requested_type: str,
    seed: int,
    index: int,
    contact_threshold: float,
    mano_root: str | None,
    side: str,
) -> Grasp:
    from scipy.spatial.transform import Rotation

    from haco_grasp.geometry.labels import hand_contact_labels

    dtype, device = layer.v_template.dtype, layer.v_template.device

    def tensor(x: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(x)[None], dtype=dtype, device=device)

    rotation = candidate.rotation
    rest = layer(hand_pose=tensor(candidate.hand_pose), betas=tensor(candidate.betas))
    wrist = rest.joints[0, 0].cpu().double().numpy()
    global_orient = Rotation.from_matrix(rotation).as_rotvec()
    # Simulation: world = local @ R.T + position. MANO rotates about the wrist: (local - J0) @ R.T + J0 + transl.
    transl = candidate.position + rotation @ wrist - wrist
    out = layer(
        global_orient=tensor(global_orient),
        hand_pose=tensor(candidate.hand_pose),
        betas=tensor(candidate.betas),
        transl=tensor(transl),
    )
    hand_verts = out.verts[0].cpu().double().numpy()
    hand_joints = out.joints[0].cpu().double().numpy()
    contact = hand_contact_labels(hand_verts, obj.verts, obj.faces, threshold=contact_threshold)
    meta = {
        "source": "synthetic",
        "generator": GENERATOR_VERSION,
        "seed": int(seed),
        "index": int(index),
        "requested_type": requested_type,
        "site": [float(x) for x in candidate.site],
        "site_normal": [float(x) for x in candidate.normal],
        "contact_digits": [name for name, on in zip(_DIGIT_NAMES, candidate.digits, strict=True) if on],
        "palm_contact": bool(candidate.palm),
        "max_penetration_mm": 1000.0 * float(candidate.depth),
        "intersection_volume_cm3": float(candidate.volume),
        "quality_passed": bool(candidate.passed),
        "rounds": int(candidate.rounds),
        "contact_threshold": float(contact_threshold),
        "mano_root": mano_root,
    }
    return Grasp(
        object_name=obj.name,
        obj_verts_canonical=np.array(obj.verts, dtype=np.float64),
        obj_faces=np.array(obj.faces, dtype=np.int64),
        obj_rotation=np.eye(3),
        obj_translation=np.zeros(3),
        global_orient=global_orient.astype(np.float64),
        hand_pose=np.asarray(candidate.hand_pose, dtype=np.float64),
        betas=np.asarray(candidate.betas, dtype=np.float64),
        transl=np.asarray(transl, dtype=np.float64),
        hand_verts=hand_verts,
        hand_joints=hand_joints,
        hand_faces=hand_faces.copy(),
        hand_contact=contact.astype(np.float64),
        side=side,  # type: ignore[arg-type]
        grasp_type=candidate.grasp_type,
        object_id=int(object_id),
        meta=meta,
    )
