"""DexYCB in the layout of NVlabs' dex-ycb-toolkit, read without the toolkit, as :class:`~haco_grasp.data.Grasp` s.

Directory layout (under ``root``, else ``$DEX_YCB_DIR``)::

    <subject>/<sequence>/meta.yml                 serials, num_frames, ycb_ids, ycb_grasp_ind, mano_sides, mano_calib
    <subject>/<sequence>/pose.npz                 per-sequence pose_y / pose_m (world frame; not read here)
    <subject>/<sequence>/<serial>/color_%06d.jpg
    <subject>/<sequence>/<serial>/labels_%06d.npz seg, pose_y (n_obj, 3, 4), pose_m (1, 51), joint_3d (1, 21, 3),
                                                  joint_2d (1, 21, 2); camera frame, metres / pixels
    calibration/intrinsics/<serial>_640x480.yml   color: {fx, fy, ppx, ppy}
    calibration/mano_<mano_calib>/mano.yml        betas: 10 floats
    models/<ycb name>/textured_simple.obj         metres, object frame of pose_y

Split s0 (the toolkit's ``dex_ycb.py``; ``subject`` and ``serial`` indices refer to :data:`DEX_YCB_SUBJECTS` and
:data:`DEX_YCB_SERIALS`, ``sequence`` to the position of the sequence folder in the sorted listing of its subject)::

    s0_train   subjects 0-9   all 8 cameras   sequence % 5 != 4
    s0_val     subjects 0-1   all 8 cameras   sequence % 5 == 4
    s0_test    subjects 2-9   all 8 cameras   sequence % 5 == 4

Sample order (the toolkit's index): subject, then sequence, then camera, then frame (cameras vary slower than
frames). ``DexYCB(...)[i]`` is the i-th sample of the chosen *subset*; ``sample.index`` is its toolkit index into
the whole split, the index gSDF/HACO split files and ``hflnet.pkl`` use.

Subsets:

- ``"all"``: every sample of the split (frames without a hand included, as the toolkit counts them).
- ``"gsdf"``: the rule of gSDF's / HACO's lists (``test_s0_5k.json``, ``train_s0_29k.json``): right hands only,
  every 5th frame (``frame % 5 == 0``). For ``s0_test`` this is the rule the reference gives for the 5,928-sample
  list; the count could not be verified here (no dataset). gSDF's train list is further limited to samples with
  SDF data, so for ``s0_train`` the rule reproduces its 29,656 entries only approximately.
- ``subset_file=PATH``: a JSON list of toolkit indices (the exact route: pass the list gSDF/HACO ship).

``strict=True`` (default) checks the dataset is complete like the toolkit does (every split subject present, 100
sequences each, all 8 cameras), so indices equal the toolkit's. ``strict=False`` accepts partial copies and
miniatures (:mod:`haco_grasp.data.mini_dexycb`): absent subjects are skipped, any number of sequences is allowed and
the cameras of a sequence are the split's serials listed in its ``meta.yml``; indices then match the toolkit only if
the copy is complete.

MANO (as the toolkit's ``layers/mano_layer.py``): manopth with ``use_pca=True``, 45 components,
``flat_hand_mean=False``, per-subject betas, translation ``pose_m[0, 48:51]``, 21 joints in the order of
:mod:`haco_grasp.hand.joints`, metres. :class:`~haco_grasp.data.Grasp` stores MANO in the flat-mean axis-angle
convention, so the finger pose is converted by :func:`dexycb_pca_to_flat_axis_angle`:
``hand_pose = pose_m[0, 3:48] @ hands_components + hands_mean`` (the global orientation and translation are
unchanged); a flat-mean layer given that pose gives the same mesh as the toolkit's PCA layer. Left hands use
``MANO_LEFT.pkl`` with that model's own components and mean; nothing is mirrored.
The MANO conventions (:class:`~haco_grasp.hand.conventions.ManoLayerCache`, :func:`pose_hand`, the PCA and
mirror conversions) live in :mod:`haco_grasp.hand.conventions`, the YCB mesh cache (:func:`object_provider`) in
:mod:`haco_grasp.objects.ycb`; this module uses them.

Object and contact of :meth:`DexYCBSample.to_grasp`: ``models/<ycb>/textured_simple.obj`` of
``ycb_ids[ycb_grasp_ind]`` posed by ``pose_y[ycb_grasp_ind]`` (camera frame); ``hand_contact`` from
:func:`hand_contact` at 1 cm (HACO's distance rule, plus vertices inside the object; see
:mod:`haco_grasp.geometry.labels`). Model files are read once per folder and process (:func:`object_provider`).

Length: over 600 lines because it is one reader whose docstring states the layout, split and subset rules it
implements, and that validates every file it opens (units, ranges, missing keys) with an error naming the fix; the
MANO conventions and the YCB mesh cache it uses live in their own modules.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from haco_grasp.data.grasp import Grasp, grasp_from_mano
from haco_grasp.errors import AssetError, InputError
from haco_grasp.hand.conventions import (
    ManoLayerCache,
    PosedHand,
    dexycb_pca_to_flat_axis_angle,
    flat_axis_angle_to_pca,
    mirror_axis_angle,
    pose_hand,
)
from haco_grasp.objects.ycb import YCB_CLASSES, ObjectProvider, YCBMeshCache, object_provider

# The MANO conventions and the YCB mesh cache live in hand/conventions.py and objects/ycb.py; the names this module
# exported before they moved stay importable from here (and listed in __all__) for existing code.
__all__ = [
    "DEX_YCB_ENV",
    "DEX_YCB_SERIALS",
    "DEX_YCB_SUBJECTS",
    "S0_SPLITS",
    "DexYCB",
    "DexYCBSample",
    "Intrinsics",
    "ManoLayerCache",
    "ObjectProvider",
    "PosedHand",
    "YCBMeshCache",
    "dexycb_pca_to_flat_axis_angle",
    "flat_axis_angle_to_pca",
    "hand_contact",
    "mirror_axis_angle",
    "object_provider",
    "pose_hand",
    "read_intrinsics",
    "read_mano_betas",
    "resolve_dexycb_root",
]

logger = logging.getLogger(__name__)

Side = Literal["right", "left"]
ArrayLike = np.ndarray | torch.Tensor

DEX_YCB_ENV = "DEX_YCB_DIR"

#: Subject folders in the toolkit's order (``_SUBJECTS``).
DEX_YCB_SUBJECTS: tuple[str, ...] = (
    "20200709-subject-01",
    "20200813-subject-02",
    "20200820-subject-03",
    "20200903-subject-04",
    "20200908-subject-05",
    "20200918-subject-06",
    "20200928-subject-07",
    "20201002-subject-08",
    "20201015-subject-09",
    "20201022-subject-10",
)

#: Camera serials in the toolkit's order (``_SERIALS``).
DEX_YCB_SERIALS: tuple[str, ...] = (
    "836212060125",
    "839512060362",
    "840412060917",
    "841412060263",
    "932122060857",
    "932122060861",
    "932122061900",
    "932122062010",
)

#: Number of sequence folders per subject in the full dataset (the toolkit asserts it).
SEQUENCES_PER_SUBJECT = 100


class _SplitRule(NamedTuple):
    """Which subjects, cameras and sequence positions a split takes."""

    subjects: tuple[int, ...]
    serials: tuple[int, ...]
    test_sequences: bool  # True: sequence % 5 == 4; False: sequence % 5 != 4


#: The s0 rule: split name -> (subject indices, serial indices, which sequences).
S0_SPLITS: dict[str, _SplitRule] = {
    "s0_train": _SplitRule(tuple(range(10)), tuple(range(8)), False),
    "s0_val": _SplitRule((0, 1), tuple(range(8)), True),
    "s0_test": _SplitRule(tuple(range(2, 10)), tuple(range(8)), True),
}

_LAYOUT_HINT = (
    "<subject>/<sequence>/meta.yml, <subject>/<sequence>/<serial>/labels_%06d.npz, calibration/intrinsics/"
    "<serial>_640x480.yml, calibration/mano_<name>/mano.yml, models/<ycb>/textured_simple.obj "
    "(download from https://dex-ycb.github.io)"
)


# ----------------------------------------------------------------------------------------------- limits, contact
#: Plausibility limits of DexYCB values: betas, pose_m's rotation / PCA coefficients, positions in metres.
MAX_ABS_BETA = 10.0
MAX_ABS_POSE_PCA = 50.0
MAX_ABS_LABEL_M = 20.0


def hand_contact(
    hand_verts: np.ndarray, obj_verts: np.ndarray, obj_faces: np.ndarray, threshold: float = 0.01
) -> np.ndarray:
    """The toolkit's hand contact labels, :func:`haco_grasp.geometry.labels.hand_contact_labels`, as float64.

    A vertex is in contact when its unsigned distance to the object surface is below ``threshold`` (HACO's rule,
    strict "<") or when it lies inside the (closed) object; see that module for why inside vertices count.

    Args:
        hand_verts: (V, 3) float, metres.
        obj_verts: (Vo, 3) float, metres, same frame.
        obj_faces: (Fo, 3) int.
        threshold: metres (DexYCB: 0.01).

    Returns:
        labels: (V,) float64 in {0, 1}.
    """
    from haco_grasp.geometry.labels import hand_contact_labels

    labels = hand_contact_labels(hand_verts, obj_verts, obj_faces, threshold=threshold)
    return np.asarray(labels, dtype=np.float64).reshape(-1)


# ----------------------------------------------------------------------------------------------- file readers
def _read_yaml(path: Path) -> Any:
    import yaml

    if not path.is_file():
        raise AssetError(f"DexYCB file not found: {path}; expected layout {_LAYOUT_HINT}")
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as error:
        reason = str(error).replace("\n", " ")
        raise InputError(f"{path}: not valid YAML ({reason}); re-download the file") from None


def _require(mapping: Any, key: str, path: Path, expected: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise InputError(f"{path}: missing key {key!r} ({expected}); the file looks malformed")
    return mapping[key]


class Intrinsics(NamedTuple):
    """Pinhole intrinsics of a DexYCB colour camera (640 x 480), pixels."""

    fx: float
    fy: float
    ppx: float
    ppy: float

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix."""
        return np.array([[self.fx, 0.0, self.ppx], [0.0, self.fy, self.ppy], [0.0, 0.0, 1.0]])


def read_intrinsics(path: str | os.PathLike) -> Intrinsics:
    """Read ``calibration/intrinsics/<serial>_640x480.yml`` (``color: {fx, fy, ppx, ppy}``)."""
    path = Path(path)
    data = _read_yaml(path)
    color = _require(data, "color", path, "a mapping with fx, fy, ppx, ppy")
    values = []
    for key in ("fx", "fy", "ppx", "ppy"):
        value = _require(color, key, path, "a number, pixels")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise InputError(f"{path}: key 'color.{key}' must be a finite number (pixels), got {value!r}")
        values.append(float(value))
    if values[0] <= 0 or values[1] <= 0:
        raise InputError(f"{path}: focal lengths must be positive, got fx={values[0]}, fy={values[1]}")
    return Intrinsics(*values)


def read_mano_betas(path: str | os.PathLike) -> np.ndarray:
    """Read ``calibration/mano_<name>/mano.yml``.

    Returns:
        betas: (10,) float64 MANO shape coefficients.
    """
    path = Path(path)
    betas = _require(_read_yaml(path), "betas", path, "a list of 10 numbers")
    try:
        array = np.asarray(betas, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: key 'betas' must be a list of 10 numbers, got {betas!r}") from None
    if array.shape != (10,) or not np.all(np.isfinite(array)):
        raise InputError(f"{path}: key 'betas' must be 10 finite numbers, got shape {array.shape}")
    if float(np.abs(array).max()) > MAX_ABS_BETA:
        raise InputError(
            f"{path}: key 'betas' reaches {float(np.abs(array).max()):.4g}, expected |beta| <= {MAX_ABS_BETA:g} (real "
            "hands lie within about 3); re-download the calibration file"
        )
    return array


@dataclass(frozen=True)
class _Sequence:
    subject: str
    name: str  # "<date>_<time>"
    serial_ids: tuple[int, ...]  # indices into DEX_YCB_SERIALS, camera order of the mapping
    num_frames: int
    ycb_ids: tuple[int, ...]
    ycb_grasp_ind: int
    mano_side: Side
    mano_calib: str


def _read_meta(path: Path) -> dict[str, Any]:
    meta = _read_yaml(path)
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a YAML mapping, got {type(meta).__name__}")
    serials = _require(meta, "serials", path, "list of camera serials")
    num_frames = _require(meta, "num_frames", path, "number of frames")
    ycb_ids = _require(meta, "ycb_ids", path, "list of YCB object ids")
    grasp_ind = _require(meta, "ycb_grasp_ind", path, "index of the grasped object in ycb_ids")
    sides = _require(meta, "mano_sides", path, "list holding 'right' or 'left'")
    calib = _require(meta, "mano_calib", path, "list holding the MANO calibration name")
    if not isinstance(serials, list) or not all(isinstance(s, (str, int)) for s in serials):
        raise InputError(f"{path}: key 'serials' must be a list of serial strings, got {serials!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise InputError(f"{path}: key 'num_frames' must be a positive int, got {num_frames!r}")
    if (
        not isinstance(ycb_ids, list)
        or not ycb_ids
        or not all(isinstance(i, int) and i in YCB_CLASSES for i in ycb_ids)
    ):
        raise InputError(f"{path}: key 'ycb_ids' must be a non-empty list of ids in 1..21, got {ycb_ids!r}")
    if isinstance(grasp_ind, bool) or not isinstance(grasp_ind, int) or not 0 <= grasp_ind < len(ycb_ids):
        raise InputError(f"{path}: key 'ycb_grasp_ind' must be an index into ycb_ids, got {grasp_ind!r}")
    if not isinstance(sides, list) or not sides or sides[0] not in ("right", "left"):
        raise InputError(f"{path}: key 'mano_sides' must be a list whose first entry is 'right' or 'left'")
    if not isinstance(calib, list) or not calib or not isinstance(calib[0], str):
        raise InputError(f"{path}: key 'mano_calib' must be a list holding a calibration name, got {calib!r}")
    return meta


def _load_labels(path: Path, num_objects: int) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise AssetError(f"DexYCB label file not found: {path}; expected layout {_LAYOUT_HINT}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: not a readable .npz file ({error}); re-download it") from None
    expected = {
        "pose_y": (num_objects, 3, 4),
        "pose_m": (1, 51),
        "joint_3d": (1, 21, 3),
        "joint_2d": (1, 21, 2),
    }
    for key, shape in expected.items():
        if key not in arrays:
            raise InputError(f"{path}: missing key {key!r} (expected float {shape}); the label file is malformed")
        value = arrays[key]
        if value.shape != shape or not np.issubdtype(value.dtype, np.floating):
            raise InputError(f"{path}: key {key!r} expected float {shape}, got {value.dtype} {value.shape}")
        if not np.all(np.isfinite(value)):
            raise InputError(f"{path}: key {key!r} holds NaN or inf values; the label file is corrupt")
    limits = {
        "pose_m": (arrays["pose_m"][:, :48], MAX_ABS_POSE_PCA, "axis-angle / PCA-45 coefficients"),
        "pose_m translation": (arrays["pose_m"][:, 48:], MAX_ABS_LABEL_M, "metres"),
        "pose_y translation": (arrays["pose_y"][:, :, 3], MAX_ABS_LABEL_M, "metres"),
        "joint_3d": (arrays["joint_3d"], MAX_ABS_LABEL_M, "metres"),
    }
    for name, (values, limit, unit) in limits.items():
        largest = float(np.abs(values).max()) if values.size else 0.0
        if largest > limit:
            raise InputError(
                f"{path}: key {name!r} reaches {largest:.4g}, expected |values| <= {limit:g} ({unit}); the label file "
                "is corrupt or in other units, re-download it"
            )
    return arrays


# ----------------------------------------------------------------------------------------------- samples
@dataclass
class DexYCBSample:
    """One DexYCB frame seen by one camera, with its labels (camera frame, metres).

    Attributes:
        index: toolkit index into the split.
        sample_id: ``<subject>_<date>_<time>_<serial>_<frame:06d>`` (HACO).
        color_file / label_file: paths relative to ``root`` (POSIX separators).
        intrinsics: of the camera.
        mano_side: "right" / "left".
        mano_betas: (10,) float64.
        pose_m: (1, 51) float [global axis-angle (3), finger PCA-45 (45), translation (3) metres]; zeros: no hand.
        pose_y: (n_obj, 3, 4) float [R | t] of every object of the sequence, camera frame, metres.
        joint_3d: (1, 21, 3) float metres, -1 if invalid.
        joint_2d: (1, 21, 2) float pixels, -1 if invalid.
        ycb_ids: the sequence's object ids (1..21).
        ycb_grasp_ind: index of the grasped object in ``ycb_ids``.
    """

    index: int
    sample_id: str
    color_file: str
    intrinsics: Intrinsics
    mano_side: Side
    mano_betas: np.ndarray
    pose_m: np.ndarray
    pose_y: np.ndarray
    joint_3d: np.ndarray
    joint_2d: np.ndarray
    ycb_ids: tuple[int, ...]
    ycb_grasp_ind: int
    label_file: str = ""
    root: Path | None = None
    split: str = ""
    subject: str = ""
    sequence: str = ""
    serial: str = ""
    frame: int = -1
    meta: dict = field(default_factory=dict)

    @property
    def has_hand(self) -> bool:
        """False when the frame has no hand annotation (``pose_m`` all zeros or joints marked -1)."""
        return bool(np.any(self.pose_m != 0)) and not bool(np.all(self.joint_3d == -1))

    @property
    def grasped_ycb_id(self) -> int:
        """YCB id (1..21) of the grasped object, ``ycb_ids[ycb_grasp_ind]``."""
        return int(self.ycb_ids[self.ycb_grasp_ind])

    @property
    def obj_pose(self) -> np.ndarray:
        """(3, 4) float64 [R | t] of the grasped object, camera frame, metres."""
        return np.asarray(self.pose_y[self.ycb_grasp_ind], dtype=np.float64)

    def mano_params(self, layer_cache: ManoLayerCache) -> dict[str, np.ndarray]:
        """The hand's MANO parameters in the flat-mean axis-angle convention of :class:`Grasp`.

        Returns:
            global_orient (3,), hand_pose (45,) radians, betas (10,), transl (3,) metres; float64.
        """
        pose = np.asarray(self.pose_m[0], dtype=np.float64)
        finger = dexycb_pca_to_flat_axis_angle(pose[3:48], layer_cache.model(self.mano_side))
        return {
            "global_orient": pose[:3].copy(),
            "hand_pose": np.asarray(finger, dtype=np.float64),
            "betas": np.asarray(self.mano_betas, dtype=np.float64).copy(),
            "transl": pose[48:51].copy(),
        }

    def to_grasp(
        self,
        layer_cache: ManoLayerCache | None = None,
        models_root: str | os.PathLike | ObjectProvider | None = None,
        contact_threshold: float = 0.01,
    ) -> Grasp:
        """The annotated hand and grasped object as a :class:`Grasp` in the camera frame.

        Args:
            layer_cache: MANO models (default: ``ManoLayerCache()``, i.e. ``$HACO_GRASP_MANO_ROOT``).
            models_root: the ``models`` folder, a callable ``ycb_id -> ObjectMesh``, or None for
                ``<root>/models`` (else ``$DEX_YCB_DIR/models``).
            contact_threshold: contact distance for ``hand_contact``, metres (HACO's DexYCB labels: 0.01).

        Returns:
            Grasp with hand_verts (778, 3) and hand_joints (21, 3) in metres, camera frame; ``meta`` holds
            ``dex_index``, ``sample_id``, ``color_file``, ``split`` and ``source="dexycb"``.

        Raises:
            InputError: the frame has no hand (check :attr:`has_hand` first).
            AssetError: the MANO model or the object model is missing.
        """
        if not self.has_hand:
            raise InputError(
                f"sample {self.index} ({self.sample_id}): no hand annotation (pose_m is all zeros); skip samples "
                "with has_hand False or use subset='gsdf'"
            )
        cache = layer_cache if layer_cache is not None else ManoLayerCache()
        if models_root is None and self.root is not None:
            models_root = self.root / "models"
        provider = object_provider(models_root)
        params = self.mano_params(cache)
        layer = cache.layer(self.mano_side)  # flat-mean axis-angle, the Grasp convention
        return grasp_from_mano(
            params,
            layer,
            provider(self.grasped_ycb_id),
            self.obj_pose,
            contact_threshold=contact_threshold,
            object_id=self.grasped_ycb_id,
            meta={
                "source": "dexycb",
                "dex_index": int(self.index),
                "sample_id": self.sample_id,
                "color_file": self.color_file,
                "split": self.split,
                "contact_threshold_m": float(contact_threshold),
            },
        )


# ----------------------------------------------------------------------------------------------- dataset
def resolve_dexycb_root(root: str | os.PathLike | None) -> Path:
    """The DexYCB root: the argument, else ``$DEX_YCB_DIR``; AssetError naming the variable otherwise."""
    if root is None:
        env = os.environ.get(DEX_YCB_ENV)
        if not env:
            raise AssetError(
                f"DexYCB not found: pass root=DIR or set ${DEX_YCB_ENV} to the DexYCB folder holding {_LAYOUT_HINT}"
            )
        root = env
    path = Path(root).expanduser()
    if not path.is_dir():
        raise AssetError(f"DexYCB root {path} is not a folder; expected a folder holding {_LAYOUT_HINT}")
    return path


class DexYCB:
    """DexYCB samples of one s0 split and subset, in the toolkit's index order.

    Args:
        root: the DexYCB folder; None uses ``$DEX_YCB_DIR``.
        split: "s0_train", "s0_val" or "s0_test".
        subset: "gsdf" (right hands, ``frame % 5 == 0``) or "all" (ignored when ``subset_file`` is given).
        mano_root: MANO model folder for :meth:`grasp` (see :class:`ManoLayerCache`).
        subset_file: JSON list of toolkit indices (gSDF/HACO ``test_s0_5k.json``); the exact subset.
        strict: require a complete dataset (see the module docstring); False for partial copies / miniatures.

    Raises:
        AssetError: the root, a subject folder, a ``meta.yml`` or a calibration file is missing.
        InputError: a file is malformed, or the arguments are invalid.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "s0_test",
        subset: Literal["gsdf", "all"] = "gsdf",
        mano_root: str | os.PathLike | None = None,
        subset_file: str | os.PathLike | None = None,
        strict: bool = True,
    ) -> None:
        if split not in S0_SPLITS:
            raise InputError(f"split: expected one of {sorted(S0_SPLITS)}, got {split!r}")
        if subset not in ("gsdf", "all"):
            raise InputError(f"subset: expected 'gsdf' or 'all', got {subset!r}; or pass subset_file=PATH")
        self.root = resolve_dexycb_root(root)
        self.split = split
        self.strict = bool(strict)
        self.mano_root = None if mano_root is None else Path(mano_root)
        self._layer_cache: ManoLayerCache | None = None
        self._meshes = object_provider(self.root / "models")
        self._intrinsics: dict[str, Intrinsics] = {}
        self._betas: dict[str, np.ndarray] = {}
        self._sequences = self._scan()
        self._build_mapping()
        if subset_file is not None:
            self.indices = self._read_subset_file(Path(subset_file))
            self.subset = f"file:{Path(subset_file).name}"
        else:
            self.subset = subset
            if subset == "all":
                self.indices = np.arange(self.num_split_samples, dtype=np.int64)
            else:
                right = np.array([s.mano_side == "right" for s in self._sequences], dtype=bool)
                keep = right[self._seq] & (self._frame % 5 == 0)
                self.indices = np.flatnonzero(keep).astype(np.int64)
        logger.info(
            "DexYCB %s/%s: %d of %d samples from %d sequences",
            split,
            self.subset,
            len(self.indices),
            self.num_split_samples,
            len(self._sequences),
        )

    # ------------------------------------------------------------------ scanning
    def _scan(self) -> list[_Sequence]:
        rule = S0_SPLITS[self.split]
        split_serials = [DEX_YCB_SERIALS[i] for i in rule.serials]
        sequences: list[_Sequence] = []
        missing: list[str] = []
        for subject_id in rule.subjects:
            subject = DEX_YCB_SUBJECTS[subject_id]
            folder = self.root / subject
            if not folder.is_dir():
                if self.strict:
                    raise AssetError(
                        f"DexYCB subject folder not found: {folder}; split {self.split} needs subjects "
                        f"{[DEX_YCB_SUBJECTS[i] for i in rule.subjects]} (pass strict=False for a partial copy)"
                    )
                missing.append(subject)
                continue
            names = sorted(p.name for p in folder.iterdir() if p.is_dir())
            if self.strict and len(names) != SEQUENCES_PER_SUBJECT:
                raise InputError(
                    f"{folder}: expected {SEQUENCES_PER_SUBJECT} sequence folders as in the full dataset, got "
                    f"{len(names)}; complete the download or pass strict=False"
                )
            for position, name in enumerate(names):
                if (position % 5 == 4) != rule.test_sequences:
                    continue
                meta_path = folder / name / "meta.yml"
                meta = _read_meta(meta_path)
                listed = [str(s) for s in meta["serials"]]
                if self.strict:
                    serial_ids = tuple(rule.serials)
                else:
                    serial_ids = tuple(DEX_YCB_SERIALS.index(s) for s in split_serials if s in listed)
                for sid in serial_ids:
                    self._intrinsics_for(DEX_YCB_SERIALS[sid])
                calib = str(meta["mano_calib"][0])
                self._betas_for(calib)
                sequences.append(
                    _Sequence(
                        subject=subject,
                        name=name,
                        serial_ids=serial_ids,
                        num_frames=int(meta["num_frames"]),
                        ycb_ids=tuple(int(i) for i in meta["ycb_ids"]),
                        ycb_grasp_ind=int(meta["ycb_grasp_ind"]),
                        mano_side=meta["mano_sides"][0],
                        mano_calib=calib,
                    )
                )
        if missing:
            logger.info("DexYCB %s: subjects %s are absent; skipped (strict=False)", self.split, missing)
        if not sequences:
            raise AssetError(
                f"DexYCB {self.split}: no sequences found under {self.root}; expected layout {_LAYOUT_HINT}"
            )
        return sequences

    def _build_mapping(self) -> None:
        seq, cam, frame = [], [], []
        for s, sequence in enumerate(self._sequences):
            cameras = np.asarray(sequence.serial_ids, dtype=np.int64)
            frames = np.arange(sequence.num_frames, dtype=np.int64)
            # Camera-major, then frame: the toolkit's meshgrid(f, c) raveled.
            seq.append(np.full(len(cameras) * len(frames), s, dtype=np.int64))
            cam.append(np.repeat(cameras, len(frames)))
            frame.append(np.tile(frames, len(cameras)))
        self._seq = np.concatenate(seq)
        self._serial = np.concatenate(cam)
        self._frame = np.concatenate(frame)
        self._by_key: dict[tuple[str, str, str, int], int] | None = None

    def _intrinsics_for(self, serial: str) -> Intrinsics:
        if serial not in self._intrinsics:
            path = self.root / "calibration" / "intrinsics" / f"{serial}_640x480.yml"
            self._intrinsics[serial] = read_intrinsics(path)
        return self._intrinsics[serial]

    def _betas_for(self, calib: str) -> np.ndarray:
        if calib not in self._betas:
            self._betas[calib] = read_mano_betas(self.root / "calibration" / f"mano_{calib}" / "mano.yml")
        return self._betas[calib]

    def _read_subset_file(self, path: Path) -> np.ndarray:
        if not path.is_file():
            raise AssetError(f"subset file not found: {path}; expected a JSON list of toolkit indices")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: not valid JSON ({error}); expected a list of toolkit indices") from None
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise InputError(f"{path}: expected a JSON list of integer toolkit indices, got {type(values).__name__}")
        indices = np.asarray(values, dtype=np.int64)
        bad = indices[(indices < 0) | (indices >= self.num_split_samples)]
        if bad.size:
            raise InputError(
                f"{path}: index {int(bad[0])} is outside {self.split} (0..{self.num_split_samples - 1}); is the file "
                "for this split, and is the dataset complete (strict=True)?"
            )
        return indices

    # ------------------------------------------------------------------ access
    @property
    def num_split_samples(self) -> int:
        """Number of samples of the whole split (the toolkit's ``len``)."""
        return int(self._seq.shape[0])

    @property
    def layer_cache(self) -> ManoLayerCache:
        """MANO layers for :meth:`grasp` (built on first use from ``mano_root``)."""
        if self._layer_cache is None:
            self._layer_cache = ManoLayerCache(self.mano_root)
        return self._layer_cache

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, position: int) -> DexYCBSample:
        return self.sample(position)

    def __iter__(self) -> Iterator[DexYCBSample]:
        for position in range(len(self)):
            yield self.sample(position)

    def _check_index(self, dex_index: int) -> int:
        if isinstance(dex_index, bool) or not isinstance(dex_index, (int, np.integer)):
            raise InputError(f"index: expected an int, got {type(dex_index).__name__}")
        if not 0 <= int(dex_index) < self.num_split_samples:
            raise InputError(f"index: expected 0..{self.num_split_samples - 1} ({self.split}), got {dex_index}")
        return int(dex_index)

    def _parts(self, dex_index: int) -> tuple[_Sequence, str, int]:
        i = self._check_index(dex_index)
        return self._sequences[self._seq[i]], DEX_YCB_SERIALS[self._serial[i]], int(self._frame[i])

    def sample_id(self, dex_index: int) -> str:
        """HACO sample id ``<subject>_<date>_<time>_<serial>_<frame:06d>`` of a toolkit index (no file read)."""
        sequence, serial, frame = self._parts(dex_index)
        return f"{sequence.subject}_{sequence.name}_{serial}_{frame:06d}"

    def color_file(self, dex_index: int) -> str:
        """Colour image path relative to the root, as in the toolkit's ``color_file`` (no file read)."""
        sequence, serial, frame = self._parts(dex_index)
        return f"{sequence.subject}/{sequence.name}/{serial}/color_{frame:06d}.jpg"

    def index_of(self, key: str) -> int:
        """Toolkit index of a ``color_file`` (relative or absolute path) or a HACO ``sample_id``."""
        if self._by_key is None:
            self._by_key = {}
            for i in range(self.num_split_samples):
                sequence, serial, frame = self._parts(i)
                self._by_key[(sequence.subject, sequence.name, serial, frame)] = i
        text = str(key).replace("\\", "/")
        parts = text.split("/")
        found: int | None = None
        if len(parts) >= 4 and parts[-1].startswith("color_"):
            try:
                frame = int(parts[-1][len("color_") :].split(".")[0])
                found = self._by_key.get((parts[-4], parts[-3], parts[-2], frame))
            except ValueError:
                found = None
        else:
            pieces = text.split("_")
            if len(pieces) == 5 and pieces[4].isdigit():
                found = self._by_key.get((pieces[0], f"{pieces[1]}_{pieces[2]}", pieces[3], int(pieces[4])))
        if found is None:
            raise InputError(
                f"{key!r} is not a sample of {self.split}; expected a color_file '<subject>/<sequence>/<serial>/"
                "color_%06d.jpg' or a sample_id '<subject>_<date>_<time>_<serial>_<frame>'"
            )
        return found

    def sample(self, position: int) -> DexYCBSample:
        """The ``position``-th sample of the subset (labels read from disk)."""
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
            raise InputError(f"position: expected an int, got {type(position).__name__}")
        if not -len(self) <= position < len(self):
            raise IndexError(f"position {position} out of range for {len(self)} samples ({self.split}/{self.subset})")
        return self.sample_at_index(int(self.indices[position]))

    def sample_at_index(self, dex_index: int) -> DexYCBSample:
        """The sample with toolkit index ``dex_index`` (any sample of the split, inside the subset or not)."""
        sequence, serial, frame = self._parts(dex_index)
        folder = f"{sequence.subject}/{sequence.name}/{serial}"
        label_file = f"{folder}/labels_{frame:06d}.npz"
        labels = _load_labels(self.root / label_file, len(sequence.ycb_ids))
        return DexYCBSample(
            index=int(dex_index),
            sample_id=f"{sequence.subject}_{sequence.name}_{serial}_{frame:06d}",
            color_file=f"{folder}/color_{frame:06d}.jpg",
            intrinsics=self._intrinsics_for(serial),
            mano_side=sequence.mano_side,
            mano_betas=self._betas_for(sequence.mano_calib).copy(),
            pose_m=labels["pose_m"],
            pose_y=labels["pose_y"],
            joint_3d=labels["joint_3d"],
            joint_2d=labels["joint_2d"],
            ycb_ids=sequence.ycb_ids,
            ycb_grasp_ind=sequence.ycb_grasp_ind,
            label_file=label_file,
            root=self.root,
            split=self.split,
            subject=sequence.subject,
            sequence=sequence.name,
            serial=serial,
            frame=frame,
        )

    def grasp(self, position: int, contact_threshold: float = 0.01) -> Grasp:
        """The ``position``-th sample as a :class:`Grasp` (camera frame), with the dataset's MANO and models."""
        return self.sample(position).to_grasp(self.layer_cache, self._meshes, contact_threshold)

    def grasps(self, contact_threshold: float = 0.01, skip_no_hand: bool = True) -> Iterator[Grasp]:
        """Every sample of the subset as a :class:`Grasp`; frames without a hand are skipped (or raise)."""
        for sample in self:
            if skip_no_hand and not sample.has_hand:
                continue
            yield sample.to_grasp(self.layer_cache, self._meshes, contact_threshold)
