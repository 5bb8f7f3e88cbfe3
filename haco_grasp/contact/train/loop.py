"""The training loop: :func:`train` (resume, DDP, per-epoch evaluation, checkpoints, wall-time limit)."""

from __future__ import annotations

import collections
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from haco_grasp.atomic import atomic_open, atomic_write_bytes
from haco_grasp.contact.losses import haco_loss
from haco_grasp.contact.sampling import BalancedContactSampler
from haco_grasp.contact.stats import ContactStats
from haco_grasp.contact.train.config import TrainConfig, TrainResult, _json_safe, scheduled_lr
from haco_grasp.contact.train.data import _collate, _progress, _threshold, build_datasets
from haco_grasp.contact.train.distributed import _init_distributed
from haco_grasp.contact.train.evaluation import evaluate
from haco_grasp.contact.train.model import (
    _haco_config,
    _TrainModule,
    hand_faces,
    init_contact_from_mean,
    keypoint_token_loss,
    token_grid,
)
from haco_grasp.errors import AssetError

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------
# training


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(_json_safe(data), indent=2) + "\n").encode())


def train(config: TrainConfig) -> TrainResult:
    """Train HACO as configured (module docstring); returns the last checkpoint and the per-epoch metrics.

    Args:
        config: TrainConfig (see :data:`PRESETS`)

    Returns:
        TrainResult
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
