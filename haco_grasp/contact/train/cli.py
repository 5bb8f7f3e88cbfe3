"""Command line: ``haco-grasp train-haco`` / ``eval-haco`` options and entry points, ``python -m`` main."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from haco_grasp.contact.datasets import (
    ImageFolderContactDataset,
)
from haco_grasp.contact.losses import LOSS_NAMES
from haco_grasp.contact.stats import ContactStats
from haco_grasp.contact.train.config import PRESETS, TrainConfig, _json_safe
from haco_grasp.contact.train.data import _normalization, _threshold
from haco_grasp.contact.train.evaluation import evaluate
from haco_grasp.contact.train.loop import _write_json, train
from haco_grasp.errors import AssetError, InputError

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
    parser.add_argument("--data", dest="train_data", nargs="+",
                        help="training image folders (write_image_dataset), or prepared shard roots (prepare-data: "
                        "trains on their train split and validates on their held-out test split)")  # fmt: skip
    parser.add_argument("--val-data", nargs="+", help="validation image folders (or prepared roots: their test split)")
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
    # the module is a package now: name the command, not its __main__.py
    prog = "python -m haco_grasp.contact.train"
    parser = add_arguments(argparse.ArgumentParser(prog=prog, description="Train the HACO contact estimator"))
    return run_training(parser.parse_args(argv))
