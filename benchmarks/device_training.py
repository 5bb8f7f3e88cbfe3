"""Train DeepContact (and, given crops, HACO) on one device from prepared shards: the recipe for a lent GPU.

The lent GPU machine has no internet, lacks open3d, smplx, trimesh and manifold3d, and receives at most 64 MiB
with the working tree (about 23 MB of it is the tree). Training from prepared shards needs none of those packages
(``tests/data/test_shards.py`` runs both trainings with them blocked), so the recipe is:

    # here (CPU, ~1 min): a DeepContact-only root in the git-ignored runs/: 7 training shards (1,568 samples) and
    # the 4 held-out shards take 43.5 MB, the tracked tree 22.9 MB: 66.3 of the 67.1 MB (64 MiB) that travel
    haco-grasp prepare-data --out runs/dc_root --train-shards 7 --test-shards 4 --haco-views 0 --workers 2
    # there (one call of the device tool, carry=["runs/dc_root"]):
    PYTHONPATH=. python benchmarks/device_training.py --shards runs/dc_root --out "$OUT" --deepcontact-minutes 8

Steps, with the JSON report (``OUT/device_training.json``) rewritten after each, so a run cut short still returns
what it finished:

1. the environment: date, commit, torch, the device's name and memory, which optional packages import;
2. DeepContact (``contactopt_bridge.train.run_training``, the reference recipe: 100 epochs, milestone 10, batch 32,
   stopped after ``--deepcontact-minutes``): held-out hand / object F1 at value >= 0.1, the constant predictor's,
   per-bin accuracy, the calibrated decode and the margin over the better of "all contact" and the mean map;
   ``OUT/deepcontact/deepcontact.pt`` + ``.json`` (provenance) and ``last.pt`` (to resume);
3. with ``--make-crops N``: N training shards (and ``--crop-test-shards`` held-out ones) of HACO crops made on the
   device by ``haco-grasp prepare-data --renderer torch`` over ``--crop-workers`` processes (default: every CPU),
   into ``--crops-root`` (outside ``OUT``: crops are too big to come back). Grasp planning and the crops need no
   open3d there (torch fallbacks, on the GPU; carry the SDF grid cache, ``$HACO_GRASP_CACHE/sdf``, to skip the
   slowest of them), but grasp planning needs trimesh, manifold3d, smplx and rtree, four small wheels to bring
   along (2.7 MB; see docs/training-data.md). HACO then trains on them unless ``--haco-data`` is given;
4. HACO, with ``--haco-data ROOT`` (a root with crops) or the crops of step 3: ``haco_grasp.contact.train.train``
   with the ``synthetic-small`` preset (``--haco-config`` JSON over it), stopped after ``--haco-minutes``;
   ``OUT/haco/``. Crops take about 0.2 MB each, so only a few hundred travel: HACO at scale needs step 3.

Features of the DeepContact batches are computed on the training device. Nothing here was run on a GPU yet (none was
lent to the sessions that wrote it); on the CPU it runs the same way (``--device cpu``), which is how it is tested.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

#: Packages a lent GPU machine lacks (gpu.md); reported, never needed here.
_MAYBE_MISSING = ("open3d", "smplx", "trimesh", "manifold3d", "timm", "mujoco")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _environment(device: str) -> dict[str, Any]:
    import torch

    from haco_grasp.devices import resolve_device
    from haco_grasp.info import git_commit, machine_description

    resolved = resolve_device(device, "--device")
    out: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine_description(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "device": str(resolved),
        "importable": {name: _importable(name) for name in _MAYBE_MISSING},
    }
    if resolved.type == "cuda":
        props = torch.cuda.get_device_properties(resolved)
        out["device_name"] = props.name
        out["device_memory_gib"] = round(props.total_memory / 2**30, 1)
    return out


def _deepcontact(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    from contactopt_bridge.train import TrainConfig, run_training

    config = TrainConfig(
        out_dir=str(out_dir),
        shards=args.shards,
        device=args.device,
        epochs=args.deepcontact_epochs,
        milestones=tuple(args.deepcontact_milestones),
        max_minutes=args.deepcontact_minutes,
        progress=False,
    )
    start = time.monotonic()
    result = run_training(config)
    seconds = time.monotonic() - start
    metrics = result.metrics
    row: dict[str, Any] = {"seconds": seconds, "epochs_done": result.epochs_done, "checkpoint": str(result.checkpoint)}
    if result.history:  # the last epoch's optimiser steps (batch 32; features computed on the device)
        last = result.history[-1]
        row["seconds_per_step_last_epoch"] = last["seconds"] / max(last["steps"], 1)
    for side in ("hand", "obj"):
        row[f"{side}_f1"] = metrics[side]["value>=0.1 (~1cm)"]["f1"]
        row[f"{side}_per_bin_accuracy"] = metrics[side]["per_bin_accuracy"]
        row[f"constant_{side}_f1"] = metrics[f"constant_{side}"]["value>=0.1 (~1cm)"]["f1"]
        row[f"{side}_summary"] = metrics["summary"][side]  # calibrated decode, the better reference, the margins
    return row


def _make_crops(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    import os

    from haco_grasp.prepare_data import PrepareConfig, run_prepare

    config = PrepareConfig(
        out_dir=str(root),
        train_shards=args.make_crops,
        test_shards=args.crop_test_shards,
        grasps_per_shard=args.crop_grasps_per_shard,
        haco_views=args.crop_views,
        deepcontact_perturbations=0,
        image_size=args.crop_size,
        renderer="torch",
        workers=args.crop_workers or os.cpu_count() or 1,
        progress=False,
    )
    result = run_prepare(config)
    crops = sum(result.counts[split]["crops"] for split in ("train", "test"))
    return {
        "root": str(root),
        "seconds": result.seconds,
        "counts": result.counts,
        "crops_per_second": crops / max(result.seconds, 1e-9),
        "workers": config.workers,
    }


def _haco(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    from haco_grasp.contact.train import PRESETS, TrainConfig, train

    values = PRESETS["synthetic-small"].to_dict()
    if args.haco_config:
        values.update(json.loads(Path(args.haco_config).read_text()))
    values.update(train_data=(args.haco_data,), out_dir=str(out_dir), device=args.device, progress=False)
    values["max_wall_s"] = 60.0 * args.haco_minutes
    config = TrainConfig.from_dict(values)
    start = time.monotonic()
    result = train(config)
    last = result.history[-1] if result.history else {}
    val = last.get("val") or {}
    return {
        "seconds": time.monotonic() - start,
        "epochs_done": len(result.history),
        "checkpoint": str(result.checkpoint),
        "val_f1": val.get("f1"),
        "val_threshold": val.get("threshold"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", required=True, help="root from haco-grasp prepare-data with DeepContact samples")
    parser.add_argument("--out", required=True, help='output folder (on the device tool: "$OUT")')
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cuda, cuda:N or cpu")
    parser.add_argument("--deepcontact-minutes", type=float, default=8.0, help="DeepContact wall-clock budget")
    parser.add_argument("--deepcontact-epochs", type=int, default=100, help="DeepContact epochs (reference: 100)")
    parser.add_argument("--deepcontact-milestones", type=int, nargs="+", default=[10], help="lr x0.1 epochs")
    parser.add_argument("--make-crops", type=int, default=0, help="training shards of crops to make here (0: none)")
    parser.add_argument("--crop-test-shards", type=int, default=2, help="held-out shards of crops to make")
    parser.add_argument("--crop-grasps-per-shard", type=int, default=14, help="grasps planned per shard of crops")
    parser.add_argument("--crop-views", type=int, default=8, help="crops per planned grasp")
    parser.add_argument("--crop-size", type=int, default=256, help="crop side, pixels")
    parser.add_argument("--crop-workers", type=int, default=0, help="processes making crops (0: every CPU)")
    parser.add_argument("--crops-root", default=None, help="where made crops go (default: a temporary folder)")
    parser.add_argument("--haco-data", default=None, help="root with crops: also train HACO (default: skip)")
    parser.add_argument("--haco-minutes", type=float, default=5.0, help="HACO wall-clock budget (0: no HACO)")
    parser.add_argument("--haco-config", default=None, help="JSON of HACO TrainConfig fields over the preset's")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "device_training",
        "data": f"prepared shards {args.shards} (SYNTHETIC grasps; see its index.json)",
        "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else list(argv))),
        "environment": _environment(args.device),
    }
    path = out / "device_training.json"

    def save() -> None:
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")

    save()
    report["deepcontact"] = _deepcontact(args, out / "deepcontact")
    save()
    dc = report["deepcontact"]
    print(
        f"DeepContact: {dc['epochs_done']} epochs in {dc['seconds']:.0f} s; held-out F1 hand {dc['hand_f1']:.3f} "
        f"object {dc['obj_f1']:.3f} (constant: {dc['constant_hand_f1']:.3f} / {dc['constant_obj_f1']:.3f})"
    )
    if args.make_crops > 0:
        import tempfile

        crops_root = Path(args.crops_root or Path(tempfile.gettempdir()) / "haco_grasp_device_crops")
        report["crops"] = _make_crops(args, crops_root)
        save()
        made = report["crops"]
        print(f"crops: {made['counts']} in {made['seconds']:.0f} s ({made['crops_per_second']:.1f} crops/s)")
        args.haco_data = args.haco_data or str(crops_root)
    if args.haco_data and args.haco_minutes > 0:
        report["haco"] = _haco(args, out / "haco")
        save()
        print(f"HACO: {report['haco']['epochs_done']} epochs, validation F1 {report['haco']['val_f1']}")
    print(f"report: {path}")
    return report


if __name__ == "__main__":
    main()
