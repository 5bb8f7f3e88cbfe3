"""Training configuration: :class:`TrainConfig`, its :data:`PRESETS`, the lr schedule, result records."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haco_grasp.contact.losses import LOSS_NAMES
from haco_grasp.errors import InputError


@dataclass
class TrainConfig:
    """Everything a training run needs (saved as ``train_config.json``).

    Attributes:
        backbone: backbone registry name
        backbone_kwargs: extra factory arguments (e.g. a small ViT).
        decoder_dim, depth, heads, dim_head, mlp_dim: decoder sizes.
        hand: topology of the coarse regressors and the smoothness faces: "synthetic" or "mano".
        loss: per-level loss name (:data:`haco_grasp.contact.losses.LOSS_NAMES`; HACO: "vcb").
        balanced_sampling: HACO's balanced contact sampling (else a seeded random shuffle)
        sampling_edge_mode: see
            :func:`haco_grasp.contact.sampling.balanced_indices`.
        lr, betas, weight_decay: AdamW.
        milestones, gamma: MultiStepLR, stepped per epoch.
        batch_size, epochs, image_size, workers, seed: as named (image_size must be 256 for the registry backbones).
        augment: apply HACO's augmentations to training images.
        out_dir: output folder.
        resume: continue from ``out_dir/last.ckpt``.
        train_data / val_data: image folders (``write_image_dataset`` format)
        val_objects: object names held out
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

    Attributes:
        precision, recall, f1: means with the "skip" rule (undefined per-frame values dropped, HACO paper)
        precision_zero, recall_zero, f1_zero: means with the "zero" rule (undefined values count 0, HACO test.py)
        baseline: the same six numbers for the "predict the training mean contact map" baseline (or {} if none)
        threshold: the threshold used
        num_samples: frames evaluated
        mean_loss: mean BCE of the logits
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
