"""Tests for contactopt_bridge.train: a tiny run writes checkpoints with config and metrics, and resumes."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from contactopt_bridge.deepcontact import CLASS_BIN_WEIGHTS, DeepContactOutput, load_deepcontact
from contactopt_bridge.train import (
    TrainConfig,
    add_arguments,
    bin_metrics,
    config_from_args,
    deepcontact_loss,
    load_grasps,
    run_training,
    save_grasps,
)
from haco_grasp.errors import InputError
from tests.bridge import fake_grasps


@pytest.fixture(scope="module")
def grasps():
    return fake_grasps(("box", "box", "ball"), seed=1)


def test_tiny_run_writes_checkpoint_and_resumes(tmp_path, grasps):
    config = TrainConfig(
        out_dir=str(tmp_path / "run"),
        test_objects=("ball",),
        perturbations=1,
        test_perturbations=1,
        n_obj_points=96,
        epochs=1,
        batch_size=2,
        progress=False,
        export=str(tmp_path / "export" / "dc.pt"),
    )
    first = run_training(config, grasps=grasps)
    assert first.epochs_done == 1 and len(first.history) == 1
    state = torch.load(first.checkpoint, weights_only=True)
    assert state["epoch"] == 1 and state["config"]["n_obj_points"] == 96 and state["config"]["epochs"] == 1
    assert np.isfinite(state["history"][0]["train_loss_total"])
    report = json.loads(first.metrics_path.read_text())
    assert report["config"]["test_objects"] == ["ball"] and report["data"]["test_objects"] == ["ball"]
    assert report["data"]["train_objects"] == ["box"] and "SYNTHETIC" in report["trained_on"]
    assert {"hand", "obj", "constant_hand", "constant_obj", "all_contact_hand", "all_contact_obj", "calibrated",
            "mean_map_hand", "calibration", "summary"} == set(report["heldout_metrics"])  # fmt: skip
    assert len(report["heldout_metrics"]["obj"]["per_bin_accuracy"]) == 10
    exported = tmp_path / "export" / "dc.pt"
    assert exported.is_file() and exported.with_suffix(".json").is_file()
    for key, value in load_deepcontact(exported).state_dict().items():
        torch.testing.assert_close(value, state["model"][key])

    # resume: epochs=1 is already done, so nothing trains and the exported weights are the checkpoint's
    again = run_training(config, grasps=grasps)
    assert again.epochs_done == 1 and len(again.history) == 1
    for key, value in load_deepcontact(again.state_dict_path).state_dict().items():
        torch.testing.assert_close(value, state["model"][key])
    # resume with a larger budget continues at epoch 2 and keeps the first epoch's record
    config.epochs = 2
    resumed = run_training(config, grasps=grasps)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[0] == first.history[0]
    second_state = torch.load(resumed.checkpoint, weights_only=True)
    assert second_state["epoch"] == 2
    assert any(not torch.equal(second_state["model"][k], state["model"][k]) for k in state["model"])


def test_loss_is_weighted_nll_sum():
    torch.manual_seed(0)
    hand = torch.log_softmax(torch.randn(2, 5, 10), -1)
    obj = torch.log_softmax(torch.randn(2, 7, 10), -1)
    hand_t, obj_t = torch.rand(2, 5), torch.rand(2, 7)
    losses = deepcontact_loss(DeepContactOutput(hand, obj), hand_t, obj_t)

    def naive(logp, target):
        bins = np.clip(np.floor(target.numpy() * np.float32(10)), 0, 9).astype(int).ravel()
        lp = logp.reshape(-1, 10).numpy()
        w = np.asarray(CLASS_BIN_WEIGHTS)[bins]
        return -(w * lp[np.arange(len(bins)), bins]).sum() / w.sum()

    np.testing.assert_allclose(losses["hand"].item(), naive(hand, hand_t), rtol=1e-5)
    np.testing.assert_allclose(losses["obj"].item(), naive(obj, obj_t), rtol=1e-5)
    np.testing.assert_allclose(losses["total"].item(), losses["hand"].item() + losses["obj"].item(), rtol=1e-6)


def test_bin_metrics_against_hand_counts():
    true = np.array([0, 0, 1, 4, 5, 9])
    pred = np.array([0, 4, 1, 3, 5, 9])
    m = bin_metrics(pred, true)
    assert (
        m["per_bin_accuracy"]["0"] == 0.5 and m["per_bin_accuracy"]["4"] == 0.0 and m["per_bin_accuracy"]["2"] is None
    )
    assert m["accuracy"] == pytest.approx(4 / 6)
    rule = m["value>=0.4 (~2.5mm)"]  # pred >= 4 at indices {1, 4, 5}, true >= 4 at {3, 4, 5}
    assert rule["precision"] == pytest.approx(2 / 3) and rule["recall"] == pytest.approx(2 / 3)
    loose = m["value>=0.1 (~1cm)"]  # pred >= 1 at {1, 2, 3, 4, 5}, true >= 1 at {2, 3, 4, 5}
    assert loose["precision"] == pytest.approx(4 / 5) and loose["recall"] == 1.0


def test_cli_arguments_and_grasp_cache(tmp_path, grasps):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--epochs", "3", "--test-objects", "ball", "mug", "--milestones", "2", "--no-resume"])
    config = config_from_args(args)
    assert config.epochs == 3 and config.test_objects == ("ball", "mug") and config.milestones == (2,)
    assert not config.resume and config.batch_size == 32 and config.lr == 0.01 and config.jitter_std == 0.0005
    save_grasps(grasps[:1], tmp_path / "g.pt")
    back = load_grasps(tmp_path / "g.pt")[0]
    np.testing.assert_array_equal(back.hand_verts, grasps[0].hand_verts)
    assert back.object_name == "box" and back.meta == grasps[0].meta
    with pytest.raises(InputError):
        run_training(TrainConfig(out_dir=str(tmp_path / "x"), epochs=0), grasps=grasps)
    with pytest.raises(InputError):  # no held-out object in the data
        run_training(TrainConfig(out_dir=str(tmp_path / "y"), test_objects=("mug",), n_obj_points=32), grasps=grasps)


def test_init_starts_from_a_checkpoint_and_keeps_its_provenance(tmp_path, grasps):
    base = dict(test_objects=("ball",), perturbations=1, test_perturbations=1, n_obj_points=96, batch_size=2,
                progress=False)  # fmt: skip
    run_training(
        TrainConfig(out_dir=str(tmp_path / "a"), epochs=1, export=str(tmp_path / "a.pt"), **base), grasps=grasps
    )
    parent_state = load_deepcontact(tmp_path / "a.pt").state_dict()
    parent_report = json.loads((tmp_path / "a.json").read_text())

    # no time to train: the written weights are exactly the --init ones, and this run did no epoch of its own
    kept = run_training(
        TrainConfig(out_dir=str(tmp_path / "b"), epochs=1, init=str(tmp_path / "a.pt"), max_minutes=0.0, **base),
        grasps=grasps,
    )
    assert kept.epochs_done == 0
    for key, value in load_deepcontact(kept.state_dict_path).state_dict().items():
        torch.testing.assert_close(value, parent_state[key])
    report = json.loads(kept.metrics_path.read_text())
    assert report["commands"][: len(parent_report["commands"])] == parent_report["commands"]
    assert report["history"] == [{**h, "init": str(tmp_path / "a.pt")} for h in parent_report["history"]]
    assert report["config"]["init"] == str(tmp_path / "a.pt")

    # one epoch from those weights moves them, and its record follows the parent's
    tuned = run_training(
        TrainConfig(out_dir=str(tmp_path / "c"), epochs=1, init=str(tmp_path / "a.pt"), lr=1e-3, **base),
        grasps=grasps,
    )
    assert tuned.epochs_done == 1 and [("init" in h, h["epoch"]) for h in tuned.history] == [(True, 1), (False, 1)]
    tuned_state = load_deepcontact(tuned.state_dict_path).state_dict()
    assert any(not torch.equal(tuned_state[k], parent_state[k]) for k in parent_state)
    # a fresh run from scratch with the same seed does not give the tuned weights: training really started from a.pt
    scratch = run_training(TrainConfig(out_dir=str(tmp_path / "d"), epochs=1, lr=1e-3, **base), grasps=grasps)
    scratch_state = load_deepcontact(scratch.state_dict_path).state_dict()
    assert any(not torch.allclose(tuned_state[k], scratch_state[k]) for k in parent_state if k.endswith("weight"))

    with pytest.raises(InputError, match="--init"):
        run_training(TrainConfig(out_dir=str(tmp_path / "e"), init=str(tmp_path / "missing.pt"), **base), grasps=grasps)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--init", "x.pt"])).init == "x.pt"
