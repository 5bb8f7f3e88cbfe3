"""Training and evaluation of the HACO contact estimator (haco.md §3–5, §9), single process or DDP.

``train(config)`` runs the official recipe: AdamW (lr 1e-5, betas (0.9, 0.95), weight decay 1e-4) on all
parameters, MultiStepLR (milestones 5 and 10, γ 0.9) stepped per epoch, the loss
``VCB_778 + VCB_336 + VCB_84 + VCB_joint + 0.1·reg + 1.0·smooth`` (:func:`haco_grasp.contact.losses.haco_loss`, or a
baseline by name), HACO's augmentations, and balanced contact sampling (on by default). After every epoch it
evaluates on the validation set (per-frame P/R/F1 with :func:`haco_grasp.metrics.contact_prf`, threshold on the
probability σ(z), from the backbone registry unless given; both averaging rules, "skip" and "zero", are reported,
plus a "predict the training mean contact map" baseline), and writes, in ``out_dir``:

- ``last.ckpt``: the official container ``{epoch, global_step, state_dict, optimizer, scheduler}`` with
  ``last.json`` beside it (the :class:`~haco_grasp.contact.haco_model.HacoConfig`, read by ``load_haco``);
- ``train_config.json`` (the resolved :class:`TrainConfig`), ``metrics.json`` (one entry per epoch), ``stats.npz``
  (the training labels' :class:`~haco_grasp.contact.stats.ContactStats`).

Keypoint term (``keypoint_weight > 0``, on in the "synthetic-small" preset): HACO starts its backbone from HaMeR, a
network trained to locate hand joints; HaMeR's weights cannot be downloaded here, so a from-scratch backbone learns
hand features slowly from contact labels alone. The keypoint term supplies that signal during training: a linear
head scores every context token for each of the 21 joints, and the loss is the cross-entropy of the token that
contains the joint (softmax over tokens, joints outside the backbone's view skipped), weighted by
``keypoint_weight``. The head is training-only (saved as ``keypoint_head.pt`` for resuming, never in the HACO
``state_dict``); backbones with a known token grid: :func:`token_grid`.

``resume=True`` continues from ``out_dir/last.ckpt`` (model, optimizer, scheduler, epoch, step). ``max_wall_s``
bounds the wall time: the running epoch stops early, is evaluated and saved (``"complete": false`` in its metrics);
resuming treats that epoch as done and continues with the next one.

DDP: launch with ``torchrun --nproc_per_node N -m haco_grasp.contact.train ...`` (backend gloo on CPU, nccl on
CUDA); the sampler is sharded per rank, rank 0 evaluates and writes files.

Presets (:data:`PRESETS`): ``"paper"`` (the official values: hamer ViT-H, decoder 1024/6/8/64/1024, VCB loss,
balanced sampling, batch 24, 10 epochs, 2 workers) and ``"synthetic-small"`` (the recipe of the shipped checkpoint:
a small hamer-shaped ViT trained from scratch on CPU on the toolkit's synthetic renders: embed 192, depth 4, 3
heads; decoder 256/2/4/64/512; lr 3e-4 since nothing is pretrained, MultiStepLR (12, 14, 46, 52) γ 0.5; batch 16;
56 epochs over 150 chunks; 2 objects held out for validation; the keypoint term, the mean-map initialisation and the
threshold calibration on; BCE without balanced sampling, chosen on the validation objects in pilot runs, where VCB
with balanced sampling predicted about twice too much contact at the registry threshold; the README has the
ablation). The shipped checkpoint is this preset (run in resumed legs whose rates equal its schedule) followed by
14 epochs on 250 chunks (``--resume --synthetic-chunks 250 --lr 7.5e-5 --milestones 66 68 --epochs 70``); its
provenance JSON records how.

A resumed run follows the config's schedule as if it had been used from the start (:func:`scheduled_lr`): giving
more epochs, later milestones or a new ``lr`` on ``--resume`` changes the rate of the remaining epochs accordingly.
Each epoch's ``lr`` in ``metrics.json`` is the rate used during that epoch.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from haco_grasp.atomic import atomic_open, atomic_write_bytes
from haco_grasp.contact.augment import AugmentConfig
from haco_grasp.contact.datasets import (
    ImageFolderContactDataset,
    Normalization,
    SyntheticContactDataset,
)
from haco_grasp.contact.losses import LOSS_NAMES, haco_loss
from haco_grasp.contact.sampling import BalancedContactSampler
from haco_grasp.contact.stats import ContactStats
from haco_grasp.errors import AssetError, InputError
from haco_grasp.metrics import contact_prf

__all__ = [
    "PRESETS",
    "EvalResult",
    "TrainConfig",
    "TrainResult",
    "add_arguments",
    "THRESHOLD_GRID",
    "add_eval_arguments",
    "best_f1_threshold",
    "evaluate",
    "hand_faces",
    "keypoint_token_loss",
    "token_grid",
    "init_contact_from_mean",
    "run_eval",
    "run_training",
    "scheduled_lr",
    "train",
]

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything a training run needs (saved as ``train_config.json``).

    backbone: backbone registry name; backbone_kwargs: extra factory arguments (e.g. a small ViT).
    decoder_dim, depth, heads, dim_head, mlp_dim: decoder sizes.
    hand: topology of the coarse regressors and the smoothness faces: "synthetic" or "mano".
    loss: per-level loss name (:data:`haco_grasp.contact.losses.LOSS_NAMES`; HACO: "vcb").
    balanced_sampling: HACO's balanced contact sampling (else a seeded random shuffle); sampling_edge_mode: see
        :func:`haco_grasp.contact.sampling.balanced_indices`.
    lr, betas, weight_decay: AdamW. milestones, gamma: MultiStepLR, stepped per epoch.
    batch_size, epochs, image_size, workers, seed: as named (image_size must be 256 for the registry backbones).
    augment: apply HACO's augmentations to training images.
    out_dir: output folder. resume: continue from ``out_dir/last.ckpt``.
    train_data / val_data: image folders (``write_image_dataset`` format); val_objects: object names held out
        from ``train_data`` for validation when ``val_data`` is empty.
    synthetic_cache, synthetic_chunks, views_per_grasp: used when ``train_data`` is empty: a
        :class:`~haco_grasp.contact.datasets.SyntheticContactDataset` cache (generated if missing).
    threshold: probability threshold of the evaluation; None uses the backbone's official threshold.
    eval_empty: averaging rule of the headline metric, "skip" (paper) or "zero" (HACO test.py); both are logged.
    max_wall_s: stop (evaluate, save) once this many seconds have passed; None: no limit.
    max_steps_per_epoch: cap on optimisation steps per epoch (None: the whole epoch).
    init_contact_from_mean: start a fresh model (not a resumed one) with the decoder's ``init_contact`` set to the
        logit of the training mean contact map (clipped to [0.02, 0.98]), so the untrained model predicts the
        mean map instead of random logits (HACO initialises it with randn; on small data this matters).
    keypoint_weight: weight of the training-only 2D keypoint term (module docstring); 0 turns it off.
    calibrate_threshold: after each evaluation, store the validation set's best-F1 threshold
        (:func:`best_f1_threshold`) as the checkpoint's ``threshold`` (``last.json``), which ``load_haco`` and the
        predictor then use; the validation F1 at that threshold is then optimistic: report a separate test set.
    keep_epochs: also keep ``epoch_{e:03d}.ckpt`` for these epochs (HACO keeps 0, 5 and 9); ``last.ckpt`` is always
        rewritten.
    progress: tqdm progress bars.
    device: "auto" (CUDA when available), or a torch device string.
    """

    backbone: str = "hamer"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    decoder_dim: int = 1024
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    mlp_dim: int = 1024
    hand: str = "synthetic"
    loss: str = "vcb"
    balanced_sampling: bool = True
    sampling_edge_mode: str = "official"
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (5, 10)
    gamma: float = 0.9
    batch_size: int = 24
    epochs: int = 10
    image_size: int = 256
    workers: int = 2
    seed: int = 0
    augment: bool = True
    out_dir: str = "runs/haco"
    resume: bool = False
    train_data: tuple[str, ...] = ()
    val_data: tuple[str, ...] = ()
    val_objects: tuple[str, ...] = ("bottle", "small_cube")
    synthetic_cache: str = "runs/synthetic_cache"
    synthetic_chunks: int = 30
    views_per_grasp: int = 4
    threshold: float | None = None
    eval_empty: str = "skip"
    max_wall_s: float | None = None
    max_steps_per_epoch: int | None = None
    init_contact_from_mean: bool = False
    keypoint_weight: float = 0.0
    calibrate_threshold: bool = False
    keep_epochs: tuple[int, ...] = ()
    progress: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise InputError(f"TrainConfig.loss must be one of {', '.join(LOSS_NAMES)}, got {self.loss!r}")
        for name in ("batch_size", "epochs", "image_size", "synthetic_chunks", "views_per_grasp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        if not (isinstance(self.workers, int) and self.workers >= 0):
            raise InputError(f"TrainConfig.workers must be a non-negative int, got {self.workers!r}")
        if isinstance(self.keypoint_weight, bool) or not (
            isinstance(self.keypoint_weight, (int, float)) and math.isfinite(self.keypoint_weight)
            and self.keypoint_weight >= 0
        ):  # fmt: skip
            raise InputError(
                f"TrainConfig.keypoint_weight must be a number >= 0 (0 turns it off), got {self.keypoint_weight!r}"
            )
        if self.eval_empty not in ("skip", "zero"):
            raise InputError(f"TrainConfig.eval_empty must be 'skip' or 'zero', got {self.eval_empty!r}")
        if self.hand not in ("synthetic", "mano"):
            raise InputError(f"TrainConfig.hand must be 'synthetic' or 'mano', got {self.hand!r}")
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.milestones = tuple(int(m) for m in self.milestones)
        self.keep_epochs = tuple(int(e) for e in self.keep_epochs)
        self.train_data = tuple(str(p) for p in self.train_data)
        self.val_data = tuple(str(p) for p in self.val_data)
        self.val_objects = tuple(str(o) for o in self.val_objects)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise InputError."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(
                f"unknown TrainConfig keys {unknown}; expected a subset of {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**values)


def scheduled_lr(config: TrainConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (0-based) under the config's MultiStepLR: lr · γ^(count of milestones ≤ epoch)."""
    return config.lr * config.gamma ** sum(1 for milestone in config.milestones if milestone <= epoch)


#: Named full configurations.
PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(keep_epochs=(0, 5, 9)),
    "synthetic-small": TrainConfig(
        backbone="hamer",
        backbone_kwargs={"embed_dim": 192, "depth": 4, "num_heads": 3, "drop_path_rate": 0.1},
        decoder_dim=256,
        depth=2,
        heads=4,
        dim_head=64,
        mlp_dim=512,
        loss="bce",
        balanced_sampling=False,
        lr=3e-4,
        milestones=(12, 14, 46, 52),
        gamma=0.5,
        batch_size=16,
        epochs=56,
        workers=0,
        synthetic_chunks=150,
        init_contact_from_mean=True,
        keypoint_weight=1.0,
        calibrate_threshold=True,
        out_dir="runs/haco_synthetic_small",
    ),
}


@dataclass
class EvalResult:
    """Evaluation of one model on one dataset (probability threshold ``threshold``).

    precision, recall, f1: means with the "skip" rule (undefined per-frame values dropped, HACO paper)
    precision_zero, recall_zero, f1_zero: means with the "zero" rule (undefined values count 0, HACO test.py)
    baseline: the same six numbers for the "predict the training mean contact map" baseline (or {} if none)
    threshold: the threshold used; num_samples: frames evaluated; mean_loss: mean BCE of the logits
    best_threshold, best_f1: the threshold of :data:`THRESHOLD_GRID` with the highest "skip"-rule F1 on this data,
        and that F1 (chosen on the data it is reported on: optimistic, use it to calibrate, not to report)
    """

    precision: float
    recall: float
    f1: float
    precision_zero: float
    recall_zero: float
    f1_zero: float
    threshold: float
    num_samples: int
    mean_loss: float
    baseline: dict[str, float] = field(default_factory=dict)
    best_threshold: float = math.nan
    best_f1: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        return _json_safe(dataclasses.asdict(self))


@dataclass
class TrainResult:
    """checkpoint: path of ``last.ckpt``; history: one dict of metrics per epoch; out_dir: the run folder."""

    checkpoint: Path
    history: list[dict[str, Any]]
    out_dir: Path


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------------------
# building blocks


def hand_faces(hand: str = "synthetic") -> np.ndarray:
    """(F, 3) int64 right-hand faces (open wrist) of the synthetic hand or official MANO, for the smoothness term."""
    from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path

    if hand == "synthetic":
        from haco_grasp.hand.assets import synthetic_mano_root

        return read_mano_pickle(resolve_mano_path("right", synthetic_mano_root())).faces
    return read_mano_pickle(resolve_mano_path("right", None)).faces


def _haco_config(config: TrainConfig) -> Any:
    from haco_grasp.contact.haco_model import HacoConfig

    return HacoConfig(
        backbone=config.backbone,
        decoder_dim=config.decoder_dim,
        depth=config.depth,
        heads=config.heads,
        dim_head=config.dim_head,
        mlp_dim=config.mlp_dim,
        hand=config.hand,
        backbone_kwargs=dict(config.backbone_kwargs),
    )


def init_contact_from_mean(model: torch.nn.Module, means: np.ndarray, clip: float = 0.02) -> None:
    """Set ``model.decoder.init_contact`` to logit(clip(means, clip, 1 - clip)) in place.

    model: a HACO model; means: (778,) per-vertex contact frequency of the training labels
    """
    probs = np.clip(np.asarray(means, dtype=np.float64), clip, 1.0 - clip)
    if probs.shape != tuple(model.decoder.init_contact.shape[1:]):
        raise InputError(f"means: expected shape {tuple(model.decoder.init_contact.shape[1:])}, got {probs.shape}")
    logits = torch.as_tensor(np.log(probs / (1.0 - probs)), dtype=model.decoder.init_contact.dtype)
    with torch.no_grad():
        model.decoder.init_contact.copy_(logits.reshape(model.decoder.init_contact.shape))


def token_grid(backbone: str) -> tuple[int, int, float, float, float, float]:
    """Where a backbone's context tokens sit in the 256×256 crop, for the keypoint term.

    backbone: registry name
    returns: (rows, cols, x0, y0, cell_w, cell_h): token ``r * cols + c`` covers crop pixels
        ``x0 + c·cell_w .. x0 + (c+1)·cell_w`` × ``y0 + r·cell_h .. y0 + (r+1)·cell_h``
        (hamer: 16×12 patches of 16 px over columns 32–224, shifted 2 px by the patch conv's padding;
        ResNet/HRNet: 8×8 cells of 32 px)
    """
    from haco_grasp.contact.backbones import CROP_SIZE, get_backbone_spec

    name = get_backbone_spec(backbone).name
    if name == "hamer":
        return 16, 12, 30.0, -2.0, 16.0, 16.0  # the patch conv pads 2 px
    if name.startswith(("resnet-", "hrnet-")):
        return 8, 8, 0.0, 0.0, CROP_SIZE / 8, CROP_SIZE / 8
    raise InputError(
        f"keypoint_weight > 0 needs a backbone whose tokens form a known pixel grid (hamer, resnet-*, hrnet-*), "
        f"not {name!r}; set keypoint_weight to 0"
    )


def keypoint_token_loss(logits: torch.Tensor, joints_2d: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Cross-entropy of the token containing each 2D joint (softmax over the tokens).

    logits: (B, N, J) float, per-token joint scores (N = rows · cols)
    joints_2d: (B, J, 2) float, crop pixels (NaN: unknown)
    grid: :func:`token_grid` of the backbone
    returns: () mean over the joints inside the grid (0 when there are none, still differentiable)
    """
    rows, cols, x0, y0, cell_w, cell_h = grid
    if logits.ndim != 3 or logits.shape[1] != rows * cols or joints_2d.shape != (logits.shape[0], logits.shape[2], 2):
        raise InputError(
            f"keypoint_token_loss: logits {tuple(logits.shape)} and joints {tuple(joints_2d.shape)} do not match a "
            f"{rows}x{cols} grid"
        )
    # pixel centres at integers: the cell of pixel u is floor((u + 0.5 - x0) / cell_w)
    col = torch.floor((joints_2d[..., 0] + 0.5 - x0) / cell_w)
    row = torch.floor((joints_2d[..., 1] + 0.5 - y0) / cell_h)
    valid = torch.isfinite(col) & torch.isfinite(row) & (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
    target = torch.where(valid, row * cols + col, torch.zeros_like(col)).long()  # (B, J)
    log_probs = torch.log_softmax(logits.float(), dim=1)  # over tokens
    picked = log_probs.gather(1, target[:, None, :])[:, 0]  # (B, J)
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return -(picked[valid]).mean()


class _TrainModule(torch.nn.Module):
    """HACO plus the training-only keypoint head: forward -> (HacoOutput, (B, N, 21) keypoint logits or None)."""

    def __init__(self, model: torch.nn.Module, keypoint_head: torch.nn.Module | None) -> None:
        super().__init__()
        self.model = model
        self.keypoint_head = keypoint_head

    def forward(self, images: torch.Tensor) -> tuple[Any, torch.Tensor | None]:
        if self.keypoint_head is None:
            return self.model(images), None
        context = self.model.backbone(images)
        output = self.model.decode(context)
        return output, self.keypoint_head(context)


def _normalization(backbone: str) -> Normalization:
    from haco_grasp.contact.backbones import get_backbone_spec

    spec = get_backbone_spec(backbone)
    return Normalization(tuple(spec.mean), tuple(spec.std))


def _threshold(config_threshold: float | None, backbone: str) -> float:
    if config_threshold is not None:
        return float(config_threshold)
    from haco_grasp.contact.backbones import get_backbone_spec

    return float(get_backbone_spec(backbone).eval_threshold)


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """Training and validation datasets of a config (validation None when there is nothing to validate on).

    returns: (train dataset, validation dataset or None), both :class:`~haco_grasp.contact.datasets.ContactDataset`
    """
    normalization = _normalization(config.backbone)
    augment = AugmentConfig(size=config.image_size)
    common = {"normalization": normalization, "size": config.image_size}
    if config.train_data:
        exclude = None if config.val_data else (config.val_objects or None)
        train_set = ImageFolderContactDataset(
            list(config.train_data), train=config.augment, augment=augment, exclude_objects=exclude,
            seed=config.seed, **common,
        )  # fmt: skip
        if config.val_data:
            val_set = ImageFolderContactDataset(list(config.val_data), train=False, **common)
        elif config.val_objects:
            val_set = ImageFolderContactDataset(list(config.train_data), objects=config.val_objects, **common)
        else:
            val_set = None
    else:
        synthetic = {
            "cache_dir": config.synthetic_cache,
            "num_chunks": config.synthetic_chunks,
            "views_per_grasp": config.views_per_grasp,
            "progress": config.progress,
            **common,
        }
        train_set = SyntheticContactDataset(
            exclude_objects=config.val_objects or None, train=config.augment, augment=augment,
            augment_seed=config.seed, **synthetic,
        )  # fmt: skip
        val_set = (
            SyntheticContactDataset(include_objects=config.val_objects, **synthetic) if config.val_objects else None
        )
    if val_set is not None and len(val_set) == 0:
        val_set = None
    if len(train_set) == 0:
        raise InputError("the training set is empty; check train_data / val_objects")
    return train_set, val_set


def _collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    nan_joints = torch.full((21, 2), float("nan"))
    return {
        "image": torch.stack([item["image"] for item in batch]),
        "joints_2d": torch.stack([item.get("joints_2d", nan_joints) for item in batch]),
        "contact": torch.stack([item["contact"] for item in batch]),
        "sample_id": [item["sample_id"] for item in batch],
    }


def _progress(iterable: Any, enabled: bool, **kwargs: Any) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


#: Candidate probability thresholds of :func:`best_f1_threshold` (0.05 to 0.95 in steps of 0.05).
THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))


def best_f1_threshold(prob: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """The threshold of :data:`THRESHOLD_GRID` with the highest per-frame F1 ("skip" rule); ties go to the lowest.

    prob: (B, 778) probabilities; gt: (B, 778) labels
    returns: (best F1, its threshold); (nan, nan) when no threshold gives a defined F1
    """
    best = (math.nan, math.nan)
    for threshold in THRESHOLD_GRID:
        f1 = contact_prf(prob, gt, threshold, "skip").f1
        if math.isfinite(f1) and not f1 <= best[0]:
            best = (float(f1), threshold)
    return best


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    threshold: float,
    batch_size: int = 16,
    workers: int = 0,
    mean_contact: np.ndarray | None = None,
    progress: bool = False,
) -> EvalResult:
    """Per-frame contact P/R/F1 of a model on a dataset (probabilities σ(z) ≥ threshold).

    model: HACO model (forward(images) -> HacoOutput)
    dataset: a ContactDataset (images already normalised for the model's backbone)
    threshold: probability threshold
    batch_size, workers: DataLoader settings
    mean_contact: (778,) training mean for the "predict the mean map" baseline (None: no baseline)
    progress: tqdm bar
    returns: EvalResult
    """
    if len(dataset) == 0:
        raise InputError("cannot evaluate on an empty dataset")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate)
    probs, labels, losses = [], [], []
    for batch in _progress(loader, progress, desc="eval", leave=False):
        logits = model(batch["image"].to(device)).contact_logits.float().cpu()
        target = batch["contact"].float()
        losses.append(torch.nn.functional.binary_cross_entropy_with_logits(logits, target).item() * len(target))
        probs.append(torch.sigmoid(logits))
        labels.append(target)
    model.train(was_training)
    prob = torch.cat(probs).numpy()
    gt = torch.cat(labels).numpy()
    skip, zero = contact_prf(prob, gt, threshold, "skip"), contact_prf(prob, gt, threshold, "zero")
    best_f1, best_threshold = best_f1_threshold(prob, gt)
    baseline: dict[str, float] = {}
    if mean_contact is not None:
        mean_map = np.broadcast_to(np.asarray(mean_contact, dtype=np.float64), gt.shape)
        b_skip, b_zero = contact_prf(mean_map, gt, threshold, "skip"), contact_prf(mean_map, gt, threshold, "zero")
        baseline = {
            "precision": b_skip.precision, "recall": b_skip.recall, "f1": b_skip.f1,
            "precision_zero": b_zero.precision, "recall_zero": b_zero.recall, "f1_zero": b_zero.f1,
        }  # fmt: skip
    return EvalResult(
        precision=skip.precision,
        recall=skip.recall,
        f1=skip.f1,
        precision_zero=zero.precision,
        recall_zero=zero.recall,
        f1_zero=zero.f1,
        threshold=float(threshold),
        num_samples=int(gt.shape[0]),
        mean_loss=float(sum(losses) / gt.shape[0]),
        baseline=baseline,
        best_threshold=best_threshold,
        best_f1=best_f1,
    )


# --------------------------------------------------------------------------------------------------------------
# distributed helpers


def _init_distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))  # rank 0 evaluates alone
    return dist.get_rank(), dist.get_world_size()


# --------------------------------------------------------------------------------------------------------------
# training


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(_json_safe(data), indent=2) + "\n").encode())


def train(config: TrainConfig) -> TrainResult:
    """Train HACO as configured (module docstring); returns the last checkpoint and the per-epoch metrics.

    config: TrainConfig (see :data:`PRESETS`)
    returns: TrainResult
    """
    from haco_grasp.contact.checkpoint import read_checkpoint, save_haco_checkpoint
    from haco_grasp.contact.haco_model import build_haco_from_config

    start_time = time.monotonic()
    from haco_grasp.devices import resolve_device

    device = resolve_device(config.device, "--device")
    rank, world = _init_distributed(device)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    out_dir = Path(config.out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_json(out_dir / "train_config.json", config.to_dict())

    train_set, val_set = build_datasets(config)
    stats = ContactStats.from_dataset(train_set)
    if rank == 0:
        stats.save(out_dir / "stats.npz")
    if config.balanced_sampling:
        sampler: Any = BalancedContactSampler(
            train_set.labels(), seed=config.seed, edge_mode=config.sampling_edge_mode,  # type: ignore[arg-type]
            num_replicas=world, rank=rank,
        )  # fmt: skip
    else:
        sampler = _ShuffleSampler(len(train_set), config.seed, world, rank)
    loader = DataLoader(
        train_set, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
        collate_fn=_collate, drop_last=False, persistent_workers=False,
    )  # fmt: skip

    haco_config = _haco_config(config)
    model = build_haco_from_config(haco_config).to(device)
    faces = torch.as_tensor(hand_faces(config.hand), device=device)
    regressors = {"336": model.regressor_336, "84": model.regressor_84, "joint": model.regressor_joint}
    grid = token_grid(config.backbone) if config.keypoint_weight > 0 else None
    keypoint_head = torch.nn.Linear(model.decoder.context_dim, 21).to(device) if grid is not None else None
    wrapped = _TrainModule(model, keypoint_head)
    optimizer = torch.optim.AdamW(
        [p for p in wrapped.parameters() if p.requires_grad], lr=config.lr, betas=config.betas,
        weight_decay=config.weight_decay,
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones), gamma=config.gamma)
    start_epoch, global_step = 0, 0
    history: list[dict[str, Any]] = []
    last = out_dir / "last.ckpt"
    if config.init_contact_from_mean and not config.resume:
        init_contact_from_mean(model, stats.means)
    if config.resume:
        if not last.is_file():
            raise AssetError(f"resume: {last} not found; train without --resume first")
        state = read_checkpoint(last)
        model.load_state_dict(state["state_dict"])
        if keypoint_head is not None:
            head_file = out_dir / "keypoint_head.pt"
            if not head_file.is_file():
                raise AssetError(f"resume: {head_file} not found; resume with the run's own keypoint_weight")
            keypoint_head.load_state_dict(torch.load(head_file, map_location=device, weights_only=True))
        if state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
        if state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        start_epoch, global_step = int(state["epoch"]) + 1, int(state["global_step"])
        # the saved state carries its own lr, milestones and gamma; a resumed run follows the config's schedule as if
        # it had been used from the start (e.g. more epochs with later milestones, or a new --lr)
        scheduler.last_epoch = start_epoch  # also when the container has no scheduler state (e.g. a stripped one)
        scheduler.milestones = collections.Counter(config.milestones)
        scheduler.gamma = config.gamma
        scheduler.base_lrs = [config.lr for _ in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["initial_lr"] = config.lr
            group["lr"] = scheduled_lr(config, start_epoch)
        metrics_file = out_dir / "metrics.json"
        if metrics_file.is_file():
            history = json.loads(metrics_file.read_text())
        logger.info("resumed from %s at epoch %d, step %d", last, start_epoch, global_step)
    train_model: torch.nn.Module = wrapped
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            wrapped, device_ids=[device.index] if device.type == "cuda" else None
        )
    threshold = _threshold(config.threshold, config.backbone)
    out_of_time = False
    for epoch in range(start_epoch, config.epochs):
        sampler.set_epoch(epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        train_model.train()
        sums: dict[str, float] = {}
        steps = 0
        bar = _progress(loader, config.progress and rank == 0, desc=f"epoch {epoch}", total=len(loader))
        for batch in bar:
            if config.max_wall_s is not None and time.monotonic() - start_time > config.max_wall_s:
                out_of_time = True
                break
            output, keypoint_logits = train_model(batch["image"].to(device, non_blocking=True))
            result = haco_loss(
                output, batch["contact"].to(device), stats, epoch, config.epochs, faces, regressors, config.loss
            )
            total = result.total
            if keypoint_logits is not None:
                keypoint = keypoint_token_loss(keypoint_logits, batch["joints_2d"].to(device), grid)
                total = total + config.keypoint_weight * keypoint
                sums["keypoint"] = sums.get("keypoint", 0.0) + float(keypoint.detach())
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            global_step += 1
            steps += 1
            sums["loss"] = sums.get("loss", 0.0) + float(total.detach())
            for name, value in result.terms.items():
                sums[name] = sums.get(name, 0.0) + float(value)
            if config.progress and rank == 0 and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{sums['loss'] / steps:.4f}")
            if config.max_steps_per_epoch is not None and steps >= config.max_steps_per_epoch:
                break
        epoch_lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        entry: dict[str, Any] = {
            "epoch": epoch,
            "global_step": global_step,
            "steps": steps,
            "complete": not out_of_time,
            "lr": epoch_lr,
            "train": {k: v / max(steps, 1) for k, v in sums.items()},
            "wall_s": time.monotonic() - start_time,
        }
        if rank == 0:
            if val_set is not None:
                result_eval = evaluate(
                    model, val_set, threshold, config.batch_size, config.workers, stats.means, progress=config.progress
                )
                entry["val"] = result_eval.to_dict()
                logger.info(
                    "epoch %d: val P %.3f R %.3f F1 %.3f (mean-map baseline F1 %.3f)",
                    epoch, result_eval.precision, result_eval.recall, result_eval.f1,
                    result_eval.baseline.get("f1", math.nan),
                )  # fmt: skip
                if config.calibrate_threshold and math.isfinite(result_eval.best_threshold):
                    haco_config.threshold = result_eval.best_threshold
                    model.config = haco_config
            history.append(entry)
            if keypoint_head is not None:  # before last.ckpt: a resumable last.ckpt always has its head
                with atomic_open(out_dir / "keypoint_head.pt") as stream:
                    torch.save(keypoint_head.state_dict(), stream)
            save_haco_checkpoint(last, model, haco_config, epoch, global_step, optimizer, scheduler)
            if epoch in config.keep_epochs:
                kept = out_dir / f"epoch_{epoch:03d}.ckpt"
                save_haco_checkpoint(kept, model, haco_config, epoch, global_step, optimizer, scheduler)
            _write_json(out_dir / "metrics.json", history)
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
        if out_of_time:
            logger.warning("max_wall_s = %s reached: stopped in epoch %d", config.max_wall_s, epoch)
            break
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return TrainResult(checkpoint=last, history=history, out_dir=out_dir)


class _ShuffleSampler(torch.utils.data.Sampler[int]):
    """Seeded per-epoch shuffle of all indices, sharded like DistributedSampler (no balanced sampling)."""

    def __init__(self, size: int, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.size, self.seed, self.num_replicas, self.rank, self.epoch = size, seed, num_replicas, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.size / self.num_replicas)

    def __iter__(self) -> Any:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = np.resize(torch.randperm(self.size, generator=generator).numpy(), len(self) * self.num_replicas)
        return iter(order[self.rank :: self.num_replicas].tolist())


def strip_checkpoint(source: str | os.PathLike[str], target: str | os.PathLike[str], half: bool = False) -> Path:
    """Copy a training checkpoint without optimizer state (and its HacoConfig JSON), for shipping.

    source: ``last.ckpt`` of a run; target: destination ``.ckpt``
    half: store floating weights as float16 (load_state_dict casts them back)
    returns: the written path
    """
    from haco_grasp.contact.checkpoint import config_path_for, read_checkpoint

    state = read_checkpoint(source)
    weights = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in state["state_dict"].items()
    }
    payload = {
        "epoch": state["epoch"],
        "global_step": state["global_step"],
        "state_dict": weights,
        "optimizer": None,
        "scheduler": state.get("scheduler"),
    }
    destination = Path(target)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(destination) as stream:
        torch.save(payload, stream)
    config_json = config_path_for(source)
    if config_json.is_file():
        atomic_write_bytes(config_path_for(destination), config_json.read_bytes())
    return destination


# --------------------------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``haco-grasp train-haco`` (every TrainConfig field; defaults from ``--preset``)."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default="synthetic-small", help="base configuration")
    parser.add_argument("--config", help="JSON file of TrainConfig fields (applied after the preset)")
    parser.add_argument("--out", dest="out_dir", help="output folder")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                        help="continue from OUT/last.ckpt; --no-resume starts afresh")  # fmt: skip
    parser.add_argument("--backbone", help="backbone registry name")
    parser.add_argument("--backbone-kwargs", type=json.loads, help="JSON dict, e.g. '{\"depth\": 4}'")
    for name in ("decoder_dim", "depth", "heads", "dim_head", "mlp_dim", "batch_size", "epochs", "workers", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int)
    parser.add_argument("--hand", choices=("synthetic", "mano"))
    parser.add_argument("--loss", choices=LOSS_NAMES)
    parser.add_argument("--no-balanced-sampling", dest="balanced_sampling", action="store_false", default=None)
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--milestones", type=int, nargs="+", help="MultiStepLR epochs (a resumed run follows these)")
    parser.add_argument("--gamma", type=float, help="MultiStepLR factor")
    parser.add_argument("--data", dest="train_data", nargs="+", help="training image folders (write_image_dataset)")
    parser.add_argument("--val-data", nargs="+", help="validation image folders")
    parser.add_argument("--val-objects", nargs="*", help="object names held out of --data for validation")
    parser.add_argument("--synthetic-cache", help="synthetic data cache folder (used without --data)")
    parser.add_argument("--synthetic-chunks", type=int, help="chunks of one grasp per object")
    parser.add_argument("--views-per-grasp", type=int)
    parser.add_argument("--threshold", type=float, help="evaluation probability threshold")
    parser.add_argument("--eval-empty", choices=("skip", "zero"))
    parser.add_argument("--max-wall-s", type=float, help="stop after this many seconds (evaluate and save first)")
    parser.add_argument("--max-steps-per-epoch", type=int)
    parser.add_argument(
        "--init-contact-from-mean", action="store_true", default=None,
        help="start init_contact at the logit of the training mean contact map",
    )  # fmt: skip
    parser.add_argument("--keypoint-weight", type=float, help="weight of the training-only 2D keypoint term (0: off)")
    parser.add_argument(
        "--calibrate-threshold", action="store_true", default=None,
        help="store the validation set's best-F1 threshold in the checkpoint's JSON",
    )  # fmt: skip
    parser.add_argument("--keep-epochs", type=int, nargs="*", help="also keep epoch_XXX.ckpt for these epochs")
    parser.add_argument("--device", help='"auto", "cpu", "cuda", ...')
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed ``train-haco`` arguments: preset, then ``--config`` JSON, then explicit flags."""
    values = PRESETS[args.preset].to_dict()
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise AssetError(f"--config file not found: {path}")
        values.update(json.loads(path.read_text()))
    for name in TrainConfig.__dataclass_fields__:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = tuple(value) if isinstance(value, list) else value
    return TrainConfig.from_dict(values)


def run_training(args: argparse.Namespace) -> int:
    """Entry point of ``haco-grasp train-haco``: train and print the last epoch's metrics as JSON."""
    result = train(config_from_args(args))
    print(json.dumps(_json_safe(result.history[-1] if result.history else {}), indent=2))
    return 0


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``haco-grasp eval``: a checkpoint and an image-folder or DexYCB dataset."""
    parser.add_argument("checkpoint", help="HACO checkpoint (.ckpt, with its .json or --backbone)")
    parser.add_argument("--backbone", help="backbone name when the checkpoint has no JSON beside it")
    parser.add_argument("--data", nargs="+", help="image folders (write_image_dataset format)")
    parser.add_argument("--objects", nargs="*", help="evaluate only these object names (image folders)")
    parser.add_argument("--dexycb", help="DexYCB root (instead of --data)")
    parser.add_argument("--split", default="s0_test", help="DexYCB split")
    parser.add_argument("--threshold", type=float, help="probability threshold (default: the backbone's)")
    parser.add_argument("--stats", help="ContactStats .npz of the training labels for the mean-map baseline")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    parser.add_argument("--json", dest="json_out", help="write the result JSON here")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def run_eval(args: argparse.Namespace) -> int:
    """Entry point of ``haco-grasp eval``: print a P/R/F1 table and write the JSON (with provenance)."""
    from haco_grasp.contact.checkpoint import load_haco
    from haco_grasp.info import git_commit

    model = load_haco(args.checkpoint, backbone=args.backbone, device=args.device)
    backbone = model.config.backbone
    normalization = _normalization(backbone)
    if args.dexycb:
        from haco_grasp.contact.datasets import DexYCBContactDataset
        from haco_grasp.data.dexycb import DexYCB

        dataset: Any = DexYCBContactDataset(DexYCB(args.dexycb, split=args.split), normalization=normalization)
    elif args.data:
        dataset = ImageFolderContactDataset(args.data, objects=args.objects, normalization=normalization)
    else:
        raise InputError("eval needs --data FOLDER [FOLDER ...] or --dexycb ROOT")
    threshold = args.threshold if args.threshold is not None else _threshold(model.config.threshold, backbone)
    means = ContactStats.load(args.stats).means if args.stats else None
    result = evaluate(model, dataset, threshold, args.batch_size, args.workers, means, progress=args.progress)
    rows = [("model", result.precision, result.recall, result.f1, result.precision_zero, result.recall_zero,
             result.f1_zero)]  # fmt: skip
    if result.baseline:
        b = result.baseline
        rows.append(("mean map", b["precision"], b["recall"], b["f1"], b["precision_zero"], b["recall_zero"],
                     b["f1_zero"]))  # fmt: skip
    print(f"{'':10s} {'P':>6s} {'R':>6s} {'F1':>6s} | {'P0':>6s} {'R0':>6s} {'F1_0':>6s}  (skip | zero rule)")
    for name, *values in rows:
        print(
            f"{name:10s} "
            + " ".join(f"{v:6.3f}" for v in values[:3])
            + " | "
            + " ".join(f"{v:6.3f}" for v in values[3:])
        )
    report = {
        "checkpoint": str(args.checkpoint),
        "dataset": args.dexycb or list(args.data),
        "result": result.to_dict(),
        "command": " ".join(sys.argv),
        "commit": git_commit(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if args.json_out:
        _write_json(Path(args.json_out), report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m haco_grasp.contact.train`` (the same options as ``haco-grasp train-haco``; torchrun-friendly)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    parser = add_arguments(argparse.ArgumentParser(description="Train the HACO contact estimator"))
    return run_training(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
