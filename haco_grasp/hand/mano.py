"""MANO hand model: reading official pickles without chumpy, and a batched differentiable layer.

The layer is a thin module over the functional linear-blend-skinning core :mod:`haco_grasp.hand.lbs`: it holds the
model's arrays as buffers and handles the pose-space conversion (PCA with any number of components, or full 45-D
axis-angle; ``flat_hand_mean`` both ways), translation and the 21-joint output (16 MANO joints + 5 fingertip
vertices, order in :mod:`haco_grasp.hand.joints`). ``smplx.MANO`` itself is not used as the module because it
treats ``num_pca_comps=45`` as "no PCA", so DexYCB's PCA-45 coefficients would be misread; the tests check this
layer against ``smplx.MANO`` wherever the two are defined to agree.

Conventions: metres, right-handed world frame, points are row vectors. ``side`` says which pickle is loaded; the
left model is MANO's own ``MANO_LEFT.pkl`` (no mirroring happens here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from haco_grasp.errors import AssetError, InputError
from haco_grasp.geometry.rotations import axis_angle_to_matrix
from haco_grasp.hand.assets import synthetic_mano_root
from haco_grasp.hand.joints import MANO_PARENTS, MANO_TIP_VERTEX_IDS, NUM_MANO_JOINTS, TO_21
from haco_grasp.hand.lbs import KinematicLevels, kinematic_levels, linear_blend_skinning
from haco_grasp.safe_pickle import safe_load

Side = Literal["right", "left"]

MANO_ROOT_ENV = "HACO_GRASP_MANO_ROOT"
MANO_FILES = {"right": "MANO_RIGHT.pkl", "left": "MANO_LEFT.pkl"}
_REQUIRED_KEYS = (
    "v_template",
    "f",
    "J_regressor",
    "kintree_table",
    "weights",
    "shapedirs",
    "posedirs",
    "hands_components",
    "hands_mean",
)


@dataclass(frozen=True)
class ManoModelData:
    """The arrays of one MANO model file, as plain numpy (float64 unless stated).

    Attributes:
        v_template: (V, 3) rest vertices, metres.
        faces: (F, 3) int64 (open at the wrist).
        J_regressor: (16, V) dense.
        parents: (16,) int64, -1 for the root.
        weights: (V, 16) skinning weights.
        shapedirs: (V, 3, S) shape blend shapes.
        posedirs: (V, 3, 135) pose correctives.
        hands_components: (45, 45) PCA basis, one component per row.
        hands_mean: (45,) mean finger pose.
    """

    v_template: np.ndarray
    faces: np.ndarray
    J_regressor: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    hands_components: np.ndarray
    hands_mean: np.ndarray
    path: str = ""


#: The ``root`` / ``--mano-root`` value that names the shipped synthetic MANO-format hand.
SYNTHETIC_ROOT = "synthetic"


def resolve_mano_path(side: Side = "right", root: str | os.PathLike | None = None) -> Path:
    """Find ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``: the argument, else ``$HACO_GRASP_MANO_ROOT``.

    ``root`` may be the folder holding the pickles, the official archive's folder (``<root>/models/``), the
    pickle itself, or the word :data:`SYNTHETIC_ROOT` (``"synthetic"``, also as the environment variable's value):
    the license-free synthetic hand shipped with the package (:func:`haco_grasp.hand.synthetic_mano_root`).
    """
    if side not in MANO_FILES:
        raise InputError(f"side: expected 'right' or 'left', got {side!r}")
    name = MANO_FILES[side]
    if root is None:
        root = os.environ.get(MANO_ROOT_ENV) or None
    if root is not None and str(root) == SYNTHETIC_ROOT:
        root = synthetic_mano_root()
    if root is None:
        env = os.environ.get(MANO_ROOT_ENV)
        if not env:
            raise AssetError(
                f"MANO model not found: pass root=DIR (CLI: --mano-root DIR) or set ${MANO_ROOT_ENV} to a folder "
                f"holding {name}; the official files come from the MANO website (https://mano.is.tue.mpg.de, licence "
                "required); for the license-free synthetic hand use haco_grasp.hand.synthetic_mano_root()"
            )
        root = env
    root = Path(root).expanduser()
    if root.is_file():
        return root
    for candidate in (root / name, root / "models" / name):
        if candidate.is_file():
            return candidate
    raise AssetError(
        f"MANO model not found: expected {root / name} (or {root / 'models' / name}); the official files come from "
        "the MANO website (https://mano.is.tue.mpg.de); write the license-free synthetic hand there with "
        "haco_grasp.hand.write_synthetic_mano(DIR)"
    )


def read_mano_pickle(path: str | os.PathLike) -> ManoModelData:
    """Read an official (chumpy, Python-2) or converted MANO pickle through the restricted unpickler."""
    raw = safe_load(path, chumpy=True)
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a MANO pickle holding a dict, got {type(raw).__name__}")
    missing = [key for key in _REQUIRED_KEYS if key not in raw]
    if missing:
        raise InputError(f"{path}: MANO pickle lacks keys {missing}; is this a MANO_RIGHT/LEFT.pkl model file?")

    fix = "the file is corrupt or not a MANO model; re-download it from https://mano.is.tue.mpg.de"

    def dense(key: str) -> np.ndarray:
        value = raw[key]
        if hasattr(value, "toarray"):
            shape = getattr(value, "shape", (0, 0))
            if len(shape) != 2 or int(shape[0]) * int(shape[1]) > _MAX_DENSE:
                raise InputError(f"{path}: MANO key {key!r} is a sparse matrix of shape {tuple(shape)}; {fix}")
            value = value.toarray()
        array = np.asarray(value) if not isinstance(value, (str, bytes)) else np.asarray([value])
        if array.dtype.kind not in "biuf" or array.dtype == bool:
            raise InputError(f"{path}: MANO key {key!r} must be a numeric array, got {type(value).__name__} "
                             f"{array.dtype}; {fix}")  # fmt: skip
        array = array.astype(np.float64)
        if not np.all(np.isfinite(array)):
            raise InputError(f"{path}: MANO key {key!r} contains NaN or inf; {fix}")
        return array

    def integers(key: str) -> np.ndarray:
        array = dense(key)
        if array.size and not np.all(array == np.round(array)):
            raise InputError(f"{path}: MANO key {key!r} must hold integers; {fix}")
        return array.astype(np.int64)

    v_template = dense("v_template")
    if v_template.ndim != 2 or v_template.shape[-1] != 3:
        raise InputError(f"{path}: MANO key 'v_template' has shape {v_template.shape}, expected (V, 3); {fix}")
    num_verts = v_template.shape[0]
    kintree = integers("kintree_table")
    if kintree.ndim != 2 or kintree.shape[0] != 2 or kintree.shape[1] < 1:
        raise InputError(f"{path}: MANO key 'kintree_table' has shape {kintree.shape}, expected (2, 16); {fix}")
    parents = kintree[0].copy()
    parents[0] = -1
    data = ManoModelData(
        v_template=v_template,
        faces=integers("f"),
        J_regressor=dense("J_regressor"),
        parents=parents,
        weights=dense("weights"),
        shapedirs=dense("shapedirs"),
        posedirs=dense("posedirs"),
        hands_components=dense("hands_components"),
        hands_mean=dense("hands_mean").reshape(-1),
        path=str(path),
    )
    expected = {
        "v_template": (v_template.shape, (num_verts, 3)),
        "J_regressor": (data.J_regressor.shape, (NUM_MANO_JOINTS, num_verts)),
        "weights": (data.weights.shape, (num_verts, NUM_MANO_JOINTS)),
        "posedirs": (data.posedirs.shape, (num_verts, 3, 9 * (NUM_MANO_JOINTS - 1))),
        "hands_components": (data.hands_components.shape, (45, 45)),
        "hands_mean": (data.hands_mean.shape, (45,)),
        "kintree_table": (kintree.shape, (2, NUM_MANO_JOINTS)),
    }
    for key, (got, want) in expected.items():
        if tuple(got) != want:
            raise InputError(f"{path}: MANO key {key!r} has shape {tuple(got)}, expected {want}; file looks corrupt")
    if data.shapedirs.ndim != 3 or data.shapedirs.shape[:2] != (num_verts, 3):
        raise InputError(f"{path}: MANO key 'shapedirs' has shape {data.shapedirs.shape}, expected ({num_verts}, 3, S)")
    if tuple(parents.tolist()) != MANO_PARENTS:
        raise InputError(f"{path}: kintree_table parents {parents.tolist()} differ from MANO's {list(MANO_PARENTS)}")
    if (
        data.faces.ndim != 2
        or data.faces.shape[1] != 3
        or data.faces.size == 0
        or data.faces.min() < 0
        or data.faces.max() >= num_verts
    ):
        raise InputError(f"{path}: MANO key 'f' must be (F, 3) vertex ids below {num_verts}; {fix}")
    _check_mano_ranges(data, fix)
    return data


# Plausible ranges of a MANO model in metres (the official files: v_template spans ~0.2 m, |shapedirs| < 0.03 m per
# unit beta, posedirs < 0.1 m, skinning weights in [0, 1] summing to 1 per vertex).
_MAX_DENSE = 50_000_000
_MAX_TEMPLATE_EXTENT_M = 1.0
_MAX_SHAPEDIRS_M = 0.1
_MAX_POSEDIRS_M = 1.0
_WEIGHT_SUM_TOLERANCE = 1e-3


def _check_mano_ranges(data: ManoModelData, fix: str) -> None:
    """Value ranges of the model arrays (shapes are checked before): metres, weights, rotations."""
    path = data.path
    extent = float(np.ptp(data.v_template, axis=0).max())
    if extent > _MAX_TEMPLATE_EXTENT_M:
        raise InputError(
            f"{path}: MANO key 'v_template' spans {extent:.4g} (expected metres, a hand spans ~0.2 m); the model looks "
            "like millimetres: scale v_template, shapedirs and posedirs by 0.001"
        )
    largest = float(np.abs(data.shapedirs).max()) if data.shapedirs.size else 0.0
    if largest > _MAX_SHAPEDIRS_M:
        raise InputError(
            f"{path}: MANO key 'shapedirs' reaches {largest:.4g} m per unit beta (expected < {_MAX_SHAPEDIRS_M:g}); "
            f"{fix}"
        )
    largest = float(np.abs(data.posedirs).max()) if data.posedirs.size else 0.0
    if largest > _MAX_POSEDIRS_M:
        raise InputError(f"{path}: MANO key 'posedirs' reaches {largest:.4g} m (expected < {_MAX_POSEDIRS_M:g}); {fix}")
    weights = data.weights
    sums = weights.sum(axis=1)
    if weights.min() < -1e-6 or weights.max() > 1 + 1e-6 or np.abs(sums - 1).max() > _WEIGHT_SUM_TOLERANCE:
        raise InputError(
            f"{path}: MANO key 'weights' must be skinning weights in [0, 1] summing to 1 per vertex, got range "
            f"[{weights.min():.3g}, {weights.max():.3g}] and sums [{sums.min():.4g}, {sums.max():.4g}]; {fix}"
        )
    for key in ("hands_components", "hands_mean"):
        largest = float(np.abs(getattr(data, key)).max())
        if largest > 2 * np.pi:
            raise InputError(f"{path}: MANO key {key!r} reaches {largest:.4g} rad (expected < 2 pi); {fix}")


@dataclass
class ManoOutput:
    """Output of :class:`ManoLayer`.

    Attributes:
        verts: (B, V, 3) float, metres.
        joints: (B, 21, 3) float, metres, in the order of :data:`~haco_grasp.hand.joints.JOINT_NAMES`.
        full_pose: (B, 48) axis-angle actually applied (global + 15 joints, hand mean included); None from
            :meth:`ManoLayer.skin` without it.
    """

    verts: Tensor
    joints: Tensor
    full_pose: Tensor | None


class ManoLayer(nn.Module):
    """Differentiable, batched MANO: ``(global_orient, hand_pose, betas, transl) -> verts, joints``.

    Args:
        data: the model arrays (see :func:`read_mano_pickle`).
        side: which hand the arrays describe.
        use_pca: ``hand_pose`` holds PCA coefficients (else 45 axis-angle values).
        num_pca_comps: number of PCA components (1..45) when ``use_pca``.
        flat_hand_mean: if False the model's ``hands_mean`` is added to the finger pose (MANO's default, DexYCB,
            ContactOpt); if True a zero pose is the flat hand (HFL-Net's convention).
        tip_vertex_ids: fingertip vertices (thumb, index, middle, ring, pinky) used as joints 4, 8, 12, 16, 20.
        dtype: float dtype of the buffers.
    """

    def __init__(
        self,
        data: ManoModelData,
        side: Side = "right",
        use_pca: bool = True,
        num_pca_comps: int = 15,
        flat_hand_mean: bool = False,
        tip_vertex_ids: tuple[int, ...] = MANO_TIP_VERTEX_IDS,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if use_pca and not 1 <= num_pca_comps <= 45:
            raise InputError(f"num_pca_comps: expected 1..45, got {num_pca_comps}")
        self.side: Side = side
        self.use_pca = use_pca
        self.num_pca_comps = num_pca_comps if use_pca else 45
        self.flat_hand_mean = flat_hand_mean
        self.num_betas = data.shapedirs.shape[2]
        self.model_path = data.path

        def buf(name: str, array: np.ndarray, kind: torch.dtype = dtype) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array), dtype=kind), persistent=False)

        num_verts = data.v_template.shape[0]
        buf("v_template", data.v_template)
        buf("shapedirs", data.shapedirs)
        # posedirs as (135, V*3) (smplx's layout): row p holds the displacement of every vertex coordinate.
        buf("posedirs", data.posedirs.reshape(num_verts * 3, -1).T)
        buf("J_regressor", data.J_regressor)
        buf("lbs_weights", data.weights)
        buf("parents", data.parents, torch.long)
        self._parents = tuple(int(x) for x in data.parents)
        self._levels: dict[str, KinematicLevels] = {}  # the kinematic tree by depth, per device
        buf("faces_tensor", data.faces, torch.long)
        buf("tip_vertex_ids", np.asarray(tip_vertex_ids), torch.long)
        buf("to_21", np.asarray(TO_21), torch.long)
        buf("hand_components", data.hands_components[: self.num_pca_comps])
        buf("hand_mean", np.zeros(45) if flat_hand_mean else data.hands_mean)
        buf("model_hands_mean", data.hands_mean)  # the file's mean pose, whatever flat_hand_mean says
        self.faces = data.faces  # (F, 3) int64 numpy, open at the wrist

    @property
    def num_verts(self) -> int:
        return int(self.v_template.shape[0])

    def pose_to_axis_angle(self, hand_pose: Tensor) -> Tensor:
        """Finger pose as 45 axis-angle values, hand mean included.

        Args:
            hand_pose: (B, num_pca_comps) PCA coefficients or (B, 45) axis-angle.

        Returns:
            (B, 45) axis-angle.
        """
        if self.use_pca:
            hand_pose = hand_pose @ self.hand_components  # (B, k) @ (k, 45) -> (B, 45)
        return hand_pose + self.hand_mean

    def forward(
        self,
        global_orient: Tensor | None = None,
        hand_pose: Tensor | None = None,
        betas: Tensor | None = None,
        transl: Tensor | None = None,
    ) -> ManoOutput:
        """Pose the hand.

        Args:
            global_orient: (B, 3) axis-angle of the wrist (root) joint, about the model's origin frame. Default 0.
            hand_pose: (B, num_pca_comps) PCA coefficients if ``use_pca`` else (B, 45) axis-angle. Default 0.
            betas: (B, S) shape coefficients, S ≤ the model's (10 for MANO). Default 0.
            transl: (B, 3) metres, added to every vertex and joint. Default 0.

        Returns:
            :class:`ManoOutput` with verts (B, V, 3) and joints (B, 21, 3) in metres.
        """
        given = [t for t in (global_orient, hand_pose, betas, transl) if t is not None]
        batch = given[0].shape[0] if given else 1
        ref = self.v_template
        dtype, device = ref.dtype, ref.device

        def check(name: str, value: Tensor | None, width: int, allow_less: bool = False) -> Tensor:
            if value is None:
                return torch.zeros(batch, width, dtype=dtype, device=device)
            if not torch.is_tensor(value):
                value = torch.as_tensor(value, dtype=dtype, device=device)
            ok = (
                value.ndim == 2
                and value.shape[0] == batch
                and (value.shape[1] <= width if allow_less else value.shape[1] == width)
            )
            if not ok:
                raise InputError(f"{name}: expected shape ({batch}, {width}), got {tuple(value.shape)}")
            return value.to(dtype)

        global_orient = check("global_orient", global_orient, 3)
        hand_pose = check("hand_pose", hand_pose, self.num_pca_comps)
        betas = check("betas", betas, self.num_betas, allow_less=True)
        transl = check("transl", transl, 3)

        full_pose = torch.cat([global_orient, self.pose_to_axis_angle(hand_pose)], dim=1)  # (B, 48)
        rotations = axis_angle_to_matrix(full_pose.view(batch, -1, 3))  # (B, 16, 3, 3)
        return self.skin(rotations, betas, transl, full_pose)

    def skin(self, rotations: Tensor, betas: Tensor, transl: Tensor, full_pose: Tensor | None = None) -> ManoOutput:
        """Pose the hand from joint rotation matrices (the unvalidated core of :meth:`forward`).

        Lets a caller that needs other rotations in the same step (e.g. an object's) compute them all in one
        :func:`~haco_grasp.geometry.rotations.axis_angle_to_matrix` call.

        Args:
            rotations: (B, 16, 3, 3) float, each joint's rotation (root first; hand mean already applied).
            betas: (B, S) float, S <= the model's. transl: (B, 3) float, metres.
            full_pose: (B, 48) the axis-angle the rotations came from, kept in the output (optional).

        Returns:
            :class:`ManoOutput` with verts (B, V, 3) and joints (B, 21, 3) in metres.
        """
        levels = self._levels.get(str(rotations.device))
        if levels is None:
            levels = self._levels[str(rotations.device)] = kinematic_levels(self._parents, rotations.device)
        verts, joints16 = linear_blend_skinning(
            betas, rotations, self.v_template, self.shapedirs, self.posedirs, self.J_regressor, levels,
            self.lbs_weights,
        )  # fmt: skip
        tips = verts[:, self.tip_vertex_ids]  # (B, 5, 3)
        joints = torch.cat([joints16, tips], dim=1)[:, self.to_21]  # (B, 21, 3)
        offset = transl[:, None, :]
        return ManoOutput(verts=verts + offset, joints=joints + offset, full_pose=full_pose)


def load_mano(
    side: Side = "right",
    root: str | os.PathLike | None = None,
    use_pca: bool = True,
    num_pca_comps: int = 15,
    flat_hand_mean: bool = False,
    tip_vertex_ids: tuple[int, ...] = MANO_TIP_VERTEX_IDS,
    dtype: torch.dtype = torch.float32,
) -> ManoLayer:
    """Load ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (official or synthetic) as a :class:`ManoLayer`.

    Args:
        side: "right" or "left".
        root: folder with the pickles (or ``<root>/models``), or the pickle itself; default ``$HACO_GRASP_MANO_ROOT``.
        use_pca, num_pca_comps, flat_hand_mean, tip_vertex_ids, dtype: see :class:`ManoLayer`. The defaults are
            ContactOpt's layer (PCA-15, hand mean added).

    Raises:
        AssetError: the file is missing (the message names the expected paths and where to get them).
        UnsafePickleError / InputError: the file is not a well-formed MANO pickle.
    """
    path = resolve_mano_path(side, root)
    return ManoLayer(
        read_mano_pickle(path),
        side=side,
        use_pca=use_pca,
        num_pca_comps=num_pca_comps,
        flat_hand_mean=flat_hand_mean,
        tip_vertex_ids=tip_vertex_ids,
        dtype=dtype,
    )
