"""The one registry of contact sources: where the optimizer's contact target comes from.

A contact source is a function ``(grasps, predictions, context) -> ContactTargets`` for one batch of B grasps
(:data:`ContactSource`); :data:`SOURCES` holds them by name. ``haco-grasp refine`` (real predictions), the demo and
the synthetic benchmark (synthetic grasps with their ground truth) all call the sources here.

- ``geometric``: the input grasp's own contact labels (:func:`haco_grasp.geometry.labels.hand_contact_labels` of the
  hand against the posed object, ``context.contact_threshold``, 1 cm); needs nothing else.
- ``file``: per-vertex hand-contact probabilities from ``context.contact_file`` (an ``.npz`` with ``sample_id`` (N,)
  str and ``hand_contact`` (N, 778) float in [0, 1]), or, without a file, the predictions' own ``hand_contact``.
- ``haco``: :func:`haco_grasp.contact.predictor.predict_hand_contact` on each sample's colour image and crop box:
  the prediction's ``image_path`` (else ``color_file``) under the DexYCB root ``context.dexycb`` / ``$DEX_YCB_DIR``;
  on synthetic data (no predictions, ``context.truth`` given) renders of the ground-truth grasps
  (:func:`haco_grasp.data.images.render_grasp_images`: the stand-in for the photo a prediction was made from).
- ``deepcontact``: :func:`contactopt_bridge.deepcontact.predict_contact` on the grasps (hand and object targets).
  Its hand targets are contact values on ContactOpt's scale, not probabilities: ``hand_is_value`` is set, and
  :meth:`ContactTargets.optimizer_config` makes the optimizer use them unchanged (``target_mapping="value"``). This
  is the one place that decision is made.
- ``oracle``: the ground truth's own contact labels (``context.truth``; synthetic data only; an upper bound).

``auto`` is not a source but a choice among them, best first (:data:`PREFERENCE`): :func:`auto_contact_source` for
predictions, :func:`synthetic_contact_sources` for synthetic grasps.

``haco`` and ``deepcontact`` are imported when used; if the module, its entry point or its checkpoint is missing they
raise :class:`ContactUnavailableError` (never a silent fallback to another source).

This module imports only the standard library, numpy and the package's leaf modules at import time (the CLI lists
the sources in ``--help``); torch and the predictors are imported when a source runs.

Add a source: write ``my_contact(grasps, predictions, context) -> ContactTargets`` here, add it to :data:`SOURCES`
(and to :data:`PREFERENCE` if ``auto`` may pick it); refine's ``--contact`` then offers it.
"""

from __future__ import annotations

import importlib
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from haco_grasp.arrays import to_numpy
from haco_grasp.errors import AssetError, HacoGraspError, InputError

if TYPE_CHECKING:
    from haco_grasp.data.grasp import Grasp
    from haco_grasp.data.hflnet import HFLNetPrediction
    from haco_grasp.optimize.config import OptimizeConfig

__all__ = [
    "ORACLE_SOURCES",
    "PREFERENCE",
    "SOURCES",
    "VALUE_TARGET_THRESHOLDS",
    "ContactContext",
    "ContactSource",
    "ContactTargets",
    "ContactUnavailableError",
    "auto_contact_source",
    "check_source",
    "check_targets",
    "contact_targets",
    "learned_contact_sources",
    "synthetic_contact_sources",
]

NUM_HAND_VERTS = 778
#: Contact sources whose hand targets are contact values on ContactOpt's scale (not probabilities), and the value
#: that means "in contact" (about 1 cm); a probability target is "in contact" at >= 0.5.
VALUE_TARGET_THRESHOLDS: dict[str, float] = {"deepcontact": 0.1}


class ContactUnavailableError(HacoGraspError):
    """A contact source (``haco``, ``deepcontact``) cannot run: its module, entry point or checkpoint is missing."""


@dataclass
class ContactTargets:
    """Contact targets of one batch of B grasps (numpy arrays; None where a source gives no such target).

    hand: (B, 778) float, hand-contact probabilities in [0, 1] (mapped by the preset's ``target_mapping``), or contact
        values when ``hand_is_value``.
    obj: (B, P) float, object contact values. obj_points: (B, P, 3) float, metres, world (camera) frame, where
        ``obj`` is given. obj_normals: (B, P, 3) float, unit outward normals at ``obj_points``.
    name: the source's name. oracle: True when the targets were derived from ground truth.
    hand_is_value: ``hand`` already holds contact values on ContactOpt's scale (DeepContact), so the optimizer uses
        it unchanged (``target_mapping="value"``, :meth:`optimizer_config`) instead of mapping probabilities.
    """

    hand: np.ndarray | None
    obj: np.ndarray | None = None
    obj_points: np.ndarray | None = None
    obj_normals: np.ndarray | None = None
    name: str = ""
    oracle: bool = False
    hand_is_value: bool = False

    def optimizer_config(self, config: OptimizeConfig) -> OptimizeConfig:
        """``config`` as these targets need it: ``target_mapping="value"`` for contact values, else unchanged."""
        return config.replace(target_mapping="value") if self.hand_is_value else config

    def optimizer_kwargs(self) -> dict[str, np.ndarray | None]:
        """The target keyword arguments of :func:`haco_grasp.optimize.optimize_grasp` (None: no such target)."""
        return {
            "target_hand_contact": self.hand,
            "target_obj_contact": self.obj,
            "target_obj_points": self.obj_points,
            "target_obj_normals": self.obj_normals,
        }

    def rows(self, start: int, stop: int) -> ContactTargets:
        """The targets of grasps ``start:stop`` of the batch."""

        def cut(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[start:stop]

        return replace(self, hand=cut(self.hand), obj=cut(self.obj), obj_points=cut(self.obj_points),
                       obj_normals=cut(self.obj_normals))  # fmt: skip


@dataclass(frozen=True)
class ContactContext:
    """What a contact source may use besides the grasps and predictions of its batch.

    contact_threshold: metres; distance of the ``geometric`` labels.
    contact_file: ``.npz`` of the ``file`` source; None: the predictions' own ``hand_contact``.
    contact_checkpoint: checkpoint of the ``haco`` / ``deepcontact`` model; None: the predictor's default.
    device: torch device the learned predictors run on.
    dexycb: DexYCB root, where the ``haco`` source finds the predictions' images; None: ``$DEX_YCB_DIR``.
    seed: seed of the ``deepcontact`` object-point sampling and of the synthetic ``haco`` renders.
    truth: (B) the ground-truth grasps of the batch (synthetic data: the ``oracle`` labels, the ``haco`` renders);
        None on real predictions.
    """

    contact_threshold: float = 0.01
    contact_file: str | os.PathLike | None = None
    contact_checkpoint: str | os.PathLike | None = None
    device: str = "cpu"
    dexycb: str | os.PathLike | None = None
    seed: int = 0
    truth: Sequence[Grasp] | None = None


#: ``(grasps, predictions, context) -> ContactTargets`` for one batch (grasps and predictions in the same order;
#: ``predictions`` is None for synthetic grasps).
ContactSource = Callable[[Sequence["Grasp"], "Sequence[HFLNetPrediction] | None", ContactContext], ContactTargets]


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


def _check_probabilities(array: np.ndarray, what: str, fix: str) -> None:
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise InputError(
            f"{what}: expected probabilities in [0, 1], got range [{array.min():.3g}, {array.max():.3g}]; {fix}"
        )


def _need_truth(name: str, context: ContactContext, batch: int) -> Sequence[Grasp]:
    if context.truth is None or len(context.truth) != batch:
        got = "none" if context.truth is None else f"{len(context.truth)}"
        raise InputError(f"--contact {name}: needs the ground truth of each of the {batch} grasps (synthetic data), "
                         f"got {got}; use --contact geometric on predictions without ground truth")  # fmt: skip
    return context.truth


# ----------------------------------------------------------------------------------------------- the sources
def oracle_contact(
    grasps: Sequence[Grasp], predictions: Sequence[HFLNetPrediction] | None, context: ContactContext
) -> ContactTargets:
    """The ground truth's own contact labels (synthetic data; an upper bound for any predictor).

    Returns:
        ContactTargets with hand: (B, 778) float in {0, 1}, oracle True.
    """
    truth = _need_truth("oracle", context, len(grasps))
    return ContactTargets(hand=np.stack([g.hand_contact for g in truth]), name="oracle", oracle=True)


def geometric_contact(
    grasps: Sequence[Grasp], predictions: Sequence[HFLNetPrediction] | None, context: ContactContext
) -> ContactTargets:
    """The input grasps' own contact labels: hand vertices within ``contact_threshold`` of (or inside) the object.

    A grasp whose labels were computed at that distance when it was built (``Grasp.contact_threshold``) keeps them.

    Returns:
        ContactTargets with hand: (B, 778) float32 in {0, 1}.
    """
    from haco_grasp.geometry.labels import hand_contact_labels

    threshold = context.contact_threshold
    rows = []
    for grasp in grasps:
        if grasp.contact_threshold == threshold:  # the labels computed when the grasp was built
            rows.append(np.asarray(grasp.hand_contact, np.float32))
        else:
            labels = hand_contact_labels(grasp.hand_verts, grasp.obj_verts, grasp.obj_faces, threshold)
            rows.append(np.asarray(labels, np.float32))
    return ContactTargets(hand=np.stack(rows), name="geometric", oracle=False)


_CONTACT_FILE_CACHE: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}


def read_contact_file(path: Path) -> dict[str, np.ndarray]:
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
    grasps: Sequence[Grasp], predictions: Sequence[HFLNetPrediction] | None, context: ContactContext
) -> ContactTargets:
    """Hand-contact probabilities from ``context.contact_file``, else from the predictions' ``hand_contact``.

    Returns:
        ContactTargets with hand: (B, 778) float32 in [0, 1].
    """
    if predictions is None:
        raise InputError("--contact file: needs prediction records (sample_id, hand_contact); synthetic grasps have "
                         "none: use oracle, geometric, haco or deepcontact")  # fmt: skip
    rows = []
    if context.contact_file is None:
        for pred in predictions:
            if pred.hand_contact is None:
                raise InputError(
                    f"--contact file: sample {pred.sample_id!r} of --pred has no hand_contact and no --contact-file "
                    "was given; pass --contact-file PATH.npz (sample_id, hand_contact (N, 778))"
                )
            rows.append(np.asarray(pred.hand_contact, np.float32))
    else:
        path = Path(context.contact_file).expanduser()
        table = read_contact_file(path)
        missing = [p.sample_id for p in predictions if p.sample_id not in table]
        if missing:
            raise InputError(
                f"--contact-file {path}: sample_id {missing[0]!r} (and {len(missing) - 1} more) of --pred is absent; "
                "add rows for every refined sample"
            )
        rows = [table[p.sample_id] for p in predictions]
    return ContactTargets(hand=np.stack(rows), name="file", oracle=False)


def dexycb_root(context: Any, purpose: str) -> Path:
    """The DexYCB root of ``context.dexycb`` (else ``$DEX_YCB_DIR``); AssetError prefixed with ``purpose``."""
    from haco_grasp.data.dexycb import resolve_dexycb_root

    try:
        return resolve_dexycb_root(context.dexycb)
    except AssetError as exc:
        raise AssetError(f"{purpose}: {exc}") from None


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: not a readable image ({exc}); check the DexYCB copy") from None


def _haco_inputs(
    grasps: Sequence[Grasp], predictions: Sequence[HFLNetPrediction] | None, context: ContactContext
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """HACO's images (H, W, 3) uint8 RGB, crop boxes (4,) float32 xyxy pixels and hand sides, one per sample."""
    if predictions is None:  # synthetic grasps: the camera sees the real grasp, so render the ground truth
        from haco_grasp.data.images import render_grasp_images

        truth = _need_truth("haco", context, len(grasps))
        images = [item.image for item in render_grasp_images(truth, seed=context.seed, progress=False)]
        boxes = [np.array([0.0, 0.0, image.shape[1], image.shape[0]], np.float32) for image in images]  # hand crops
        return images, boxes, [grasp.side for grasp in truth]
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
            root = dexycb_root(context, "--contact haco needs the images: pass --dexycb DIR or set $DEX_YCB_DIR")
        path = Path(relative) if root is None else root / relative
        if not path.is_file():
            raise AssetError(f"--contact haco: image of sample {pred.sample_id!r} not found: {path}; check --dexycb")
        images.append(_load_rgb(path))
        boxes.append(np.asarray(pred.crop_box, np.float32))
    return images, boxes, [pred.mano_side for pred in predictions]


def haco_contact(
    grasps: Sequence[Grasp], predictions: Sequence[HFLNetPrediction] | None, context: ContactContext
) -> ContactTargets:
    """HACO's hand-contact probabilities for each sample's image and crop box.

    Calls ``haco_grasp.contact.predictor.predict_hand_contact(images, boxes, sides, checkpoint=..., device=...)``
    with images (b, H, W, 3) uint8 RGB and boxes (b, 4) float32 x0, y0, x1, y1 pixels (module docstring: where
    they come from); samples are grouped by image size.

    Returns:
        ContactTargets with hand: (B, 778) float32 in [0, 1].
    """
    predict = _entry_point("haco", "haco_grasp.contact.predictor", "predict_hand_contact")
    images, boxes, sides = _haco_inputs(grasps, predictions, context)
    hand = np.zeros((len(images), NUM_HAND_VERTS), np.float32)
    groups: dict[tuple[int, ...], list[int]] = {}
    for b, image in enumerate(images):
        groups.setdefault(image.shape, []).append(b)
    for members in groups.values():
        try:
            out = predict(
                np.stack([images[b] for b in members]),
                np.stack([boxes[b] for b in members]),
                [sides[b] for b in members],
                checkpoint=None if context.contact_checkpoint is None else str(context.contact_checkpoint),
                device=context.device,
            )
        except FileNotFoundError as exc:  # AssetError included: a missing checkpoint
            raise _unavailable("haco", str(exc)) from None
        probs = to_numpy(out, np.float32, name="predict_hand_contact output", shape=(len(members), NUM_HAND_VERTS))
        _check_probabilities(probs, "predict_hand_contact output", "the predictor must return probabilities")
        hand[members] = probs
    return ContactTargets(hand=hand, name="haco", oracle=False)


def deepcontact_contact(
    grasps: Sequence[Grasp], predictions: Sequence[HFLNetPrediction] | None, context: ContactContext
) -> ContactTargets:
    """DeepContact's hand and object contact for the grasps.

    Calls ``contactopt_bridge.deepcontact.predict_contact(grasps, checkpoint=..., device=..., seed=...)``, which
    returns hand (B, 778), obj (B, P), obj_points (B, P, 3) and obj_normals (B, P, 3) (world frame, metres).

    Returns:
        ContactTargets with hand (B, 778) contact values (``hand_is_value``), obj (B, P), obj_points (B, P, 3),
        obj_normals (B, P, 3), float32.
    """
    predict = _entry_point("deepcontact", "contactopt_bridge.deepcontact", "predict_contact")
    seeded = {} if context.seed == 0 else {"seed": context.seed}  # 0: predict_contact's own default
    try:
        out = predict(
            list(grasps),
            checkpoint=None if context.contact_checkpoint is None else str(context.contact_checkpoint),
            device=context.device,
            **seeded,
        )
    except FileNotFoundError as exc:
        raise _unavailable("deepcontact", str(exc)) from None
    batch = len(grasps)
    what = "predict_contact output"
    hand = to_numpy(out.hand, np.float32, name=f"{what}.hand", shape=(batch, NUM_HAND_VERTS))
    obj = to_numpy(out.obj, np.float32, name=f"{what}.obj", shape=(batch, None))
    points = to_numpy(out.obj_points, np.float32, name=f"{what}.obj_points", shape=(batch, obj.shape[1], 3))
    normals = to_numpy(out.obj_normals, np.float32, name=f"{what}.obj_normals", shape=(batch, obj.shape[1], 3))
    return ContactTargets(hand=hand, obj=obj, obj_points=points, obj_normals=normals, name="deepcontact",
                          hand_is_value="deepcontact" in VALUE_TARGET_THRESHOLDS)  # fmt: skip


#: Every contact source, by name (refine's ``--contact`` offers those that need no ground truth).
SOURCES: dict[str, ContactSource] = {
    "geometric": geometric_contact,
    "file": file_contact,
    "haco": haco_contact,
    "deepcontact": deepcontact_contact,
    "oracle": oracle_contact,
}
#: Sources that read the ground truth (synthetic data only).
ORACLE_SOURCES: frozenset[str] = frozenset({"oracle"})
#: ``auto``'s order, best first: the user's own targets, the learned predictors, the ground truth, the geometry.
PREFERENCE: tuple[str, ...] = ("file", "haco", "deepcontact", "oracle", "geometric")
#: The learned predictors: module with their entry point and ``DEFAULT_CHECKPOINT``.
_LEARNED = {
    "haco": ("haco_grasp.contact.predictor", "predict_hand_contact"),
    "deepcontact": ("contactopt_bridge.deepcontact", "predict_contact"),
}


def check_targets(targets: ContactTargets, batch: int, name: str) -> None:
    """A source's result is usable: a ContactTargets with a (batch, 778) hand target and/or a complete object one."""
    if not isinstance(targets, ContactTargets):
        raise InputError(f"contact source {name!r}: expected ContactTargets, got {type(targets).__name__}")
    if targets.hand is None and targets.obj is None:
        raise InputError(f"contact source {name!r}: returned neither a hand nor an object target")
    if targets.hand is not None:
        to_numpy(targets.hand, np.float32, name=f"contact source {name!r}: hand", shape=(batch, NUM_HAND_VERTS))
    if targets.obj is not None and (targets.obj_points is None or targets.obj_normals is None):
        raise InputError(f"contact source {name!r}: an object target needs obj_points and obj_normals")


def contact_targets(
    name: str,
    grasps: Sequence[Grasp],
    predictions: Sequence[HFLNetPrediction] | None = None,
    context: ContactContext | None = None,
) -> ContactTargets:
    """The targets of source ``name`` for one batch, checked (:func:`check_targets`).

    Args:
        name: a key of :data:`SOURCES`.
        grasps: the B input grasps (where the refinement starts).
        predictions: their B prediction records (real data), or None (synthetic grasps).
        context: settings and, on synthetic data, the ground truth; None: the defaults.

    Returns:
        ContactTargets of the B grasps.

    Raises:
        InputError: unknown source, or inputs the source cannot use. ContactUnavailableError: a learned source's
            module or checkpoint is missing.
    """
    if name not in SOURCES:
        raise InputError(f"contact source: unknown {name!r}; choose one of {', '.join(SOURCES)}")
    targets = SOURCES[name](grasps, predictions, context or ContactContext())
    check_targets(targets, len(grasps), name)
    return targets


def check_source(name: str, predictions: Sequence[HFLNetPrediction], context: ContactContext) -> None:
    """What would otherwise fail after hours of work: every prediction has a ``file`` target, a learned source's
    module and entry point import, a given checkpoint exists."""
    if name == "file":
        file_contact([], predictions, context)
    elif name in _LEARNED:
        _entry_point(name, *_LEARNED[name])
        if context.contact_checkpoint is not None and not Path(context.contact_checkpoint).expanduser().exists():
            raise _unavailable(name, f"checkpoint {context.contact_checkpoint} not found")


def default_checkpoint(name: str) -> Path | None:
    """The installed default checkpoint path of a learned source (None: the module does not import)."""
    try:
        checkpoint = getattr(importlib.import_module(_LEARNED[name][0]), "DEFAULT_CHECKPOINT", None)
    except ImportError:
        return None
    return None if checkpoint is None else Path(checkpoint)


def learned_contact_sources() -> list[str]:
    """The learned contact predictors whose checkpoint is installed, best first (of "haco", "deepcontact")."""
    available = []
    for name in _LEARNED:
        checkpoint = default_checkpoint(name)
        if checkpoint is not None and checkpoint.is_file():
            available.append(name)
    return available


def synthetic_contact_sources(available_only: bool = True) -> list[str]:
    """The sources usable on synthetic grasps (with their ground truth), best first: ``auto`` takes the first.

    Args:
        available_only: drop the learned predictors whose shipped checkpoint is not installed.
    """
    learned = learned_contact_sources() if available_only else list(_LEARNED)
    return [name for name in PREFERENCE if name != "file" and (name not in _LEARNED or name in learned)]


def auto_contact_source(predictions: Sequence[HFLNetPrediction], context: Any) -> tuple[str, str]:
    """What ``--contact auto`` means for these predictions: the best source they allow, and why.

    ``file`` when every prediction carries its own ``hand_contact`` (the user's targets); else ``haco`` when its
    checkpoint is installed (or given) and every prediction has a crop box and an image that exists; else
    ``deepcontact`` when its checkpoint is installed (or given); else ``geometric``.

    Args:
        predictions: the prediction records.
        context: a :class:`ContactContext` or anything with ``contact_checkpoint`` and ``dexycb`` (a RefineConfig).

    Returns:
        (source name, a short reason for the log).
    """
    if predictions and all(pred.hand_contact is not None for pred in predictions):
        return "file", "every prediction carries hand_contact"
    learned = learned_contact_sources() if context.contact_checkpoint is None else ["haco", "deepcontact"]
    if "haco" in learned:
        root = context.dexycb or os.environ.get("DEX_YCB_DIR")
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
