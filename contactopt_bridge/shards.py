"""DeepContact samples (grasp x perturbation) in the sharded store of :mod:`haco_grasp.data.shards`.

A shard stores the *geometry* of each sample, not its 25 features: per sample (S = G * R, sample ``r * G + g`` is
perturbation r of grasp g, the order of :func:`contactopt_bridge.train.prepare_samples`) the perturbed hand's
vertices, vertex normals and joints; per grasp (G) the object surface samples, their normals and the
ground-truth contact targets on the hand and on the object points. Features are computed per batch by
:func:`contactopt_bridge.features.pointnet_features` (pure torch, so on the training device), which keeps a shard at
about 20 kB per sample instead of about 300 kB.

Targets are those of ``prepare_samples``: ContactOpt capsule contact of the *ground-truth* pose
(``GT_CAPSULE_BOTTOM``) on the hand vertices and on ``n_obj_points`` area-uniform object samples (the same samples
for all perturbations of a grasp; perturbation r uses ``perturb_grasps(..., "contactopt-aug", seed=perturb_seed +
r)``). Inputs are stored as float32 and features computed in float64 then cast, so they match ``prepare_samples``
to float32 rounding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from contactopt_bridge.features import grasp_inputs, pointnet_features
from haco_grasp.data.grasp import Grasp
from haco_grasp.data.shards import ShardTable
from haco_grasp.errors import InputError

__all__ = [
    "ShardedDeepContactDataset",
    "batch_of",
    "collate_features",
    "deepcontact_arrays",
    "load_split",
    "num_samples",
    "shard_training_data",
]

#: Per-sample arrays of a shard (indexed by sample) and per-grasp arrays (indexed by ``dc_grasp``).
SAMPLE_ARRAYS = ("dc_hand_verts", "dc_hand_normals", "dc_hand_joints")
GRASP_ARRAYS = ("dc_obj_points", "dc_obj_normals", "dc_hand_target", "dc_obj_target")


def deepcontact_arrays(
    grasps: Sequence[Grasp], perturbations: int, perturb_seed: int, n_obj_points: int, point_seed: int
) -> dict[str, np.ndarray]:
    """Geometry and targets of ``perturbations`` perturbed copies of every grasp (the DeepContact part of a shard).

    Args:
        grasps: G ground-truth grasps (778-vertex hands; left hands are mirrored as in ``grasp_inputs``).
        perturbations: R >= 1.
        perturb_seed: copy r uses ``perturb_grasps(grasps, "contactopt-aug", seed=perturb_seed + r)``.
        n_obj_points: P.
        point_seed: seed of the object sampling (``grasp_inputs(seed=point_seed)``).

    Returns:
        dict: dc_hand_verts / dc_hand_normals (S, 778, 3) float32; dc_hand_joints (S, 21, 3) float32; dc_grasp (S,)
        int32; dc_obj_points / dc_obj_normals (G, P, 3) float32; dc_hand_target (G, 778) float32; dc_obj_target
        (G, P) float32 contact values in [0, 1].
    """
    from haco_grasp.data.perturb import perturb_grasps
    from haco_grasp.geometry.contact import GT_CAPSULE_BOTTOM, contact_maps

    if len(grasps) == 0 or isinstance(perturbations, bool) or not isinstance(perturbations, int) or perturbations < 1:
        raise InputError(f"need at least one grasp and perturbations >= 1, got {len(grasps)} and {perturbations!r}")
    gt = grasp_inputs(list(grasps), n_obj_points=n_obj_points, seed=point_seed, dtype=torch.float64)
    targets = contact_maps(gt.hand_verts, gt.obj_points, gt.obj_normals, bottom=GT_CAPSULE_BOTTOM)
    verts, normals, joints = [], [], []
    for r in range(perturbations):
        noisy = perturb_grasps(list(grasps), model="contactopt-aug", seed=perturb_seed + r, relabel=False)
        inputs = grasp_inputs(noisy, n_obj_points=n_obj_points, seed=point_seed, dtype=torch.float64)
        if not torch.equal(inputs.obj_points, gt.obj_points):
            raise InputError("perturbation moved the object; DeepContact targets need the ground-truth object")
        verts.append(inputs.hand_verts)
        normals.append(inputs.hand_normals)
        joints.append(inputs.hand_joints)
    return {
        "dc_hand_verts": torch.cat(verts).float().numpy(),
        "dc_hand_normals": torch.cat(normals).float().numpy(),
        "dc_hand_joints": torch.cat(joints).float().numpy(),
        "dc_grasp": np.tile(np.arange(len(grasps), dtype=np.int32), perturbations),
        "dc_obj_points": gt.obj_points.float().numpy(),
        "dc_obj_normals": gt.obj_normals.float().numpy(),
        "dc_hand_target": targets.hand.float().numpy(),
        "dc_obj_target": targets.obj.float().numpy(),
    }


class ShardedDeepContactDataset(Dataset):
    """Map-style DeepContact samples of one split of a prepared shard dataset (memory-mapped, nothing preloaded).

    ``dataset[i]`` is a dict of float32 tensors: hand_verts, hand_normals (778, 3), hand_joints (21, 3),
    obj_points, obj_normals (P, 3), hand_target (778,), obj_target (P,); plus "grasp" (the grasp's global id
    "<shard>/<row>"). Batch them with :func:`collate_features`.

    Args:
        root: dataset root written by ``haco-grasp prepare-data`` (with DeepContact samples).
        split: "train" or "test".
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train") -> None:
        self.table = ShardTable.open(root, split, "samples")

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        shard, row = self.table.locate(int(index) % len(self))
        grasp_row = int(self.table.array(shard, "dc_grasp")[row])
        item: dict[str, Any] = {}
        for name in SAMPLE_ARRAYS:
            item[name[3:]] = torch.from_numpy(np.array(self.table.array(shard, name)[row], dtype=np.float32))
        for name in GRASP_ARRAYS:
            item[name[3:]] = torch.from_numpy(np.array(self.table.array(shard, name)[grasp_row], dtype=np.float32))
        item["grasp"] = f"{self.table.folders[shard].name}/{grasp_row}"
        return item


def collate_features(items: Sequence[dict[str, Any]], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Stack samples and compute their 25 features (float64, cast to float32), on ``device``.

    Args:
        items: dataset items of :class:`ShardedDeepContactDataset`.
        device: where to compute.

    Returns:
        dict of float32 tensors as :func:`contactopt_bridge.train.prepare_samples`: hand_verts (B, 778, 3),
        hand_feats (B, 778, 25), obj_points (B, P, 3), obj_feats (B, P, 25), hand_target (B, 778), obj_target (B, P).
    """
    if len(items) == 0:
        raise InputError("collate_features needs at least one sample")
    stacked = {key: torch.stack([item[key] for item in items]).to(device) for key in items[0] if key != "grasp"}
    feats = pointnet_features(
        *(stacked[k].double() for k in ("hand_verts", "hand_normals", "hand_joints", "obj_points", "obj_normals"))
    )
    return {
        "hand_verts": stacked["hand_verts"],
        "hand_feats": feats.hand.float(),
        "obj_points": stacked["obj_points"],
        "obj_feats": feats.obj.float(),
        "hand_target": stacked["hand_target"],
        "obj_target": stacked["obj_target"],
    }


def load_split(root: str | os.PathLike[str], split: str, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """All samples of a split with features, in memory (for held-out sets; training streams instead).

    Args:
        root: dataset root.
        split: "train" or "test".
        batch_size: samples per feature computation.

    Returns:
        dict as :func:`collate_features` over the whole split, plus grasp_index (S,) long (a global grasp number).
    """
    dataset = ShardedDeepContactDataset(root, split)
    if len(dataset) == 0:
        raise InputError(f"{root}/{split} holds no DeepContact samples; prepare it with --deepcontact-perturbations")
    parts: list[dict[str, torch.Tensor]] = []
    grasp_ids: list[str] = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        parts.append(collate_features(items))
        grasp_ids.extend(item["grasp"] for item in items)
    out = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    numbering = {name: number for number, name in enumerate(dict.fromkeys(grasp_ids))}
    out["grasp_index"] = torch.tensor([numbering[name] for name in grasp_ids], dtype=torch.long)
    return out


def shard_training_data(root: str | os.PathLike[str]) -> dict[str, Any]:
    """DeepContact training data of a prepared root, shaped like ``train._split_and_prepare``'s output.

    Args:
        root: dataset root written by ``haco-grasp prepare-data`` with DeepContact samples.

    Returns:
        dict: "train" a :class:`ShardedDeepContactDataset` (streamed: features per batch, see :func:`batch_of`);
        "test" the held-out split in memory (:func:`load_split`); "train_objects" / "test_objects" (the split by
        object); "n_train_grasps" / "n_test_grasps"; "description" (for the run's report).
    """
    from haco_grasp.data.shards import read_index

    index = read_index(root)
    train = ShardedDeepContactDataset(root, "train")
    if len(train) == 0:
        raise InputError(f"{root} holds no DeepContact training samples; prepare it with --deepcontact-perturbations")
    return {
        "train": train,
        "test": load_split(root, "test"),
        "train_objects": index["split_by_object"]["train"],
        "test_objects": index["split_by_object"]["test"],
        "n_train_grasps": int(index["counts"]["train"].get("grasps", 0)),
        "n_test_grasps": int(index["counts"]["test"].get("grasps", 0)),
        "description": (
            f"prepared shards {root} (haco-grasp prepare-data, config in its index.json): synthetic grasps split by "
            "object, contactopt-aug perturbations; inputs = 25 features of the perturbed hand computed per batch from "
            "the stored geometry; targets = ContactOpt capsule contact (GT_CAPSULE_BOTTOM) of the ground-truth pose"
        ),
    }


def batch_of(source: Any, index: torch.Tensor, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Samples ``index`` of a training source: a dict of tensors (``prepare_samples``) or a sharded dataset.

    Args:
        source: dict of (S, ...) tensors, or a :class:`ShardedDeepContactDataset`.
        index: (B,) long sample numbers.
        device: where the batch goes; a sharded dataset's features are computed there.

    Returns:
        dict with hand_verts, hand_feats, obj_points, obj_feats, hand_target, obj_target, each (B, ...) on device.
    """
    if isinstance(source, ShardedDeepContactDataset):
        return collate_features([source[int(i)] for i in index.tolist()], device=device)
    keys = ("hand_verts", "hand_feats", "obj_points", "obj_feats", "hand_target", "obj_target")
    return {key: source[key][index].to(device) for key in keys}


def num_samples(source: Any) -> int:
    """Number of samples of a training source (dict of tensors or sharded dataset)."""
    return len(source) if isinstance(source, ShardedDeepContactDataset) else int(source["hand_verts"].shape[0])
