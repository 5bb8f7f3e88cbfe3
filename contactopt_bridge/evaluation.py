"""Held-out evaluation of DeepContact, and the reference predictors a trained model has to beat.

Three decodes of one forward pass are scored on held-out samples, with contact P/R/F1 pooled over all points:

- **argmax** (ContactOpt's decode, what refinement uses as its target): the most probable of the 10 bins, with
  per-bin accuracy and the two :data:`CONTACT_RULES`;
- **calibrated**: contact where the probability of the contact bins (``P(bin >= 1)``, rule ``value >= 0.1``) reaches
  a threshold chosen for the best F1 on *training* samples (:func:`calibrate`), as HACO's threshold is;
- the **reference predictors**: "all contact" (every point in contact) and, for the hand, the *mean map* (each
  vertex's contact frequency over the training samples, thresholded at its own best training F1). The object
  points differ per grasp, so the object has no mean map.

``summary`` states, per side, the model's F1 under each decode, the better reference and each decode's margin over
it (the quantity issue 17's bar is about), and the *training fit*: the model's and the better reference's F1 on the
calibration samples. A model below its reference on data it was trained on is under-fitted (it needs more steps,
not more data). Nothing here looks at the held-out targets before scoring them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from contactopt_bridge.deepcontact import NUM_BINS, DeepContactNet, contact_to_bin
from contactopt_bridge.shards import ShardedDeepContactDataset, batch_of, num_samples
from haco_grasp.errors import InputError

__all__ = [
    "CONTACT_RULES",
    "MAIN_RULE",
    "THRESHOLD_GRID",
    "Calibration",
    "best_threshold",
    "bin_metrics",
    "calibrate",
    "evaluate",
    "pooled_prf",
    "training_hand_contact",
]

#: Contact rules of the reported P/R/F1: name -> smallest contact value (bin lower edge) counted as contact.
CONTACT_RULES: dict[str, float] = {"value>=0.4 (~2.5mm)": 0.4, "value>=0.1 (~1cm)": 0.1}
#: The rule of the calibrated decode, the reference predictors and the summary.
MAIN_RULE = "value>=0.1 (~1cm)"
#: Candidate thresholds of :func:`best_threshold` (0.05 to 0.95 in steps of 0.05).
THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))


def _lowest_bin(rule: str = MAIN_RULE) -> int:
    return int(round(CONTACT_RULES[rule] * NUM_BINS))


def pooled_prf(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Contact precision, recall and F1 pooled over every point of every sample (0 where undefined).

    Args:
        pred: (...) bool, predicted contact.
        true: (...) bool, target contact (same shape).

    Returns:
        dict with precision, recall, f1 and positives (the number of target contacts).
    """
    pred = np.asarray(pred, dtype=bool)
    true = np.asarray(true, dtype=bool)
    if pred.shape != true.shape:
        raise InputError(f"pred and true must have the same shape, got {pred.shape} and {true.shape}")
    tp = float(np.sum(pred & true))
    fp = float(np.sum(pred & ~true))
    fn = float(np.sum(~pred & true))
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "positives": int(tp + fn)}


def best_threshold(scores: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """The threshold of :data:`THRESHOLD_GRID` whose ``scores >= threshold`` has the best pooled F1.

    Args:
        scores: (...) float in [0, 1].
        true: (...) bool, same shape (or broadcastable against ``scores``).

    Returns:
        (threshold, its F1); ties go to the lowest threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)
    true = np.asarray(true, dtype=bool)
    scores, true = np.broadcast_arrays(scores, true)
    best = (THRESHOLD_GRID[0], -1.0)
    for threshold in THRESHOLD_GRID:
        f1 = pooled_prf(scores >= threshold, true)["f1"]
        if f1 > best[1]:
            best = (threshold, f1)
    return best


def bin_metrics(pred_bins: np.ndarray, true_bins: np.ndarray) -> dict[str, Any]:
    """Per-bin recall, accuracies, decoded MAE and contact P/R/F1 (:data:`CONTACT_RULES`) of predicted bins.

    Args:
        pred_bins: (N,) int predicted bins.
        true_bins: (N,) int target bins.

    Returns:
        JSON-ready dict.
    """
    pred_bins = np.asarray(pred_bins).ravel()
    true_bins = np.asarray(true_bins).ravel()
    per_bin: dict[str, float | None] = {}
    recalls = []
    for k in range(NUM_BINS):
        sel = true_bins == k
        value = float(np.mean(pred_bins[sel] == k)) if sel.any() else None
        per_bin[str(k)] = value
        if value is not None:
            recalls.append(value)
    out: dict[str, Any] = {
        "n_points": int(true_bins.size),
        "target_bin_counts": [int(np.sum(true_bins == k)) for k in range(NUM_BINS)],
        "per_bin_accuracy": per_bin,
        "accuracy": float(np.mean(pred_bins == true_bins)),
        "balanced_accuracy": float(np.mean(recalls)),
        "mae_decoded": float(np.mean(np.abs(pred_bins - true_bins)) / NUM_BINS),
    }
    for name, threshold in CONTACT_RULES.items():
        lowest = int(round(threshold * NUM_BINS))
        out[name] = pooled_prf(pred_bins >= lowest, true_bins >= lowest)
    return out


@torch.no_grad()
def _predict(
    model: DeepContactNet, source: Any, index: torch.Tensor, batch_size: int, device: str | torch.device
) -> dict[str, dict[str, np.ndarray]]:
    """Argmax bins, P(contact) under :data:`MAIN_RULE` and target bins of samples ``index`` of a source, per side."""
    model.eval()
    lowest = _lowest_bin()
    parts: dict[str, dict[str, list[np.ndarray]]] = {s: {"bins": [], "prob": [], "true": []} for s in ("hand", "obj")}
    for start in range(0, index.numel(), batch_size):
        batch = batch_of(source, index[start : start + batch_size], device)
        out = model(batch["hand_verts"], batch["hand_feats"], batch["obj_points"], batch["obj_feats"])
        for side, log_probs in (("hand", out.hand), ("obj", out.obj)):
            parts[side]["bins"].append(log_probs.argmax(-1).cpu().numpy())
            parts[side]["prob"].append(log_probs[..., lowest:].exp().sum(-1).clamp(0.0, 1.0).cpu().numpy())
            parts[side]["true"].append(contact_to_bin(batch[f"{side}_target"]).cpu().numpy())
    return {side: {k: np.concatenate(v) for k, v in p.items()} for side, p in parts.items()}


def training_hand_contact(source: Any) -> np.ndarray:
    """Hand contact (:data:`MAIN_RULE`) of every training sample, for the mean map.

    Args:
        source: dict of tensors (``prepare_samples``) or a :class:`ShardedDeepContactDataset` (read per shard; the
            features are not computed).

    Returns:
        (S, 778) bool.
    """
    if isinstance(source, ShardedDeepContactDataset):
        table = source.table
        rows = [
            np.asarray(table.array(s, "dc_hand_target"))[np.asarray(table.array(s, "dc_grasp"))]
            for s in range(len(table.folders))
        ]
        targets = np.concatenate(rows) if rows else np.zeros((0, 778), np.float32)
    else:
        targets = source["hand_target"].cpu().numpy()
    # the bin encoding decides what counts as contact, as for the model's targets
    return contact_to_bin(torch.from_numpy(np.asarray(targets, np.float32))).numpy() >= _lowest_bin()


@dataclass
class Calibration:
    """Thresholds chosen on training samples (:func:`calibrate`).

    Attributes:
        hand_threshold: P(contact) threshold of the hand with the best training F1.
        obj_threshold: the same for the object points.
        mean_hand: (778,) float, each hand vertex's contact frequency over all training samples.
        mean_hand_threshold: threshold of ``mean_hand`` with the best training F1.
        n_samples: training samples the model's thresholds were chosen on.
        n_mean_samples: training samples the mean map averages.
        train_fit: F1 on those ``n_samples`` training samples of the model (at its threshold) and of the side's
            better reference ("hand" / "obj" and "hand_reference" / "obj_reference"): a model below its reference on
            the data it was trained on is under-fitted (more steps help), one above it there but not on held-out
            objects does not generalise (more data helps).
    """

    hand_threshold: float
    obj_threshold: float
    mean_hand: np.ndarray
    mean_hand_threshold: float
    n_samples: int
    n_mean_samples: int
    train_fit: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (the mean map rounded to 4 decimals)."""
        out = dataclasses.asdict(self)
        out["mean_hand"] = [round(float(v), 4) for v in self.mean_hand]
        out["rule"] = MAIN_RULE
        return out


def calibrate(
    model: DeepContactNet,
    train: Any,
    samples: int = 256,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> Calibration:
    """Choose the calibrated decode's thresholds and build the mean-map reference, from training data only.

    Args:
        model: the trained network (put in eval mode).
        train: the training source (dict of tensors or sharded dataset).
        samples: training samples (drawn without replacement with ``seed``) the model's thresholds are chosen on.
        batch_size: samples per forward pass.
        device: torch device.
        seed: seed of the draw.

    Returns:
        The :class:`Calibration`.
    """
    total = num_samples(train)
    if total == 0 or isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InputError(f"calibration needs training samples and samples >= 1, got {total} and {samples!r}")
    index = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[: min(samples, total)]
    index = index.sort().values  # read the shards in order
    lowest = _lowest_bin()
    pred = _predict(model, train, index, batch_size, device)
    hand_true, obj_true = pred["hand"]["true"] >= lowest, pred["obj"]["true"] >= lowest
    hand_t, hand_f1 = best_threshold(pred["hand"]["prob"], hand_true)
    obj_t, obj_f1 = best_threshold(pred["obj"]["prob"], obj_true)
    contact = training_hand_contact(train)
    mean_hand = contact.mean(axis=0)
    mean_t, _ = best_threshold(mean_hand[None], contact)
    mean_f1 = pooled_prf(np.broadcast_to(mean_hand[None] >= mean_t, hand_true.shape), hand_true)["f1"]
    train_fit = {
        "hand": hand_f1,
        "hand_reference": max(mean_f1, pooled_prf(np.ones_like(hand_true), hand_true)["f1"]),
        "obj": obj_f1,
        "obj_reference": pooled_prf(np.ones_like(obj_true), obj_true)["f1"],
    }
    return Calibration(hand_t, obj_t, mean_hand, mean_t, int(index.numel()), int(contact.shape[0]), train_fit)


def evaluate(
    model: DeepContactNet,
    data: Any,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    calibration: Calibration | None = None,
) -> dict[str, Any]:
    """Evaluate a model (eval mode, no roll) on held-out samples, beside the reference predictors.

    Args:
        model: the network.
        data: held-out samples (dict of tensors, e.g. ``prepare_samples`` or ``shards.load_split``).
        batch_size: samples per forward pass.
        device: torch device.
        calibration: thresholds and mean map from :func:`calibrate` (None: argmax decode and "all contact" only).

    Returns:
        dict with "hand" and "obj" :func:`bin_metrics` of the argmax decode; "constant_hand" / "constant_obj" for
        the most frequent held-out bin (an upper bound on any constant bin); "all_contact_hand" / "all_contact_obj";
        with a calibration also "calibrated" ({side: threshold and P/R/F1}), "mean_map_hand" and "calibration";
        and "summary" ({side: F1 of each decode, the better reference, the margin over it}).
    """
    index = torch.arange(num_samples(data))
    pred = _predict(model, data, index, batch_size, device)
    lowest = _lowest_bin()
    results: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for side in ("hand", "obj"):
        true = pred[side]["true"]
        results[side] = bin_metrics(pred[side]["bins"], true)
        majority = int(np.bincount(true.ravel(), minlength=NUM_BINS).argmax())
        results[f"constant_{side}"] = bin_metrics(np.full_like(true, majority), true)
        results[f"constant_{side}"]["bin"] = majority
        results[f"all_contact_{side}"] = pooled_prf(np.ones(true.shape, bool), true >= lowest)
        references = {"all contact": results[f"all_contact_{side}"]["f1"]}
        summary[side] = {"argmax_f1": results[side][MAIN_RULE]["f1"]}
        if calibration is not None:
            threshold = calibration.hand_threshold if side == "hand" else calibration.obj_threshold
            scored = pooled_prf(pred[side]["prob"] >= threshold, true >= lowest)
            results.setdefault("calibrated", {})[side] = {"threshold": threshold, **scored}
            summary[side]["calibrated_f1"] = scored["f1"]
            if side == "hand":
                mean_pred = np.broadcast_to(calibration.mean_hand[None] >= calibration.mean_hand_threshold, true.shape)
                results["mean_map_hand"] = {
                    "threshold": calibration.mean_hand_threshold,
                    **pooled_prf(mean_pred, true >= lowest),
                }
                references["mean map"] = results["mean_map_hand"]["f1"]
        best_name = max(references, key=references.__getitem__)
        summary[side].update({"best_reference": best_name, "reference_f1": references[best_name]})
        if calibration is not None and calibration.train_fit:
            summary[side]["train_fit_f1"] = calibration.train_fit[side]
            summary[side]["train_reference_f1"] = calibration.train_fit[f"{side}_reference"]
        for decode in ("argmax", "calibrated"):
            if f"{decode}_f1" in summary[side]:
                summary[side][f"{decode}_margin"] = summary[side][f"{decode}_f1"] - references[best_name]
    if calibration is not None:
        results["calibration"] = calibration.to_json()
    results["summary"] = summary
    return results


# --------------------------------------------------------------------------------------------------------------
# command line: haco-grasp eval-deepcontact


def evaluate_checkpoint(
    checkpoint: str | None,
    root: str,
    calibration_samples: int = 256,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Calibrate a DeepContact checkpoint on a prepared root's train split and score it on its test split.

    Args:
        checkpoint: state_dict path (None: the shipped synthetic checkpoint).
        root: a root written by ``haco-grasp prepare-data`` with DeepContact samples.
        calibration_samples: training samples the model's thresholds are chosen on.
        batch_size: samples per forward pass.
        device: torch device.
        seed: seed of the calibration draw.

    Returns:
        :func:`evaluate`'s dict, plus "checkpoint", "root" and "n_test_samples".
    """
    from contactopt_bridge.deepcontact import load_deepcontact
    from contactopt_bridge.shards import shard_training_data

    model = load_deepcontact(checkpoint, device)
    data = shard_training_data(root)
    calibration = calibrate(model, data["train"], calibration_samples, batch_size, device, seed)
    metrics = evaluate(model, data["test"], batch_size, device, calibration)
    metrics.update(
        {
            "checkpoint": str(checkpoint) if checkpoint else "shipped",
            "root": str(root),
            "n_test_samples": num_samples(data["test"]),
        }
    )
    return metrics


def add_arguments(parser: Any) -> None:
    """Options of ``haco-grasp eval-deepcontact``."""
    parser.add_argument("--checkpoint", default=None, help="DeepContact state_dict (default: the shipped checkpoint)")
    parser.add_argument("--shards", required=True,
                        help="root prepared by `haco-grasp prepare-data`: thresholds and the mean map from its train "
                        "split, scores on its held-out test split")  # fmt: skip
    parser.add_argument("--calibration-samples", type=int, default=256,
                        help="training samples the calibrated decode's thresholds are chosen on")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8, help="samples per forward pass")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration draw")
    parser.add_argument("--json", default=None, help="also write every metric to this JSON file")


def run_from_args(args: Any) -> int:
    """``haco-grasp eval-deepcontact``: print the per-side summary as JSON (everything with ``--json``)."""
    import json
    from pathlib import Path

    from haco_grasp.devices import resolve_device

    metrics = evaluate_checkpoint(
        args.checkpoint, args.shards, args.calibration_samples, args.batch_size, resolve_device(args.device), args.seed
    )
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics["summary"], indent=2))
    return 0
