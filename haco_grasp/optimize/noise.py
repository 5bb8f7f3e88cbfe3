"""Pose-source noise profiles: how far each input parameter is expected to be from the truth.

Refinement is a MAP problem: the contact and penetration terms say where the hand and object should meet, and a
Gaussian prior on the change of every input parameter says how much each may move. A profile gives one standard
deviation per parameter block (per component, in the units of the optimised offset):

- ``hand_transl_m``: hand translation, metres per axis;
- ``hand_rot_rad``: global axis-angle, radians per component;
- ``hand_pose_rad``: finger articulation, radians per PCA coefficient (= per axis-angle component for isotropic
  noise); a number, or 45 values (one per axis-angle component) applied after the PCA offset;
- ``betas``: shape coefficients;
- ``obj_transl_m``: object translation (of its bounding-box centre), metres per axis;
- ``obj_rot_rad``: object rotation about that centre, radians per axis-angle component.

The optimizer moves each block in units of its standard deviation (``offset = std * z``) with the prior
``w_prior * 0.5 * |z|^2``, so a block with std 0 never moves, blocks with equal std share a correction equally, and
the least certain input takes most of it (the object when its pose is 1 cm off and the hand root 3 mm).

Shipped profiles (``haco_grasp/optimize/noise_profiles/*.json``): ``hflnet-dexycb`` (an image-based estimate in
HFL-Net's error range on DexYCB) and ``contactopt-aug`` (ContactOpt's perturbation). A user profile is a JSON file
with the same fields, or a :class:`NoiseProfile`; :func:`fit_noise_profile` estimates one from predictions paired
with ground truth on a validation split.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from haco_grasp.errors import InputError

if TYPE_CHECKING:
    from haco_grasp.data.grasp import Grasp

__all__ = ["NOISE_PROFILES", "NoiseProfile", "fit_noise_profile", "load_noise_profile"]

_PROFILE_DIR = Path(__file__).with_name("noise_profiles")
#: Names of the shipped profiles.
NOISE_PROFILES: tuple[str, ...] = tuple(sorted(p.stem for p in _PROFILE_DIR.glob("*.json")))
_STD_FIELDS = ("hand_transl_m", "hand_rot_rad", "hand_pose_rad", "betas", "obj_transl_m", "obj_rot_rad")


@dataclass(frozen=True)
class NoiseProfile:
    """Standard deviations of an input's error, per parameter block (see the module docstring for units).

    hand_pose_rad: a number, or a tuple of 45 numbers (one per finger axis-angle component).
    """

    hand_transl_m: float
    hand_rot_rad: float
    hand_pose_rad: float | tuple[float, ...]
    betas: float
    obj_transl_m: float
    obj_rot_rad: float
    name: str = "custom"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in _STD_FIELDS:
            value = getattr(self, name)
            values = value if isinstance(value, (tuple, list)) else (value,)
            if name == "hand_pose_rad" and isinstance(value, (tuple, list)) and len(value) != 45:
                raise InputError(f"NoiseProfile.hand_pose_rad: expected a number or 45 numbers, got {len(value)}")
            for item in values:
                if isinstance(item, bool) or not isinstance(item, (int, float)) or not np.isfinite(item) or item < 0:
                    raise InputError(
                        f"NoiseProfile.{name}: expected a finite standard deviation >= 0, got {item!r}; "
                        "use 0 for a parameter that must not move"
                    )
        if isinstance(self.hand_pose_rad, list):
            object.__setattr__(self, "hand_pose_rad", tuple(float(v) for v in self.hand_pose_rad))

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)

    def scaled(self, factor: float) -> NoiseProfile:
        """Every standard deviation multiplied by ``factor`` (e.g. to widen a profile for a worse source)."""
        values = {}
        for name in _STD_FIELDS:
            value = getattr(self, name)
            values[name] = tuple(v * factor for v in value) if isinstance(value, tuple) else value * factor
        return NoiseProfile(**values, name=f"{self.name}x{factor:g}", description=self.description)


def _from_mapping(data: dict, source: str) -> NoiseProfile:
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object with the fields {list(_STD_FIELDS)}, got {type(data)}")
    known = {f.name for f in fields(NoiseProfile)}
    unknown = sorted(set(data) - known)
    missing = [name for name in _STD_FIELDS if name not in data]
    if unknown or missing:
        raise InputError(f"{source}: unknown fields {unknown}, missing fields {missing}; expected {list(_STD_FIELDS)}"
                         " (+ optional name, description)")  # fmt: skip
    return NoiseProfile(**data)


def load_noise_profile(profile: NoiseProfile | str | os.PathLike) -> NoiseProfile:
    """A noise profile by shipped name, JSON path, or passed through.

    Args:
        profile: a :class:`NoiseProfile`, a shipped name (:data:`NOISE_PROFILES`) or the path of a JSON file.

    Returns:
        NoiseProfile.

    Raises:
        InputError: unknown name, unreadable or malformed file.
    """
    if isinstance(profile, NoiseProfile):
        return profile
    text = os.fspath(profile)
    if text in NOISE_PROFILES:
        path = _PROFILE_DIR / f"{text}.json"
    else:
        path = Path(text)
        if path.suffix != ".json" or not path.is_file():
            raise InputError(f"noise profile: {text!r} is neither a shipped profile {list(NOISE_PROFILES)} nor an "
                             "existing .json file; pass a name or a path")  # fmt: skip
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON noise profile ({exc}); fix or regenerate the file") from None
    return _from_mapping(data, str(path))


def _rotation_log(rotations: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices -> (N, 3) axis-angle."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(rotations).as_rotvec()


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values.size else 0.0


def fit_noise_profile(
    predictions: Sequence[Grasp],
    ground_truth: Sequence[Grasp],
    pca_components: np.ndarray | None = None,
    name: str = "fitted",
) -> NoiseProfile:
    """Estimate a noise profile from predictions paired with their ground truth (e.g. a validation split).

    Each standard deviation is the root mean square of the per-component error (the maximum-likelihood estimate
    of a zero-mean Gaussian), in the units of the optimised offsets: translation differences, global axis-angle
    differences, finger-pose differences (as PCA coefficients when ``pca_components`` is given), betas differences,
    the object's bounding-box-centre displacement and the axis-angle of the object's rotation error.

    Args:
        predictions: N predicted grasps (any source), same sides and objects as the ground truth.
        ground_truth: N ground-truth grasps.
        pca_components: (k, 45) orthonormal rows (e.g. ``layer.hand_components``) to measure the finger error as
            the PCA coefficients the optimizer moves; None: per axis-angle component.
        name: the profile's name.

    Returns:
        NoiseProfile.
    """
    if len(predictions) != len(ground_truth) or not predictions:
        raise InputError(f"fit_noise_profile: need equally many predictions and ground truths (> 0), got "
                         f"{len(predictions)} and {len(ground_truth)}")  # fmt: skip
    pred, true = list(predictions), list(ground_truth)

    def stack(attr: str, grasps: list) -> np.ndarray:
        return np.stack([np.asarray(getattr(g, attr), dtype=np.float64) for g in grasps])

    pose_error = stack("hand_pose", pred) - stack("hand_pose", true)  # (N, 45)
    if pca_components is not None:
        components = np.asarray(pca_components, dtype=np.float64)
        if components.ndim != 2 or components.shape[1] != 45:
            raise InputError(f"pca_components: expected (k, 45), got {components.shape}")
        pose_error = pose_error @ components.T  # (N, k)

    def centre(g) -> np.ndarray:
        canonical = 0.5 * (g.obj_verts_canonical.min(0) + g.obj_verts_canonical.max(0))
        return canonical @ np.asarray(g.obj_rotation).T + np.asarray(g.obj_translation)

    pairs = zip(pred, true, strict=True)
    relative = np.stack([np.asarray(p.obj_rotation) @ np.asarray(t.obj_rotation).T for p, t in pairs])
    return NoiseProfile(
        hand_transl_m=_rms(stack("transl", pred) - stack("transl", true)),
        hand_rot_rad=_rms(stack("global_orient", pred) - stack("global_orient", true)),
        hand_pose_rad=_rms(pose_error),
        betas=_rms(stack("betas", pred) - stack("betas", true)),
        obj_transl_m=_rms(np.stack([centre(p) - centre(t) for p, t in zip(pred, true, strict=True)])),
        obj_rot_rad=_rms(_rotation_log(relative)),
        name=name,
        description=f"fitted on {len(pred)} prediction/ground-truth pairs",
    )
