"""Evaluation: per-frame contact P/R/F1 of a model on a dataset, and the best-F1 threshold."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from haco_grasp.contact.train.config import EvalResult
from haco_grasp.contact.train.data import _collate, _progress
from haco_grasp.errors import InputError
from haco_grasp.metrics import contact_prf

#: Candidate probability thresholds of :func:`best_f1_threshold` (0.05 to 0.95 in steps of 0.05).
THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))


def best_f1_threshold(prob: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """The threshold of :data:`THRESHOLD_GRID` with the highest per-frame F1 ("skip" rule); ties go to the lowest.

    Args:
        prob: (B, 778) probabilities
        gt: (B, 778) labels

    Returns:
        (best F1, its threshold); (nan, nan) when no threshold gives a defined F1
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

    Args:
        model: HACO model (forward(images) -> HacoOutput)
        dataset: a ContactDataset (images already normalised for the model's backbone)
        threshold: probability threshold
        batch_size, workers: DataLoader settings
        mean_contact: (778,) training mean for the "predict the mean map" baseline (None: no baseline)
        progress: tqdm bar

    Returns:
        EvalResult
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
