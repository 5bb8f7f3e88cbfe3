"""DeepContact evaluation: pooled P/R/F1, threshold choice, the calibrated decode and the reference predictors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contactopt_bridge.deepcontact import NUM_BINS, DeepContactOutput, bin_to_contact
from contactopt_bridge.evaluation import (
    THRESHOLD_GRID,
    best_threshold,
    calibrate,
    evaluate,
    pooled_prf,
    training_hand_contact,
)
from haco_grasp.errors import InputError


def _slow_prf(pred, true):
    tp = fp = fn = 0
    for p, t in zip(np.ravel(pred), np.ravel(true), strict=True):
        tp += bool(p and t)
        fp += bool(p and not t)
        fn += bool(t and not p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def test_pooled_prf_matches_counting():
    rng = np.random.default_rng(0)
    pred, true = rng.random((5, 40)) > 0.6, rng.random((5, 40)) > 0.7
    got = pooled_prf(pred, true)
    assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(_slow_prf(pred, true))
    assert got["positives"] == int(true.sum())
    assert pooled_prf(np.zeros(4, bool), np.ones(4, bool))["f1"] == 0.0
    with pytest.raises(InputError, match="same shape"):
        pooled_prf(pred, true[:2])


def test_best_threshold_is_the_first_best_of_the_grid():
    rng = np.random.default_rng(1)
    true = rng.random((6, 50)) > 0.6
    scores = np.clip(true * 0.3 + rng.random((6, 50)) * 0.7, 0, 1)
    f1s = [_slow_prf(scores >= t, true)[2] for t in THRESHOLD_GRID]
    threshold, f1 = best_threshold(scores, true)
    assert threshold == THRESHOLD_GRID[int(np.argmax(f1s))] and f1 == pytest.approx(max(f1s))
    # a (1, V) score map broadcasts against (S, V) truths (the mean map's case)
    row = scores[:1]
    f1s = [_slow_prf(np.broadcast_to(row >= t, true.shape), true)[2] for t in THRESHOLD_GRID]
    assert best_threshold(row, true)[1] == pytest.approx(max(f1s))


class _FeatureModel(torch.nn.Module):
    """Bin log-probabilities read off the first 10 feature channels (a known, input-dependent 'network')."""

    def forward(self, hand_verts, hand_feats, obj_points, obj_feats):
        return DeepContactOutput(
            torch.log_softmax(hand_feats[..., :NUM_BINS], -1), torch.log_softmax(obj_feats[..., :NUM_BINS], -1)
        )


def _samples(n, points=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    hand_target = bin_to_contact(torch.randint(0, NUM_BINS, (n, 778), generator=g)) * (
        torch.rand(n, 778, generator=g) > 0.6
    )
    obj_target = bin_to_contact(torch.randint(0, NUM_BINS, (n, points), generator=g)) * (
        torch.rand(n, points, generator=g) > 0.5
    )
    return {
        "hand_verts": torch.zeros(n, 778, 3),
        "hand_feats": 3 * torch.randn(n, 778, 25, generator=g),
        "obj_points": torch.zeros(n, points, 3),
        "obj_feats": 3 * torch.randn(n, points, 25, generator=g),
        "hand_target": hand_target.float(),
        "obj_target": obj_target.float(),
    }  # fmt: skip


def test_calibrated_decode_and_references_by_hand():
    train, test = _samples(12, seed=0), _samples(5, seed=1)
    model = _FeatureModel()
    calibration = calibrate(model, train, samples=8, batch_size=3, seed=2)
    assert calibration.n_samples == 8 and calibration.n_mean_samples == 12
    train_contact = (train["hand_target"] >= 0.1).numpy()
    np.testing.assert_allclose(calibration.mean_hand, train_contact.mean(0))
    assert calibration.mean_hand_threshold == best_threshold(calibration.mean_hand[None], train_contact)[0]
    # the model's thresholds come from 8 training samples (the seeded draw), not from the held-out ones
    index = torch.randperm(12, generator=torch.Generator().manual_seed(2))[:8].sort().values
    p_hand = 1 - torch.softmax(train["hand_feats"][index, :, :NUM_BINS], -1)[..., 0]
    assert calibration.hand_threshold == best_threshold(p_hand.numpy(), train_contact[index.numpy()])[0]
    # training fit: the model and the better reference, scored on those same 8 training samples
    fit_true = train_contact[index.numpy()]
    assert calibration.train_fit["hand"] == pytest.approx(_slow_prf(p_hand >= calibration.hand_threshold, fit_true)[2])
    mean_fit = _slow_prf(np.broadcast_to(calibration.mean_hand >= calibration.mean_hand_threshold, fit_true.shape),
                         fit_true)[2]  # fmt: skip
    all_fit = _slow_prf(np.ones_like(fit_true), fit_true)[2]
    assert calibration.train_fit["hand_reference"] == pytest.approx(max(mean_fit, all_fit))
    obj_true = (train["obj_target"][index] >= 0.1).numpy()
    assert calibration.train_fit["obj_reference"] == pytest.approx(_slow_prf(np.ones_like(obj_true), obj_true)[2])

    metrics = evaluate(model, test, batch_size=2, calibration=calibration)
    summary = metrics["summary"]
    for side, threshold in (("hand", calibration.hand_threshold), ("obj", calibration.obj_threshold)):
        true = (test[f"{side}_target"] >= 0.1).numpy()
        prob = (1 - torch.softmax(test[f"{side}_feats"][..., :NUM_BINS], -1)[..., 0]).numpy()
        assert metrics["calibrated"][side]["f1"] == pytest.approx(_slow_prf(prob >= threshold, true)[2])
        argmax = test[f"{side}_feats"][..., :NUM_BINS].argmax(-1).numpy()
        assert summary[side]["argmax_f1"] == pytest.approx(_slow_prf(argmax >= 1, true)[2])
        assert metrics[f"all_contact_{side}"]["f1"] == pytest.approx(_slow_prf(np.ones_like(true), true)[2])
    true = (test["hand_target"] >= 0.1).numpy()
    mean_pred = np.broadcast_to(calibration.mean_hand >= calibration.mean_hand_threshold, true.shape)
    assert metrics["mean_map_hand"]["f1"] == pytest.approx(_slow_prf(mean_pred, true)[2])
    best = max(metrics["mean_map_hand"]["f1"], metrics["all_contact_hand"]["f1"])
    assert summary["hand"]["reference_f1"] == pytest.approx(best)
    assert summary["hand"]["calibrated_margin"] == pytest.approx(metrics["calibrated"]["hand"]["f1"] - best)
    assert summary["obj"]["best_reference"] == "all contact"  # the object has no mean map
    for side in ("hand", "obj"):
        assert summary[side]["train_fit_f1"] == calibration.train_fit[side]
        assert summary[side]["train_reference_f1"] == calibration.train_fit[f"{side}_reference"]
    assert len(metrics["calibration"]["mean_hand"]) == 778


def test_training_hand_contact_uses_the_bin_encoding():
    data = {"hand_target": torch.tensor([[0.0, 0.099, 0.1, 0.5] + [0.0] * 774])}
    assert training_hand_contact(data)[0, :4].tolist() == [False, False, True, True]


def test_evaluate_without_calibration_reports_argmax_and_all_contact():
    metrics = evaluate(_FeatureModel(), _samples(3), batch_size=2)
    assert "calibrated" not in metrics and "mean_map_hand" not in metrics
    assert set(metrics["summary"]["hand"]) == {"argmax_f1", "best_reference", "reference_f1", "argmax_margin"}
    with pytest.raises(InputError, match="samples >= 1"):
        calibrate(_FeatureModel(), _samples(3), samples=0)
