"""Resuming ``haco-grasp refine``: the partial folder, its manifest and the finished batches.

While running, each finished batch is written atomically to ``<out>.partial/batch_<first>_<last>.pkl`` (positions
in the prediction file; format :data:`BATCH_FORMAT`); a rerun of the same command skips the samples found there
(``--restart`` discards them). ``<out>.partial/manifest.json`` (format :data:`PARTIAL_FORMAT`) records everything
that determines the result: the SHA-256 of the prediction file, of the YCB meshes the selected samples use
(``--objects``), of the MANO files, of the contact file, checkpoint (and its ``.json``) or images, the preset and
optimizer settings, the contact source and threshold, the MANO dtype and the code version (haco_grasp version + git
commit). A partial folder whose manifest differs is refused with a message naming the input that changed. (Batch
size, device and the number of ranks are not recorded: they change float round-off only.) ``<out>`` is written
(temp file + ``os.replace``) once every sample is done; then the partial folder is removed.

Under the output lock (:mod:`haco_grasp.lockfile`), temp files of a killed final write (``.<out name>.*.tmp``) and of
killed batch writes are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from haco_grasp.atomic import atomic_write_bytes
from haco_grasp.errors import HacoGraspError, InputError
from haco_grasp.refine.plan import _Plan, file_sha256
from haco_grasp.targets import default_checkpoint, dexycb_root

__all__ = ["BATCH_FORMAT", "PARTIAL_FORMAT"]

logger = logging.getLogger(__name__)

PARTIAL_FORMAT = "haco_grasp.refine-partial/v2"
BATCH_FORMAT = "haco_grasp.refine-batch/v1"
_MANIFEST_KEYS = (
    "pred_sha256",
    "preset",
    "optimize_config",
    "contact_source",
    "contact_file_sha256",
    "contact_threshold",
    "dtype",
    "code",
)


def _batch_name(first: int, last: int) -> str:
    return f"batch_{first:06d}_{last:06d}.pkl"


def _read_finished(partial: Path, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """Finished sample records (``sample_id -> dict``) found in the partial folder, restricted to ``wanted``."""
    from haco_grasp.safe_pickle import safe_load

    found: dict[str, dict[str, Any]] = {}
    if not partial.is_dir():
        return found
    for path in sorted(partial.glob("batch_*.pkl")):
        try:
            raw = safe_load(path)
        except HacoGraspError as exc:
            raise InputError(f"{path}: unreadable partial batch ({exc}); delete it or rerun with --restart") from None
        if not isinstance(raw, dict) or raw.get("format") != BATCH_FORMAT or not isinstance(raw.get("samples"), list):
            raise InputError(f"{path}: not a {BATCH_FORMAT} file; delete it or rerun with --restart")
        for record in raw["samples"]:
            sample_id = record.get("sample_id") if isinstance(record, dict) else None
            if sample_id in wanted and sample_id not in found:
                found[sample_id] = record
    return found


_CODE_VERSION: str | None = None


def _code_version() -> str:
    """``haco_grasp <version> <commit>``, computed once per process."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        import haco_grasp
        from haco_grasp.info import git_commit

        _CODE_VERSION = f"haco_grasp {haco_grasp.__version__} {git_commit()}"
    return _CODE_VERSION


def _file_digest(path: Path | None) -> str:
    if path is None:
        return "unresolved"
    try:
        return file_sha256(path) if path.is_file() else "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def _input_files(plan: _Plan) -> dict[str, tuple[str, Path | None]]:
    """Every file besides ``--pred`` that determines the result: ``key -> (option, path)`` (None: unresolved)."""
    from haco_grasp.data.generic import GenericFile, ObjectResolver
    from haco_grasp.objects.ycb import YCB_CLASSES, ycb_model_path

    config = plan.config
    files: dict[str, tuple[str, Path | None]] = {}
    for ycb_id in sorted({int(pred.ycb_id) for pred in plan.predictions} & set(YCB_CLASSES)):
        try:
            path: Path | None = ycb_model_path(plan.models_root, ycb_id)
        except HacoGraspError:
            path = None
        files[f"object {YCB_CLASSES[ycb_id]}"] = ("--objects", path)
    if isinstance(plan.file, GenericFile):  # the mesh files a generic .npz names
        resolver = ObjectResolver(plan.models_root)
        for frame in plan.predictions:
            files.setdefault(f"object {frame.object}", ("--objects", resolver.mesh_file(frame)))
    from haco_grasp.hand.mano import resolve_mano_path

    for side in sorted({pred.mano_side for pred in plan.predictions}):
        try:
            path = resolve_mano_path(side, config.mano_root)  # type: ignore[arg-type]
        except HacoGraspError:
            path = None
        files[f"MANO {side}"] = ("--mano-root", path)
    if config.contact in ("haco", "deepcontact"):
        checkpoint = config.contact_checkpoint
        if checkpoint is None:
            checkpoint = default_checkpoint(config.contact)
        path = None if checkpoint is None else Path(checkpoint).expanduser()
        files["contact checkpoint"] = ("--contact-checkpoint", path)
        if path is not None and config.contact == "haco":
            files["contact checkpoint config"] = ("--contact-checkpoint", path.with_suffix(".json"))
    return files


def _image_digest(plan: _Plan) -> str:
    """One digest over the images the ``haco`` source reads (missing images count as 'missing')."""
    try:
        root = dexycb_root(plan.config, "--contact haco")
    except HacoGraspError:
        root = None  # fine while every image path is absolute (generic .npz)
    digest = hashlib.sha256()
    for pred in plan.predictions:
        relative = pred.image_path or pred.color_file
        if root is None and not Path(relative).is_absolute():
            return "unresolved"
        digest.update(f"{relative}\0{_file_digest(Path(relative) if root is None else root / relative)}\n".encode())
    return digest.hexdigest()


def _manifest(plan: _Plan) -> dict[str, Any]:
    """What determines the result of the run: settings, code version, and the SHA-256 of every input file."""
    files = _input_files(plan)
    inputs = {key: _file_digest(path) for key, (_, path) in files.items()}
    if plan.config.contact == "haco":
        inputs["images"] = _image_digest(plan)
        files["images"] = ("--dexycb", None)
    return {
        "format": PARTIAL_FORMAT,
        "pred_file": str(plan.pred.resolve()),
        "pred_sha256": plan.pred_sha256,
        "preset": plan.preset,
        "optimize_config": json.loads(json.dumps(plan.optimize.to_dict())),
        "contact_source": plan.config.contact,
        "contact_file_sha256": plan.contact_file_sha256,
        "contact_threshold": float(plan.config.contact_threshold),
        "dtype": plan.config.dtype,
        "code": _code_version(),
        "inputs": inputs,
        "input_paths": {key: (option, None if path is None else str(path)) for key, (option, path) in files.items()},
    }


def _manifest_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Which input or setting differs between a partial folder's manifest and this run (None: same run)."""
    if old.get("format") != new["format"]:
        return f"its manifest format is {old.get('format')!r}, this version writes {new['format']!r}"
    for key in _MANIFEST_KEYS:
        if old.get(key) == new[key]:
            continue
        if key == "pred_sha256":
            return f"--pred differs: {old.get('pred_file')} there, {new['pred_file']} now (other content)"
        if key == "optimize_config":
            changed = sorted(k for k in new[key] if (old.get(key) or {}).get(k) != new[key][k])
            return f"optimizer settings differ ({', '.join(changed[:4]) or 'keys'})"
        if key == "code":
            return f"the code changed: {old.get(key)} made them, {new[key]} runs now"
        return f"{key} differs: {old.get(key)!r} there, {new[key]!r} now"
    old_inputs = old.get("inputs") if isinstance(old.get("inputs"), dict) else {}
    old_paths = old.get("input_paths") if isinstance(old.get("input_paths"), dict) else {}
    for key, digest in new["inputs"].items():
        if old_inputs.get(key) == digest:
            continue
        option, path = new["input_paths"][key]
        before = (old_paths.get(key) or [option, None])[1]
        where = path if path == before or before is None else f"{before} there, {path} now"
        return (
            f"{option} changed: {key} ({where}) has other content ({str(old_inputs.get(key))[:12]} there, "
            f"{digest[:12]} now)"
        )
    extra = sorted(set(old_inputs) - set(new["inputs"]))
    if extra:
        return f"they used {extra[0]}, which this run does not"
    return None


def _prepare_partial(plan: _Plan) -> None:
    """Create (or, with ``restart``, empty) the partial folder and check it belongs to this run (lock held)."""
    from haco_grasp.atomic import remove_stale_temporaries

    partial = plan.partial
    if plan.config.restart and partial.exists():
        logger.info("--restart: discarding %s", partial)
        shutil.rmtree(partial)
    try:
        partial.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {plan.out}: cannot create {partial} ({exc.strerror}); choose another --out") from None
    remove_stale_temporaries(plan.out)
    for stale in sorted(partial.glob(".*.tmp")):  # batches or a manifest whose write was killed
        stale.unlink(missing_ok=True)
        logger.info("removed %s, left by a killed write", stale)
    manifest = _manifest(plan)
    path = partial / "manifest.json"
    has_batches = any(partial.glob("batch_*.pkl"))
    if not has_batches:  # nothing to mix up: (re)claim the folder for this run
        atomic_write_bytes(path, json.dumps(manifest, indent=1).encode())
        return
    if not path.is_file():
        raise InputError(f"{partial}: holds batches but no manifest.json; rerun with --restart to discard them")
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"{path}: unreadable; rerun with --restart to discard the partial results") from None
    if not isinstance(old, dict):
        raise InputError(f"{path}: expected a JSON object; rerun with --restart to discard the partial results")
    detail = _manifest_difference(old, manifest)
    if detail is not None:
        raise InputError(
            f"{partial}: holds partial results of a different run ({detail}); rerun with --restart to discard "
            "them, or choose another --out"
        )


def _kept(plan: _Plan) -> str:
    """What a rerun will find, as it is on disk now."""
    count = len(list(plan.partial.glob("batch_*.pkl"))) if plan.partial.is_dir() else 0
    if count:
        return f"{count} finished batches are kept in {plan.partial}; rerun the same command to resume"
    return "no batch had finished, so there is nothing to resume; rerun the same command to start again"
