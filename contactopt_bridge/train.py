"""Train DeepContact on synthetic grasps (ContactOpt's recipe, contactopt.md §6) and evaluate on held-out objects.

Data: ground-truth grasps from :func:`haco_grasp.data.synthetic.generate_grasps` (cached), split by *object*
(``test_objects`` never appear in training). Each grasp gets ``perturbations`` copies perturbed with
``"contactopt-aug"`` (5 cm translation, 0.1 rad rotation, 0.5 PCA noise; seeds ``perturb_seed + r``). The
object is sampled once per grasp (``n_obj_points`` area-uniform surface points, shared by its perturbations).

Inputs: the 25 features of the *perturbed* hand against the object (computed once, not under jitter, as
ContactOpt). Targets: ContactOpt contact values of the *ground-truth* pose, capsule model with
``GT_CAPSULE_BOTTOM`` (-1.5 mm), on the hand vertices and on the object points, encoded to 10 bins.

Loss: class-weighted NLL (:data:`~contactopt_bridge.deepcontact.CLASS_BIN_WEIGHTS`), L_obj + L_hand. Adam
(lr 0.01), MultiStepLR (milestones [10], gamma 0.1), batch 32, N(0, 0.5 mm) jitter on the object points.

Outputs in ``out_dir``: ``last.pt`` (resumable training state: model, optimizer, epoch, config, metrics; loads
with ``weights_only=True``), ``deepcontact.pt`` (flat state_dict, the official layout) and ``deepcontact.json``
(config, per-epoch losses, held-out metrics, command, date, data description); ``export`` copies both elsewhere.

Metrics (held-out objects, :mod:`contactopt_bridge.evaluation`): per-bin recall, overall and balanced accuracy,
decoded MAE, and contact P/R/F1 of hand vertices and object points at value >= 0.4 (bin >= 4, about 2.5 mm) and
value >= 0.1 (bin >= 1, about 1 cm), for the argmax decode and for a calibrated decode (P(bin >= 1) above a
threshold chosen on ``calibration_samples`` training samples), beside the reference predictors "all contact" and
the training mean hand map.

The grasp cache file and the samples (inputs and targets) are built by :mod:`contactopt_bridge.train_data`; this
module holds the configuration, the loss, the training loop and the command line. ``--shards ROOT`` trains on data
prepared once by ``haco-grasp prepare-data`` instead (:mod:`contactopt_bridge.shards`: streamed, features computed
per batch).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from contactopt_bridge.deepcontact import CLASS_BIN_WEIGHTS, NUM_BINS, DeepContactNet, contact_to_bin
from contactopt_bridge.evaluation import CONTACT_RULES, MAIN_RULE, bin_metrics, calibrate, evaluate
from contactopt_bridge.shards import batch_of, num_samples, shard_training_data
from contactopt_bridge.train_data import load_grasps, prepare_samples, save_grasps
from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError

__all__ = [
    "CONTACT_RULES",
    "TrainConfig",
    "TrainResult",
    "add_arguments",
    "bin_metrics",
    "config_from_args",
    "evaluate",
    "load_grasps",
    "main",
    "prepare_samples",
    "run_training",
    "save_grasps",
]

logger = logging.getLogger(__name__)

_FORMAT = "contactopt_bridge.deepcontact.train/1"


@dataclass
class TrainConfig:
    """Configuration of :func:`run_training` (defaults: ContactOpt's optimiser settings, a CPU-sized dataset).

    Attributes:
        out_dir: folder for ``last.pt``, ``deepcontact.pt``, ``deepcontact.json`` and the data cache.
        n_grasps: ground-truth synthetic grasps generated (objects cycle through all procedural objects).
        grasp_seed: seed of ``generate_grasps``.
        test_objects: procedural object names held out for evaluation (never trained on).
        perturbations: perturbed copies per training grasp (ContactOpt: 16).
        test_perturbations: perturbed copies per held-out grasp (ContactOpt: 4).
        perturb_seed: perturbation r of a grasp uses ``perturb_grasps(..., seed=perturb_seed + r)``.
        n_obj_points: object surface points per grasp (ContactOpt: 2048).
        point_seed: seed of the object point sampling.
        epochs: total epochs (ContactOpt: 100).
        batch_size: grasps per optimiser step (ContactOpt: 32).
        lr: Adam learning rate.
        milestones: epochs at which the learning rate is multiplied by ``gamma``.
        gamma: learning-rate decay factor.
        jitter_std: standard deviation of the Gaussian jitter on object point positions, metres.
        seed: seed of initialisation, shuffling, jitter and dropout.
        device: torch device.
        num_threads: torch CPU threads (None leaves torch's setting).
        max_minutes: stop training once this many minutes have passed since the run started (data preparation
            included; the current batch finishes, then the checkpoint, evaluation and export are written); None for
            no limit.
        resume: continue from ``out_dir/last.pt`` when it exists.
        init: start from the weights of this DeepContact state_dict (the shipped checkpoint, ContactOpt's official
            ``deepcontact_checkpoint.pt`` or one written by this command) with a fresh optimiser and schedule, to
            fine-tune or continue a finished run; its provenance ``.json`` (when it lies beside it) contributes its
            commands and history. Unused when a ``last.pt`` is resumed (that run already started from it).
        eval_batch_size: samples per evaluation forward pass.
        calibration_samples: training samples on which the calibrated decode's thresholds are chosen after training
            (:func:`contactopt_bridge.evaluation.calibrate`; the mean-map reference uses every training sample).
        export: optional path of a copy of the final flat state_dict (a ``.json`` is written beside it).
        progress: show progress bars.
        shards: a root prepared by ``haco-grasp prepare-data`` with DeepContact samples: train streams its train
            split (features computed per batch), evaluation uses its held-out test split; n_grasps, grasp_seed,
            test_objects, perturbations, test_perturbations, perturb_seed, n_obj_points and point_seed are then
            unused (the root's index.json records its own).
    """

    out_dir: str = "runs/deepcontact"
    n_grasps: int = 108
    grasp_seed: int = 12
    test_objects: tuple[str, ...] = ("bottle", "small_cube")
    perturbations: int = 4
    test_perturbations: int = 2
    perturb_seed: int = 1000
    n_obj_points: int = 2048
    point_seed: int = 0
    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.01
    milestones: tuple[int, ...] = (10,)
    gamma: float = 0.1
    jitter_std: float = 0.0005
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = None
    max_minutes: float | None = None
    resume: bool = True
    init: str | None = None
    eval_batch_size: int = 8
    calibration_samples: int = 256
    export: str | None = None
    progress: bool = True
    shards: str | None = None

    def data_key(self) -> str:
        """Hash of the fields that define the prepared data (names the cache file)."""
        keys = ("n_grasps", "grasp_seed", "test_objects", "perturbations", "test_perturbations", "perturb_seed")
        text = json.dumps({k: getattr(self, k) for k in (*keys, "n_obj_points", "point_seed")}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass
class TrainResult:
    """Outcome of :func:`run_training`.

    Attributes:
        checkpoint: path of the resumable ``last.pt``.
        state_dict_path: the flat ``deepcontact.pt``.
        metrics_path: ``deepcontact.json``.
        epochs_done: completed epochs.
        metrics: held-out metrics (see module doc).
        history: per-epoch dicts (epoch, lr, train losses, seconds).
    """

    checkpoint: Path
    state_dict_path: Path
    metrics_path: Path
    epochs_done: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# data (the split and its cache; the samples themselves come from contactopt_bridge.train_data)


def _grasps_for(config: TrainConfig, cache_dir: Path) -> list[Grasp]:
    path = cache_dir / f"grasps_n{config.n_grasps}_s{config.grasp_seed}.pt"
    if path.is_file():
        return load_grasps(path)
    from haco_grasp.data.synthetic import generate_grasps

    logger.info("generating %d synthetic grasps (seed %d)", config.n_grasps, config.grasp_seed)
    grasps = generate_grasps(config.n_grasps, seed=config.grasp_seed, progress=config.progress)
    save_grasps(grasps, path)
    return grasps


def _split_and_prepare(config: TrainConfig, grasps: Sequence[Grasp], cache: Path | None) -> dict[str, Any]:
    if cache is not None and cache.is_file():
        return torch.load(cache, weights_only=True)
    test_names = set(config.test_objects)
    train_g = [g for g in grasps if g.object_name not in test_names]
    test_g = [g for g in grasps if g.object_name in test_names]
    if not train_g or not test_g:
        raise InputError(
            f"the object split leaves {len(train_g)} training and {len(test_g)} held-out grasps; objects present: "
            f"{sorted({g.object_name for g in grasps})}; adjust test_objects or n_grasps"
        )
    data = {
        "train": prepare_samples(
            train_g, config.perturbations, config.perturb_seed, config.n_obj_points, config.point_seed
        ),
        "test": prepare_samples(
            test_g, config.test_perturbations, config.perturb_seed, config.n_obj_points, config.point_seed + 1
        ),
        "train_objects": sorted({g.object_name for g in train_g}),
        "test_objects": sorted({g.object_name for g in test_g}),
        "n_train_grasps": len(train_g),
        "n_test_grasps": len(test_g),
    }
    if cache is not None:
        torch.save(data, cache)
    return data


# --------------------------------------------------------------------------------------------------------------
# loss and metrics


def deepcontact_loss(output: Any, hand_target: torch.Tensor, obj_target: torch.Tensor) -> dict[str, torch.Tensor]:
    """ContactOpt's training loss: class-weighted NLL on the object points plus the same on the hand.

    Args:
        output: DeepContactOutput with hand (B, V, 10) and obj (B, P, 10) log-probabilities.
        hand_target: (B, V) float contact values in [0, 1].
        obj_target: (B, P) float contact values in [0, 1].

    Returns:
        dict with "total", "obj", "hand" scalar tensors.
    """
    weight = torch.tensor(CLASS_BIN_WEIGHTS, dtype=output.hand.dtype, device=output.hand.device)
    obj = F.nll_loss(output.obj.reshape(-1, NUM_BINS), contact_to_bin(obj_target).reshape(-1), weight=weight)
    hand = F.nll_loss(output.hand.reshape(-1, NUM_BINS), contact_to_bin(hand_target).reshape(-1), weight=weight)
    return {"total": obj + hand, "obj": obj, "hand": hand}


# --------------------------------------------------------------------------------------------------------------
# training


def _config_dict(config: TrainConfig) -> dict[str, Any]:
    out = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _check_config(config: TrainConfig) -> None:
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a TrainConfig, got {type(config).__name__}")
    positive = ("n_grasps", "perturbations", "test_perturbations", "n_obj_points", "epochs", "batch_size")
    for name in (*positive, "calibration_samples"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"config.{name} must be a positive int, got {value!r}")
    if config.init is not None and not Path(config.init).is_file():
        raise InputError(f"--init {config.init}: no such file; pass a DeepContact state_dict .pt (e.g. the shipped)")
    if not (config.lr > 0 and 0 < config.gamma <= 1 and config.jitter_std >= 0):
        raise InputError(
            f"need lr > 0, 0 < gamma <= 1, jitter_std >= 0; got {config.lr}, {config.gamma}, {config.jitter_std}"
        )


def _write_outputs(
    out_dir: Path, model: DeepContactNet, config: TrainConfig, report: dict[str, Any], export: str | None
) -> tuple[Path, Path]:
    state_path = out_dir / "deepcontact.pt"
    json_path = out_dir / "deepcontact.json"
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, state_path)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    if export:
        target = Path(export)
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, target)
        target.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    return state_path, json_path


def _command_line() -> str:
    """The invocation, with ``python -m contactopt_bridge.train`` spelled out (its argv[0] is the file path)."""
    if not sys.argv or not sys.argv[0]:
        return "run_training(config)"
    head = sys.argv[0]
    if head.replace("\\", "/").endswith("contactopt_bridge/train.py"):
        head = "python -m contactopt_bridge.train"
    return " ".join([head, *sys.argv[1:]])


def _start_from(model: DeepContactNet, path: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Load ``path``'s weights into ``model`` (``--init``); return the commands and history of its provenance.

    The history entries are those of the earlier run(s), marked with ``"init": path`` so the new epochs that follow
    them are told apart (their epoch numbers restart at 1).
    """
    from contactopt_bridge.deepcontact import load_deepcontact

    model.load_state_dict(load_deepcontact(path).state_dict())
    provenance = Path(path).with_suffix(".json")
    commands: list[str] = []
    history: list[dict[str, Any]] = []
    if provenance.is_file():
        try:
            report = json.loads(provenance.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{provenance}: unreadable provenance beside --init ({exc}); fix or remove it") from None
        commands = [str(c) for c in report.get("commands", [report.get("command", "unknown")])]
        history = [{**entry, "init": str(path)} for entry in report.get("history", [])]
    logger.info("starting from the weights of %s", path)
    return commands, history


def run_training(config: TrainConfig, grasps: Sequence[Grasp] | None = None) -> TrainResult:
    """Train (or resume) DeepContact, evaluate on the held-out objects and write the checkpoints.

    Args:
        config: :class:`TrainConfig`.
        grasps: ground-truth grasps to use instead of generating ``config.n_grasps`` synthetic ones.

    Returns:
        TrainResult (paths, epochs done, held-out metrics, per-epoch history).
    """
    _check_config(config)
    if config.num_threads is not None:
        torch.set_num_threads(int(config.num_threads))
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from haco_grasp.devices import resolve_device

    device = resolve_device(config.device, "--device")
    start_time = time.monotonic()
    start_cpu = time.process_time()
    from tqdm.auto import tqdm

    if config.shards:  # prepared shards: streamed, features per batch (contactopt_bridge.shards)
        data = shard_training_data(config.shards)
    else:
        if grasps is None:
            grasps = _grasps_for(config, out_dir)
            cache = out_dir / f"data_{config.data_key()}.pt"
        else:
            cache = None
        data = _split_and_prepare(config, grasps, cache)
    train, test = data["train"], data["test"]
    num_train = num_samples(train)

    torch.manual_seed(config.seed)
    model = DeepContactNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.gamma)
    history: list[dict[str, Any]] = []
    commands: list[str] = []
    command = _command_line()
    start_epoch = 0
    last = out_dir / "last.pt"
    if config.resume and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=True)
        if state.get("format") != _FORMAT:
            raise InputError(f"{last}: not a DeepContact training checkpoint; remove it or pass resume=False")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
        scheduler.last_epoch = start_epoch
        history = list(state["history"])
        commands = list(state.get("commands", []))
        previous_json = out_dir / "deepcontact.json"
        if not commands and previous_json.is_file():  # a checkpoint written before commands were recorded
            commands = [json.loads(previous_json.read_text()).get("command", "unknown")]
        logger.info("resumed from %s at epoch %d", last, start_epoch)
    elif config.init:
        commands, history = _start_from(model, config.init)

    generator = torch.Generator().manual_seed(config.seed * 7919 + start_epoch)
    stopped_early = False
    for epoch in range(start_epoch, config.epochs):
        if config.max_minutes is not None and time.monotonic() - start_time > 60.0 * config.max_minutes:
            stopped_early = True
            break
        model.train()
        order = torch.randperm(num_train, generator=generator)
        sums = {"total": 0.0, "obj": 0.0, "hand": 0.0}
        steps = 0
        tic = time.monotonic()
        batches = range(0, num_train, config.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress, leave=False)
        for begin in bar:
            index = order[begin : begin + config.batch_size]
            if index.numel() < 2:  # BatchNorm needs two samples
                continue
            batch = batch_of(train, index, device)  # a sharded source computes its features on the device
            obj_points = batch["obj_points"]
            jitter = torch.randn(obj_points.shape, generator=generator)  # the CPU stream, whatever the device
            obj_points = obj_points + jitter.to(device) * config.jitter_std
            out = model(batch["hand_verts"], batch["hand_feats"], obj_points, batch["obj_feats"])
            losses = deepcontact_loss(out, batch["hand_target"], batch["obj_target"])
            optimizer.zero_grad()
            losses["total"].backward()
            optimizer.step()
            for key in sums:
                sums[key] += float(losses[key].detach())
            steps += 1
            bar.set_postfix(loss=f"{float(losses['total'].detach()):.3f}")
            if config.max_minutes is not None and time.monotonic() - start_time > 60.0 * config.max_minutes:
                stopped_early = True
                break
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        entry = {"epoch": epoch + 1, "lr": lr, "steps": steps, "seconds": time.monotonic() - tic}
        entry.update({f"train_loss_{k}": v / max(steps, 1) for k, v in sums.items()})
        history.append(entry)
        logger.info("epoch %d: %s", epoch + 1, entry)
        torch.save(
            {
                "format": _FORMAT,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "config": _config_dict(config),
                "history": history,
                "commands": [*commands, command],
            },
            last,
        )
        if stopped_early:
            break

    calibration = calibrate(model, train, config.calibration_samples, config.eval_batch_size, device, config.seed)
    metrics = evaluate(model, test, config.eval_batch_size, device, calibration)
    epochs_done = next((h["epoch"] for h in reversed(history) if "init" not in h), 0)  # this run's, not --init's
    report = {
        "model": "DeepContact (ContactOpt architecture, 1,424,138 parameters), official state_dict key names",
        "trained_on": "SYNTHETIC grasps only (haco_grasp procedural objects, synthetic MANO hand); not ContactPose",
        "command": command,
        "commands": [*commands, command],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "config": _config_dict(config),
        "data": {
            "description": data.get(
                "description",
                "generate_grasps(n_grasps, seed=grasp_seed) ground-truth grasps, split by object; each perturbed "
                "with perturb_grasps(model='contactopt-aug'); inputs = 25 features of the perturbed hand; targets = "
                "ContactOpt capsule contact (GT_CAPSULE_BOTTOM) of the ground-truth pose on the hand and on "
                "n_obj_points area-uniform object surface samples",
            ),
            "train_objects": data["train_objects"],
            "test_objects": data["test_objects"],
            "n_train_grasps": data["n_train_grasps"],
            "n_test_grasps": data["n_test_grasps"],
            "n_train_samples": num_train,
            "n_test_samples": int(test["hand_verts"].shape[0]),
        },
        "contact_rules": {
            name: f"decoded value >= {t} (target bin >= {round(t * NUM_BINS)})" for name, t in CONTACT_RULES.items()
        },
        "epochs_done": epochs_done,
        "stopped_early_by_max_minutes": stopped_early,
        "wall_seconds_this_run": time.monotonic() - start_time,
        "cpu_seconds_this_run": time.process_time() - start_cpu,
        "history": history,
        "heldout_metrics": metrics,
    }
    state_path, json_path = _write_outputs(out_dir, model, config, report, config.export)
    return TrainResult(last, state_path, json_path, epochs_done, metrics, history)


# --------------------------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the :class:`TrainConfig` options to a parser (``haco-grasp train-deepcontact``).

    Args:
        parser: the parser or subparser.
    """
    d = TrainConfig()
    parser.add_argument(
        "--out", dest="out_dir", default=d.out_dir, help="output folder (checkpoints, json, data cache)"
    )
    parser.add_argument("--out-dir", dest="out_dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # old spelling
    parser.add_argument("--n-grasps", type=int, default=d.n_grasps, help="synthetic ground-truth grasps")
    parser.add_argument("--grasp-seed", type=int, default=d.grasp_seed, help="seed of generate_grasps")
    parser.add_argument("--test-objects", nargs="+", default=list(d.test_objects), help="held-out object names")
    parser.add_argument("--perturbations", type=int, default=d.perturbations, help="perturbed copies per train grasp")
    parser.add_argument("--test-perturbations", type=int, default=d.test_perturbations, help="copies per test grasp")
    parser.add_argument("--perturb-seed", type=int, default=d.perturb_seed, help="base seed of the perturbations")
    parser.add_argument("--n-obj-points", type=int, default=d.n_obj_points, help="object points per grasp")
    parser.add_argument("--point-seed", type=int, default=d.point_seed, help="seed of the object sampling")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="total epochs (ContactOpt: 100)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="batch size (ContactOpt: 32)")
    parser.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    parser.add_argument("--milestones", type=int, nargs="*", default=list(d.milestones), help="MultiStepLR epochs")
    parser.add_argument("--gamma", type=float, default=d.gamma, help="MultiStepLR factor")
    parser.add_argument("--jitter-std", type=float, default=d.jitter_std, help="object point jitter, metres")
    parser.add_argument("--seed", type=int, default=d.seed, help="training seed")
    parser.add_argument("--device", default=d.device, help="torch device")
    parser.add_argument("--num-threads", type=int, default=d.num_threads, help="torch CPU threads")
    parser.add_argument("--max-minutes", type=float, default=d.max_minutes, help="training time limit, minutes")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=d.resume,
                        help="continue from OUT/last.pt when it exists; --no-resume starts afresh "
                        "(default: %(default)s)")  # fmt: skip
    init_help = ("start from this DeepContact state_dict's weights (fresh optimiser; e.g. the shipped checkpoint or "
                 "ContactOpt's deepcontact_checkpoint.pt); ignored when OUT/last.pt is resumed")  # fmt: skip
    parser.add_argument("--init", default=d.init, help=init_help)
    parser.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size, help="evaluation batch size")
    parser.add_argument("--calibration-samples", type=int, default=d.calibration_samples,
                        help="training samples the calibrated decode's thresholds are chosen on")  # fmt: skip
    parser.add_argument("--export", default=d.export, help="also write the final state_dict (and .json) here")
    shards_help = ("train on a root prepared by `haco-grasp prepare-data` (its train split, streamed) and evaluate "
                   "on its held-out test split; the grasp and perturbation options are then unused")  # fmt: skip
    parser.add_argument("--shards", default=d.shards, help=shards_help)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Build a :class:`TrainConfig` from parsed :func:`add_arguments` options.

    Args:
        args: parsed namespace.

    Returns:
        The config.
    """
    return TrainConfig(
        out_dir=args.out_dir,
        n_grasps=args.n_grasps,
        grasp_seed=args.grasp_seed,
        test_objects=tuple(args.test_objects),
        perturbations=args.perturbations,
        test_perturbations=args.test_perturbations,
        perturb_seed=args.perturb_seed,
        n_obj_points=args.n_obj_points,
        point_seed=args.point_seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        milestones=tuple(args.milestones),
        gamma=args.gamma,
        jitter_std=args.jitter_std,
        seed=args.seed,
        device=args.device,
        num_threads=args.num_threads,
        max_minutes=args.max_minutes,
        resume=args.resume,
        init=args.init,
        eval_batch_size=args.eval_batch_size,
        calibration_samples=args.calibration_samples,
        export=args.export,
        shards=args.shards,
        progress=not args.no_progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m contactopt_bridge.train``: parse options, train, print the held-out summary.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        Exit status 0.
    """
    parser = argparse.ArgumentParser(prog="python -m contactopt_bridge.train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run_training(config_from_args(args))
    summary = {side: result.metrics[side][MAIN_RULE] for side in ("hand", "obj")}
    print(json.dumps({"epochs_done": result.epochs_done, "state_dict": str(result.state_dict_path), **summary}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


def run_from_args(args: argparse.Namespace) -> int:
    """``haco-grasp train-deepcontact``: train with the parsed options."""
    run_training(config_from_args(args))
    return 0
