"""The ``refined.pkl`` format of ``haco-grasp refine``: :class:`RefinedSample`, :class:`RefinedFile`,
:func:`load_refined`, and the records a batch writes (:func:`records`).

``<out>`` (format ``"haco_grasp.refined/v1"``, a pickled dict of builtins and numpy arrays, readable with
:func:`haco_grasp.safe_pickle.safe_load` and :func:`load_refined`)::

    format, source_file, source_sha256, source_checkpoint, split, preset, contact_source, contact_oracle,
    config (RefineConfig as a dict), optimize_config (the resolved OptimizeConfig), versions, date (UTC ISO),
    world_size, n_samples, metrics (None, or {"input": summary, "refined": summary, ...} with --dexycb),
    frame_metrics (per-frame rows, :mod:`haco_grasp.refine.frames`)
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
        contact_oracle bool (the target came from ground truth; the header's flag is True if any sample's is),
        loss_history (term -> (T,) float32, the chosen restart's weighted terms per iteration)

``<out>.config.json`` (:func:`write_config_json`) holds the resolved configuration.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from haco_grasp.arrays import to_numpy
from haco_grasp.atomic import atomic_write_bytes
from haco_grasp.errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from haco_grasp.data.hflnet import HFLNetPrediction
    from haco_grasp.optimize.optimizer import OptimizeResult
    from haco_grasp.targets import ContactTargets

__all__ = ["PICKLE_PROTOCOL", "REFINED_FORMAT", "RefinedFile", "RefinedSample", "load_refined", "records"]

REFINED_FORMAT = "haco_grasp.refined/v1"
PICKLE_PROTOCOL = 4
NUM_HAND_VERTS = 778

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
    """One refined sample of ``refined.pkl`` (the module docstring states the conventions).

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

        def checked(value: Any, what: str, shape: tuple[int | None, ...]) -> np.ndarray:
            return to_numpy(value, np.float32, name=f"{where}.{what}", shape=shape)

        for name, shape in _ARRAY_SHAPES.items():
            values[name] = checked(raw[name], name, shape)
        for name, shape in _TARGET_SHAPES.items():
            values[name] = None if raw[name] is None else checked(raw[name], name, shape)
        if raw["mano_side"] not in ("right", "left"):
            raise InputError(f"{where}.mano_side: expected 'right' or 'left', got {raw['mano_side']!r}")
        history = raw.get("loss_history")
        if history is not None:
            if not isinstance(history, dict):
                raise InputError(f"{where}.loss_history: expected a dict term -> (T,) array, got {type(history)}")
            values["loss_history"] = {str(k): checked(v, f"loss_history[{k!r}]", (None,)) for k, v in history.items()}
        known = {item.name for item in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class RefinedFile:
    """A whole ``refined.pkl``: the header and the samples (the module docstring lists the fields)."""

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


def records(
    predictions: Sequence[HFLNetPrediction], result: OptimizeResult, targets: ContactTargets, seconds: float
) -> list[dict[str, Any]]:
    """Per-sample ``refined.pkl`` records of one optimizer call (numpy float32 arrays, builtins).

    Args:
        predictions: the B predictions of the batch, in the optimizer's order.
        result: the optimizer's output for them.
        targets: the contact targets used.
        seconds: wall time of the batch (grasps, contact and optimisation); each record gets its share.

    Returns:
        B dicts, :meth:`RefinedSample.to_dict` of each sample.
    """

    def f32(value: Any) -> np.ndarray:
        return np.ascontiguousarray(to_numpy(value), np.float32)

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


def versions() -> dict[str, str]:
    """Versions of the toolkit (and its git commit), Python, torch and numpy, for the output's provenance."""
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


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_config_json(out: Path, payload: dict[str, Any]) -> Path:
    """``<out>.config.json``: the run's resolved configuration (``payload``) with the versions and date added."""
    path = out.with_name(out.name + ".config.json")
    full = {**payload, "versions": versions(), "date": now()}
    return atomic_write_bytes(path, json.dumps(full, indent=1, default=str).encode())
