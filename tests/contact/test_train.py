"""Training loop: checkpoints in the official container, metrics, resume, evaluation CLI, DDP with 2 CPU processes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from haco_grasp.contact.train import (
    PRESETS,
    TrainConfig,
    add_arguments,
    add_eval_arguments,
    config_from_args,
    evaluate,
    run_eval,
    scheduled_lr,
    strip_checkpoint,
    train,
)
from haco_grasp.errors import AssetError, InputError
from tests.contact.test_datasets import make_grasp

OFFICIAL_KEYS = {"epoch", "global_step", "state_dict", "optimizer", "scheduler"}


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from haco_grasp.data.images import ImageConfig, write_image_dataset

    grasps = [make_grasp("ball", 0.01, 0), make_grasp("box", 0.02, 1), make_grasp("can", 0.015, 2)]
    config = ImageConfig(size=32, supersample=1, candidate_size=16, max_view_tries=1)
    return write_image_dataset(grasps + grasps[:1], tmp_path_factory.mktemp("imgs"), 0, config, progress=False)


def tiny_config(root: Path, out: Path, **changes: object) -> TrainConfig:
    values = dict(
        backbone="hamer",
        backbone_kwargs={"embed_dim": 32, "depth": 1, "num_heads": 2, "drop_path_rate": 0.0},
        decoder_dim=32, depth=1, heads=2, dim_head=16, mlp_dim=64, batch_size=2, epochs=2, workers=0,
        lr=1e-3, train_data=(str(root),), val_objects=("box",), out_dir=str(out), progress=False,
        sampling_edge_mode="inclusive",  # 3 training images: the official edges would drop the min and max
    )  # fmt: skip
    values.update(changes)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_train_writes_official_checkpoints_and_metrics(image_root: Path, tmp_path: Path) -> None:
    from haco_grasp.contact.checkpoint import load_haco

    result = train(tiny_config(image_root, tmp_path / "run", keep_epochs=(0,)))
    state = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert set(state) == OFFICIAL_KEYS and state["epoch"] == 1
    assert state["optimizer"] is not None and state["scheduler"] is not None
    assert all(k.startswith(("backbone.", "decoder.")) for k in state["state_dict"])
    assert len(result.history) == 2
    steps = [entry["steps"] for entry in result.history]
    assert state["global_step"] == sum(steps) and all(s >= 1 for s in steps)
    val = result.history[-1]["val"]
    assert val["num_samples"] == 1 and val["threshold"] == 0.5  # hamer's registry threshold
    for key in ("precision", "recall", "f1"):
        assert val[key] is None or 0.0 <= val[key] <= 1.0
    assert set(result.history[0]["train"]) >= {"loss", "778", "336", "84", "joint", "reg", "smooth"}
    assert not (tmp_path / "run" / "epoch_001.ckpt").exists()
    for name in ("train_config.json", "metrics.json", "stats.npz", "last.json", "epoch_000.ckpt", "epoch_000.json"):
        assert (tmp_path / "run" / name).is_file()
    saved = TrainConfig.from_dict(json.loads((tmp_path / "run" / "train_config.json").read_text()))
    assert saved == tiny_config(image_root, tmp_path / "run", keep_epochs=(0,))
    model = load_haco(result.checkpoint)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state["state_dict"][key])
    shipped = strip_checkpoint(result.checkpoint, tmp_path / "ship" / "small.ckpt", half=True)
    small = torch.load(shipped, map_location="cpu", weights_only=True)
    assert set(small) == OFFICIAL_KEYS and small["optimizer"] is None
    assert shipped.stat().st_size < result.checkpoint.stat().st_size
    load_haco(shipped)  # float16 weights load into the float32 model


def test_training_reduces_the_loss(image_root: Path, tmp_path: Path) -> None:
    config = tiny_config(image_root, tmp_path / "fit", epochs=4, augment=False, balanced_sampling=False,
                         val_objects=(), lr=3e-3, milestones=(100,))  # fmt: skip
    losses = [entry["train"]["loss"] for entry in train(config).history]
    assert losses[-1] < 0.8 * losses[0]


def test_resume_continues(image_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    first = train(tiny_config(image_root, out, epochs=1))
    before = torch.load(first.checkpoint, weights_only=True)
    assert first.history[0]["lr"] == pytest.approx(1e-3)  # the rate used during epoch 0
    resumed = tiny_config(image_root, out, epochs=3, resume=True, lr=4e-3, milestones=(1, 2, 7), gamma=0.5)
    second = train(resumed)
    after = torch.load(second.checkpoint, weights_only=True)
    assert [e["epoch"] for e in second.history] == [0, 1, 2]
    assert after["global_step"] == before["global_step"] + sum(e["steps"] for e in second.history[1:])
    assert after["scheduler"]["last_epoch"] == 3
    assert dict(after["scheduler"]["milestones"]) == {1: 1, 2: 1, 7: 1}  # the resumed config's, not the saved one
    # the resumed epochs follow the new schedule as if it had been used from the start: 4e-3 * 0.5^(milestones <= e)
    # (not the saved optimizer's 1e-3 decayed at the new milestones)
    assert [e["lr"] for e in second.history[1:]] == pytest.approx([2e-3, 1e-3])
    assert [scheduled_lr(resumed, e) for e in (0, 1, 2, 7)] == pytest.approx([4e-3, 2e-3, 1e-3, 5e-4])
    # a container without scheduler state (e.g. stripped) resumes on the same schedule
    bare = tmp_path / "bare"
    bare.mkdir()
    torch.save({**before, "optimizer": None, "scheduler": None}, bare / "last.ckpt")
    (bare / "last.json").write_text((out / "last.json").read_text())
    third = train(tiny_config(image_root, bare, epochs=3, resume=True, lr=4e-3, milestones=(2, 7), gamma=0.5))
    assert [e["lr"] for e in third.history] == pytest.approx([4e-3, 2e-3])
    changed = [
        k
        for k, v in after["state_dict"].items()
        if v.is_floating_point() and not torch.equal(v, before["state_dict"][k])
    ]
    assert changed
    with pytest.raises(AssetError):
        train(tiny_config(image_root, tmp_path / "empty", resume=True))


def test_eval_cli_matches_evaluate(image_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from haco_grasp.contact.checkpoint import load_haco
    from haco_grasp.contact.datasets import ImageFolderContactDataset

    result = train(tiny_config(image_root, tmp_path / "ev", epochs=1))
    parser = add_eval_arguments(argparse.ArgumentParser())
    out = tmp_path / "eval.json"
    args = parser.parse_args([str(result.checkpoint), "--data", str(image_root), "--json", str(out), "--no-progress",
                              "--stats", str(tmp_path / "ev" / "stats.npz")])  # fmt: skip
    assert run_eval(args) == 0
    report = json.loads(out.read_text())
    direct = evaluate(load_haco(result.checkpoint), ImageFolderContactDataset(image_root), 0.5)
    assert report["result"]["f1"] == pytest.approx(direct.f1, nan_ok=True)
    assert report["result"]["num_samples"] == 4 and report["result"]["baseline"]
    assert "mean map" in capsys.readouterr().out


def test_config_presets_and_cli_overrides(tmp_path: Path) -> None:
    paper = PRESETS["paper"]
    assert (paper.lr, paper.betas, paper.weight_decay, paper.milestones, paper.gamma) == (
        1e-5,
        (0.9, 0.95),
        1e-4,
        (5, 10),
        0.9,
    )
    assert (paper.batch_size, paper.epochs, paper.workers, paper.backbone, paper.decoder_dim) == (
        24,
        10,
        2,
        "hamer",
        1024,
    )
    parser = add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--preset", "paper", "--loss", "cb", "--no-balanced-sampling", "--epochs", "3",
                              "--data", "a", "b", "--out", str(tmp_path)])  # fmt: skip
    config = config_from_args(args)
    assert config.loss == "cb" and not config.balanced_sampling and config.epochs == 3
    assert config.train_data == ("a", "b") and config.lr == 1e-5
    assert (config.milestones, config.gamma) == ((5, 10), 0.9)  # the preset's unless given
    args = parser.parse_args(["--milestones", "46", "52", "--gamma", "0.5", "--out", str(tmp_path)])
    assert (config_from_args(args).milestones, config_from_args(args).gamma) == ((46, 52), 0.5)
    with pytest.raises(InputError):
        TrainConfig(loss="dice")
    with pytest.raises(InputError):
        TrainConfig.from_dict({"learning_rate": 1.0})


@pytest.mark.slow
def test_ddp_two_cpu_processes(image_root: Path, tmp_path: Path) -> None:
    config = tiny_config(image_root, tmp_path / "ddp", epochs=1)
    config_file = tmp_path / "ddp.json"
    config_file.write_text(json.dumps(config.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
               "-m", "haco_grasp.contact.train", "--config", str(config_file), "--device", "cpu"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    history = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    # 4 images, 1 held out -> 3 training images; balanced list of M indices split over 2 ranks, batch 2
    assert len(history) == 1 and history[0]["steps"] >= 1
    state = torch.load(tmp_path / "ddp" / "last.ckpt", weights_only=True)
    assert set(state) == OFFICIAL_KEYS
    assert not any(k.startswith("module.") for k in state["state_dict"])
    np.testing.assert_equal(state["epoch"], 0)


def test_keypoint_token_loss_matches_a_naive_loop() -> None:
    from haco_grasp.contact.train import keypoint_token_loss, token_grid

    grid = token_grid("hamer")
    rows, cols, x0, y0, cell_w, cell_h = grid
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, rows * cols, 21, generator=generator, dtype=torch.float64)
    joints = torch.rand(3, 21, 2, generator=generator, dtype=torch.float64) * 300.0 - 20.0  # some outside the grid
    joints[0, 4] = float("nan")
    expected, count = 0.0, 0
    for b in range(3):
        for j in range(21):
            u, v = joints[b, j].tolist()
            hits = [
                r * cols + c
                for r in range(rows)
                for c in range(cols)
                if x0 + c * cell_w <= u + 0.5 < x0 + (c + 1) * cell_w
                and y0 + r * cell_h <= v + 0.5 < y0 + (r + 1) * cell_h
            ]
            if hits:
                column = logits[b, :, j]
                expected -= float(column[hits[0]] - torch.logsumexp(column, 0))
                count += 1
    assert 0 < count < 3 * 21
    assert float(keypoint_token_loss(logits, joints, grid)) == pytest.approx(expected / count, rel=1e-6)
    nothing = keypoint_token_loss(logits.requires_grad_(), torch.full((3, 21, 2), float("nan")), grid)
    assert float(nothing.detach()) == 0.0 and nothing.requires_grad
    assert token_grid("resnet-50") == (8, 8, 0.0, 0.0, 32.0, 32.0)
    with pytest.raises(InputError, match="keypoint_weight"):
        TrainConfig(keypoint_weight=-1.0)
    with pytest.raises(InputError, match="keypoint_weight"):
        token_grid("vit-b-16")


def test_keypoint_term_is_training_only_and_resumable(image_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "kp"
    first = train(tiny_config(image_root, out, epochs=1, keypoint_weight=1.0))
    assert first.history[0]["train"]["keypoint"] > 0.0
    head = torch.load(out / "keypoint_head.pt", weights_only=True)
    assert head["weight"].shape == (21, 32)  # the tiny hamer's context width
    state = torch.load(first.checkpoint, weights_only=True)
    assert all(k.startswith(("backbone.", "decoder.")) for k in state["state_dict"])  # official keys only
    second = train(tiny_config(image_root, out, epochs=2, keypoint_weight=1.0, resume=True))
    assert [e["epoch"] for e in second.history] == [0, 1]
    assert not torch.equal(torch.load(out / "keypoint_head.pt", weights_only=True)["weight"], head["weight"])
    (out / "keypoint_head.pt").unlink()
    with pytest.raises(AssetError, match="keypoint_head.pt"):
        train(tiny_config(image_root, out, epochs=3, keypoint_weight=1.0, resume=True))


def test_best_f1_threshold_against_a_scan() -> None:
    from haco_grasp.contact.train import THRESHOLD_GRID, best_f1_threshold
    from haco_grasp.metrics import contact_prf

    rng = np.random.default_rng(3)
    gt = (rng.random((12, 778)) < 0.2).astype(np.float32)
    prob = np.clip(0.35 * gt + 0.6 * rng.random((12, 778)), 0.0, 1.0)
    scores = [contact_prf(prob, gt, t, "skip").f1 for t in THRESHOLD_GRID]
    f1, threshold = best_f1_threshold(prob, gt)
    assert f1 == pytest.approx(np.nanmax(scores)) and threshold == THRESHOLD_GRID[int(np.nanargmax(scores))]
    assert 0.05 < threshold < 0.95  # an interior optimum for this mixture


def test_calibrated_threshold_is_stored_in_the_checkpoint_json(image_root: Path, tmp_path: Path) -> None:
    from haco_grasp.contact.checkpoint import load_haco

    result = train(tiny_config(image_root, tmp_path / "cal", epochs=1, calibrate_threshold=True))
    val = result.history[-1]["val"]
    stored = json.loads((tmp_path / "cal" / "last.json").read_text())["threshold"]
    assert stored == val["best_threshold"] and load_haco(result.checkpoint).config.threshold == stored
    uncalibrated = train(tiny_config(image_root, tmp_path / "raw", epochs=1))
    assert json.loads((tmp_path / "raw" / "last.json").read_text())["threshold"] is None
    assert uncalibrated.history[-1]["val"]["best_threshold"] is not None
