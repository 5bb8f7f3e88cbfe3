"""HFL-Net predictions on DexYCB: the ``hflnet.pkl`` file format (a haco_grasp definition) and its conversion to Grasps.

HFL-Net (Lin et al., CVPR 2023) writes no prediction file for DexYCB, only its scores. ``hflnet.pkl`` is this
project's format, ``format = "haco_grasp.hflnet/v1"``: a pickled dict of plain Python values and numpy arrays (read
back through :func:`haco_grasp.safe_pickle.safe_load`, so nothing else can be in it)::

    format       "haco_grasp.hflnet/v1"
    split        e.g. "s0_test"
    subset       e.g. "gsdf_test_s0_5k" or "all"
    units        "m"
    frame        "camera"
    checkpoint   identifier or hash of the HFL-Net weights
    root_source  "gt_joint0" (the wrist of the labels, HFL-Net's own evaluation oracle) or "estimated"
    crop_source  "gt" (HFL-Net's test loader crops around ground truth) or another description
    meta         optional dict of provenance (builtins only)
    samples      list of dicts, one per frame:
        dex_index        int    index into the toolkit's split (s0_test)
        sample_id        str    <subject>_<date>_<time>_<serial>_<frame:06d>
        color_file       str    path relative to the DexYCB root
        mano_side        str    "right" / "left"
        ycb_id           int    grasped object, 1..21
        hand_joints_rel  float32 (21, 3)   metres, joint 0 at the origin, camera axes, NOT mirrored
        hand_verts_rel   float32 (778, 3)  metres, relative to joint 0, camera axes, NOT mirrored
        hand_root        float32 (3,)      camera-frame wrist (joint 0), metres
        mano_pose_aa     float32 (48,)     HFL-Net's axis-angle output, flat-mean convention; for left hands in
                                           HFL-Net's mirrored (right-hand) frame
        mano_shape       float32 (10,)     predicted betas
        obj_pose         float32 (3, 4)    PnP [R | t] of the object, camera frame, metres
        obj_pnp_ok       bool              PnP succeeded (if False obj_pose is not checked)
        image_path       str | None        optional: the image the network saw
        crop_box         float32 (4,)      optional: x0, y0, x1, y1 of the crop, pixels
        hand_contact     float32 (778,)    optional: per-vertex contact in [0, 1]

The absolute hand is ``hand_verts_rel + hand_root``.

How to write it from HFL-Net (modify HFL-Net's evaluation loop; commit 60df518 of lzfff12/HFL-Net):

1. Remove the ``CUDA_VISIBLE_DEVICES`` assignment that ``traineval.py`` makes at import time, and launch the DexYCB
   test configuration (``--evaluate --resume <checkpoint> --inp_res 256 --test_batch 64``).
2. Have the DexYCB test dataset return, with each item, its key or ``color_file``; that path is what joins a
   prediction to its toolkit index (:meth:`haco_grasp.data.dexycb.DexYCB.index_of`).
3. In the evaluation branch of ``single_epoch`` (``utils/epoch.py``), right after the forward pass, move
   ``verts3d``, ``joints3d``, ``mano_pose_aa`` and ``mano_shape`` to the CPU and keep them.
4. Run the object fusion and PnP exactly as ``fuse_test`` does and keep the resulting 3x4 [R|t] (metres, original
   camera frame) and whether PnP succeeded, not only the REP/ADD scores.
5. Left hands: the network ran on the mirrored image. Negate x of ``joints3d`` and ``verts3d`` (as ``eval_hand``
   does) before storing them, keep ``mano_pose_aa`` as the network output, and store ``mano_side = "left"``.
6. Store ``hand_root``: by default the ground-truth ``joint_3d[0, 0]`` (the oracle HFL-Net's own MPJPE uses;
   ``root_source = "gt_joint0"``), or your own estimate (``root_source = "estimated"``).
7. Collect all samples and write the file once at the end, with the header above (``save_hflnet`` or a plain
   ``pickle.dump`` of the dict with protocol 4).
8. Check it: ``load_hflnet`` must accept it; the number of samples must equal the subset's; and for right hands
   MANO(``mano_pose_aa``, ``mano_shape``) re-centred at joint 0 must reproduce ``hand_verts_rel``
   (``prediction_to_grasp(...).meta["mano_fit_error_m"]`` reports the largest vertex distance;
   :func:`prediction_to_grasp` refuses a sample whose fit error exceeds :data:`MAX_FIT_ERROR_M`, 3 cm, and says so
   when the other side's model fits: a hand labelled with the wrong ``mano_side``).

Plausibility checks of :func:`load_hflnet` besides shapes and finiteness: metres, not millimetres; betas within
:data:`MAX_ABS_BETA`; each joint's rotation within :data:`MAX_JOINT_ROTATION_RAD`; ``color_file`` / ``image_path``
relative to the DexYCB root without ``..``.

Left hands become Grasps like this (:func:`prediction_to_grasp`): the MANO pose of the left hand is
``mirror_axis_angle(mano_pose_aa)`` (``(x, -y, -z)`` per joint) applied to ``MANO_LEFT.pkl`` with
``flat_hand_mean=True``; its translation places joint 0 on ``hand_root``; the stored vertices are used unchanged.
When the left model is the exact mirror image of the right one (the synthetic hand), this equals mirroring x of
the right-hand MANO output, as HFL-Net's evaluation does; the tests check both routes agree. With the official
files, ``MANO_LEFT`` is not an exact mirror, so the MANO parameters reproduce the stored vertices only
approximately (``meta["mano_fit_error_m"]``).

Conversions between the MANO pose conventions (:func:`dexycb_pca_to_flat_axis_angle`,
:func:`flat_axis_angle_to_pca`, :func:`mirror_axis_angle`) are defined in :mod:`haco_grasp.hand.conventions` and
re-exported here.

Length: over 600 lines because it defines one file format: the field-by-field description above, its
validation (one check and one error message per field) and its conversion to Grasps belong together.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from haco_grasp.atomic import atomic_write_bytes
from haco_grasp.data.grasp import Grasp, grasp_from_mano
from haco_grasp.errors import InputError
from haco_grasp.hand.conventions import (
    ManoLayerCache,
    PosedHand,
    dexycb_pca_to_flat_axis_angle,
    flat_axis_angle_to_pca,
    mirror_axis_angle,
    pose_hand,
)
from haco_grasp.objects.ycb import YCB_CLASSES, ObjectProvider, object_provider
from haco_grasp.safe_pickle import safe_load

__all__ = [
    "HFLNET_FORMAT",
    "HFLNetFile",
    "HFLNetPrediction",
    "dexycb_pca_to_flat_axis_angle",
    "flat_axis_angle_to_pca",
    "load_hflnet",
    "mirror_axis_angle",
    "prediction_to_grasp",
    "save_hflnet",
]

logger = logging.getLogger(__name__)

HFLNET_FORMAT = "haco_grasp.hflnet/v1"
ROOT_SOURCES = ("gt_joint0", "estimated")
PICKLE_PROTOCOL = 4

# Absolute values above these (metres) mean the file is in millimetres.
_MAX_REL_M = 0.5
_MAX_ABS_M = 10.0
_ROOT_TOLERANCE_M = 1e-4
# Plausible magnitudes: MANO betas of real hands lie within about +-3 (a hand with |beta| = 10 is already
# grotesque); a joint's rotation vector beyond 4 pi rad is no network output.
MAX_ABS_BETA = 10.0
MAX_JOINT_ROTATION_RAD = 4 * math.pi
#: Largest vertex distance (metres) between MANO(mano_pose_aa, mano_shape) at hand_root and the stored vertices
#: that :func:`prediction_to_grasp` accepts. The file's own MANO output fits within float32 round-off; the official
#: MANO_LEFT is not an exact mirror of MANO_RIGHT (a few millimetres); a hand labelled with the wrong side, or
#: parameters of another prediction, miss by 5-20 cm.
MAX_FIT_ERROR_M = 0.03


@dataclass
class HFLNetPrediction:
    """One HFL-Net prediction (see the module docstring for the conventions).

    Attributes:
        hand_joints_rel: (21, 3) float32, metres, root-relative, not mirrored.
        hand_verts_rel: (778, 3) float32, metres, relative to joint 0, not mirrored.
        hand_root: (3,) float32, camera-frame wrist, metres.
        mano_pose_aa: (48,) float32 axis-angle, flat-mean; mirrored (right-hand) frame for left hands.
        mano_shape: (10,) float32 betas.
        obj_pose: (3, 4) float32 [R | t], camera frame, metres.
        crop_box: (4,) float32 x0, y0, x1, y1 pixels, optional.
        hand_contact: (778,) float32 in [0, 1], optional.
    """

    dex_index: int
    sample_id: str
    color_file: str
    mano_side: Literal["right", "left"]
    ycb_id: int
    hand_joints_rel: np.ndarray
    hand_verts_rel: np.ndarray
    hand_root: np.ndarray
    mano_pose_aa: np.ndarray
    mano_shape: np.ndarray
    obj_pose: np.ndarray
    obj_pnp_ok: bool = True
    image_path: str | None = None
    crop_box: np.ndarray | None = None
    hand_contact: np.ndarray | None = None

    @property
    def hand_verts(self) -> np.ndarray:
        """(778, 3) float64 absolute hand vertices, camera frame, metres."""
        return np.asarray(self.hand_verts_rel, np.float64) + np.asarray(self.hand_root, np.float64)

    @property
    def hand_joints(self) -> np.ndarray:
        """(21, 3) float64 absolute joints, camera frame, metres."""
        return np.asarray(self.hand_joints_rel, np.float64) + np.asarray(self.hand_root, np.float64)

    def to_dict(self) -> dict[str, Any]:
        """The sample as stored in the pickle (builtins and float32 arrays only)."""
        out: dict[str, Any] = {
            "dex_index": int(self.dex_index),
            "sample_id": str(self.sample_id),
            "color_file": str(self.color_file),
            "mano_side": str(self.mano_side),
            "ycb_id": int(self.ycb_id),
            "obj_pnp_ok": bool(self.obj_pnp_ok),
            "image_path": None if self.image_path is None else str(self.image_path),
        }
        for name in ("hand_joints_rel", "hand_verts_rel", "hand_root", "mano_pose_aa", "mano_shape", "obj_pose"):
            out[name] = np.ascontiguousarray(np.asarray(getattr(self, name)), dtype=np.float32)
        for name in ("crop_box", "hand_contact"):
            value = getattr(self, name)
            out[name] = None if value is None else np.ascontiguousarray(np.asarray(value), dtype=np.float32)
        return out


@dataclass
class HFLNetFile:
    """A whole ``hflnet.pkl``: header fields and the samples (see the module docstring)."""

    samples: list[HFLNetPrediction] = field(default_factory=list)
    split: str = "s0_test"
    subset: str = "all"
    checkpoint: str = ""
    root_source: str = "gt_joint0"
    crop_source: str = "gt"
    units: str = "m"
    frame: str = "camera"
    format: str = HFLNET_FORMAT
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    def by_index(self) -> dict[int, HFLNetPrediction]:
        """Samples keyed by toolkit index (``dex_index``)."""
        return {int(s.dex_index): s for s in self.samples}

    def to_dict(self) -> dict[str, Any]:
        """The file as stored in the pickle."""
        return {
            "format": self.format,
            "split": self.split,
            "subset": self.subset,
            "units": self.units,
            "frame": self.frame,
            "checkpoint": self.checkpoint,
            "root_source": self.root_source,
            "crop_source": self.crop_source,
            "meta": dict(self.meta),
            "samples": [s.to_dict() for s in self.samples],
        }


# ----------------------------------------------------------------------------------------------- validation
_HEADER_STR = ("split", "subset", "checkpoint", "root_source", "crop_source")
_REQUIRED_SAMPLE = (
    "dex_index",
    "sample_id",
    "color_file",
    "mano_side",
    "ycb_id",
    "hand_joints_rel",
    "hand_verts_rel",
    "hand_root",
    "mano_pose_aa",
    "mano_shape",
    "obj_pose",
    "obj_pnp_ok",
)
_OPTIONAL_SAMPLE = ("image_path", "crop_box", "hand_contact")

# field -> (shape, what it holds, how to fix)
_ARRAY_FIELDS: dict[str, tuple[tuple[int, ...], str, str]] = {
    "hand_joints_rel": ((21, 3), "metres", "store HFL-Net's joints3d for this sample (root-relative, metres)"),
    "hand_verts_rel": ((778, 3), "metres", "store HFL-Net's verts3d for this sample (root-relative, metres)"),
    "hand_root": ((3,), "metres", "store the camera-frame wrist, e.g. the labels' joint_3d[0, 0]"),
    "mano_pose_aa": ((48,), "radians", "store HFL-Net's mano_pose_aa (global + 15 joints, flat-mean axis-angle)"),
    "mano_shape": ((10,), "betas", "store HFL-Net's mano_shape (10 betas)"),
    "obj_pose": ((3, 4), "[R|t] metres", "store the PnP result as a 3x4 [R|t] matrix, translation in metres"),
    "crop_box": ((4,), "pixels x0,y0,x1,y1", "store (x0, y0, x1, y1) in pixels, or None"),
    "hand_contact": ((778,), "in [0, 1]", "store one contact value per MANO vertex, or None"),
}


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {tuple(value.shape)}" if value.dtype.kind not in "fiu" else str(tuple(value.shape))
    return type(value).__name__


def _fail(where: str, name: str, expected: str, got: str, fix: str) -> InputError:
    return InputError(f"{where}.{name}: expected {expected}, got {got}; {fix}")


def _float_array(where: str, name: str, value: Any) -> np.ndarray:
    shape, unit, fix = _ARRAY_FIELDS[name]
    expected = f"float {shape} {unit}"
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise _fail(where, name, expected, _describe(value), fix)
    if value.shape != shape:
        raise _fail(where, name, expected, str(tuple(value.shape)), fix)
    array = value.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise _fail(where, name, f"finite {expected}", "NaN or inf values", fix)
    return array


def _check_metres(where: str, name: str, array: np.ndarray, limit: float) -> None:
    largest = float(np.abs(array).max()) if array.size else 0.0
    if largest > limit:
        raise _fail(
            where,
            name,
            f"metres (|values| <= {limit:g})",
            f"values up to {largest:.4g}",
            "these look like millimetres: divide by 1000",
        )


def _parse_sample(where: str, raw: Any) -> HFLNetPrediction:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a dict of per-sample fields, got {type(raw).__name__}")
    missing = [k for k in _REQUIRED_SAMPLE if k not in raw]
    if missing:
        raise _fail(
            where, missing[0], "a value", "a missing key", f"add it (required keys: {', '.join(_REQUIRED_SAMPLE)})"
        )
    unknown = sorted(str(k) for k in raw if k not in _REQUIRED_SAMPLE and k not in _OPTIONAL_SAMPLE)
    if unknown:
        raise _fail(
            where,
            unknown[0],
            "no extra keys",
            "an unknown key",
            f"remove it or rename it to one of {', '.join(_REQUIRED_SAMPLE + _OPTIONAL_SAMPLE)}",
        )

    dex_index = raw["dex_index"]
    if isinstance(dex_index, (bool, np.bool_)) or not isinstance(dex_index, (int, np.integer)) or dex_index < 0:
        raise _fail(where, "dex_index", "an int >= 0", repr(dex_index), "store the toolkit index of the sample")
    for name in ("sample_id", "color_file"):
        if not isinstance(raw[name], str) or not raw[name]:
            raise _fail(where, name, "a non-empty str", _describe(raw[name]), "store the DexYCB path / id as text")
    color_file = raw["color_file"]
    if color_file.startswith("/") or (len(color_file) > 1 and color_file[1] == ":"):
        raise _fail(
            where, "color_file", "a path relative to the DexYCB root", repr(color_file), "strip the DexYCB root prefix"
        )
    side = raw["mano_side"]
    if side not in ("right", "left"):
        raise _fail(where, "mano_side", "'right' or 'left'", repr(side), "store the sample's mano_side")
    ycb_id = raw["ycb_id"]
    if isinstance(ycb_id, (bool, np.bool_)) or not isinstance(ycb_id, (int, np.integer)) or ycb_id not in YCB_CLASSES:
        raise _fail(where, "ycb_id", "an int in 1..21", repr(ycb_id), "store ycb_ids[ycb_grasp_ind]")
    pnp_ok = raw["obj_pnp_ok"]
    if not isinstance(pnp_ok, (bool, np.bool_)):
        raise _fail(where, "obj_pnp_ok", "a bool", _describe(pnp_ok), "store whether PnP succeeded")
    image_path = raw.get("image_path")
    if image_path is not None and not isinstance(image_path, str):
        raise _fail(where, "image_path", "a str or None", _describe(image_path), "store the image path as text")
    for name, value in (("color_file", color_file), ("image_path", image_path)):
        if value is None:
            continue
        parts = value.replace("\\", "/").split("/")
        absolute = value.startswith(("/", "\\", "~")) or (len(value) > 1 and value[1] == ":")
        if absolute or ".." in parts or "\0" in value:
            raise _fail(
                where,
                name,
                "a path inside the DexYCB root (relative, no '..')",
                repr(value),
                "store the path relative to the DexYCB root",
            )

    arrays: dict[str, Any] = {}
    for name in _ARRAY_FIELDS:
        optional = name in _OPTIONAL_SAMPLE
        value = raw.get(name)
        arrays[name] = None if (optional and value is None) else _float_array(where, name, value)
    for name in ("hand_joints_rel", "hand_verts_rel"):
        _check_metres(where, name, arrays[name], _MAX_REL_M)
    _check_metres(where, "hand_root", arrays["hand_root"], _MAX_ABS_M)
    largest_beta = float(np.abs(arrays["mano_shape"]).max())
    if largest_beta > MAX_ABS_BETA:
        raise _fail(
            where,
            "mano_shape",
            f"MANO betas with |beta| <= {MAX_ABS_BETA:g} (real hands: within about 3)",
            f"|beta| up to {largest_beta:.4g}",
            "store HFL-Net's predicted betas, not a scaled or garbage vector",
        )
    rotation_norms = np.linalg.norm(arrays["mano_pose_aa"].astype(np.float64).reshape(16, 3), axis=1)
    if float(rotation_norms.max()) > MAX_JOINT_ROTATION_RAD:
        joint = int(rotation_norms.argmax())
        raise _fail(
            where,
            "mano_pose_aa",
            f"axis-angle rotations of at most {MAX_JOINT_ROTATION_RAD:.4g} rad per joint",
            f"{rotation_norms[joint]:.4g} rad at joint {joint}",
            "store radians (not degrees) of HFL-Net's mano_pose_aa",
        )
    root_joint = arrays["hand_joints_rel"][0]
    if float(np.abs(root_joint).max()) > _ROOT_TOLERANCE_M:
        raise _fail(
            where,
            "hand_joints_rel",
            "root-relative joints (joint 0 at the origin)",
            f"joint 0 at {[round(float(v), 5) for v in root_joint]} m",
            "subtract joint 0 from the joints and vertices and store it as hand_root",
        )
    if bool(pnp_ok):
        pose = arrays["obj_pose"].astype(np.float64)
        _check_metres(where, "obj_pose", pose[:, 3], _MAX_ABS_M)
        rotation = pose[:, :3]
        error = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
        if error > 1e-3 or np.linalg.det(rotation) <= 0:
            raise _fail(
                where,
                "obj_pose",
                "a rotation in [:, :3] (R R^T = I, det +1)",
                f"|R R^T - I| = {error:.3g}, det {np.linalg.det(rotation):.3g}",
                "store the PnP rotation matrix, or set obj_pnp_ok False",
            )
    box = arrays["crop_box"]
    if box is not None and not (box[2] > box[0] and box[3] > box[1]):
        raise _fail(where, "crop_box", "x1 > x0 and y1 > y0", str(box.tolist()), "store (x0, y0, x1, y1) in pixels")
    contact = arrays["hand_contact"]
    if contact is not None and (contact.min() < 0 or contact.max() > 1):
        raise _fail(
            where,
            "hand_contact",
            "values in [0, 1]",
            f"range [{contact.min():.3g}, {contact.max():.3g}]",
            "store probabilities, not logits",
        )
    return HFLNetPrediction(
        dex_index=int(dex_index),
        sample_id=raw["sample_id"],
        color_file=color_file,
        mano_side=side,
        ycb_id=int(ycb_id),
        hand_joints_rel=arrays["hand_joints_rel"],
        hand_verts_rel=arrays["hand_verts_rel"],
        hand_root=arrays["hand_root"],
        mano_pose_aa=arrays["mano_pose_aa"],
        mano_shape=arrays["mano_shape"],
        obj_pose=arrays["obj_pose"],
        obj_pnp_ok=bool(pnp_ok),
        image_path=image_path,
        crop_box=box,
        hand_contact=contact,
    )


def _parse_file(raw: Any, label: str) -> HFLNetFile:
    if not isinstance(raw, dict):
        raise InputError(f"{label}: expected a dict with a 'format' header and 'samples', got {type(raw).__name__}")
    fmt = raw.get("format")
    if fmt != HFLNET_FORMAT:
        raise InputError(
            f"{label}: header 'format' expected {HFLNET_FORMAT!r}, got {fmt!r}; write the file with save_hflnet "
            "or follow the recipe in haco_grasp.data.hflnet"
        )
    known = {"format", "units", "frame", "samples", "meta", *_HEADER_STR}
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise InputError(f"{label}: unknown header key {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
    if raw.get("units") != "m":
        raise InputError(f"{label}: header 'units' expected 'm', got {raw.get('units')!r}; convert to metres")
    if raw.get("frame") != "camera":
        raise InputError(f"{label}: header 'frame' expected 'camera', got {raw.get('frame')!r}")
    for key in _HEADER_STR:
        if not isinstance(raw.get(key), str):
            raise InputError(f"{label}: header {key!r} expected a str, got {_describe(raw.get(key))}; add it")
    if raw["root_source"] not in ROOT_SOURCES:
        raise InputError(f"{label}: header 'root_source' expected one of {ROOT_SOURCES}, got {raw['root_source']!r}")
    meta = raw.get("meta", {})
    if not isinstance(meta, dict):
        raise InputError(f"{label}: header 'meta' expected a dict, got {_describe(meta)}")
    samples = raw.get("samples")
    if not isinstance(samples, list):
        raise InputError(f"{label}: 'samples' expected a list of per-sample dicts, got {_describe(samples)}")
    parsed = [_parse_sample(f"{label}: samples[{i}]", s) for i, s in enumerate(samples)]
    seen: dict[int, int] = {}
    for i, sample in enumerate(parsed):
        if sample.dex_index in seen:
            raise InputError(
                f"{label}: samples[{i}].dex_index: expected unique indices, got {sample.dex_index} again "
                f"(also samples[{seen[sample.dex_index]}]); drop the duplicate"
            )
        seen[sample.dex_index] = i
    return HFLNetFile(
        samples=parsed,
        split=raw["split"],
        subset=raw["subset"],
        checkpoint=raw["checkpoint"],
        root_source=raw["root_source"],
        crop_source=raw["crop_source"],
        units="m",
        frame="camera",
        format=HFLNET_FORMAT,
        meta=dict(meta),
    )


def load_hflnet(path: str | os.PathLike) -> HFLNetFile:
    """Read and validate an ``hflnet.pkl`` (restricted unpickler: numpy arrays and Python builtins only).

    Args:
        path: the pickle file.

    Returns:
        HFLNetFile with every field checked (arrays as float32).

    Raises:
        AssetError: the file does not exist.
        UnsafePickleError: the pickle names a class or function outside numpy / builtins.
        InputError: a header or sample field is missing or malformed; the one-line message names the sample,
            the field, what was expected and received, and the fix.
    """
    return _parse_file(safe_load(path), str(path))


def save_hflnet(file: HFLNetFile, path: str | os.PathLike) -> Path:
    """Validate and write an ``hflnet.pkl`` atomically (pickle protocol 4, numpy arrays and builtins only).

    Args:
        file: the predictions.
        path: output file (its folder is created).

    Returns:
        The written path.
    """
    if not isinstance(file, HFLNetFile):
        raise InputError(f"file: expected an HFLNetFile, got {type(file).__name__}")
    raw = file.to_dict()
    _parse_file(raw, "<HFLNetFile>")  # refuse to write what load_hflnet would refuse
    return atomic_write_bytes(path, pickle.dumps(raw, protocol=PICKLE_PROTOCOL))


# ----------------------------------------------------------------------------------------------- to Grasp
def prediction_mano_params(pred: HFLNetPrediction, layer_cache: ManoLayerCache) -> dict[str, np.ndarray]:
    """MANO parameters of the predicted hand for its own side, flat-mean convention, placed at ``hand_root``.

    Left hands: ``mirror_axis_angle(mano_pose_aa)`` for ``MANO_LEFT`` (HFL-Net predicts in the mirrored frame).
    The translation puts joint 0 of the posed hand on ``hand_root``:
    ``transl = hand_root - joint0(MANO(pose, betas, transl=0))``.

    Returns:
        global_orient (3,), hand_pose (45,) radians, betas (10,), transl (3,) metres; float64.
    """
    pose = np.asarray(pred.mano_pose_aa, np.float64)
    if pred.mano_side == "left":
        pose = np.asarray(mirror_axis_angle(pose))
    params = {
        "global_orient": pose[:3].copy(),
        "hand_pose": pose[3:].copy(),
        "betas": np.asarray(pred.mano_shape, np.float64).copy(),
        "transl": np.zeros(3),
    }
    at_origin = pose_hand(layer_cache.layer(pred.mano_side), params)
    params["transl"] = np.asarray(pred.hand_root, np.float64) - at_origin.joints[0]
    return params


def _fit_error(pred: HFLNetPrediction, layer_cache: ManoLayerCache, error: float, tolerance: float) -> InputError:
    """The error for a prediction whose MANO parameters miss its vertices; says so when the other side fits."""
    where = f"sample {pred.sample_id!r} (dex_index {pred.dex_index})"
    other = "left" if pred.mano_side == "right" else "right"
    try:
        swapped = HFLNetPrediction(**{**pred.__dict__, "mano_side": other})
        params = prediction_mano_params(swapped, layer_cache)
        other_error = float(np.linalg.norm(pose_hand(layer_cache.layer(other), params).verts - pred.hand_verts,
                                           axis=1).max())  # fmt: skip
    except Exception:  # noqa: BLE001 - the other model may be missing; then there is no hint to give
        other_error = math.inf
    if other_error <= tolerance:
        return InputError(
            f"{where}.mano_side: says {pred.mano_side!r} but its vertices fit a {other} hand (MANO fit error "
            f"{error:.3g} m as {pred.mano_side}, {other_error:.3g} m as {other}; tolerance {tolerance:g} m); store "
            f"mano_side {other!r}"
        )
    return InputError(
        f"{where}: MANO(mano_pose_aa, mano_shape) misses hand_verts_rel by up to {error:.4g} m (tolerance "
        f"{tolerance:g} m); the parameters and vertices disagree (wrong units, another sample's values, or a wrong "
        "mano_side); store the network's own outputs for this sample"
    )


def prediction_to_grasp(
    pred: HFLNetPrediction,
    layer_cache: ManoLayerCache,
    models_root: str | os.PathLike | ObjectProvider | None = None,
    *,
    hand_verts_from: Literal["prediction", "mano"] = "prediction",
    contact_threshold: float = 0.01,
    max_fit_error_m: float | None = MAX_FIT_ERROR_M,
) -> Grasp:
    """An HFL-Net prediction as a :class:`Grasp` in the camera frame (metres).

    Hand: ``hand_verts = hand_verts_rel + hand_root`` (or, with ``hand_verts_from="mano"``, the MANO output of
    the parameters); MANO parameters from :func:`prediction_mano_params` (left hands: MANO_LEFT with the mirrored
    axis-angle). Object: the YCB model of ``ycb_id`` posed by ``obj_pose`` (rotation ``[:, :3]``, translation
    ``[:, 3]``). Contact: the stored ``hand_contact`` rounded to {0, 1} if present, else hand vertices within
    ``contact_threshold`` of the posed object.

    Args:
        pred: one prediction.
        layer_cache: MANO models (must hold the side of the prediction).
        models_root: DexYCB ``models`` folder, a callable ``ycb_id -> ObjectMesh``, or None (``$DEX_YCB_DIR``).
        hand_verts_from: which hand vertices / joints the Grasp carries.
        contact_threshold: metres.
        max_fit_error_m: refuse a prediction whose MANO parameters miss its stored vertices by more than this
            (metres, :data:`MAX_FIT_ERROR_M`); None accepts any fit.

    Returns:
        Grasp; ``meta`` holds ``source="hflnet"``, ``dex_index``, ``sample_id``, ``color_file``, ``obj_pnp_ok``,
        ``mano_fit_error_m`` (largest distance between the MANO output and the stored vertices) and
        ``contact_source``.
    """
    if not isinstance(pred, HFLNetPrediction):
        raise InputError(f"pred: expected an HFLNetPrediction (from load_hflnet), got {type(pred).__name__}")
    if hand_verts_from not in ("prediction", "mano"):
        raise InputError(f"hand_verts_from: expected 'prediction' or 'mano', got {hand_verts_from!r}")
    if not (isinstance(contact_threshold, (int, float)) and math.isfinite(contact_threshold) and contact_threshold > 0):
        raise InputError(f"contact_threshold: expected a positive number of metres, got {contact_threshold!r}")
    params = prediction_mano_params(pred, layer_cache)
    layer = layer_cache.layer(pred.mano_side)
    mano = pose_hand(layer, params)
    stored_verts, stored_joints = pred.hand_verts, pred.hand_joints
    fit_error = float(np.linalg.norm(mano.verts - stored_verts, axis=1).max())
    if max_fit_error_m is not None and not fit_error <= max_fit_error_m:
        raise _fit_error(pred, layer_cache, fit_error, max_fit_error_m)
    if hand_verts_from == "prediction":
        verts, joints = stored_verts, stored_joints
    else:
        verts, joints = mano.verts, mano.joints

    contact_source = "prediction" if pred.hand_contact is not None else f"geometry<{contact_threshold:g}m"
    return grasp_from_mano(
        params,
        layer,
        object_provider(models_root)(pred.ycb_id),
        pred.obj_pose,
        hand=PosedHand(verts, joints),
        hand_contact=pred.hand_contact,
        contact_threshold=contact_threshold,
        object_id=pred.ycb_id,
        meta={
            "source": "hflnet",
            "dex_index": int(pred.dex_index),
            "sample_id": pred.sample_id,
            "color_file": pred.color_file,
            "obj_pnp_ok": bool(pred.obj_pnp_ok),
            "mano_fit_error_m": fit_error,
            "contact_source": contact_source,
        },
    )
