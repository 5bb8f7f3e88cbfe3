"""``haco-grasp refine``: refine HFL-Net predictions (``hflnet.pkl``) or your own hands and objects (a generic
``.npz``, :mod:`haco_grasp.data.generic`) with the contact-guided grasp optimizer.

Pipeline (:func:`run_refine`)::

    load_hflnet(pred) or load_generic(pred) -> first --limit samples -> Grasps (prediction_to_grasp /
    frame_to_grasp: meshes from --objects, MANO from --mano-root) -> contact targets (CONTACT_SOURCES[--contact])
    -> optimize_grasp per batch (right and left hands in separate batches, each with its own MANO layer)
    -> refined.pkl (+ before/after metrics with --dexycb) + <out>.frames.csv, <out>.report.html, exports

Contact sources (:data:`CONTACT_SOURCES`, each a callable ``(grasps, predictions, config) -> ContactTargets``):

- ``geometric``: the input grasp's own 1 cm contact labels (:func:`haco_grasp.geometry.labels.hand_contact_labels`
  of the predicted hand against the predicted object pose); needs nothing else.
- ``file``: per-vertex hand-contact probabilities from ``--contact-file`` (an ``.npz`` with ``sample_id`` (N,) str
  and ``hand_contact`` (N, 778) float in [0, 1]), or, without ``--contact-file``, the predictions' own optional
  ``hand_contact`` field.
- ``haco``: :func:`haco_grasp.contact.predictor.predict_hand_contact` on the colour image of each sample
  (``image_path``, else ``color_file``, relative to the DexYCB root ``--dexycb`` / ``$DEX_YCB_DIR``) and its
  ``crop_box``.
- ``deepcontact``: :func:`contactopt_bridge.deepcontact.predict_contact` on the grasps (hand and object targets).

``haco`` and ``deepcontact`` are imported when used; if the module, its entry point or its checkpoint is missing
the run stops with :class:`ContactUnavailableError` (never a silent fallback to another source).

Output ``<out>`` (format ``"haco_grasp.refined/v1"``, a pickled dict of builtins and numpy arrays, readable with
:func:`haco_grasp.safe_pickle.safe_load` and :func:`load_refined`)::

    format, source_file, source_sha256, source_checkpoint, split, preset, contact_source, contact_oracle,
    config (RefineConfig as a dict), optimize_config (the resolved OptimizeConfig), versions, date (UTC ISO),
    world_size, n_samples, metrics (None, or {"input": summary, "refined": summary, ...} with --dexycb)
    samples: list of dicts, in the order of the prediction file:
        sample_id str, dex_index int, mano_side str, ycb_id int
        global_orient float32 (3,), hand_pose float32 (45,) flat-mean axis-angle, betas float32 (10,),
        transl float32 (3,) metres   -- MANO parameters of the refined hand for its OWN side's model
                                        (left hands: MANO_LEFT, not HFL-Net's mirrored frame), camera frame
        hand_verts float32 (778, 3), hand_joints float32 (21, 3) metres, camera frame
        obj_pose float32 (3, 4) [R | t] metres (the input pose unless the preset optimises the object)
        target_hand_contact float32 (778,) | None, target_obj_contact float32 (P,) | None,
        target_obj_points / target_obj_normals float32 (P, 3) | None   -- the contact target used
        loss float (final loss of the chosen restart), chosen_restart int, iterations int,
        seconds float (grasp + contact + optimisation wall time of its batch / batch size),
        contact_oracle bool (the target came from ground truth; the header's flag is True if any sample's is)

Beside it (:mod:`haco_grasp.refine_outputs`): ``<out>.frames.csv``, per-frame metrics (also the header's
``frame_metrics``); ``<out>.report.html``, the interactive report (unless ``--no-report``); with ``--export-meshes
DIR`` PLY meshes per frame; with ``--export-contactopt PATH`` ContactOpt's result format. Each sample also stores
``loss_history`` (term -> (T,) float32, the chosen restart's weighted terms per iteration).

``<out>.config.json`` holds the resolved configuration. While running, each finished batch is written atomically
to ``<out>.partial/batch_<first>_<last>.pkl`` (positions in the prediction file); a rerun of the same command skips
the samples found there (``--restart`` discards them). ``<out>.partial/manifest.json`` records everything that
determines the result: the SHA-256 of the prediction file, of the YCB meshes the selected samples use (``--objects``),
of the MANO files, of the contact file, checkpoint (and its ``.json``) or images, the preset and optimizer settings,
the contact source and threshold, the MANO dtype and the code version (haco_grasp version + git commit). A partial
folder whose manifest differs is refused with a message naming the input that changed. (Batch size, device and the
number of ranks are not recorded: they change float round-off only.) ``<out>`` is written (temp file +
``os.replace``) once every sample is done; then the partial folder is removed.

One run at a time per ``<out>``: rank 0 holds ``<out>.lock`` (pid, host, start time; ``fcntl.flock``, released by
the kernel even on ``kill -9``) for the whole run. A second run refuses with a one-line error naming the holder; a
lock left by a dead run on this host is taken over with a warning (:mod:`haco_grasp.lockfile`). Under the lock, temp
files of a killed final write (``.<out name>.*.tmp``) and of killed batch writes are removed. Every file is created
with the permissions of the umask (``0o666 & ~umask``), so the group can read results where the umask allows it.

Scale-out: under ``torchrun`` (``WORLD_SIZE > 1``, ``RANK``) each rank refines every ``WORLD_SIZE``-th pending
sample into the same partial folder (which must be on a file system all ranks share), the ranks meet (gloo
collectives, initialised from the environment) and rank 0 merges the batches and writes ``<out>``. The ranks wait
``dist_connect_timeout_s`` (120 s; ``$HACO_GRASP_DIST_CONNECT_TIMEOUT_S``) for each other at the start, so a rank
launched without its peers stops with a one-line error instead of waiting for the collective timeout. With
``--device cuda`` rank r uses ``cuda:<LOCAL_RANK>``.

This module imports only the standard library and numpy at import time (the CLI builds its parser from
:func:`add_arguments`); torch and the rest of the toolkit are imported when a run starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import importlib
import json
import logging
import os
import pickle
import platform
import shutil
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from haco_grasp.atomic import atomic_write_bytes
from haco_grasp.errors import AssetError, HacoGraspError, InputError

if TYPE_CHECKING:
    from haco_grasp.data.grasp import Grasp
    from haco_grasp.data.hflnet import HFLNetFile, HFLNetPrediction
    from haco_grasp.optimize.config import OptimizeConfig

__all__ = [
    "CONTACT_SOURCES",
    "PRESET_NAMES",
    "REFINED_FORMAT",
    "ContactSource",
    "ContactTargets",
    "ContactUnavailableError",
    "RefineConfig",
    "RefineSummary",
    "RefinedFile",
    "RefinedSample",
    "add_arguments",
    "config_from_args",
    "load_refined",
    "run_refine",
]

logger = logging.getLogger(__name__)

REFINED_FORMAT = "haco_grasp.refined/v1"
PARTIAL_FORMAT = "haco_grasp.refine-partial/v2"
BATCH_FORMAT = "haco_grasp.refine-batch/v1"
#: Names of the optimizer presets (``haco_grasp.optimize.config.PRESETS``; repeated here so ``--help`` stays light).
PRESET_NAMES = ("fast", "contactopt", "haco")
NUM_HAND_VERTS = 778
PICKLE_PROTOCOL = 4
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
#: Environment variable overriding :attr:`RefineConfig.dist_connect_timeout_s`.
CONNECT_TIMEOUT_ENV = "HACO_GRASP_DIST_CONNECT_TIMEOUT_S"


class ContactUnavailableError(HacoGraspError):
    """A contact source (``haco``, ``deepcontact``) cannot run: its module, entry point or checkpoint is missing."""


# ----------------------------------------------------------------------------------------------- configuration
@dataclass
class RefineConfig:
    """Every setting of :func:`run_refine` (the ``haco-grasp refine`` options), with valid defaults.

    Inputs:
        pred: the ``hflnet.pkl`` to refine (:mod:`haco_grasp.data.hflnet`).
        out: the output pickle; ``<out>.config.json`` and, while running, ``<out>.partial/`` go beside it.
        objects: DexYCB ``models`` folder of the YCB meshes; None: ``<dexycb>/models`` when ``dexycb`` is given,
            else ``$DEX_YCB_DIR/models``.
        mano_root: folder with ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``, or "synthetic" (the shipped synthetic hand);
            None: ``$HACO_GRASP_MANO_ROOT``.
        dexycb: DexYCB root: ground truth for the before/after metrics (matched by ``sample_id``) and the images of
            the ``haco`` source; None: no metrics (``haco`` then reads images under ``$DEX_YCB_DIR``).
    Contact:
        contact: the contact source, a key of :data:`CONTACT_SOURCES` ("geometric", "file", "haco", "deepcontact"),
            or "auto": the best one these inputs allow (:func:`auto_contact_source`).
        contact_file: ``.npz`` of the ``file`` source (``sample_id`` (N,) str, ``hand_contact`` (N, 778) float in
            [0, 1]); None: the predictions' own ``hand_contact``.
        contact_checkpoint: checkpoint of the ``haco`` / ``deepcontact`` model; None: the predictor's default.
        contact_threshold: metres; distance of the ``geometric`` labels and of the metrics' contact labels.
    Optimisation:
        preset: optimizer preset, one of :data:`PRESET_NAMES`.
        noise_profile: the predictions' noise profile (a shipped name such as "hflnet-dexycb" or a JSON path) for
            the MAP presets; None: the preset's own ("fast": hflnet-dexycb). Ignored by "contactopt" and "haco".
        optimize: a full :class:`~haco_grasp.optimize.OptimizeConfig` used instead of ``preset`` (API only, e.g.
            tiny settings in tests; recorded as preset "custom").
        optimize_overrides: optimizer settings applied on top of ``preset`` (or ``optimize``) before
            ``noise_profile``: field name -> value, from ``--config FILE`` and the ``--opt.*`` flags
            (:mod:`haco_grasp.config_flags`); None: none.
        device: torch device ("cpu", "cuda", "cuda:1"); under torchrun "cuda" means ``cuda:<LOCAL_RANK>``.
        dtype: "float32" or "float64", precision of the MANO layer during optimisation.
        batch_size: grasps per optimizer call and per partial file; None: 16 on the CPU, a batch that fills the GPU on
            CUDA (:func:`haco_grasp.devices.auto_batch_size`).
        limit: refine only the first ``limit`` samples of the file; None: all.
    Run:
        progress: show progress bars: over samples, and over the iterations of the batch being optimised.
        restart: discard earlier partial results instead of resuming.
        metrics_pitch: voxel size of the intersection-volume metric, metres.
        dist_timeout_s: timeout of the collective operations under torchrun, seconds.
        dist_connect_timeout_s: how long the ranks wait for each other at the start under torchrun, seconds
            (``$HACO_GRASP_DIST_CONNECT_TIMEOUT_S`` overrides it); a rank started without its peers stops after it.
    Outputs besides ``<out>`` (:mod:`haco_grasp.refine_outputs`; ``<out>.frames.csv``, the per-frame metrics, always):
        report: write ``<out>.report.html``, the interactive report (3-D views, metric table, loss curves).
        report_frames: frames (the first) with a 3-D view in the report.
        export_meshes: folder for PLY meshes per frame (input / refined / target hand, object); None: none.
        export_contactopt: file for the ContactOpt-format results (``optimized_<split>.pkl``); None: none.
    """

    pred: str | os.PathLike = ""
    out: str | os.PathLike = ""
    objects: str | os.PathLike | None = None
    mano_root: str | os.PathLike | None = None
    dexycb: str | os.PathLike | None = None
    contact: str = "auto"
    contact_file: str | os.PathLike | None = None
    contact_checkpoint: str | os.PathLike | None = None
    contact_threshold: float = 0.01
    preset: str = "fast"
    noise_profile: str | None = None
    optimize: OptimizeConfig | None = None
    optimize_overrides: dict[str, Any] | None = None
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int | None = None
    limit: int | None = None
    progress: bool = True
    restart: bool = False
    metrics_pitch: float = 0.002
    dist_timeout_s: float = 6 * 3600.0
    dist_connect_timeout_s: float = 120.0
    report: bool = True
    report_frames: int = 12
    export_meshes: str | os.PathLike | None = None
    export_contactopt: str | os.PathLike | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (paths as text, ``optimize`` as its own dict)."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "optimize":
                value = None if value is None else value.to_dict()
            elif isinstance(value, os.PathLike):
                value = str(value)
            out[item.name] = value
        return out


@dataclass
class RefineSummary:
    """What :func:`run_refine` did.

    out: the output pickle. written: whether this process wrote it (rank 0 of a distributed run).
    n_samples: samples selected (after ``limit``). n_refined: refined by this process now. n_resumed: found
    finished in the partial folder at start. n_batches: optimizer calls of this process. seconds: wall time.
    metrics: {"input": summary, "refined": summary} of :func:`haco_grasp.evaluation.score_grasps` (None without
    ground truth or on ranks > 0). table: the Markdown table of those metrics, or None.
    rank, world_size: this process's place in a torchrun job (0, 1 otherwise).
    """

    out: Path
    written: bool
    n_samples: int
    n_refined: int
    n_resumed: int
    n_batches: int
    seconds: float
    metrics: dict[str, dict[str, float]] | None = None
    table: str | None = None
    rank: int = 0
    world_size: int = 1


# ----------------------------------------------------------------------------------------------- contact sources
@dataclass
class ContactTargets:
    """Contact targets of one batch of B grasps (numpy arrays; None where a source gives no such target).

    hand: (B, 778) float in [0, 1], hand-contact probabilities (mapped by the preset's ``target_mapping``).
    obj: (B, P) float, object contact values. obj_points: (B, P, 3) float, metres, camera frame, where ``obj`` is
    given. obj_normals: (B, P, 3) float, unit outward normals at ``obj_points``.
    name: the source's name. oracle: True when the targets were derived from ground truth.
    hand_is_value: ``hand`` already holds contact values on ContactOpt's scale (DeepContact), so the optimizer uses
    it unchanged (``target_mapping="value"``) instead of mapping probabilities.
    """

    hand: np.ndarray | None
    obj: np.ndarray | None = None
    obj_points: np.ndarray | None = None
    obj_normals: np.ndarray | None = None
    name: str = ""
    oracle: bool = False
    hand_is_value: bool = False


#: ``(grasps, predictions, config) -> ContactTargets`` for one batch (grasps and predictions in the same order).
ContactSource = Callable[[Sequence["Grasp"], Sequence["HFLNetPrediction"], RefineConfig], ContactTargets]


def _unavailable(name: str, why: str) -> ContactUnavailableError:
    return ContactUnavailableError(
        f"--contact {name} is not available: {why}; use --contact geometric or --contact file"
    )


def _entry_point(name: str, module_name: str, function: str) -> Callable[..., Any]:
    """The optional contact predictor ``module_name.function``, or ContactUnavailableError saying what is missing."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _unavailable(name, f"cannot import {module_name} ({exc})") from None
    entry = getattr(module, function, None)
    if not callable(entry):
        raise _unavailable(name, f"{module_name} has no {function}()")
    return entry


def _as_numpy(value: Any, what: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """A predictor's output as a finite float32 numpy array of the given shape (None: any size)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    ok = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape, strict=False))
    if not ok or array.dtype.kind not in "fiu":
        raise InputError(f"{what}: expected a float array of shape {shape}, got {array.dtype} {array.shape}")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise InputError(f"{what}: contains NaN or inf")
    return array


def _check_probabilities(array: np.ndarray, what: str, fix: str) -> None:
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise InputError(
            f"{what}: expected probabilities in [0, 1], got range [{array.min():.3g}, {array.max():.3g}]; {fix}"
        )


def geometric_contact(
    grasps: Sequence[Grasp], predictions: Sequence[HFLNetPrediction], config: RefineConfig
) -> ContactTargets:
    """The input grasps' own contact labels: hand vertices within ``contact_threshold`` of (or inside) the object.

    Returns:
        ContactTargets with hand: (B, 778) float32 in {0, 1}.
    """
    from haco_grasp.geometry.labels import hand_contact_labels

    tag = f"geometry<{config.contact_threshold:g}m"  # what prediction_to_grasp already computed
    rows = []
    for grasp in grasps:
        if grasp.meta.get("contact_source") == tag:
            rows.append(np.asarray(grasp.hand_contact, np.float32))
        else:
            labels = hand_contact_labels(grasp.hand_verts, grasp.obj_verts, grasp.obj_faces, config.contact_threshold)
            rows.append(np.asarray(labels, np.float32))
    return ContactTargets(hand=np.stack(rows), name="geometric", oracle=False)


_CONTACT_FILE_CACHE: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}


def _read_contact_file(path: Path) -> dict[str, np.ndarray]:
    """``sample_id -> (778,) float32`` from a contact ``.npz`` (validated; read once per file version)."""
    label = f"--contact-file {path}"
    if not path.is_file():
        raise AssetError(f"{label}: file not found; pass an .npz with sample_id (N,) and hand_contact (N, 778)")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _CONTACT_FILE_CACHE:
        return _CONTACT_FILE_CACHE[key]
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"{label}: not a readable .npz ({type(exc).__name__}: {exc}); write it with numpy.savez(path, "
            "sample_id=..., hand_contact=...)"
        ) from None
    for name in ("sample_id", "hand_contact"):
        if name not in arrays:
            raise InputError(f"{label}: missing array {name!r} (found {sorted(arrays)}); add it with numpy.savez")
    ids, contact = arrays["sample_id"], arrays["hand_contact"]
    if ids.ndim != 1 or ids.dtype.kind not in "US":
        raise InputError(f"{label}: sample_id expected a (N,) str array, got {ids.dtype} {ids.shape}")
    if contact.ndim != 2 or contact.shape != (ids.shape[0], NUM_HAND_VERTS) or contact.dtype.kind not in "fiu":
        raise InputError(
            f"{label}: hand_contact expected a float ({ids.shape[0]}, {NUM_HAND_VERTS}) array (one row per "
            f"sample_id, one value per MANO vertex), got {contact.dtype} {contact.shape}"
        )
    contact = contact.astype(np.float32)
    if not np.all(np.isfinite(contact)):
        raise InputError(f"{label}: hand_contact contains NaN or inf; store probabilities in [0, 1]")
    _check_probabilities(contact, f"{label}: hand_contact", "store probabilities (apply a sigmoid to logits)")
    names = [str(v.decode() if isinstance(v, bytes) else v) for v in ids.tolist()]
    table: dict[str, np.ndarray] = {}
    for row, name in enumerate(names):
        if name in table:
            raise InputError(f"{label}: sample_id {name!r} appears twice; keep one row per sample")
        table[name] = contact[row]
    _CONTACT_FILE_CACHE.clear()
    _CONTACT_FILE_CACHE[key] = table
    return table


def file_contact(
    grasps: Sequence[Grasp], predictions: Sequence[HFLNetPrediction], config: RefineConfig
) -> ContactTargets:
    """Hand-contact probabilities from ``config.contact_file``, else from the predictions' ``hand_contact``.

    Returns:
        ContactTargets with hand: (B, 778) float32 in [0, 1].
    """
    rows = []
    if config.contact_file is None:
        for pred in predictions:
            if pred.hand_contact is None:
                raise InputError(
                    f"--contact file: sample {pred.sample_id!r} of --pred has no hand_contact and no --contact-file "
                    "was given; pass --contact-file PATH.npz (sample_id, hand_contact (N, 778))"
                )
            rows.append(np.asarray(pred.hand_contact, np.float32))
    else:
        path = Path(config.contact_file).expanduser()
        table = _read_contact_file(path)
        missing = [p.sample_id for p in predictions if p.sample_id not in table]
        if missing:
            raise InputError(
                f"--contact-file {path}: sample_id {missing[0]!r} (and {len(missing) - 1} more) of --pred is absent; "
                "add rows for every refined sample"
            )
        rows = [table[p.sample_id] for p in predictions]
    return ContactTargets(hand=np.stack(rows), name="file", oracle=False)


def _dexycb_root(config: RefineConfig, purpose: str) -> Path:
    from haco_grasp.data.dexycb import resolve_dexycb_root

    try:
        return resolve_dexycb_root(config.dexycb)
    except AssetError as exc:
        raise AssetError(f"{purpose}: {exc}") from None


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: not a readable image ({exc}); check the DexYCB copy") from None


def haco_contact(
    grasps: Sequence[Grasp], predictions: Sequence[HFLNetPrediction], config: RefineConfig
) -> ContactTargets:
    """HACO's hand-contact probabilities for each sample's image and crop box.

    Calls ``haco_grasp.contact.predictor.predict_hand_contact(images, boxes, sides, checkpoint=..., device=...)``
    with images (b, H, W, 3) uint8 RGB (the prediction's ``image_path``, else its ``color_file``, under the DexYCB
    root) and boxes (b, 4) float32 x0, y0, x1, y1 pixels (its ``crop_box``); samples are grouped by image size.

    Returns:
        ContactTargets with hand: (B, 778) float32 in [0, 1].
    """
    predict = _entry_point("haco", "haco_grasp.contact.predictor", "predict_hand_contact")
    root: Path | None = None  # the DexYCB root, resolved for the first relative path (generic .npz: absolute)
    images, boxes = [], []
    for pred in predictions:
        if pred.crop_box is None:
            raise InputError(
                f"--contact haco: sample {pred.sample_id!r} of --pred has no crop_box (x0, y0, x1, y1 pixels); "
                "store the crop HFL-Net used, or use --contact geometric / file"
            )
        relative = pred.image_path or pred.color_file
        if root is None and not Path(relative).is_absolute():
            root = _dexycb_root(config, "--contact haco needs the images: pass --dexycb DIR or set $DEX_YCB_DIR")
        path = Path(relative) if root is None else root / relative
        if not path.is_file():
            raise AssetError(f"--contact haco: image of sample {pred.sample_id!r} not found: {path}; check --dexycb")
        images.append(_load_rgb(path))
        boxes.append(np.asarray(pred.crop_box, np.float32))
    hand = np.zeros((len(predictions), NUM_HAND_VERTS), np.float32)
    groups: dict[tuple[int, ...], list[int]] = {}
    for b, image in enumerate(images):
        groups.setdefault(image.shape, []).append(b)
    for members in groups.values():
        try:
            out = predict(
                np.stack([images[b] for b in members]),
                np.stack([boxes[b] for b in members]),
                [predictions[b].mano_side for b in members],
                checkpoint=None if config.contact_checkpoint is None else str(config.contact_checkpoint),
                device=config.device,
            )
        except FileNotFoundError as exc:  # AssetError included: a missing checkpoint
            raise _unavailable("haco", str(exc)) from None
        probs = _as_numpy(out, "predict_hand_contact output", (len(members), NUM_HAND_VERTS))
        _check_probabilities(probs, "predict_hand_contact output", "the predictor must return probabilities")
        hand[members] = probs
    return ContactTargets(hand=hand, name="haco", oracle=False)


def deepcontact_contact(
    grasps: Sequence[Grasp], predictions: Sequence[HFLNetPrediction], config: RefineConfig
) -> ContactTargets:
    """DeepContact's hand and object contact for the grasps.

    Calls ``contactopt_bridge.deepcontact.predict_contact(grasps, checkpoint=..., device=...)``, which returns hand
    (B, 778), obj (B, P), obj_points (B, P, 3) and obj_normals (B, P, 3) (camera frame, metres).

    Returns:
        ContactTargets with hand (B, 778), obj (B, P), obj_points (B, P, 3), obj_normals (B, P, 3), float32.
    """
    predict = _entry_point("deepcontact", "contactopt_bridge.deepcontact", "predict_contact")
    try:
        out = predict(
            list(grasps),
            checkpoint=None if config.contact_checkpoint is None else str(config.contact_checkpoint),
            device=config.device,
        )
    except FileNotFoundError as exc:
        raise _unavailable("deepcontact", str(exc)) from None
    batch = len(grasps)
    what = "predict_contact output"
    hand = _as_numpy(out.hand, f"{what}.hand", (batch, NUM_HAND_VERTS))
    obj = _as_numpy(out.obj, f"{what}.obj", (batch, None))
    points = _as_numpy(out.obj_points, f"{what}.obj_points", (batch, obj.shape[1], 3))
    normals = _as_numpy(out.obj_normals, f"{what}.obj_normals", (batch, obj.shape[1], 3))
    return ContactTargets(
        hand=hand, obj=obj, obj_points=points, obj_normals=normals, name="deepcontact", hand_is_value=True
    )


#: The contact sources of ``--contact``, by name.
CONTACT_SOURCES: dict[str, ContactSource] = {
    "geometric": geometric_contact,
    "file": file_contact,
    "haco": haco_contact,
    "deepcontact": deepcontact_contact,
}


def learned_contact_sources() -> list[str]:
    """The learned contact predictors whose checkpoint is installed, best first (of "haco", "deepcontact")."""
    available = []
    for name, module in (("haco", "haco_grasp.contact.predictor"), ("deepcontact", "contactopt_bridge.deepcontact")):
        try:
            checkpoint = getattr(importlib.import_module(module), "DEFAULT_CHECKPOINT", None)
        except ImportError:
            continue
        if checkpoint is not None and Path(checkpoint).is_file():
            available.append(name)
    return available


def auto_contact_source(predictions: Sequence[HFLNetPrediction], config: RefineConfig) -> tuple[str, str]:
    """What ``--contact auto`` means for these predictions: the best source they allow, and why.

    ``file`` when every prediction carries its own ``hand_contact`` (the user's targets); else ``haco`` when its
    checkpoint is installed (or given) and every prediction has a crop box and an image that exists; else
    ``deepcontact`` when its checkpoint is installed (or given); else ``geometric``.

    Returns:
        (source name, a short reason for the log).
    """
    if predictions and all(pred.hand_contact is not None for pred in predictions):
        return "file", "every prediction carries hand_contact"
    learned = learned_contact_sources() if config.contact_checkpoint is None else ["haco", "deepcontact"]
    if "haco" in learned:
        root = config.dexycb or os.environ.get("DEX_YCB_DIR")
        missing = None
        for pred in predictions:
            relative = pred.image_path or pred.color_file
            image = Path(relative) if Path(relative or ".").is_absolute() or not root else Path(root) / relative
            if pred.crop_box is None or not relative or not image.is_file():
                missing = pred.sample_id
                break
        if missing is None:
            return "haco", "HACO checkpoint, images and crop boxes found"
        why = f"no image or crop box for {missing!r}"
    else:
        why = "no HACO checkpoint"
    if "deepcontact" in learned:
        return "deepcontact", f"{why}; DeepContact checkpoint found"
    return "geometric", f"{why}; no DeepContact checkpoint"


def _check_targets(targets: ContactTargets, batch: int, name: str) -> None:
    if not isinstance(targets, ContactTargets):
        raise InputError(f"contact source {name!r}: expected ContactTargets, got {type(targets).__name__}")
    if targets.hand is None and targets.obj is None:
        raise InputError(f"contact source {name!r}: returned neither a hand nor an object target")
    if targets.hand is not None:
        _as_numpy(targets.hand, f"contact source {name!r}: hand", (batch, NUM_HAND_VERTS))
    if targets.obj is not None and (targets.obj_points is None or targets.obj_normals is None):
        raise InputError(f"contact source {name!r}: an object target needs obj_points and obj_normals")


# ----------------------------------------------------------------------------------------------- output records
_ARRAY_SHAPES: dict[str, tuple[int | None, ...]] = {
    "global_orient": (3,),
    "hand_pose": (45,),
    "betas": (None,),
    "transl": (3,),
    "hand_verts": (NUM_HAND_VERTS, 3),
    "hand_joints": (21, 3),
    "obj_pose": (3, 4),
}
_TARGET_SHAPES: dict[str, tuple[int | None, ...]] = {
    "target_hand_contact": (NUM_HAND_VERTS,),
    "target_obj_contact": (None,),
    "target_obj_points": (None, 3),
    "target_obj_normals": (None, 3),
}


@dataclass
class RefinedSample:
    """One refined sample of ``refined.pkl`` (see the module docstring for the conventions).

    global_orient: (3,), hand_pose: (45,) flat-mean axis-angle, betas: (10,), transl: (3,) metres; float32, for
    the MANO model of ``mano_side``. hand_verts: (778, 3), hand_joints: (21, 3) float32 metres, camera frame.
    obj_pose: (3, 4) float32 [R | t]. target_hand_contact: (778,) | None, target_obj_contact: (P,) | None,
    target_obj_points / target_obj_normals: (P, 3) | None, float32: the contact target used.
    """

    sample_id: str
    dex_index: int
    mano_side: str
    ycb_id: int
    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    hand_verts: np.ndarray
    hand_joints: np.ndarray
    obj_pose: np.ndarray
    target_hand_contact: np.ndarray | None
    target_obj_contact: np.ndarray | None
    target_obj_points: np.ndarray | None
    target_obj_normals: np.ndarray | None
    loss: float
    chosen_restart: int
    iterations: int
    seconds: float
    contact_oracle: bool = False
    loss_history: dict[str, np.ndarray] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The sample as stored in the pickle."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> RefinedSample:
        """Validate one stored sample (``where`` names it in errors)."""
        if not isinstance(raw, dict):
            raise InputError(f"{where}: expected a dict, got {type(raw).__name__}")
        optional = ("contact_oracle", "loss_history")
        missing = [item.name for item in fields(cls) if item.name not in raw and item.name not in optional]
        if missing:
            raise InputError(f"{where}: missing field {missing[0]!r}; the file is not a complete {REFINED_FORMAT}")
        values = dict(raw)
        for name, shape in _ARRAY_SHAPES.items():
            values[name] = _as_numpy(raw[name], f"{where}.{name}", shape)
        for name, shape in _TARGET_SHAPES.items():
            values[name] = None if raw[name] is None else _as_numpy(raw[name], f"{where}.{name}", shape)
        if raw["mano_side"] not in ("right", "left"):
            raise InputError(f"{where}.mano_side: expected 'right' or 'left', got {raw['mano_side']!r}")
        history = raw.get("loss_history")
        if history is not None:
            if not isinstance(history, dict):
                raise InputError(f"{where}.loss_history: expected a dict term -> (T,) array, got {type(history)}")
            values["loss_history"] = {str(k): _as_numpy(v, f"{where}.loss_history[{k!r}]", (None,))
                                      for k, v in history.items()}  # fmt: skip
        known = {item.name for item in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class RefinedFile:
    """A whole ``refined.pkl``: the header and the samples (see the module docstring)."""

    samples: list[RefinedSample]
    source_file: str
    source_sha256: str
    source_checkpoint: str
    split: str
    preset: str
    contact_source: str
    contact_oracle: bool
    config: dict
    optimize_config: dict
    versions: dict
    date: str
    world_size: int
    metrics: dict | None
    format: str = REFINED_FORMAT
    frame_metrics: list[dict] | None = None

    def by_id(self) -> dict[str, RefinedSample]:
        """Samples keyed by ``sample_id``."""
        return {s.sample_id: s for s in self.samples}


def load_refined(path: str | os.PathLike) -> RefinedFile:
    """Read and validate a ``refined.pkl`` written by :func:`run_refine` (restricted unpickler).

    Args:
        path: the file.

    Returns:
        RefinedFile with every sample's arrays checked (float32).

    Raises:
        AssetError: no such file. InputError: not a ``haco_grasp.refined/v1`` file, or a field is malformed.
    """
    from haco_grasp.safe_pickle import safe_load

    raw = safe_load(path)
    label = str(path)
    if not isinstance(raw, dict) or raw.get("format") != REFINED_FORMAT:
        got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise InputError(f"{label}: header 'format' expected {REFINED_FORMAT!r}, got {got!r}; is this refine output?")
    header = [item.name for item in fields(RefinedFile) if item.name not in ("samples", "frame_metrics")]
    missing = [name for name in header if name not in raw]
    if missing or not isinstance(raw.get("samples"), list):
        raise InputError(f"{label}: header field {(missing or ['samples'])[0]!r} missing or malformed")
    samples = [RefinedSample.from_dict(s, f"{label}: samples[{i}]") for i, s in enumerate(raw["samples"])]
    return RefinedFile(samples=samples, frame_metrics=raw.get("frame_metrics"), **{name: raw[name] for name in header})


def _records(
    predictions: Sequence[HFLNetPrediction], result: Any, targets: ContactTargets, seconds: float
) -> list[dict[str, Any]]:
    """Per-sample output dicts of one optimizer call (numpy float32 arrays, builtins)."""

    def f32(value: Any) -> np.ndarray:
        return np.ascontiguousarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, np.float32)

    def row(array: np.ndarray | None, b: int) -> np.ndarray | None:
        return None if array is None else np.ascontiguousarray(array[b], np.float32)

    out = []
    for b, pred in enumerate(predictions):
        rotation, translation = f32(result.obj_rotation[b]), f32(result.obj_translation[b])
        sample = RefinedSample(
            sample_id=pred.sample_id,
            dex_index=int(pred.dex_index),
            mano_side=pred.mano_side,
            ycb_id=int(pred.ycb_id),
            global_orient=f32(result.global_orient[b]),
            hand_pose=f32(result.hand_pose[b]),
            betas=f32(result.betas[b]),
            transl=f32(result.transl[b]),
            hand_verts=f32(result.verts[b]),
            hand_joints=f32(result.joints[b]),
            obj_pose=np.concatenate([rotation, translation[:, None]], axis=1),
            target_hand_contact=row(targets.hand, b),
            target_obj_contact=row(targets.obj, b),
            target_obj_points=row(targets.obj_points, b),
            target_obj_normals=row(targets.obj_normals, b),
            loss=float(result.loss[b]),
            chosen_restart=int(result.chosen_restart[b]),
            iterations=int(result.iterations),
            seconds=float(seconds / len(predictions)),
            contact_oracle=bool(targets.oracle),
            loss_history={term: f32(values[:, b]) for term, values in result.loss_history.items()},
        )
        out.append(sample.to_dict())
    return out


# ----------------------------------------------------------------------------------------------- files
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _partial_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


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


# ----------------------------------------------------------------------------------------------- run plan
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


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise InputError(f"${name}: expected an integer (set by torchrun), got {text!r}") from None


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


def _connect_timeout(config: RefineConfig) -> float:
    text = os.environ.get(CONNECT_TIMEOUT_ENV)
    value: Any = config.dist_connect_timeout_s
    what = "dist_connect_timeout_s"
    if text:
        what = f"${CONNECT_TIMEOUT_ENV}"
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"{what}: expected a number of seconds, got {text!r}; e.g. 120") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e7:
        raise InputError(f"{what}: expected a positive number of seconds, got {value!r}; e.g. 120")
    return float(value)


def _plan(config: RefineConfig) -> _Plan:
    """Validate the configuration and load the predictions (no optimisation yet)."""

    from haco_grasp.config_flags import apply_optimizer_overrides
    from haco_grasp.data.hflnet import load_hflnet
    from haco_grasp.hand.mano import SYNTHETIC_ROOT
    from haco_grasp.optimize.config import OptimizeConfig, get_config

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
        if config.preset not in PRESET_NAMES:
            raise InputError(f"--preset: unknown {config.preset!r}; choose one of {list(PRESET_NAMES)}")
        optimize, preset = get_config(config.preset), config.preset
        optimize = apply_optimizer_overrides(optimize, config.optimize_overrides)
        if config.noise_profile is not None and optimize.noise_profile is not None:
            optimize = optimize.replace(noise_profile=str(config.noise_profile))

    rank, world_size = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"$RANK / $WORLD_SIZE: expected 0 <= RANK < WORLD_SIZE, got {rank} / {world_size}")
    connect_timeout = _connect_timeout(config)
    if world_size > 1:
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise InputError(f"${name} is not set but WORLD_SIZE={world_size}; launch with torchrun, or unset "
                                 "WORLD_SIZE (and RANK) for a single process")  # fmt: skip
        _env_int("MASTER_PORT", 0)
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
        _read_contact_file(contact_path)
        contact_sha = _sha256(contact_path)
    return _Plan(
        config=config,
        pred=pred,
        out=out,
        partial=_partial_dir(out),
        file=file,
        predictions=predictions,
        optimize=optimize,
        preset=preset,
        models_root=models_root,
        pred_sha256=_sha256(pred),
        contact_file_sha256=contact_sha,
        device=device,
        rank=rank,
        world_size=world_size,
        connect_timeout_s=connect_timeout,
    )


def _preflight(plan: _Plan) -> None:
    """Checks that would otherwise fail after hours of work: contact source inputs, GT matching."""
    config = plan.config
    if config.contact == "file":
        file_contact([], plan.predictions, config)  # every selected sample has a target
    elif config.contact == "haco":
        _entry_point("haco", "haco_grasp.contact.predictor", "predict_hand_contact")
    elif config.contact == "deepcontact":
        _entry_point("deepcontact", "contactopt_bridge.deepcontact", "predict_contact")
    if config.contact in ("haco", "deepcontact") and config.contact_checkpoint is not None:
        if not Path(config.contact_checkpoint).expanduser().exists():
            raise _unavailable(config.contact, f"checkpoint {config.contact_checkpoint} not found")
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
    from haco_grasp.data.dexycb import S0_SPLITS, DexYCB

    if plan.dataset is None:
        split = plan.file.split if plan.file.split in S0_SPLITS else "s0_test"
        plan.dataset = DexYCB(plan.config.dexycb, split=split, subset="all", mano_root=plan.config.mano_root,
                              strict=False)  # fmt: skip
    return plan.dataset


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
        return _sha256(path) if path.is_file() else "missing"
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
            module = "haco_grasp.contact.predictor" if config.contact == "haco" else "contactopt_bridge.deepcontact"
            try:
                checkpoint = getattr(importlib.import_module(module), "DEFAULT_CHECKPOINT", None)
            except ImportError:
                checkpoint = None
        path = None if checkpoint is None else Path(checkpoint).expanduser()
        files["contact checkpoint"] = ("--contact-checkpoint", path)
        if path is not None and config.contact == "haco":
            files["contact checkpoint config"] = ("--contact-checkpoint", path.with_suffix(".json"))
    return files


def _image_digest(plan: _Plan) -> str:
    """One digest over the images the ``haco`` source reads (missing images count as 'missing')."""
    try:
        root = _dexycb_root(plan.config, "--contact haco")
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


def _versions() -> dict[str, str]:
    import torch

    import haco_grasp
    from haco_grasp.info import git_commit

    return {
        "haco_grasp": haco_grasp.__version__,
        "commit": git_commit(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write_config_json(plan: _Plan) -> None:
    payload = {
        "command": "haco-grasp refine",
        "config": plan.config.to_dict(),
        "preset": plan.preset,
        "optimize_config": plan.optimize.to_dict(),
        "contact_source": plan.config.contact,
        "device": plan.device,
        "world_size": plan.world_size,
        "pred_sha256": plan.pred_sha256,
        "versions": _versions(),
        "date": _now(),
    }
    path = plan.out.with_name(plan.out.name + ".config.json")
    atomic_write_bytes(path, json.dumps(payload, indent=1, default=str).encode())


# ----------------------------------------------------------------------------------------------- process group
def _wait_for_port(address: str, port: int, seconds: float) -> bool:
    """Whether something accepts TCP connections at ``address:port`` within ``seconds`` (rank 0's store)."""
    import socket

    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((address, port), timeout=min(1.0, seconds)):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


class _Group:
    """The torchrun process group (gloo), or a single process; errors are shared so every rank stops together."""

    def __init__(self, plan: _Plan) -> None:
        self.rank, self.world_size, self.owned = plan.rank, plan.world_size, False
        if self.world_size > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from the environment (torchrun sets them). The store
                # waits plan.connect_timeout_s for the peers; the collectives then use dist_timeout_s.
                address, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
                wait = datetime.timedelta(seconds=plan.connect_timeout_s)
                peers = (f"WORLD_SIZE={self.world_size}, RANK={self.rank}: the other ranks did not join at "
                         f"{address}:{port} within {plan.connect_timeout_s:g} s")  # fmt: skip
                fix = (f"start every rank (torchrun --nproc-per-node {self.world_size} ...), or unset WORLD_SIZE and "
                       f"RANK for one process; raise ${CONNECT_TIMEOUT_ENV} if they start slowly")  # fmt: skip
                if self.rank != 0 and not _wait_for_port(address, port, plan.connect_timeout_s):
                    raise InputError(f"{peers} (nothing listens there: rank 0 never started); {fix}")
                try:
                    store = dist.TCPStore(address, port, self.world_size, self.rank == 0, timeout=wait,
                                          wait_for_workers=True)  # fmt: skip
                    long_wait = datetime.timedelta(seconds=float(plan.config.dist_timeout_s))
                    store.set_timeout(long_wait)  # every rank is connected: from now on the long timeout applies
                    dist.init_process_group("gloo", store=store, rank=self.rank, world_size=self.world_size,
                                            timeout=long_wait)  # fmt: skip
                except (RuntimeError, ValueError, OSError) as exc:
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                    raise InputError(f"{peers} ({first}); {fix}") from None
                self.owned = True

    def share_from_root(self, error: str | None) -> str | None:
        """Rank 0's error message (or None), on every rank."""
        if self.world_size == 1:
            return error
        import torch.distributed as dist

        box = [error]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, error: str | None) -> list[str | None]:
        """Every rank's error message (or None), on every rank."""
        if self.world_size == 1:
            return [error]
        import torch.distributed as dist

        boxes: list[str | None] = [None] * self.world_size
        dist.all_gather_object(boxes, error)
        return boxes

    def close(self) -> None:
        if self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()


def _kept(plan: _Plan) -> str:
    """What a rerun will find, as it is on disk now."""
    count = len(list(plan.partial.glob("batch_*.pkl"))) if plan.partial.is_dir() else 0
    if count:
        return f"{count} finished batches are kept in {plan.partial}; rerun the same command to resume"
    return "no batch had finished, so there is nothing to resume; rerun the same command to start again"


def _describe(exc: BaseException) -> str:
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------------------------- the run
def _make_batches(positions: Sequence[int], predictions: Sequence[HFLNetPrediction], size: int) -> list[list[int]]:
    """Positions split by hand side, chunked, ordered by their first position."""
    by_side: dict[str, list[int]] = {"right": [], "left": []}
    for position in positions:
        by_side[predictions[position].mano_side].append(position)
    batches = [members[i : i + size] for members in by_side.values() for i in range(0, len(members), size)]
    return sorted(batches, key=lambda batch: batch[0])


class _Inputs:
    """Builds the input Grasps of predictions (MANO and YCB meshes loaded once)."""

    def __init__(self, plan: _Plan) -> None:
        from haco_grasp.hand.conventions import ManoLayerCache
        from haco_grasp.objects.ycb import object_provider

        self.plan = plan
        self.cache = ManoLayerCache(plan.config.mano_root)
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
    from haco_grasp.hand.conventions import ManoLayerCache

    config = plan.config
    dtype = torch.float32 if config.dtype == "float32" else torch.float64
    layers = ManoLayerCache(config.mano_root, dtype=dtype)
    source = CONTACT_SOURCES[config.contact]
    source_config = dataclasses.replace(config, device=plan.device)  # predictors run where the optimizer runs
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
            targets = source(grasps, predictions, source_config)
            _check_targets(targets, len(batch), config.contact)
            result = optimize_module.optimize_grasp(
                grasps,
                target_hand_contact=targets.hand,
                target_obj_contact=targets.obj,
                target_obj_points=targets.obj_points,
                target_obj_normals=targets.obj_normals,
                config=plan.optimize.replace(target_mapping="value") if targets.hand_is_value else plan.optimize,
                layer=layers.layer(predictions[0].mano_side),
                device=plan.device,
                progress=bar is not None,  # a second bar: iterations within this batch
            )
            records = _records(predictions, result, targets, time.perf_counter() - started)
            payload = {"format": BATCH_FORMAT, "rank": plan.rank, "samples": records}
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


def _metrics(plan: _Plan, inputs: _Inputs, records: dict[str, dict[str, Any]]) -> tuple[dict, str]:
    """Before/after scores against the DexYCB ground truth, and their Markdown table."""
    from haco_grasp.evaluation import frame_changes, markdown_table, score_grasps
    from haco_grasp.refine_outputs import refined_grasp

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
        truths.append(sample.to_grasp(dataset.layer_cache, inputs.models, config.contact_threshold))
        plan.ground_truth[pred.sample_id] = truths[-1]
        grasp = inputs.grasp(pred)
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


def _frames(plan: _Plan, inputs: _Inputs, records: dict[str, dict[str, Any]]) -> list[Any]:
    """Per-frame metrics and views (:func:`haco_grasp.refine_outputs.build_frames`), in prediction order."""
    from haco_grasp.refine_outputs import build_frames

    samples = [(inputs.grasp(pred), records[pred.sample_id]) for pred in plan.predictions]
    return build_frames(samples, plan.config.contact, pitch=plan.config.metrics_pitch,
                        contact_threshold=plan.config.contact_threshold, progress=plan.config.progress)  # fmt: skip


def _write_outputs(plan: _Plan, frames: list[Any]) -> None:
    """``<out>.frames.csv`` and the optional report, meshes and ContactOpt export."""
    from haco_grasp.refine_outputs import write_outputs

    config = plan.config
    notes = [f"{len(frames)} frames of {plan.pred} refined {_now()}; contact source {config.contact}, preset "
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
    metrics = table = None
    if plan.config.dexycb is not None:
        metrics, table = _metrics(plan, inputs, records)
    frames = _frames(plan, inputs, records)
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
        "versions": _versions(),
        "date": _now(),
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
    group = _Group(plan)
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


# ----------------------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``haco-grasp refine`` options to ``parser`` (the fields of :class:`RefineConfig`)."""
    parser.add_argument("--pred", required=True, metavar="PATH",
                        help="HFL-Net predictions (hflnet.pkl) or your own data (a generic .npz: see "
                        "docs/own-data.md)")  # fmt: skip
    parser.add_argument("--out", required=True, metavar="PATH", help="output file (refined.pkl)")
    parser.add_argument("--contact", default="auto", choices=["auto", *CONTACT_SOURCES],
                        help="contact target source; auto = the best these inputs allow: file (predictions carry "
                        "hand_contact), else haco (checkpoint, images and crop boxes), else deepcontact, else "
                        "geometric (default: %(default)s)")  # fmt: skip
    parser.add_argument("--contact-file", metavar="PATH", default=None,
                        help="--contact file: .npz with sample_id (N,) and hand_contact (N, 778) probabilities "
                        "(default: the predictions' own hand_contact)")  # fmt: skip
    parser.add_argument("--contact-checkpoint", metavar="PATH", default=None,
                        help="checkpoint of the haco / deepcontact model (default: the predictor's own)")  # fmt: skip
    parser.add_argument("--preset", default="fast", choices=list(PRESET_NAMES),
                        help="optimizer preset (default: %(default)s)")  # fmt: skip
    parser.add_argument("--noise-profile", metavar="NAME|PATH", default=None,
                        help="how far the predictions are from the truth, per parameter, for the MAP preset 'fast': "
                        "hflnet-dexycb, contactopt-aug or a JSON file (haco_grasp.optimize.fit_noise_profile makes "
                        "one from a validation split) (default: the preset's, hflnet-dexycb)")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N (default: %(default)s)")
    parser.add_argument("--objects", metavar="DIR", default=None,
                        help="DexYCB models folder, or the folder of the mesh files a generic .npz names "
                        "(default: DEXYCB/models, else $DEX_YCB_DIR/models)")  # fmt: skip
    parser.add_argument("--mano-root", metavar="DIR", default=None,
                        help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl, or 'synthetic' for the shipped synthetic "
                        "hand (default: $HACO_GRASP_MANO_ROOT)")  # fmt: skip
    parser.add_argument("--dexycb", metavar="DIR", default=None,
                        help="DexYCB root: ground truth for the metrics, images for --contact haco")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="grasps per optimizer call (default: 16 on the CPU, a batch that fills the GPU on "
                        "CUDA)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="refine only the first N samples")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (over samples, and over iterations within a batch)")  # fmt: skip
    parser.add_argument("--restart", action="store_true", help="discard partial results of an earlier run")
    parser.add_argument("--no-report", action="store_true",
                        help="do not write OUT.report.html, the interactive report (OUT.frames.csv is always "
                        "written)")  # fmt: skip
    parser.add_argument("--report-frames", type=int, default=12, metavar="N",
                        help="frames with a 3-D view in the report (default: %(default)s)")  # fmt: skip
    parser.add_argument("--export-meshes", metavar="DIR", default=None,
                        help="write PLY meshes per frame, contact as vertex colours: input / refined / target hand, "
                        "object (default: none)")  # fmt: skip
    parser.add_argument("--export-contactopt", metavar="PATH", default=None,
                        help="write the results in ContactOpt's optimized_<split>.pkl format (default: "
                        "none)")  # fmt: skip


def config_from_args(args: argparse.Namespace) -> RefineConfig:
    """The :class:`RefineConfig` of parsed ``haco-grasp refine`` arguments (with the optimizer flags of
    :func:`haco_grasp.config_flags.add_optimizer_flags` when the parser has them)."""
    from haco_grasp.config_flags import optimizer_overrides

    return RefineConfig(
        pred=args.pred,
        out=args.out,
        objects=args.objects,
        mano_root=args.mano_root,
        dexycb=args.dexycb,
        contact=args.contact,
        contact_file=args.contact_file,
        contact_checkpoint=args.contact_checkpoint,
        preset=args.preset,
        noise_profile=args.noise_profile,
        optimize_overrides=optimizer_overrides(args) or None,
        device=args.device,
        batch_size=args.batch_size,
        limit=args.limit,
        progress=not args.no_progress,
        restart=args.restart,
        report=not args.no_report,
        report_frames=args.report_frames,
        export_meshes=args.export_meshes,
        export_contactopt=args.export_contactopt,
    )
