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
    second = train(tiny_config(image_root, out, epochs=2, resume=True))
    after = torch.load(second.checkpoint, weights_only=True)
    assert [e["epoch"] for e in second.history] == [0, 1]
    assert after["global_step"] == before["global_step"] + second.history[1]["steps"]
    assert after["scheduler"]["last_epoch"] == 2
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
