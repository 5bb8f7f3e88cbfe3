"""``haco-grasp prepare-data``: write a sharded training dataset once (HACO crops, DeepContact samples), resumably.

Each shard is one job: plan ``grasps_per_shard`` synthetic grasps (:func:`haco_grasp.data.synthetic.generate_grasps`)
on the objects of its split, then render ``haco_views`` crops of each (:func:`haco_grasp.data.shards.haco_crop_arrays`)
and/or make ``deepcontact_perturbations`` perturbed samples of each
(:func:`contactopt_bridge.shards.deepcontact_arrays`), and write the shard atomically
(:func:`haco_grasp.data.shards.write_shard`). Jobs run in ``workers`` processes (grasp planning dominates, so this
is what parallelises it); ``index.json`` is rewritten after every finished shard.

**Split by object.** ``test_objects`` (default ``bottle`` and ``small_cube``, the held-out objects of both training
commands) only ever appear in ``test`` shards, every other object only in ``train`` shards.

**Seeds.** Shard k of split s (s = 0 train, 1 test) plans its grasps with ``grasp_seed = seed * 1_000_000 +
s * 500_000 + k`` and grasp types rotated by k; its crops use ``SeedSequence(grasp_seed + 7919)``, its perturbation
r ``perturb_grasps(seed=grasp_seed * 64 + r)``, its object samples ``grasp_inputs(seed=grasp_seed)``. A shard's
content depends only on the config and (s, k), so shards can be made in any order, by any process, and a resumed
run makes exactly the shards a full run would have.

**Resuming.** Finished shards are skipped; unfinished ones (temporary folders of a killed run) are removed and
redone. The data-defining config must match the one recorded in ``index.json`` (raising the shard counts grows a
dataset; changing e.g. the image size needs a new ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haco_grasp.data.images import RENDERERS
from haco_grasp.errors import InputError

logger = logging.getLogger(__name__)

#: Config fields that do not change the data (may differ between a run and its resumption).
_RUN_FIELDS = ("out_dir", "train_shards", "test_shards", "workers", "progress")


@dataclass
class PrepareConfig:
    """Configuration of :func:`run_prepare`.

    Attributes:
        out_dir: dataset root (created; an existing one is resumed).
        train_shards: shards of the training split.
        test_shards: shards of the held-out split (fresh objects, used for nothing but testing).
        grasps_per_shard: synthetic grasps planned per shard (objects cycle through the split's objects).
        test_objects: procedural objects held out in the test split (never in train).
        objects: all procedural objects used (None: every one of ``OBJECT_NAMES``).
        grasp_types: grasp types, cycled (rotated by shard).
        haco_views: HACO crops rendered per grasp (0: no HACO data).
        deepcontact_perturbations: DeepContact samples (perturbed copies) per training grasp (0: no DeepContact data;
            ContactOpt: 16).
        deepcontact_test_perturbations: perturbed copies per held-out grasp (ContactOpt: 4).
        n_obj_points: object surface samples per grasp for DeepContact (ContactOpt: 2048).
        image_size: side of the HACO crops, pixels.
        supersample: anti-aliasing samples per pixel and axis.
        renderer: "raycast" (open3d, fast), "raster" (numpy reference) or "torch" (no open3d; CUDA when available).
        seed: base seed of every shard's seeds (module docstring).
        workers: processes making shards in parallel.
        progress: show a progress bar over shards.
    """

    out_dir: str = "runs/prepared"
    train_shards: int = 4
    test_shards: int = 1
    grasps_per_shard: int = 14
    test_objects: tuple[str, ...] = ("bottle", "small_cube")
    objects: tuple[str, ...] | None = None
    grasp_types: tuple[str, ...] = ("power", "precision", "pinch")
    haco_views: int = 8
    deepcontact_perturbations: int = 16
    deepcontact_test_perturbations: int = 4
    n_obj_points: int = 2048
    image_size: int = 256
    supersample: int = 2
    renderer: str = "raycast"
    seed: int = 0
    workers: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        from haco_grasp.objects.procedural import OBJECT_NAMES

        for name in ("train_shards", "test_shards", "haco_views", "deepcontact_perturbations", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"PrepareConfig.{name} must be an int >= 0, got {value!r}")
        for name in ("grasps_per_shard", "deepcontact_test_perturbations", "n_obj_points", "image_size", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"PrepareConfig.{name} must be a positive int, got {value!r}")
        if self.haco_views == 0 and self.deepcontact_perturbations == 0:
            raise InputError("nothing to prepare: set haco_views and/or deepcontact_perturbations above 0")
        self.test_objects = tuple(self.test_objects)
        self.grasp_types = tuple(self.grasp_types)
        objects = tuple(self.objects) if self.objects is not None else tuple(OBJECT_NAMES)
        unknown = sorted(set(objects) - set(OBJECT_NAMES))
        if unknown:
            raise InputError(f"unknown procedural objects {unknown}; choose among {', '.join(OBJECT_NAMES)}")
        self.objects = objects
        missing = sorted(set(self.test_objects) - set(objects))
        if missing:
            raise InputError(f"test_objects {missing} are not among the objects {list(objects)}")
        if not self.train_objects():
            raise InputError("every object is a test object; leave at least one object for training")
        if self.renderer not in RENDERERS:
            raise InputError(f"renderer must be one of {', '.join(RENDERERS)}, got {self.renderer!r}")

    def train_objects(self) -> tuple[str, ...]:
        """Objects of the training split (all objects but the test objects)."""
        return tuple(name for name in (self.objects or ()) if name not in self.test_objects)

    def split_objects(self, split: str) -> tuple[str, ...]:
        """Objects of ``split``."""
        return self.train_objects() if split == "train" else tuple(self.test_objects)

    def shards(self, split: str) -> int:
        """Number of shards of ``split``."""
        return self.train_shards if split == "train" else self.test_shards

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def data_fields(self) -> dict[str, Any]:
        """The fields that define the data of a shard (must match when a dataset is resumed)."""
        return {k: v for k, v in self.to_dict().items() if k not in _RUN_FIELDS}


@dataclass
class PrepareResult:
    """Outcome of :func:`run_prepare`.

    root: dataset root. written / skipped: shards made by this run / found finished. seconds: wall time.
    counts: per split, the index's counts (shards, grasps, crops, samples).
    """

    root: Path
    written: list[str]
    skipped: list[str]
    seconds: float
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def shard_seeds(config: PrepareConfig, split: str, index: int) -> dict[str, int]:
    """The seeds of shard ``index`` of ``split`` (module docstring)."""
    grasp_seed = config.seed * 1_000_000 + (0 if split == "train" else 500_000) + int(index)
    return {"grasps": grasp_seed, "render": grasp_seed + 7919, "perturb": grasp_seed * 64, "points": grasp_seed}


def make_shard(config: PrepareConfig, split: str, index: int) -> Path:
    """Plan, render / perturb and write one shard (the job of one worker).

    Args:
        config: the preparation config.
        split: "train" or "test".
        index: shard number within the split.

    Returns:
        The finished shard folder.
    """
    import numpy as np

    from haco_grasp.data.shards import haco_crop_arrays, write_shard
    from haco_grasp.data.synthetic import generate_grasps

    seeds = shard_seeds(config, split, index)
    objects = list(config.split_objects(split))
    shift = index % len(config.grasp_types)
    types = config.grasp_types[shift:] + config.grasp_types[:shift]
    seconds: dict[str, float] = {}
    tic = time.monotonic()
    grasps = generate_grasps(
        config.grasps_per_shard, seed=seeds["grasps"], objects=objects, grasp_types=types, progress=False
    )
    seconds["grasps"] = time.monotonic() - tic
    arrays: dict[str, Any] = {
        "grasp_objects": np.asarray([g.object_name for g in grasps], dtype=str),
        "grasp_types": np.asarray([g.grasp_type for g in grasps], dtype=str),
        "grasp_contact": np.stack([(np.asarray(g.hand_contact) > 0.5) for g in grasps]).astype(np.uint8),
    }
    counts = {"grasps": len(grasps), "crops": 0, "samples": 0}
    if config.haco_views > 0:
        from haco_grasp.data.images import ImageConfig

        tic = time.monotonic()
        image_config = ImageConfig(size=config.image_size, supersample=config.supersample, renderer=config.renderer)
        arrays.update(haco_crop_arrays(grasps, config.haco_views, seeds["render"], image_config))
        counts["crops"] = len(grasps) * config.haco_views
        seconds["haco"] = time.monotonic() - tic
    perturbations = config.deepcontact_perturbations if split == "train" else config.deepcontact_test_perturbations
    if config.deepcontact_perturbations > 0:
        from contactopt_bridge.shards import deepcontact_arrays

        tic = time.monotonic()
        arrays.update(deepcontact_arrays(grasps, perturbations, seeds["perturb"], config.n_obj_points, seeds["points"]))
        counts["samples"] = len(grasps) * perturbations
        seconds["deepcontact"] = time.monotonic() - tic
    record = {"seeds": seeds, "objects": sorted(set(arrays["grasp_objects"].tolist())), "counts": counts,
              "grasp_types": list(types), "seconds": seconds}  # fmt: skip
    return write_shard(config.out_dir, split, index, arrays, record)


def _worker(payload: tuple[dict[str, Any], str, int]) -> str:
    import torch

    torch.set_num_threads(1)
    values, split, index = payload
    config = PrepareConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    return str(make_shard(config, split, index))


def _provenance() -> dict[str, Any]:
    """Command, commit, package versions and date of this run (stored in ``index.json``)."""
    import datetime
    import sys

    from haco_grasp.info import environment_report, git_commit

    return {
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else "run_prepare(config)",
        "commit": git_commit(),
        "environment": environment_report(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def run_prepare(config: PrepareConfig) -> PrepareResult:
    """Make every missing shard of ``config`` (resuming a partial dataset) and write ``index.json``.

    Args:
        config: PrepareConfig.

    Returns:
        PrepareResult.

    Raises:
        InputError: when ``out_dir`` holds a dataset prepared with different data-defining settings.
    """
    from haco_grasp.data.shards import SPLITS, is_finished, read_index, remove_stale_shards, shard_name, write_index

    if not isinstance(config, PrepareConfig):
        raise InputError(f"config must be a PrepareConfig, got {type(config).__name__}")
    start = time.monotonic()
    root = Path(config.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    if (root / "index.json").is_file():
        recorded = read_index(root).get("config", {})
        previous = {k: v for k, v in recorded.items() if k not in _RUN_FIELDS}
        if previous != config.data_fields():
            changed = sorted(k for k in set(previous) | set(config.data_fields())
                             if previous.get(k) != config.data_fields().get(k))  # fmt: skip
            raise InputError(
                f"{root} was prepared with other settings ({', '.join(changed)} differ); "
                "use a new --out, or repeat the recorded settings to resume"
            )
    remove_stale_shards(root)
    split_objects = {split: config.split_objects(split) for split in SPLITS}
    config_dict = config.to_dict()
    provenance = _provenance()

    def update_index() -> Path:
        return write_index(root, config_dict, split_objects, provenance)

    update_index()
    jobs, skipped = [], []
    for split in SPLITS:
        for index in range(config.shards(split)):
            (skipped if is_finished(root, split, index) else jobs).append((split, index))
    skipped_names = [f"{split}/{shard_name(index)}" for split, index in skipped]
    written: list[str] = []
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="shards", unit="shard")
    try:
        if config.workers <= 1 or len(jobs) <= 1:
            for split, index in jobs:
                make_shard(config, split, index)
                written.append(f"{split}/{shard_name(index)}")
                update_index()
                if bar is not None:
                    bar.update(1)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            context = multiprocessing.get_context("spawn")  # no fork of torch / open3d thread pools
            with ProcessPoolExecutor(config.workers, mp_context=context) as pool:
                futures = {pool.submit(_worker, (config_dict, split, index)): (split, index) for split, index in jobs}
                for future in as_completed(futures):
                    split, index = futures[future]
                    future.result()
                    written.append(f"{split}/{shard_name(index)}")
                    update_index()
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    index_path = update_index()
    counts = json.loads(index_path.read_text())["counts"]
    return PrepareResult(root, written, skipped_names, time.monotonic() - start, counts)


# --------------------------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the :class:`PrepareConfig` options to a parser (``haco-grasp prepare-data``)."""
    d = PrepareConfig()
    parser.add_argument("--out", dest="out_dir", default=d.out_dir, help="dataset root (resumed when it exists)")
    parser.add_argument("--train-shards", type=int, default=d.train_shards, help="shards of the training split")
    parser.add_argument("--test-shards", type=int, default=d.test_shards, help="shards of the held-out split")
    parser.add_argument("--grasps-per-shard", type=int, default=d.grasps_per_shard, help="grasps planned per shard")
    parser.add_argument("--test-objects", nargs="+", default=list(d.test_objects), help="held-out objects")
    parser.add_argument("--objects", nargs="+", default=None, help="procedural objects used (default: all)")
    parser.add_argument("--grasp-types", nargs="+", default=list(d.grasp_types), help="grasp types, cycled")
    parser.add_argument("--haco-views", type=int, default=d.haco_views, help="HACO crops per grasp (0: none)")
    parser.add_argument("--deepcontact-perturbations", type=int, default=d.deepcontact_perturbations,
                        help="DeepContact samples per training grasp (0: none)")  # fmt: skip
    parser.add_argument("--deepcontact-test-perturbations", type=int, default=d.deepcontact_test_perturbations,
                        help="DeepContact samples per held-out grasp")  # fmt: skip
    parser.add_argument("--n-obj-points", type=int, default=d.n_obj_points, help="object samples per grasp")
    parser.add_argument("--image-size", type=int, default=d.image_size, help="HACO crop side, pixels")
    parser.add_argument("--supersample", type=int, default=d.supersample, help="anti-aliasing samples per axis")
    parser.add_argument("--renderer", choices=RENDERERS, default=d.renderer, help="image renderer")
    parser.add_argument("--seed", type=int, default=d.seed, help="base seed")
    parser.add_argument("--workers", type=int, default=d.workers, help="processes making shards in parallel")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def config_from_args(args: argparse.Namespace) -> PrepareConfig:
    """Build a :class:`PrepareConfig` from parsed :func:`add_arguments` options."""
    return PrepareConfig(
        out_dir=args.out_dir,
        train_shards=args.train_shards,
        test_shards=args.test_shards,
        grasps_per_shard=args.grasps_per_shard,
        test_objects=tuple(args.test_objects),
        objects=tuple(args.objects) if args.objects else None,
        grasp_types=tuple(args.grasp_types),
        haco_views=args.haco_views,
        deepcontact_perturbations=args.deepcontact_perturbations,
        deepcontact_test_perturbations=args.deepcontact_test_perturbations,
        n_obj_points=args.n_obj_points,
        image_size=args.image_size,
        supersample=args.supersample,
        renderer=args.renderer,
        seed=args.seed,
        workers=args.workers,
        progress=not args.no_progress,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """``haco-grasp prepare-data``: prepare (or resume) the dataset and log its counts."""
    result = run_prepare(config_from_args(args))
    logger.info(
        "%s: wrote %d shard(s), %d already finished, %.0f s; counts %s",
        result.root, len(result.written), len(result.skipped), result.seconds, json.dumps(result.counts),
    )  # fmt: skip
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    parser = argparse.ArgumentParser(prog="python -m haco_grasp.prepare_data", description=__doc__.splitlines()[0])
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sys.exit(run_from_args(parser.parse_args()))
