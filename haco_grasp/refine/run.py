"""``haco-grasp refine``: refine HFL-Net predictions (``hflnet.pkl``) or your own hands and objects (a generic
``.npz``, :mod:`haco_grasp.data.generic`) with the contact-guided grasp optimizer: the batch loop and the merge.

Pipeline (:func:`run_refine`)::

    _plan: load_hflnet(pred) or load_generic(pred) -> first --limit samples -> preset, contact source, device, rank
    -> batches by hand side -> Grasps (prediction_to_grasp / frame_to_grasp: meshes from --objects, MANO from
    --mano-root, one ManoLayerCache per run) -> contact targets (CONTACT_SOURCES[--contact], haco_grasp.targets)
    -> optimize_grasp per batch -> <out>.partial/batch_*.pkl -> merge: refined.pkl (+ before/after metrics with
    --dexycb) + <out>.frames.csv, <out>.report.html, exports (haco_grasp.refine.frames)

One run at a time per ``<out>``: rank 0 holds ``<out>.lock`` (pid, host, start time; ``fcntl.flock``, released by
the kernel even on ``kill -9``) for the whole run. A second run refuses with a one-line error naming the holder; a
lock left by a dead run on this host is taken over with a warning (:mod:`haco_grasp.lockfile`). Every file is
created with the permissions of the umask (``0o666 & ~umask``), so the group can read results where the umask
allows it.

Scale-out: under ``torchrun`` (``WORLD_SIZE > 1``, ``RANK``) each rank refines every ``WORLD_SIZE``-th pending
sample into the same partial folder (which must be on a file system all ranks share), the ranks meet (gloo
collectives, :class:`haco_grasp.distributed.ProcessGroup`) and rank 0 merges the batches and writes ``<out>``. The
ranks wait ``dist_connect_timeout_s`` (120 s; ``$HACO_GRASP_DIST_CONNECT_TIMEOUT_S``) for each other at the start,
so a rank launched without its peers stops with a one-line error instead of waiting for the collective timeout.
With ``--device cuda`` rank r uses ``cuda:<LOCAL_RANK>``.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from haco_grasp.atomic import atomic_write_bytes
from haco_grasp.distributed import ProcessGroup
from haco_grasp.errors import AssetError, HacoGraspError, InputError
from haco_grasp.refine.config import CONTACT_SOURCES, RefineConfig, RefineSummary
from haco_grasp.refine.output import PICKLE_PROTOCOL, REFINED_FORMAT, now, records, versions, write_config_json
from haco_grasp.refine.plan import _ground_truth_dataset, _Plan, _plan, _preflight
from haco_grasp.refine.resume import BATCH_FORMAT, _batch_name, _kept, _prepare_partial, _read_finished
from haco_grasp.targets import check_targets

if TYPE_CHECKING:
    from haco_grasp.data.grasp import Grasp
    from haco_grasp.data.hflnet import HFLNetPrediction

__all__ = ["run_refine"]

logger = logging.getLogger(__name__)


def _describe(exc: BaseException) -> str:
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"


def _make_batches(positions: Sequence[int], predictions: Sequence[HFLNetPrediction], size: int) -> list[list[int]]:
    """Positions split by hand side, chunked, ordered by their first position."""
    by_side: dict[str, list[int]] = {"right": [], "left": []}
    for position in positions:
        by_side[predictions[position].mano_side].append(position)
    batches = [members[i : i + size] for members in by_side.values() for i in range(0, len(members), size)]
    return sorted(batches, key=lambda batch: batch[0])


class _Inputs:
    """Builds the input Grasps of predictions (the run's MANO layers; YCB meshes loaded once)."""

    def __init__(self, plan: _Plan) -> None:
        from haco_grasp.objects.ycb import object_provider

        self.plan = plan
        self.cache = plan.layers
        self.models = object_provider(plan.models_root)
        self.objects = None  # generic frames' objects, resolved on first use

    def grasp(self, pred: HFLNetPrediction) -> Grasp:
        from haco_grasp.data.generic import GenericFrame, ObjectResolver, frame_to_grasp
        from haco_grasp.data.hflnet import prediction_to_grasp

        if isinstance(pred, GenericFrame):
            self.objects = self.objects or ObjectResolver(self.plan.models_root)
            return frame_to_grasp(pred, self.cache, self.objects, self.plan.config.contact_threshold)
        try:
            return prediction_to_grasp(
                pred, self.cache, self.models, contact_threshold=self.plan.config.contact_threshold
            )
        except AssetError as exc:
            if "YCB model" in str(exc) or "DEX_YCB_DIR" in str(exc):
                raise AssetError(
                    f"sample {pred.sample_id!r} (ycb_id {pred.ycb_id}): {exc}; pass --objects DIR (the DexYCB models "
                    "folder)"
                ) from None
            raise
        except InputError as exc:
            if str(exc).startswith("sample "):  # a field of this prediction: name the file
                raise InputError(f"--pred {self.plan.pred}: {exc}") from None
            raise


def _refine_batches(plan: _Plan, inputs: _Inputs, batches: list[list[int]]) -> int:
    """Optimise each batch and write its records to the partial folder; returns the samples refined."""
    import torch

    import haco_grasp.optimize as optimize_module

    config = plan.config
    dtype = torch.float32 if config.dtype == "float32" else torch.float64
    source = CONTACT_SOURCES[config.contact]
    context = plan.contact_context()  # predictors run where the optimizer runs
    total = sum(len(batch) for batch in batches)
    bar = None
    if config.progress and plan.rank == 0 and total:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="refine", unit="grasp")
    done = 0
    try:
        for batch in batches:
            started = time.perf_counter()
            predictions = [plan.predictions[i] for i in batch]
            grasps = [inputs.grasp(pred) for pred in predictions]
            targets = source(grasps, predictions, context)
            check_targets(targets, len(batch), config.contact)
            result = optimize_module.optimize_grasp(
                grasps,
                **targets.optimizer_kwargs(),
                config=targets.optimizer_config(plan.optimize),
                layer=plan.layers.layer(predictions[0].mano_side, dtype=dtype, device=plan.device),
                device=plan.device,
                progress=bar is not None,  # a second bar: iterations within this batch
            )
            samples = records(predictions, result, targets, time.perf_counter() - started)
            payload = {"format": BATCH_FORMAT, "rank": plan.rank, "samples": samples}
            atomic_write_bytes(plan.partial / _batch_name(batch[0], batch[-1]),
                          pickle.dumps(payload, protocol=PICKLE_PROTOCOL))  # fmt: skip
            done += len(batch)
            if bar is not None:
                bar.update(len(batch))
    except BaseException as exc:
        if done or not isinstance(exc, HacoGraspError):
            logger.warning("refine stopped (%s) after %d refined samples by this process; %s", _describe(exc), done,
                           _kept(plan))  # fmt: skip
        raise
    finally:
        if bar is not None:
            bar.close()
    return done


def _metrics(
    plan: _Plan, inputs: _Inputs, grasps: dict[str, Grasp], records: dict[str, dict[str, Any]]
) -> tuple[dict, str]:
    """Before/after scores of the input ``grasps`` (by sample id) against the DexYCB ground truth; Markdown table."""
    from haco_grasp.evaluation import frame_changes, markdown_table, score_grasps
    from haco_grasp.refine.frames import refined_grasp

    config = plan.config
    dataset = _ground_truth_dataset(plan)
    truths, before, after, seconds, skipped = [], [], [], [], []
    for pred in plan.predictions:
        index = plan.dex_indices.get(pred.sample_id)
        if index is None:
            index = dataset.index_of(pred.sample_id)
        if index != pred.dex_index:
            logger.warning("sample %s: dex_index %d in --pred but %d in --dexycb (partial copy?); matched by id",
                           pred.sample_id, pred.dex_index, index)  # fmt: skip
        sample = dataset.sample_at_index(index)
        if not sample.has_hand:
            skipped.append(pred.sample_id)
            continue
        truths.append(sample.to_grasp(plan.layers, inputs.models, config.contact_threshold))
        plan.ground_truth[pred.sample_id] = truths[-1]
        grasp = grasps[pred.sample_id]
        record = records[pred.sample_id]
        before.append(grasp)
        after.append(refined_grasp(grasp, record))
        seconds.append(float(record["seconds"]))
    if not truths:
        raise InputError(f"--dexycb {config.dexycb}: none of the selected samples has a hand annotation to score")
    if skipped:
        logger.warning("metrics: %d samples without a ground-truth hand skipped (e.g. %s)", len(skipped), skipped[0])
    pitch, threshold = config.metrics_pitch, config.contact_threshold
    input_scores = score_grasps(before, truths, pitch=pitch, contact_threshold=threshold)
    refined_scores = score_grasps(
        after, truths, pitch=pitch, contact_threshold=threshold, seconds_per_grasp=float(np.mean(seconds))
    )
    rows = {
        "input": input_scores.summary(),
        "refined": refined_scores.summary() | frame_changes(refined_scores, input_scores),
    }
    title = (f"{plan.pred.name}: {len(truths)} samples vs DexYCB ground truth (contact {config.contact}, preset "
             f"{plan.preset}; MPJPE absolute, camera frame)")  # fmt: skip
    return rows, markdown_table(rows, title=title)


def _frames(plan: _Plan, grasps: dict[str, Grasp], records: dict[str, dict[str, Any]]) -> list[Any]:
    """Per-frame metrics and views (:func:`haco_grasp.refine.frames.build_frames`), in prediction order."""
    from haco_grasp.refine.frames import build_frames

    samples = [(grasps[pred.sample_id], records[pred.sample_id]) for pred in plan.predictions]
    return build_frames(samples, plan.config.contact, pitch=plan.config.metrics_pitch,
                        contact_threshold=plan.config.contact_threshold, progress=plan.config.progress)  # fmt: skip


def _write_outputs(plan: _Plan, frames: list[Any]) -> None:
    """``<out>.frames.csv`` and the optional report, meshes and ContactOpt export."""
    from haco_grasp.refine.report import write_outputs

    config = plan.config
    notes = [f"{len(frames)} frames of {plan.pred} refined {now()}; contact source {config.contact}, preset "
             f"{plan.preset}, device {plan.device}; output {plan.out}"]  # fmt: skip
    truths = [plan.ground_truth.get(frame.metrics.sample_id) for frame in frames]
    written = write_outputs(
        frames,
        plan.out.with_name(plan.out.name + ".frames.csv"),
        meshes_dir=config.export_meshes,
        contactopt_path=config.export_contactopt,
        report_path=plan.out.with_name(plan.out.name + ".report.html") if config.report else None,
        report_frames=int(config.report_frames),
        title=f"haco-grasp refine: {plan.out.name}",
        notes=notes,
        ground_truth=truths if all(truth is not None for truth in truths) else None,
    )
    for key, value in written.items():
        where = value if not isinstance(value, list) else f"{len(value)} files in {config.export_meshes}"
        logger.info("refine: wrote %s: %s", key, where)


def _merge(plan: _Plan, inputs: _Inputs) -> tuple[dict | None, str | None]:
    """Collect every sample from the partial folder, score it, write ``<out>`` and remove the partial folder."""
    ids = [pred.sample_id for pred in plan.predictions]
    records = _read_finished(plan.partial, set(ids))
    missing = [sample_id for sample_id in ids if sample_id not in records]
    if missing:
        raise HacoGraspError(
            f"{plan.partial}: {len(missing)} samples are not finished (e.g. {missing[0]!r}); rerun to resume"
        )
    grasps = {sample_id: inputs.grasp(pred) for sample_id, pred in zip(ids, plan.predictions, strict=True)}
    metrics = table = None
    if plan.config.dexycb is not None:
        metrics, table = _metrics(plan, inputs, grasps, records)
    frames = _frames(plan, grasps, records)
    payload = {
        "format": REFINED_FORMAT,
        "source_file": str(plan.pred.resolve()),
        "source_sha256": plan.pred_sha256,
        "source_checkpoint": plan.file.checkpoint,
        "split": plan.file.split,
        "preset": plan.preset,
        "contact_source": plan.config.contact,
        "contact_oracle": any(bool(records[sample_id].get("contact_oracle")) for sample_id in ids),
        "config": json.loads(json.dumps(plan.config.to_dict(), default=str)),
        "optimize_config": json.loads(json.dumps(plan.optimize.to_dict())),
        "versions": versions(),
        "date": now(),
        "world_size": plan.world_size,
        "n_samples": len(ids),
        "metrics": metrics,
        "frame_metrics": [frame.metrics.to_row() for frame in frames],
        "samples": [records[sample_id] for sample_id in ids],
    }
    atomic_write_bytes(plan.out, pickle.dumps(payload, protocol=PICKLE_PROTOCOL))
    _write_outputs(plan, frames)
    shutil.rmtree(plan.partial, ignore_errors=True)
    return metrics, table


def run_refine(config: RefineConfig) -> RefineSummary:
    """Refine the HFL-Net predictions of ``config.pred`` and write ``config.out`` (see the module docstring).

    Args:
        config: the run's settings.

    Returns:
        RefineSummary (counts, timings and, with ``dexycb``, the before/after metrics and their table).

    Raises:
        AssetError: a file or folder is missing (predictions, MANO, YCB models, DexYCB, contact file).
        InputError: an option or input file is malformed, or the partial folder belongs to a different run.
        ContactUnavailableError: the chosen contact source cannot run.
        KeyboardInterrupt: interrupted; finished batches stay in ``<out>.partial/`` for a rerun.
    """
    started = time.perf_counter()
    plan = _plan(config)
    group = ProcessGroup(plan.rank, plan.world_size, "gloo", connect_timeout_s=plan.connect_timeout_s,
                         timeout_s=float(plan.config.dist_timeout_s))  # fmt: skip
    try:
        if plan.rank == 0:
            try:
                try:
                    plan.out.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise InputError(f"--out {plan.out}: cannot create its folder ({exc.strerror}); choose another "
                                     "--out") from None  # fmt: skip
                from haco_grasp.lockfile import OutputLock

                plan.lock = OutputLock(plan.out.with_name(plan.out.name + ".lock"), f"--out {plan.out}").acquire()
                _prepare_partial(plan)
                _write_config_json(plan)
            except HacoGraspError as exc:
                group.share_from_root(str(exc))
                raise
            group.share_from_root(None)
        else:
            message = group.share_from_root(None)
            if message is not None:
                raise HacoGraspError(f"rank 0 refused the run: {message}")
        _preflight(plan)
        ids = {pred.sample_id for pred in plan.predictions}
        finished = _read_finished(plan.partial, ids)
        pending = [i for i, pred in enumerate(plan.predictions) if pred.sample_id not in finished]
        mine = pending[plan.rank :: plan.world_size]
        from haco_grasp.devices import auto_batch_size

        batch_size = auto_batch_size(plan.device) if config.batch_size is None else int(config.batch_size)
        batches = _make_batches(mine, plan.predictions, batch_size)
        logger.info("refine: %d samples, %d already finished, %d for this process in %d batches (rank %d of %d)",
                    len(plan.predictions), len(finished), len(mine), len(batches), plan.rank,
                    plan.world_size)  # fmt: skip
        inputs = _Inputs(plan)
        refined, failure = 0, None
        try:
            refined = _refine_batches(plan, inputs, batches)
        except BaseException as exc:
            failure = exc
        errors = group.gather(None if failure is None else _describe(failure))
        if failure is not None:
            raise failure
        failed = [(rank, message) for rank, message in enumerate(errors) if message is not None]
        if failed:
            raise HacoGraspError(f"rank {failed[0][0]} failed ({failed[0][1]}); {_kept(plan)}")
        metrics = table = None
        merge_error = None
        if plan.rank == 0:
            try:
                metrics, table = _merge(plan, inputs)
            except BaseException as exc:
                merge_error = exc
            group.share_from_root(None if merge_error is None else _describe(merge_error))
            if merge_error is not None:
                raise merge_error
        else:
            message = group.share_from_root(None)
            if message is not None:
                raise HacoGraspError(f"rank 0 could not write {plan.out}: {message}")
        seconds = time.perf_counter() - started
        if plan.rank == 0:
            logger.info("refine: wrote %s (%d samples, %.1f s)", plan.out, len(plan.predictions), seconds)
        return RefineSummary(
            out=plan.out,
            written=plan.rank == 0,
            n_samples=len(plan.predictions),
            n_refined=refined,
            n_resumed=len(finished),
            n_batches=len(batches),
            seconds=seconds,
            metrics=metrics,
            table=table,
            rank=plan.rank,
            world_size=plan.world_size,
        )
    except BaseException:
        owned = plan.lock is not None and plan.lock.held  # never touch a folder another run holds
        if owned and plan.world_size == 1 and plan.partial.is_dir() and not any(plan.partial.glob("batch_*.pkl")):
            shutil.rmtree(plan.partial, ignore_errors=True)  # nothing finished: leave no empty partial folder
        raise
    finally:
        if plan.lock is not None:
            plan.lock.release()
        group.close()


def _write_config_json(plan: _Plan) -> None:
    write_config_json(plan.out, {
        "command": "haco-grasp refine",
        "config": plan.config.to_dict(),
        "preset": plan.preset,
        "optimize_config": plan.optimize.to_dict(),
        "contact_source": plan.config.contact,
        "device": plan.device,
        "world_size": plan.world_size,
        "pred_sha256": plan.pred_sha256,
    })  # fmt: skip
