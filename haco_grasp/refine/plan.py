"""Planning a ``haco-grasp refine`` run: validate the :class:`~haco_grasp.refine.config.RefineConfig`, load the
predictions, resolve the preset, the contact source (``auto``), the device and the torchrun rank (:func:`_plan`), and
the checks that would otherwise fail after hours of work (:func:`_preflight`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from haco_grasp.distributed import connect_timeout, torchrun_env
from haco_grasp.errors import AssetError, InputError
from haco_grasp.refine.config import CONTACT_SOURCES, RefineConfig
from haco_grasp.targets import ContactContext, auto_contact_source, check_source, read_contact_file

if TYPE_CHECKING:
    from haco_grasp.data.hflnet import HFLNetFile, HFLNetPrediction
    from haco_grasp.optimize.config import OptimizeConfig

logger = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def partial_dir(out: Path) -> Path:
    """The folder of finished batches of a run writing ``out`` (:mod:`haco_grasp.refine.resume`)."""
    return out.with_name(out.name + ".partial")


@dataclass
class _Plan:
    """A validated run: resolved paths, predictions and optimizer settings."""

    config: RefineConfig
    pred: Path
    out: Path
    partial: Path
    file: HFLNetFile
    predictions: list[HFLNetPrediction]
    optimize: OptimizeConfig
    preset: str
    models_root: Path | None
    pred_sha256: str
    contact_file_sha256: str | None
    device: str
    rank: int = 0
    world_size: int = 1
    dex_indices: dict[str, int] = field(default_factory=dict)
    dataset: Any = None  # the ground-truth DexYCB, opened on first use
    ground_truth: dict[str, Any] = field(default_factory=dict)  # sample_id -> ground-truth Grasp (with --dexycb)
    connect_timeout_s: float = 120.0
    lock: Any = None  # the OutputLock of <out> while rank 0 holds it
    layers: Any = None  # the run's one ManoLayerCache (inputs, ground truth and the optimizer's layers)

    def contact_context(self) -> ContactContext:
        """The contact sources' settings, with the predictors on the run's resolved device."""
        return self.config.contact_context(device=self.device)


def _positive_int(value: Any, flag: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{flag}: expected a positive integer, got {value!r}")


def _existing_dir(value: Any, flag: str, what: str) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise AssetError(f"{flag} {path}: not a folder; expected {what}")
    return path


def _check_folder_creatable(folder: Path, what: str, fix: str) -> None:
    """``folder`` exists or can be created: the nearest existing ancestor is a writable folder (else InputError)."""
    ancestor = folder
    while not ancestor.exists():
        if ancestor.is_symlink():  # a dangling link
            raise InputError(f"{what}: {ancestor} is a broken symbolic link; {fix}")
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise InputError(f"{what}: {ancestor} is a file, not a folder; {fix}")
    if ancestor.is_dir() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{what}: folder {ancestor} is not writable; {fix}")


def _check_out_folder(out: Path) -> None:
    """``--out``'s folder and the toolkit's cache folder (SDF grids) exist or can be created."""
    _check_folder_creatable(out.parent, f"--out {out}", "choose an --out in a writable folder")
    from haco_grasp.hand.assets import CACHE_ENV, cache_dir

    _check_folder_creatable(cache_dir(), f"cache folder {cache_dir()} (${CACHE_ENV})",
                            f"set ${CACHE_ENV} to a writable folder")  # fmt: skip


def _plan(config: RefineConfig) -> _Plan:
    """Validate the configuration and load the predictions (no optimisation yet)."""

    from haco_grasp.config_flags import apply_optimizer_overrides
    from haco_grasp.data.hflnet import load_hflnet
    from haco_grasp.hand.conventions import ManoLayerCache
    from haco_grasp.hand.mano import SYNTHETIC_ROOT
    from haco_grasp.optimize.config import OptimizeConfig, get_config, preset_names

    if not isinstance(config, RefineConfig):
        raise InputError(f"config: expected a RefineConfig, got {type(config).__name__}")
    if config.contact not in CONTACT_SOURCES and config.contact != "auto":
        raise InputError(f"--contact: unknown source {config.contact!r}; choose auto or one of "
                         f"{sorted(CONTACT_SOURCES)}")  # fmt: skip
    if config.contact == "auto" and config.contact_file is not None:
        config = replace(config, contact="file")
    if config.contact_file is not None and config.contact != "file":
        raise InputError(f"--contact-file is read only with --contact file, got --contact {config.contact}")
    _positive_int(config.batch_size, "--batch-size", allow_none=True)
    _positive_int(config.limit, "--limit", allow_none=True)
    frames_ok = isinstance(config.report_frames, (int, np.integer)) and not isinstance(config.report_frames, bool)
    if not frames_ok or config.report_frames < 0:
        raise InputError(f"--report-frames: expected an integer >= 0, got {config.report_frames!r}")
    if config.export_meshes is not None and Path(config.export_meshes).expanduser().is_file():
        raise InputError(f"--export-meshes {config.export_meshes}: is a file; expected a folder for the PLY meshes")
    if config.export_contactopt is not None and Path(config.export_contactopt).expanduser().is_dir():
        raise InputError(f"--export-contactopt {config.export_contactopt}: is a folder; expected a file name such as "
                         "optimized_test.pkl")  # fmt: skip
    if config.dtype not in ("float32", "float64"):
        raise InputError(f"dtype: expected 'float32' or 'float64', got {config.dtype!r}")
    if not (isinstance(config.contact_threshold, (int, float)) and config.contact_threshold > 0):
        raise InputError(f"contact_threshold: expected a positive number of metres, got {config.contact_threshold!r}")
    if config.optimize is not None:
        if not isinstance(config.optimize, OptimizeConfig):
            raise InputError(f"optimize: expected an OptimizeConfig, got {type(config.optimize).__name__}")
        optimize, preset = apply_optimizer_overrides(config.optimize, config.optimize_overrides), "custom"
    else:
        if config.preset not in preset_names():
            raise InputError(f"--preset: unknown {config.preset!r}; choose one of {list(preset_names())}")
        optimize, preset = get_config(config.preset), config.preset
        optimize = apply_optimizer_overrides(optimize, config.optimize_overrides)
        if config.noise_profile is not None and optimize.noise_profile is not None:
            optimize = optimize.replace(noise_profile=str(config.noise_profile))

    rank, world_size = torchrun_env()
    connect_timeout_s = connect_timeout(config.dist_connect_timeout_s)
    from haco_grasp.devices import resolve_device

    # one device for every part of the run (optimizer and contact predictors): "cuda" is cuda:<LOCAL_RANK>
    device = str(resolve_device(config.device, "--device"))

    if not str(config.pred):
        raise InputError("--pred: expected the hflnet.pkl to refine, got nothing")
    if not str(config.out):
        raise InputError("--out: expected the output file (e.g. refined.pkl), got nothing")
    pred = Path(config.pred).expanduser()
    if not pred.is_file():
        raise AssetError(f"--pred {pred}: file not found; pass the hflnet.pkl or generic .npz to refine")
    out = Path(config.out).expanduser()
    if out.is_dir():
        raise InputError(f"--out {out}: is a folder; expected a file name such as {out / 'refined.pkl'}")
    if out.resolve() == pred.resolve():
        raise InputError(f"--out {out}: is the --pred file; choose another output name")
    _check_out_folder(out)
    objects = _existing_dir(config.objects, "--objects", "the DexYCB models folder (models/<ycb name>/...)")
    dexycb = _existing_dir(config.dexycb, "--dexycb", "the DexYCB root folder")
    if str(config.mano_root) != SYNTHETIC_ROOT:
        _existing_dir(config.mano_root, "--mano-root", "a folder of MANO_RIGHT.pkl / MANO_LEFT.pkl, or 'synthetic'")
    models_root = objects if objects is not None else (dexycb / "models" if dexycb is not None else None)

    if pred.suffix.lower() == ".npz":  # the generic format: own hands and objects (haco_grasp.data.generic)
        from haco_grasp.data.generic import load_generic

        if dexycb is not None:
            raise InputError(f"--dexycb: scores hflnet.pkl predictions against DexYCB; --pred {pred} is a generic "
                             ".npz (no DexYCB sample ids): drop --dexycb")  # fmt: skip
        file = load_generic(pred)
    else:
        file = load_hflnet(pred)
    if not file.samples:
        raise InputError(f"--pred {pred}: holds no samples; nothing to refine")
    predictions = list(file.samples)
    seen: dict[str, int] = {}
    for i, sample in enumerate(predictions):
        if sample.sample_id in seen:
            raise InputError(
                f"--pred {pred}: samples[{i}].sample_id {sample.sample_id!r} repeats samples[{seen[sample.sample_id]}]"
                "; sample ids must be unique"
            )
        seen[sample.sample_id] = i
    if config.limit is not None:
        predictions = predictions[: int(config.limit)]
    if config.contact == "auto":
        source, why = auto_contact_source(predictions, config)
        logger.info("--contact auto: %s (%s)", source, why)
        config = replace(config, contact=source)
    contact_sha = None
    if config.contact_file is not None:
        contact_path = Path(config.contact_file).expanduser()
        read_contact_file(contact_path)
        contact_sha = file_sha256(contact_path)
    return _Plan(
        config=config,
        pred=pred,
        out=out,
        partial=partial_dir(out),
        file=file,
        predictions=predictions,
        optimize=optimize,
        preset=preset,
        models_root=models_root,
        pred_sha256=file_sha256(pred),
        contact_file_sha256=contact_sha,
        device=device,
        rank=rank,
        world_size=world_size,
        connect_timeout_s=connect_timeout_s,
        layers=ManoLayerCache(config.mano_root),
    )


def _preflight(plan: _Plan) -> None:
    """Checks that would otherwise fail after hours of work: contact source inputs, GT matching."""
    config = plan.config
    check_source(config.contact, plan.predictions, plan.contact_context())
    if config.dexycb is not None:
        dataset = _ground_truth_dataset(plan)
        for pred in plan.predictions:
            try:
                plan.dex_indices[pred.sample_id] = dataset.index_of(pred.sample_id)
            except InputError:
                raise InputError(
                    f"--dexycb {config.dexycb}: sample_id {pred.sample_id!r} of --pred is absent from its "
                    f"{dataset.split}; pass the DexYCB copy the predictions were made on, or drop --dexycb"
                ) from None


def _ground_truth_dataset(plan: _Plan) -> Any:
    """The DexYCB ground truth of ``--dexycb`` (opened once; its grasps are built with the run's MANO layers)."""
    from haco_grasp.data.dexycb import S0_SPLITS, DexYCB

    if plan.dataset is None:
        split = plan.file.split if plan.file.split in S0_SPLITS else "s0_test"
        plan.dataset = DexYCB(plan.config.dexycb, split=split, subset="all", mano_root=plan.config.mano_root,
                              strict=False)  # fmt: skip
    return plan.dataset
