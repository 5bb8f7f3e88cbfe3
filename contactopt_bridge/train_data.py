"""DeepContact training data: the grasp cache file (:func:`save_grasps` / :func:`load_grasps`) and the network's
inputs and targets of perturbed copies of ground-truth grasps (:func:`prepare_samples`).

Used by :mod:`contactopt_bridge.train`, which re-exports these names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contactopt_bridge.features import grasp_inputs
from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError

__all__ = ["load_grasps", "prepare_samples", "save_grasps"]


def _grasp_to_record(grasp: Grasp) -> dict[str, Any]:
    record: dict[str, Any] = {"object_name": grasp.object_name, "side": grasp.side, "grasp_type": grasp.grasp_type}
    record["object_id"] = int(grasp.object_id)
    record["meta_json"] = json.dumps(grasp.meta, default=str)
    for name in (
        "obj_verts_canonical",
        "obj_faces",
        "obj_rotation",
        "obj_translation",
        "global_orient",
        "hand_pose",
        "betas",
        "transl",
        "hand_verts",
        "hand_joints",
        "hand_faces",
        "hand_contact",
    ):
        record[name] = torch.as_tensor(np.asarray(getattr(grasp, name)))
    return record


def _record_to_grasp(record: dict[str, Any]) -> Grasp:
    arrays = {k: v.numpy() for k, v in record.items() if isinstance(v, torch.Tensor)}
    return Grasp(
        object_name=record["object_name"],
        side=record["side"],
        grasp_type=record["grasp_type"],
        object_id=record["object_id"],
        meta=json.loads(record["meta_json"]),
        **arrays,
    )


def save_grasps(grasps: Sequence[Grasp], path: str | Path) -> None:
    """Cache grasps as a ``weights_only``-loadable torch file (tensors and strings, no pickled classes).

    Args:
        grasps: the grasps.
        path: output file.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save([_grasp_to_record(g) for g in grasps], path)


def load_grasps(path: str | Path) -> list[Grasp]:
    """Read grasps written by :func:`save_grasps` (``torch.load(weights_only=True)``).

    Args:
        path: file of :func:`save_grasps`.

    Returns:
        The grasps.
    """
    return [_record_to_grasp(r) for r in torch.load(path, weights_only=True)]


def prepare_samples(
    grasps: Sequence[Grasp], perturbations: int, perturb_seed: int, n_obj_points: int, point_seed: int
) -> dict[str, torch.Tensor]:
    """Network inputs (perturbed hands) and targets (ground-truth contact) of ``perturbations`` copies per grasp.

    Args:
        grasps: ground-truth grasps (G of them).
        perturbations: R >= 1 perturbed copies per grasp.
        perturb_seed: copy r uses ``perturb_grasps(grasps, "contactopt-aug", seed=perturb_seed + r)``.
        n_obj_points: P.
        point_seed: seed of the object sampling (grasp i is sampled identically in all copies).

    Returns:
        dict of float32 tensors, S = G * R samples: hand_verts (S, 778, 3), hand_feats (S, 778, 25),
        obj_points (S, P, 3), obj_feats (S, P, 25), hand_target (S, 778), obj_target (S, P); and
        grasp_index (S,) long.
    """
    from haco_grasp.data.perturb import perturb_grasps
    from haco_grasp.geometry.contact import GT_CAPSULE_BOTTOM, contact_maps

    if len(grasps) == 0:
        raise InputError("no grasps to prepare; check n_grasps and test_objects")
    gt = grasp_inputs(list(grasps), n_obj_points=n_obj_points, seed=point_seed, dtype=torch.float64)
    targets = contact_maps(gt.hand_verts, gt.obj_points, gt.obj_normals, bottom=GT_CAPSULE_BOTTOM)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("hand_verts", "hand_feats", "obj_points", "obj_feats")}
    for r in range(perturbations):
        noisy = perturb_grasps(list(grasps), model="contactopt-aug", seed=perturb_seed + r, relabel=False)
        inputs = grasp_inputs(noisy, n_obj_points=n_obj_points, seed=point_seed, dtype=torch.float64)
        if not torch.equal(inputs.obj_points, gt.obj_points):  # the object must not move under contactopt-aug
            raise InputError("perturbation moved the object; DeepContact targets need the ground-truth object")
        for key in parts:
            parts[key].append(getattr(inputs, key).float())
    out = {key: torch.cat(value) for key, value in parts.items()}
    out["hand_target"] = targets.hand.float().repeat(perturbations, 1)
    out["obj_target"] = targets.obj.float().repeat(perturbations, 1)
    out["grasp_index"] = torch.arange(len(grasps)).repeat(perturbations)
    return out
