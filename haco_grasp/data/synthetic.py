"""Ground-truth synthetic grasps: a small, deterministic, contact-free grasp planner (GraspIt-style autograsp).

The grasps are the yardstick the contact-guided optimiser is measured with, so the planner uses geometry only:
signed distances, penetration and a per-link "touching" test. It never evaluates a contact-matching energy or the
differentiable contact model of :mod:`haco_grasp.geometry.contact`.

Procedure for one grasp (:func:`generate_grasps`):

a. **Object, type, site.** Objects cycle through :data:`~haco_grasp.objects.procedural.OBJECT_NAMES` (or the
   given list), types through ``grasp_types``. Surface samples p (outward normal n) are scored for each type along
   12 tangent directions c by the object's extent along c, measured on surface samples in a slab at depth delta
   under p and within a finger-wide band:

   - ``power``: object depth behind p 1.5-9 cm and extent 1.5-9 cm at half that depth (can and bottle bodies,
     handles, the mug, box sides, the cube; power grasps of the 6.6 cm ball rarely pass the quality rule, the
     thumb misses it, and fall back to precision);
   - ``precision``: extent 2-7 cm at 1 cm depth (tops and ends of cans, bottles, balls, cubes, boxes);
   - ``pinch``: extent 0.2-3 cm at 0.8 cm depth (rims of the plate, bowl and mug, the tool, the bottle neck).

   An object without a valid site for the requested type falls back to the next type it affords. A random valid
   (site, direction) is drawn with a random sign of c and a random roll of +-12 degrees about n.
b. **Placement and approach.** Every digit moves along a straight path in its joints' local coordinates from the
   ``open`` pose family (t = 0) to the mean of the type's family (t = 1) of
   :func:`haco_grasp.hand.poses.synthetic_grasp_poses` (power / precision / pinch), extrapolated up to the
   joint limits: for the fingers this is flexion, for the thumb flexion plus opposition. The pre-shape is a small
   t (power: fingers 0-0.1 and the thumb already opposed, 0.5-0.9; precision/pinch 0.3-0.5; the idle ring and
   little fingers of a pinch sit at t = 1). The hand is rotated so that its approach axis points along -n (power:
   the palm normal; precision/pinch: palm to the thumb-finger meeting point of the family pose) and its opposition
   axis along c (power: the finger direction, so the fingers wrap around the object; precision/pinch: thumb tip to
   finger tips), set at a collision-free stand-off with the grasp centre (power: the palm 1-2.5 cm below the
   knuckles; precision/pinch: the meeting point) over p, and moved along -n by sphere tracing on the object's
   :class:`~haco_grasp.geometry.sdf.SdfGrid` until the palm/back of the hand touches (grid distance < 1 mm) or,
   for precision/pinch, the grasp centre is delta below the surface. Digits that would then intersect the object
   open (t decreases) until they are clear; if one cannot, the hand retreats.
c. **Closing.** Joint levels close from proximal to distal (MCP / thumb CMC, then PIP / thumb MCP, then DIP /
   thumb IP), all digits of all candidates in parallel. Each step is the largest that cannot bring a moved vertex
   below 0.2 mm of grid distance (a rotation by dtheta moves a vertex at distance r from the joint by at most
   r dtheta; capped at 0.06 rad); a joint stops when its own link touches (< 1 mm), when it is blocked (the safe
   step falls below 0.003 rad: a more distal link touches) or at its limit. Skin blended from the parent link (the
   crease) and the thenar may sink 0.5 mm, like soft tissue. Power grasps are then pushed along -n while no vertex
   would enter the object, to restore palm contact lost to skin deformation. Joint frames come from the model's
   rest joints (flexion axis = bone direction x palm normal; thumb: bone direction x its pad direction), and the
   pose families are carried over through them, so any MANO-format model works (synthetic or official).
d. **Back-off.** Exact signed distances (open3d): digits with a vertex deeper than 0.8 mm open a little, a
   penetrating palm moves the hand back along n, until the maximum depth is below 1 mm.
e. **Labels and quality.** ``hand_contact`` is :func:`~haco_grasp.geometry.labels.hand_contact_labels` (1 cm).
   A grasp is kept if at least 3 digits, or 2 digits and the palm, are within 2 mm of the surface, the thumb or
   the palm takes part (opposition), the depth is below 1 mm and the intersection volume (2 mm voxels) is below
   0.5 cm^3. Otherwise new candidates are drawn (6 per round, at most 5 rounds per type, then the next type the
   object affords); a grasp that never passes is returned as the best candidate seen, with
   ``meta["quality_passed"] = False`` and a warning.

World frame: the object's canonical frame (``obj_rotation = I``, ``obj_translation = 0``). Hands are right
hands unless ``side="left"``; shapes are random (``betas ~ N(0, 0.5^2)``, clipped to +-1.5). Candidates of all
grasps that share an object and a type are simulated as one torch batch. Results are deterministic for given
arguments (and library versions): candidate draws use ``numpy.random.default_rng([seed, index, type, round])``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from haco_grasp.arrays import to_numpy
from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError
from haco_grasp.objects.procedural import OBJECT_NAMES, ObjectMesh, make_object

__all__ = [
    "GRASP_TYPES",
    "GraspWorldConfig",
    "HandParts",
    "Touching",
    "generate_grasps",
    "hand_parts",
    "touching_parts",
]

logger = logging.getLogger(__name__)

#: Grasp types the planner knows.
GRASP_TYPES: tuple[str, ...] = ("power", "precision", "pinch")

#: Version of the planner, stored in ``Grasp.meta["generator"]``.
GENERATOR_VERSION = "synthetic-grasp-v1"

# Digits in the toolkit's order (thumb, index, middle, ring, pinky) and their MANO joints, proximal to distal.
_DIGIT_NAMES: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")
_DIGIT_JOINTS: tuple[tuple[int, int, int], ...] = ((13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))
_NUM_DIGITS = 5
_NUM_LEVELS = 3
# Direction of the thumb's pad in the rest pose: a mix of the palm normal and the direction towards the fingers.
_THUMB_PAD_MIX = (0.6, 0.8)
# Flexion limits, radians: fingers (MCP, PIP, DIP), thumb (CMC, MCP, IP); and the largest path parameter.
_FINGER_LIMITS = (1.6, 1.8, 1.2)
_THUMB_LIMITS = (1.3, 1.0, 1.3)
_MAX_PATH = 2.0
_MAX_THUMB_CMC_PATH = 1.2  # the thumb's CMC path also abducts and twists: do not extrapolate it far
_MIN_PATH = -0.3  # digits may open a little beyond the open family while clearing the object
_OPEN_STEP = 0.15  # path step of a digit that opens to clear the object


@dataclass(frozen=True)
class GraspWorldConfig:
    """Tunable constants of the grasp planner (metres, radians, cm³). The defaults are the documented procedure.

    Attributes:
        candidates_per_round: candidates drawn per missing grasp and round.
        max_rounds: rounds of candidates per grasp type before trying the next type the object affords (after the
            last type, the best candidate is returned).
        max_batch: candidates simulated together in one torch batch.
        sdf_pitch: spacing of the object's SdfGrid, metres.
        touch_distance: a link stops closing when its grid distance falls below this, metres.
        clearance: no approach or closing step may bring a vertex below this grid distance, metres.
        flex_step: largest flexion step, radians.
        min_flex_step: a joint whose safe step falls below this is blocked, radians.
        max_penetration: largest exact penetration depth of a kept grasp, metres.
        quality_distance: a digit or the palm is "in contact" within this exact distance, metres.
        max_volume_cm3: largest hand-object intersection volume of a kept grasp, cm³ (voxels of ``volume_pitch``).
        volume_pitch: voxel size of the intersection volume, metres.
        betas_std: standard deviation of the random shape coefficients (clipped to 3 std).
        roll_jitter_deg: random roll about the approach axis, degrees (uniform in +-).
        surface_samples: object surface samples used to measure extents at grasp sites.
        site_candidates: surface samples scored as sites.
        num_threads: torch CPU threads during generation (restored afterwards). The batched ops are small and one
            thread avoids OpenMP spin-waiting on busy machines (20x slower with 2 threads under load); None leaves
            torch's setting unchanged.
    """

    candidates_per_round: int = 6
    max_rounds: int = 5
    max_batch: int = 96
    sdf_pitch: float = 0.002
    touch_distance: float = 0.001
    clearance: float = 0.0002
    flex_step: float = 0.06
    min_flex_step: float = 0.003
    max_penetration: float = 0.001
    quality_distance: float = 0.002
    max_volume_cm3: float = 0.5
    volume_pitch: float = 0.002
    betas_std: float = 0.5
    roll_jitter_deg: float = 12.0
    surface_samples: int = 3000
    site_candidates: int = 500
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        counts = ("candidates_per_round", "max_rounds", "max_batch", "surface_samples", "site_candidates")
        for name in counts:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"GraspWorldConfig.{name}: expected a positive int, got {value!r}")
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in counts or name == "num_threads":
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InputError(f"GraspWorldConfig.{name}: expected a non-negative number, got {value!r}")
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            raise InputError(f"GraspWorldConfig.num_threads: expected None or a positive int, got {self.num_threads!r}")


@dataclass(frozen=True)
class _TypeSpec:
    """How one grasp type is planned."""

    family: str  # pose family of synthetic_grasp_poses reached at path parameter t = 1
    preshape: tuple[float, float]  # pre-shape path parameter range of the closing fingers
    thumb_preshape: tuple[float, float]  # pre-shape path parameter range of the thumb (power: already opposed)
    closing: tuple[bool, ...]  # digits that close (thumb, index, middle, ring, pinky); the others sit at t = 1
    depth: float  # target depth of the grasp centre below the surface (inf: until the palm touches), metres
    extent: tuple[float, float]  # valid object extent along the opposition axis, metres
    window: float  # half-length of the extent window along the opposition axis, metres
    band: float  # half-width of the finger band (perpendicular to the opposition axis), metres


_TYPE_SPECS: dict[str, _TypeSpec] = {
    "power": _TypeSpec("power", (0.0, 0.1), (0.5, 0.9), (True,) * 5, math.inf, (0.015, 0.09), 0.065, 0.02),
    "precision": _TypeSpec("precision", (0.3, 0.5), (0.3, 0.5), (True,) * 5, 0.010, (0.02, 0.07), 0.055, 0.015),
    "pinch": _TypeSpec(
        "pinch", (0.3, 0.5), (0.3, 0.5), (True, True, True, False, False), 0.008, (0.002, 0.03), 0.035, 0.01
    ),
}
_POWER_DEPTH_RANGE = (0.015, 0.09)  # object depth behind a power site, metres


# --------------------------------------------------------------------------------------------------------------
# hand rig: joint frames, vertex parts, grasp axes (computed once per model)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@dataclass(frozen=True)
class _Rig:
    """Kinematic annotations of a MANO-format model (rest pose, flat-hand-mean convention, betas 0).

    frames: (5, 3, 3, 3) per digit and level, rows = flexion axis, abduction axis, bone direction (rest frame).
    palm_normal, finger_dir: (3,) unit vectors. palm_centre: (3,) metres. knuckle_offset: palm centre to MCP line
    along finger_dir, metres.
    vert_digit: (V,) int, digit of each vertex's dominant joint, -1 for the palm / back / wrist ("body").
    moving: (3, 5, V) float, skinning weight of each vertex on the level-k joint of digit d and its descendants
    (0 below 0.02). own: (3, 5, V) bool, vertices whose dominant joint is that joint or a descendant (the others
    with a moving weight are blended skin of the parent link: the crease).
    link: (3, 5, V) bool, vertices whose dominant joint is the level-k joint of digit d.
    digit: (5, V) bool, vertices of each digit. palm: (V,) bool, palmar palm vertices.
    """

    frames: np.ndarray
    palm_normal: np.ndarray
    finger_dir: np.ndarray
    palm_centre: np.ndarray
    knuckle_offset: float
    vert_digit: np.ndarray
    moving: np.ndarray
    own: np.ndarray
    link: np.ndarray
    digit: np.ndarray
    palm: np.ndarray


def _joint_frames(joints: np.ndarray, tips: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-digit, per-level joint frames from the 16 rest joints (3,) rows and the 5 tips (thumb..pinky)."""
    wrist, index1, pinky1, middle1 = joints[0], joints[1], joints[7], joints[4]
    normal = np.cross(index1 - wrist, pinky1 - wrist)
    normal = _unit(normal if side == "right" else -normal)  # palm normal, pointing out of the palm
    lateral = index1 - pinky1
    lateral = _unit(lateral - (lateral @ normal) * normal)  # towards the thumb side
    finger = middle1 - wrist
    finger = _unit(finger - (finger @ normal) * normal)
    thumb_pad = _unit(_THUMB_PAD_MIX[0] * normal - _THUMB_PAD_MIX[1] * lateral)
    sign = 1.0 if side == "right" else -1.0  # keeps abduction / twist coordinates mirror-invariant
    frames = np.zeros((_NUM_DIGITS, _NUM_LEVELS, 3, 3))
    for d, chain in enumerate(_DIGIT_JOINTS):
        points = [joints[j] for j in chain] + [tips[d]]
        reference = thumb_pad if d == 0 else normal
        for k in range(_NUM_LEVELS):
            bone = _unit(points[k + 1] - points[k])
            flex = _unit(np.cross(bone, reference))  # a positive rotation moves the child towards the reference
            frames[d, k] = np.stack([flex, sign * np.cross(flex, bone), sign * bone])
    return frames, normal, finger


def _rest_joints_and_tips(layer: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    v_template = layer.v_template.detach().double().cpu()
    joints = (layer.J_regressor.detach().double().cpu() @ v_template).numpy()  # (16, 3)
    tips = v_template[layer.tip_vertex_ids.cpu()].numpy()  # (5, 3)
    return v_template.numpy(), joints, tips


def _build_rig(layer: Any, side: str) -> _Rig:
    from haco_grasp.geometry.mesh import vertex_normals

    v_template, joints, tips = _rest_joints_and_tips(layer)
    frames, normal, finger = _joint_frames(joints, tips, side)
    weights = layer.lbs_weights.detach().double().cpu().numpy()  # (V, 16)
    dominant = weights.argmax(axis=1)
    num_verts = weights.shape[0]
    vert_digit = np.full(num_verts, -1, dtype=np.int64)
    moving = np.zeros((_NUM_LEVELS, _NUM_DIGITS, num_verts))
    link = np.zeros((_NUM_LEVELS, _NUM_DIGITS, num_verts), dtype=bool)
    own = np.zeros_like(link)
    for d, chain in enumerate(_DIGIT_JOINTS):
        for k, joint in enumerate(chain):
            vert_digit[dominant == joint] = d
            link[k, d] = dominant == joint
            weight = weights[:, list(chain[k:])].sum(axis=1)
            moving[k, d] = np.where(weight > 0.02, weight, 0.0)
            own[k, d] = np.isin(dominant, chain[k:])
    # The thumb's metacarpal (dominant joint: CMC) is the thenar eminence, in contact whenever the palm is: it is soft
    # skin for its own joint and does not stop the CMC, which opposes the thumb until a phalanx is blocked.
    own[0, 0] = np.isin(dominant, _DIGIT_JOINTS[0][1:])
    link[0, 0] = False
    faces = torch.as_tensor(np.asarray(layer.faces, dtype=np.int64))
    rest_normals = vertex_normals(torch.as_tensor(v_template), faces).numpy()
    palm = (vert_digit == -1) & (rest_normals @ normal > 0.5)
    if palm.sum() < 5:
        raise InputError(f"the hand model {layer.model_path!r} has no recognisable palm (palmar wrist-bound vertices)")
    palm_centre = v_template[palm].mean(axis=0)
    return _Rig(
        frames=frames,
        palm_normal=normal,
        finger_dir=finger,
        palm_centre=palm_centre,
        knuckle_offset=float((joints[[1, 4, 7, 10]].mean(axis=0) - palm_centre) @ finger),
        vert_digit=vert_digit,
        moving=moving,
        own=own,
        link=link,
        digit=np.stack([vert_digit == d for d in range(_NUM_DIGITS)]),
        palm=palm,
    )


def _pose_to_local(frames: np.ndarray, hand_pose: np.ndarray) -> np.ndarray:
    """(45,) axis-angle hand pose -> (5, 3, 3) local joint coordinates [digit, level, (flex, abd, twist)]."""
    per_joint = hand_pose.reshape(15, 3)
    local = np.zeros((_NUM_DIGITS, _NUM_LEVELS, 3))
    for d, chain in enumerate(_DIGIT_JOINTS):
        for k, joint in enumerate(chain):
            local[d, k] = frames[d, k] @ per_joint[joint - 1]
    return local


def _local_to_pose(frames: Tensor, local: Tensor) -> Tensor:
    """Local joint coordinates (B, 5, 3, 3) -> (B, 45) axis-angle hand pose (MANO joints 1..15)."""
    per_digit = torch.einsum("dkij,bdki->bdkj", frames, local)  # (B, 5, 3, 3): sum_i coordinate_i * frame row i
    pose = torch.zeros(local.shape[0], 15, 3, dtype=local.dtype, device=local.device)
    for d, chain in enumerate(_DIGIT_JOINTS):
        for k, joint in enumerate(chain):
            pose[:, joint - 1] = per_digit[:, d, k]
    return pose.reshape(-1, 45)


def _rotation_aligning(a_local: np.ndarray, o_local: np.ndarray, a_world: np.ndarray, o_world: np.ndarray):
    """Rotations (B, 3, 3) with R a_local = a_world and R o_local in the half-plane of (a_world, o_world)."""

    def frame(a: np.ndarray, o: np.ndarray) -> np.ndarray:
        a = _unit(a)
        o = _unit(o - np.sum(o * a, axis=-1, keepdims=True) * a)
        return np.stack([a, o, np.cross(a, o)], axis=-1)  # (B, 3, 3) columns

    return frame(a_world, o_world) @ np.swapaxes(frame(a_local, o_local), -1, -2)


@dataclass(frozen=True)
class _TypePlan:
    """Digit paths of one grasp type on one rig.

    start: (5, 3, 3) local coordinates at t = 0 (open family). direction: (5, 3, 3) change per unit t.
    speed: (5, 3) radians per unit t (norm of direction). t_max: (5, 3) path limits.
    """

    name: str
    spec: _TypeSpec
    start: np.ndarray
    direction: np.ndarray
    speed: np.ndarray
    t_max: np.ndarray


def _type_plan(name: str, families: dict[str, np.ndarray], source_frames: np.ndarray) -> _TypePlan:
    spec = _TYPE_SPECS[name]
    start = _pose_to_local(source_frames, families["open"].mean(axis=0))
    target = _pose_to_local(source_frames, families[spec.family].mean(axis=0))
    direction = target - start
    flex_rate = direction[:, :, 0]
    limits = np.array([_THUMB_LIMITS] + [_FINGER_LIMITS] * 4)
    t_max = np.where(flex_rate > 0.05, (limits - start[:, :, 0]) / np.maximum(flex_rate, 0.05), 1.0)
    t_max = np.clip(t_max, 1.0, _MAX_PATH)
    t_max[0, 0] = min(t_max[0, 0], _MAX_THUMB_CMC_PATH)
    return _TypePlan(
        name=name,
        spec=spec,
        start=start,
        direction=direction,
        speed=np.maximum(np.linalg.norm(direction, axis=-1), 1e-3),
        t_max=t_max,
    )


# --------------------------------------------------------------------------------------------------------------
# grasp sites on an object


@dataclass(frozen=True)
class _Sites:
    """Scored grasp sites of one object.

    points, normals: (P, 3) sample points and outward normals. tangents: (P, K, 3) candidate opposition axes.
    valid: type -> (P, K) bool. depth: type -> (P,) target depth of the grasp centre, metres (inf: palm contact).
    """

    points: np.ndarray
    normals: np.ndarray
    tangents: np.ndarray
    valid: dict[str, np.ndarray]
    depth: dict[str, np.ndarray]


def _sample_surface(
    verts: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted surface samples (count, 3) and their face normals (count, 3)."""
    corners = verts[faces]  # (F, 3, 3)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = np.linalg.norm(cross, axis=1)
    chosen = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    c = corners[chosen]
    points = c[:, 0] + u[:, None] * (c[:, 1] - c[:, 0]) + v[:, None] * (c[:, 2] - c[:, 0])
    normals = cross[chosen] / np.maximum(area[chosen], 1e-30)[:, None]
    return points, normals


def _score_sites(obj: ObjectMesh, config: GraspWorldConfig, num_dirs: int = 12) -> _Sites:
    """Measure, at surface samples, the object's depth and its extent along tangent directions (see module doc)."""
    rng = np.random.default_rng(12345)  # the site pool is a property of the object, not of the seed
    samples, _ = _sample_surface(obj.verts, obj.faces, config.surface_samples, rng)
    points, normals = _sample_surface(obj.verts, obj.faces, config.site_candidates, rng)
    helper = np.where(np.abs(normals[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    t1 = _unit(np.cross(normals, helper))
    t2 = np.cross(normals, t1)
    angles = np.arange(num_dirs) * math.pi / num_dirs
    tangents = np.cos(angles)[None, :, None] * t1[:, None] + np.sin(angles)[None, :, None] * t2[:, None]  # (P, K, 3)
    valid = {name: np.zeros((len(points), num_dirs), dtype=bool) for name in _TYPE_SPECS}
    depth = {name: np.full(len(points), _TYPE_SPECS[name].depth) for name in _TYPE_SPECS}
    slab = 0.006
    samples32 = samples.astype(np.float32)
    for start in range(0, len(points), 50):
        sl = slice(start, start + 50)
        rel = samples32[None] - points[sl, None].astype(np.float32)  # (p, S, 3)
        inward = -(rel * normals[sl, None].astype(np.float32)).sum(-1)  # (p, S) depth below the site along -n
        radial_sq = (rel * rel).sum(-1) - inward**2
        behind = (radial_sq < 0.015**2) & (inward > 0.002)
        body_depth = np.where(behind, inward, 0.0).max(axis=1)  # (p,)
        along = np.einsum("psc,pkc->pks", rel, tangents[sl].astype(np.float32))  # (p, K, S)
        side = np.cross(normals[sl, None], tangents[sl]).astype(np.float32)  # (p, K, 3)
        across = np.abs(np.einsum("psc,pkc->pks", rel, side))
        for name, spec in _TYPE_SPECS.items():
            if name == "power":
                target = np.clip(body_depth / 2, 0.0075, 0.03)
                ok_depth = (body_depth >= _POWER_DEPTH_RANGE[0]) & (body_depth <= _POWER_DEPTH_RANGE[1])
            else:
                target = np.full(body_depth.shape, spec.depth)
                ok_depth = body_depth >= spec.depth + 0.002
            in_slab = (np.abs(inward - target[:, None]) < slab)[:, None, :] & (across < spec.band)
            window = in_slab & (np.abs(along) < spec.window)
            rim = in_slab & (np.abs(along) > spec.window - 0.01) & (np.abs(along) < spec.window)
            high = np.where(window, along, -np.inf).max(axis=2)
            low = np.where(window, along, np.inf).min(axis=2)
            extent = high - low
            valid[name][sl] = (
                ok_depth[:, None]
                & (window.sum(axis=2) >= 4)
                & ~rim.any(axis=2)
                & (high > 0)
                & (low < 0)
                & (extent >= spec.extent[0])
                & (extent <= spec.extent[1])
            )
    return _Sites(points=points, normals=normals, tangents=tangents, valid=valid, depth=depth)


# --------------------------------------------------------------------------------------------------------------
# batched simulation


@dataclass
class _Batch:
    """Candidates simulated together (one object, one grasp type); B candidates, all float32 tensors.

    rotation: (B, 3, 3) hand-to-world rotation. position: (B, 3) world position of the hand frame's origin.
    t: (B, 5, 3) path parameter of every digit joint. t_max: (B, 5, 3). betas: (B, S). normal: (B, 3) site
    normal. valid: (B,) bool, False for candidates that could not be placed.
    """

    rotation: Tensor
    position: Tensor
    t: Tensor
    t_max: Tensor
    betas: Tensor
    normal: Tensor
    valid: Tensor


class _Simulator:
    """Forward kinematics and grid distances for a batch of candidates of one object and type.

    The loops run hundreds of forward passes, so the shape-dependent part of MANO (shaped template and rest joints)
    is computed once per batch with smplx's ``blend_shapes`` / ``vertices2joints``, and each pass re-runs only the
    pose part (``batch_rodrigues``, pose correctives, ``batch_rigid_transform``, skinning as one einsum): the same
    linear-blend skinning as :class:`~haco_grasp.hand.mano.ManoLayer` (the tests compare the two). The final grasp
    is recomputed with the layer itself.
    """

    def __init__(self, layer: Any, rig: _Rig, plan: _TypePlan, grid: Any, device: torch.device) -> None:
        self.layer = layer
        self.device = device
        f32 = {"dtype": torch.float32, "device": device}
        self.frames = torch.as_tensor(rig.frames, **f32)
        self.start = torch.as_tensor(plan.start, **f32)
        self.direction = torch.as_tensor(plan.direction, **f32)
        self.speed = torch.as_tensor(plan.speed, **f32)
        self.moving = torch.as_tensor(rig.moving, **f32)
        self.own = torch.as_tensor(rig.own, device=device)
        self.link = torch.as_tensor(rig.link, device=device)
        self.digit = torch.as_tensor(rig.digit, device=device)
        self.body = torch.as_tensor(rig.vert_digit == -1, device=device)
        self.palm = torch.as_tensor(rig.palm, device=device)
        self.v_shaped: Tensor | None = None
        self.rest_joints: Tensor | None = None
        # The grid as a (1, 1, X, Y, Z) volume for grid_sample: trilinear, the interpolation of SdfGrid.query.
        self.volume = grid.values.to(**f32)[None, None]
        self.origin = grid.origin.to(**f32)
        self.pitch = float(grid.pitch)
        self.upper = torch.tensor(grid.values.shape, **f32) - 1.0

    def prepare(self, betas: Tensor) -> None:
        """Shape-dependent part of the batch: betas (B, S)."""
        from smplx.lbs import blend_shapes, vertices2joints

        shapedirs = self.layer.shapedirs[:, :, : betas.shape[1]]
        self.v_shaped = self.layer.v_template + blend_shapes(betas, shapedirs)  # (B, V, 3)
        self.rest_joints = vertices2joints(self.layer.J_regressor, self.v_shaped)  # (B, 16, 3)

    def local(self, t: Tensor) -> Tensor:
        """Path parameters (B, 5, 3) -> local joint coordinates (B, 5, 3, 3)."""
        return self.start + t[..., None] * self.direction

    def hand_pose(self, t: Tensor) -> Tensor:
        """Path parameters (B, 5, 3) -> (B, 45) axis-angle hand pose, flat-hand-mean convention."""
        return _local_to_pose(self.frames, self.local(t))

    def local_verts(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Hand frame (global_orient 0, transl 0): verts (B, V, 3) and the 16 posed MANO joints (B, 16, 3)."""
        from smplx.lbs import batch_rigid_transform, batch_rodrigues

        layer = self.layer
        batch = t.shape[0]
        pose = torch.cat([torch.zeros_like(t[:, :1, 0]).expand(batch, 3), self.hand_pose(t)], dim=1)  # (B, 48)
        rot = batch_rodrigues(pose.reshape(-1, 3)).reshape(batch, -1, 3, 3)  # (B, 16, 3, 3)
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        offsets = ((rot[:, 1:] - eye).reshape(batch, -1) @ layer.posedirs).reshape(batch, -1, 3)
        v_posed = self.v_shaped + offsets  # (B, V, 3)
        joints, transforms = batch_rigid_transform(rot, self.rest_joints, layer.parents, dtype=rot.dtype)
        blended = torch.einsum("vj,bjrc->bvrc", layer.lbs_weights, transforms[:, :, :3, :])  # (B, V, 3, 4)
        verts = torch.einsum("bvrc,bvc->bvr", blended[..., :3], v_posed) + blended[..., 3]
        return verts, joints

    def world(self, batch: _Batch, points: Tensor) -> Tensor:
        """Hand-frame points (B, N, 3) -> world (B, N, 3)."""
        return points @ batch.rotation.transpose(1, 2) + batch.position[:, None]

    def world_verts(self, batch: _Batch) -> Tensor:
        """World vertices (B, V, 3) of the batch's current state."""
        return self.world(batch, self.local_verts(batch.t)[0])

    def sdf(self, points: Tensor) -> Tensor:
        """Trilinear grid distance of points (B, N, 3) -> (B, N), metres; outside the box: border + distance."""
        coord = (points - self.origin) / self.pitch  # (B, N, 3) in samples
        clamped = torch.minimum(torch.clamp(coord, min=0.0), self.upper)
        outside = ((coord - clamped) * self.pitch).norm(dim=-1)
        normalised = clamped / self.upper * 2.0 - 1.0
        # grid_sample's last coordinate indexes the last volume axis: (x, y, z) -> (z, y, x).
        grid = normalised.flip(-1).reshape(1, -1, 1, 1, 3)
        value = torch.nn.functional.grid_sample(self.volume, grid, mode="bilinear", align_corners=True)
        return value.reshape(points.shape[:-1]) + outside


def _masked_min(values: Tensor, mask: Tensor) -> Tensor:
    """values (B, V), mask (D, V) -> (B, D) minimum over the masked vertices (inf where none)."""
    return values[:, None, :].masked_fill(~mask[None], math.inf).amin(dim=-1)


def _approach(sim: _Simulator, batch: _Batch, max_travel: Tensor, config: GraspWorldConfig) -> None:
    """Sphere-trace the hand body along -normal to first contact or max_travel, then clear the digits."""
    body = sim.world_verts(batch)[:, sim.body]  # (B, Vb, 3)
    travel = torch.zeros_like(max_travel)
    active = batch.valid.clone()
    for _ in range(80):
        if not active.any():
            break
        distance = sim.sdf(body - travel[:, None, None] * batch.normal[:, None]).amin(dim=1)  # (B,)
        # Every vertex may move by the smallest distance (minus the clearance) without entering the object.
        step = torch.minimum(torch.clamp(distance - config.clearance, min=0.0), max_travel - travel)
        active = active & (distance >= config.touch_distance) & (step > 1e-5)
        travel = torch.where(active, travel + step, travel)
    batch.position = batch.position - travel[:, None] * batch.normal
    _clear_digits(sim, batch, config)


def _clear_digits(sim: _Simulator, batch: _Batch, config: GraspWorldConfig) -> None:
    """Open digits that intersect the object; retreat the hand where a fully open digit still does."""
    for _ in range(16):
        sdf = sim.sdf(sim.world_verts(batch))  # (B, V)
        digit_min = _masked_min(sdf, sim.digit)  # (B, 5)
        hit = (digit_min < config.clearance) & batch.valid[:, None]
        if not hit.any():
            return
        can_open = (batch.t > _MIN_PATH + 1e-6).any(dim=-1)  # (B, 5)
        opening = hit & can_open
        batch.t = torch.where(opening[..., None], torch.clamp(batch.t - _OPEN_STEP, min=_MIN_PATH), batch.t)
        stuck = hit & ~can_open
        depth = torch.where(stuck, config.clearance - digit_min, torch.zeros_like(digit_min)).amax(dim=1)  # (B,)
        retreat = torch.where(depth > 0, depth + 0.0005, depth)
        batch.position = batch.position + retreat[:, None] * batch.normal


def _close(sim: _Simulator, batch: _Batch, closing: Tensor, config: GraspWorldConfig) -> None:
    """Close the joint levels proximal to distal; each joint stops on touch, when blocked, or at its limit.

    A joint's step is bounded so that no vertex it moves can enter the object: a rotation by dtheta moves a vertex
    at distance r from the joint, skinned to the moving chain with total weight w, by at most w r dtheta, so
    dtheta = min over the moved vertices of (grid distance - clearance) / (w r): sphere tracing in angle. Blended
    crease skin of the parent link (and the thenar skin of the thumb) may sink to ``0.5 * max_penetration``, as
    soft tissue does, so that a touching palm or proximal phalanx does not lock the next joint.
    """
    soft = 0.5 * config.max_penetration
    joint_ids = torch.tensor([[chain[k] for chain in _DIGIT_JOINTS] for k in range(_NUM_LEVELS)], device=sim.device)
    for level in range(_NUM_LEVELS):
        limit = batch.t_max[:, :, level]
        active = closing[None] & batch.valid[:, None] & (batch.t[:, :, level] < limit - 1e-6)
        moving = sim.moving[level]  # (5, V) weights
        allowance = torch.where(sim.own[level], -config.clearance, soft)  # (5, V) metres of allowed depth
        link = sim.link[level]
        speed = sim.speed[:, level]  # (5,) radians per unit t
        for _ in range(40):
            if not active.any():
                break
            verts_local, joints_local = sim.local_verts(batch.t)
            sdf = sim.sdf(sim.world(batch, verts_local))  # (B, V); rigid motion keeps distances to the joints
            pivot = joints_local[:, joint_ids[level]]  # (B, 5, 3)
            radius = (verts_local[:, None] - pivot[:, :, None]).norm(dim=-1).clamp(min=0.005)  # (B, 5, V)
            lever = radius * moving[None]  # (B, 5, V) metres of motion per radian
            slack = (sdf[:, None] + allowance[None]) / lever.clamp(min=1e-6)
            safe = slack.masked_fill(lever <= 0, math.inf).amin(dim=-1).clamp(min=0.0)  # (B, 5) radians
            touched = _masked_min(sdf, link) < config.touch_distance
            current = batch.t[:, :, level]
            active = active & ~touched & (safe >= config.min_flex_step) & (current < limit - 1e-6)
            step = torch.clamp(0.9 * safe, max=config.flex_step) / speed
            t = batch.t.clone()
            t[:, :, level] = torch.where(active, torch.minimum(current + step, limit), current)
            batch.t = t


def _settle(sim: _Simulator, batch: _Batch, config: GraspWorldConfig) -> None:
    """Power grasps: push the closed hand along -normal while no vertex would enter the object (line search).

    Closing the fingers deforms the skin of the palm near the knuckles (linear-blend skinning), which can lift the
    palm off the object; this restores the palm contact where the fingers allow it.
    """
    verts = sim.world_verts(batch)  # (B, V, 3)
    travel = torch.zeros(verts.shape[0], dtype=verts.dtype, device=verts.device)
    active = batch.valid.clone()
    for step in (0.004, 0.002, 0.001, 0.0005, 0.00025) * 3:  # a coarse-to-fine line search, three sweeps
        if not active.any():
            break
        trial = travel + step
        distance = sim.sdf(verts - trial[:, None, None] * batch.normal[:, None]).amin(dim=1)
        ok = active & (distance >= config.clearance)
        travel = torch.where(ok, trial, travel)
        palm = sim.sdf(verts[:, sim.palm] - travel[:, None, None] * batch.normal[:, None]).amin(dim=1)
        active = active & (palm >= config.touch_distance)
    batch.position = batch.position - travel[:, None] * batch.normal


def _exact_sdf(verts: np.ndarray, obj: ObjectMesh) -> np.ndarray:
    """Exact signed distance (open3d) of (..., 3) points to the object, metres, negative inside."""
    from haco_grasp.geometry.sdf import signed_distance

    return np.asarray(signed_distance(verts.reshape(-1, 3), obj.verts, obj.faces)).reshape(verts.shape[:-1])


def _back_off(sim: _Simulator, batch: _Batch, obj: ObjectMesh, config: GraspWorldConfig) -> np.ndarray:
    """Open penetrating digits / retreat a penetrating body until the exact depth < max_penetration.

    Returns the final exact signed distances (B, V) of the world vertices, metres, as float64 numpy.
    """
    valid = batch.valid.cpu().numpy()
    for _ in range(12):
        verts = sim.world_verts(batch).cpu().numpy().astype(np.float64)
        sdf = _exact_sdf(verts, obj)
        deep = (sdf < -0.8 * config.max_penetration) & valid[:, None]
        if not deep.any():
            return sdf
        deep_t = torch.as_tensor(deep, device=sim.device)
        digit_hit = (deep_t[:, None, :] & sim.digit[None]).any(dim=-1)  # (B, 5)
        batch.t = torch.where(digit_hit[..., None], torch.clamp(batch.t - 0.05, min=_MIN_PATH), batch.t)
        body_hit = (deep_t & sim.body[None]).any(dim=1)
        depth = torch.as_tensor(np.where(deep, -sdf, 0.0).max(axis=1), dtype=torch.float32, device=sim.device)
        retreat = torch.where(body_hit, depth + 0.0003, torch.zeros_like(depth))
        batch.position = batch.position + retreat[:, None] * batch.normal
    return _exact_sdf(sim.world_verts(batch).cpu().numpy().astype(np.float64), obj)


class HandParts(NamedTuple):
    """Vertex parts of a MANO-format hand used by the quality rule.

    vert_digit: (V,) int64, digit of each vertex's dominant skinning joint (0 thumb, 1 index, 2 middle, 3 ring,
        4 pinky), -1 for the palm, back of the hand and wrist.
    palm: (V,) bool, palmar palm vertices (wrist-bound, rest normal within 60 degrees of the palm normal).
    """

    vert_digit: np.ndarray
    palm: np.ndarray


class Touching(NamedTuple):
    """Which parts of a hand touch an object. digits: (5,) bool, thumb..pinky. palm: bool."""

    digits: np.ndarray
    palm: bool


def hand_parts(mano_root: str | os.PathLike | None = None, side: Literal["right", "left"] = "right") -> HandParts:
    """Digit and palm vertex sets of the hand model (None: the synthetic hand), as used by :func:`generate_grasps`."""
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import load_mano

    if side not in ("right", "left"):
        raise InputError(f"side: expected 'right' or 'left', got {side!r}")
    layer = load_mano(side=side, root=synthetic_mano_root() if mano_root is None else mano_root, use_pca=False)
    rig = _build_rig(layer, side)
    return HandParts(vert_digit=rig.vert_digit.copy(), palm=rig.palm.copy())


def _touching_from_sdf(sdf: np.ndarray, digit: np.ndarray, palm: np.ndarray, distance: float):
    """sdf (B, V) -> digits (B, 5) bool, palm (B,) bool: within ``distance`` or inside."""
    near = np.maximum(sdf, 0.0) < distance  # (B, V)
    digits = np.stack([(near & (digit == d)[None]).any(axis=1) for d in range(_NUM_DIGITS)], axis=1)
    return digits, (near & palm[None]).any(axis=1)


def touching_parts(
    hand_verts: np.ndarray | Tensor,
    obj_verts: np.ndarray | Tensor,
    obj_faces: np.ndarray | Tensor,
    parts: HandParts,
    distance: float = 0.002,
) -> Touching:
    """The digits and palm with a vertex within ``distance`` of a closed object (or inside it).

    Args:
        hand_verts: (V, 3) float, metres.
        obj_verts: (Vo, 3) float, metres, closed mesh. obj_faces: (Fo, 3) int.
        parts: from :func:`hand_parts`.
        distance: touching distance, metres (the quality rule uses 2 mm).

    Returns:
        Touching with digits (5,) bool (thumb..pinky) and palm.
    """
    from haco_grasp.geometry.sdf import signed_distance

    hand = to_numpy(hand_verts)
    if hand.ndim != 2 or hand.shape != (parts.vert_digit.shape[0], 3):
        raise InputError(f"hand_verts: expected shape ({parts.vert_digit.shape[0]}, 3), got {hand.shape}")
    if not (isinstance(distance, (int, float)) and distance > 0):
        raise InputError(f"distance: expected a positive number of metres, got {distance!r}")
    sdf = np.asarray(signed_distance(hand.astype(np.float64), obj_verts, obj_faces))[None]
    digits, palm = _touching_from_sdf(sdf, parts.vert_digit, parts.palm, float(distance))
    return Touching(digits=digits[0], palm=bool(palm[0]))


@dataclass(frozen=True)
class _Quality:
    """Per-candidate quality: digits (B, 5) bool, palm (B,) bool, depth (B,) metres, ok (B,) bool, score (B,)."""

    digits: np.ndarray
    palm: np.ndarray
    depth: np.ndarray
    ok: np.ndarray
    score: np.ndarray


def _quality(sdf: np.ndarray, rig: _Rig, config: GraspWorldConfig, valid: np.ndarray) -> _Quality:
    digits, palm = _touching_from_sdf(sdf, rig.vert_digit, rig.palm, config.quality_distance)
    count = digits.sum(axis=1)
    depth = np.maximum(-sdf.min(axis=1), 0.0)
    enough = (count >= 3) | ((count >= 2) & palm)
    opposed = digits[:, 0] | palm
    shallow = depth < config.max_penetration
    ok = valid & enough & opposed & shallow
    score = count + palm + 2.0 * opposed - 5.0 * ~shallow - 20.0 * ~valid
    return _Quality(digits=digits, palm=palm, depth=depth, ok=ok, score=score.astype(np.float64))


# --------------------------------------------------------------------------------------------------------------
# candidates


def _draw_candidates(
    plan: _TypePlan,
    sites: _Sites,
    rig: _Rig,
    sim: _Simulator,
    rngs: Sequence[np.random.Generator],
    betas: np.ndarray,
    count: int,
    config: GraspWorldConfig,
) -> tuple[_Batch, Tensor, np.ndarray]:
    """Draw ``count`` candidates per rng (one rng per grasp slot) and place them at a collision-free stand-off.

    Returns the batch, the (B,) maximum approach travel and the (B,) site index of every candidate.
    """
    spec = plan.spec
    valid_pairs = np.argwhere(sites.valid[plan.name])  # (N, 2) site, direction
    batch_size = count * len(rngs)
    t = np.ones((batch_size, _NUM_DIGITS, _NUM_LEVELS))
    site_index = np.zeros(batch_size, dtype=np.int64)
    tangent = np.zeros((batch_size, 3))
    knuckle_gap = np.zeros(batch_size)
    for slot, rng in enumerate(rngs):
        for c in range(count):
            b = slot * count + c
            site, direction_index = valid_pairs[rng.integers(len(valid_pairs))]
            site_index[b] = site
            direction = sites.tangents[site, direction_index] * (1.0 if rng.random() < 0.5 else -1.0)
            roll = math.radians(rng.uniform(-config.roll_jitter_deg, config.roll_jitter_deg))
            normal = sites.normals[site]
            tangent[b] = direction * math.cos(roll) + np.cross(normal, direction) * math.sin(roll)
            preshape = rng.uniform(*spec.preshape)
            t[b, 1:][np.asarray(spec.closing[1:])] = preshape
            t[b, 0] = rng.uniform(*spec.thumb_preshape)
            knuckle_gap[b] = rng.uniform(0.01, 0.025)
    device = sim.device
    f32 = {"dtype": torch.float32, "device": device}
    t_tensor = torch.as_tensor(t, **f32)
    sim.prepare(torch.as_tensor(np.repeat(betas, count, axis=0), **f32))
    verts_np = sim.local_verts(t_tensor)[0].cpu().numpy().astype(np.float64)  # (B, V, 3) hand frame
    palm = verts_np[:, rig.palm].mean(axis=1)  # (B, 3) palm centre of each shape
    if plan.name == "power":
        # The object lies across the palm just below the knuckles (1-2.5 cm towards the wrist from the MCP line).
        centre = palm + rig.finger_dir[None] * (rig.knuckle_offset - knuckle_gap)[:, None]
        approach = np.repeat(rig.palm_normal[None], batch_size, axis=0)
        opposition = np.repeat(rig.finger_dir[None], batch_size, axis=0)
    else:
        # Thumb and finger tips converge on the midpoint of their positions in the family pose (t = 1): the object
        # goes there; they start apart along the pre-shape's thumb-to-fingers axis.
        tip_ids = sim.layer.tip_vertex_ids.cpu().numpy()
        fingers = slice(1, 3) if plan.name == "pinch" else slice(1, 5)
        tips_open = verts_np[:, tip_ids]  # (B, 5, 3) thumb..pinky
        closed = sim.local_verts(torch.ones_like(t_tensor))[0].cpu().numpy().astype(np.float64)
        tips_closed = closed[:, tip_ids]
        centre = 0.5 * (tips_closed[:, 0] + tips_closed[:, fingers].mean(axis=1))
        opposition = tips_open[:, fingers].mean(axis=1) - tips_open[:, 0]
        approach = centre - closed[:, rig.palm].mean(axis=1)
    normals = sites.normals[site_index]
    points = sites.points[site_index]
    rotation = _rotation_aligning(approach, opposition, -normals, tangent)  # (B, 3, 3)
    # Stand-off: the smallest of a few heights at which no vertex is within 3 mm of the object.
    heights = np.array([0.02, 0.04, 0.07, 0.11, 0.16])
    rotated = np.einsum("bij,bvj->bvi", rotation, verts_np - centre[:, None])  # (B, V, 3) about the grasp centre
    placed = rotated[:, None] + points[:, None, None] + heights[None, :, None, None] * normals[:, None, None]
    clear = sim.sdf(torch.as_tensor(placed.reshape(batch_size, -1, 3), **f32)).reshape(batch_size, len(heights), -1)
    free = (clear.amin(dim=-1) > 0.003).cpu().numpy()  # (B, H)
    height = heights[np.argmax(free, axis=1)]
    position = points + height[:, None] * normals - np.einsum("bij,bj->bi", rotation, centre)
    depth = sites.depth[plan.name][site_index]
    travel = np.where(np.isfinite(depth), height + depth, height + 0.3)
    batch = _Batch(
        rotation=torch.as_tensor(rotation, **f32),
        position=torch.as_tensor(position, **f32),
        t=t_tensor,
        t_max=torch.as_tensor(np.repeat(plan.t_max[None], batch_size, axis=0), **f32),
        betas=torch.as_tensor(np.repeat(betas, count, axis=0), **f32),
        normal=torch.as_tensor(normals, **f32),
        valid=torch.as_tensor(free.any(axis=1), device=device),
    )
    return batch, torch.as_tensor(travel, **f32), site_index


@dataclass
class _Candidate:
    """The state and quality of one simulated candidate (float64 numpy)."""

    rotation: np.ndarray
    position: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    digits: np.ndarray
    palm: bool
    depth: float
    volume: float
    site: np.ndarray
    normal: np.ndarray
    passed: bool
    score: float
    grasp_type: str
    rounds: int = 1


def _simulate_chunk(
    plan: _TypePlan,
    sites: _Sites,
    rig: _Rig,
    sim: _Simulator,
    obj: ObjectMesh,
    rngs: Sequence[np.random.Generator],
    betas: np.ndarray,
    config: GraspWorldConfig,
    hand_faces: np.ndarray,
) -> list[_Candidate]:
    """Simulate the candidates of a few grasp slots; per slot, the first passing (else the best) candidate."""
    from haco_grasp.geometry.volume import intersection_volume

    count = config.candidates_per_round
    batch, travel, site_index = _draw_candidates(plan, sites, rig, sim, rngs, betas, count, config)
    _approach(sim, batch, travel, config)
    closing = torch.as_tensor(plan.spec.closing, device=sim.device)
    _close(sim, batch, closing, config)
    if plan.name == "power":
        _settle(sim, batch, config)
    sdf = _back_off(sim, batch, obj, config)
    quality = _quality(sdf, rig, config, batch.valid.cpu().numpy())
    verts = sim.world_verts(batch).cpu().numpy().astype(np.float64)
    hand_pose = sim.hand_pose(batch.t).cpu().numpy().astype(np.float64)

    def record(b: int, volume: float, passed: bool) -> _Candidate:
        return _Candidate(
            rotation=batch.rotation[b].cpu().double().numpy(),
            position=batch.position[b].cpu().double().numpy(),
            hand_pose=hand_pose[b],
            betas=batch.betas[b].cpu().double().numpy(),
            digits=quality.digits[b].copy(),
            palm=bool(quality.palm[b]),
            depth=float(quality.depth[b]),
            volume=volume,
            site=sites.points[site_index[b]].copy(),
            normal=sites.normals[site_index[b]].copy(),
            passed=passed,
            score=math.inf if passed else float(quality.score[b]) - volume,
            grasp_type=plan.name,
        )

    def volume_of(b: int) -> float:
        return float(intersection_volume(verts[b], hand_faces, obj.verts, obj.faces, pitch=config.volume_pitch))

    results = []
    for slot in range(len(rngs)):
        rows = range(slot * count, (slot + 1) * count)
        chosen = None
        for b in rows:
            if quality.ok[b]:
                volume = volume_of(b)
                if volume < config.max_volume_cm3:
                    chosen = record(b, volume, True)
                    break
        if chosen is None:
            b = max(rows, key=lambda r: quality.score[r])
            chosen = record(b, volume_of(b), False)
        results.append(chosen)
    return results


# --------------------------------------------------------------------------------------------------------------
# public API


def _resolve_objects(objects: Sequence[str | ObjectMesh] | None) -> list[tuple[ObjectMesh, int]]:
    if objects is None:
        return [(make_object(name), i) for i, name in enumerate(OBJECT_NAMES)]
    if isinstance(objects, (str, ObjectMesh)):
        objects = [objects]
    resolved = []
    for item in objects:
        if isinstance(item, str):
            if item not in OBJECT_NAMES:
                raise InputError(f"objects: unknown object name {item!r}; expected one of {', '.join(OBJECT_NAMES)}")
            resolved.append((make_object(item), OBJECT_NAMES.index(item)))
        elif isinstance(item, ObjectMesh):
            resolved.append((item, OBJECT_NAMES.index(item.name) if item.name in OBJECT_NAMES else -1))
        else:
            raise InputError(
                f"objects: expected names or ObjectMesh instances, got {type(item).__name__}; "
                "pass e.g. ['can', 'mug'] or meshes from haco_grasp.objects.ycb.load_ycb_mesh"
            )
    if not resolved:
        raise InputError("objects: expected at least one object, got an empty sequence")
    return resolved


def _check_args(n: int, seed: int, grasp_types: Sequence[str], side: str, contact_threshold: float) -> tuple[str, ...]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"n: expected a non-negative int, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a non-negative int, got {seed!r}")
    types = (grasp_types,) if isinstance(grasp_types, str) else tuple(grasp_types)
    if not types or any(t not in GRASP_TYPES for t in types):
        raise InputError(f"grasp_types: expected a non-empty subset of {GRASP_TYPES}, got {types!r}")
    if side not in ("right", "left"):
        raise InputError(f"side: expected 'right' or 'left', got {side!r}")
    ok = isinstance(contact_threshold, (int, float)) and not isinstance(contact_threshold, bool)
    if not (ok and math.isfinite(contact_threshold) and contact_threshold > 0):
        raise InputError(f"contact_threshold: expected a positive number of metres, got {contact_threshold!r}")
    return types


def generate_grasps(
    n: int,
    seed: int = 0,
    objects: Sequence[str | ObjectMesh] | None = None,
    grasp_types: Sequence[str] = ("power", "precision", "pinch"),
    mano_root: str | os.PathLike | None = None,
    side: Literal["right", "left"] = "right",
    contact_threshold: float = 0.01,
    progress: bool = True,
    config: GraspWorldConfig | None = None,
    device: str | torch.device | None = None,
) -> list[Grasp]:
    """Plan ``n`` ground-truth grasps on procedural (or given) objects, deterministically for a seed.

    Grasp ``i`` uses object ``objects[i % len(objects)]`` and type ``grasp_types[(i // len(objects)) %
    len(grasp_types)]`` (or another type the object affords). The module docstring gives the procedure and the
    quality rule; ``meta`` records the site, the touching digits, the depth, the volume and whether the grasp
    passed the quality rule.

    Args:
        n: number of grasps.
        seed: random seed (candidate draws, shapes, rolls).
        objects: procedural object names and/or closed :class:`ObjectMesh` instances (e.g. YCB meshes from
            :func:`haco_grasp.objects.ycb.load_ycb_mesh`, which must be watertight); default ``OBJECT_NAMES``.
        grasp_types: subset of :data:`GRASP_TYPES`, cycled.
        mano_root: folder with ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``; None uses the license-free synthetic hand.
        side: "right" or "left".
        contact_threshold: distance of the ``hand_contact`` labels, metres (HACO: 0.01).
        progress: show a progress bar.
        config: planner constants (:class:`GraspWorldConfig`).
        device: torch device of the batched simulation (default CPU).

    Returns:
        n :class:`~haco_grasp.data.grasp.Grasp` records (hand pose in the flat-hand-mean convention; the world frame
        is the object's canonical frame).
    """
    types = _check_args(n, seed, grasp_types, side, contact_threshold)
    config = config or GraspWorldConfig()
    if not isinstance(config, GraspWorldConfig):
        raise InputError(f"config: expected a GraspWorldConfig, got {type(config).__name__}")
    resolved = _resolve_objects(objects)
    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        with torch.no_grad():
            return _generate(n, seed, resolved, types, mano_root, side, contact_threshold, progress, config, device)
    finally:
        torch.set_num_threads(threads)


def _generate(
    n: int,
    seed: int,
    resolved: list[tuple[ObjectMesh, int]],
    types: tuple[str, ...],
    mano_root: str | os.PathLike | None,
    side: str,
    contact_threshold: float,
    progress: bool,
    config: GraspWorldConfig,
    device: str | torch.device | None,
) -> list[Grasp]:
    from haco_grasp.geometry.sdf import sdf_grid
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import load_mano
    from haco_grasp.hand.poses import synthetic_grasp_poses

    torch_device = torch.device(device) if device is not None else torch.device("cpu")
    root = synthetic_mano_root() if mano_root is None else mano_root
    layer = load_mano(side=side, root=root, use_pca=False, flat_hand_mean=True).to(torch_device)
    rig = _build_rig(layer, side)
    families = synthetic_grasp_poses(0)
    if mano_root is None and side == "right":
        source_frames = rig.frames  # the families are defined on this very hand
    else:
        source = load_mano(side="right", root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True)
        _, joints, tips = _rest_joints_and_tips(source)
        source_frames = _joint_frames(joints, tips, "right")[0]
    plans = {name: _type_plan(name, families, source_frames) for name in GRASP_TYPES}
    hand_faces = np.asarray(layer.faces, dtype=np.int64)

    requests = [(i % len(resolved), types[(i // len(resolved)) % len(types)]) for i in range(n)]
    grasps: list[Grasp | None] = [None] * n
    bar = None
    if progress and n > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="synthetic grasps", unit="grasp")
    started = time.perf_counter()
    for obj_index, (obj, object_id) in enumerate(resolved):
        indices = [i for i, (o, _) in enumerate(requests) if o == obj_index]
        if not indices:
            continue
        grid = sdf_grid(obj.verts, obj.faces, pitch=config.sdf_pitch, padding=0.03)
        sites = _score_sites(obj, config)
        available = [t for t in GRASP_TYPES if sites.valid[t].any()]
        if not available:
            raise InputError(f"object {obj.name!r}: no surface site affords any grasp type; is it 1-20 cm in size?")
        orders = {}
        for i in indices:
            wanted = requests[i][1]
            order = [wanted] + [t for t in types if t != wanted] + [t for t in GRASP_TYPES if t not in types]
            orders[i] = [t for t in order if t in available]
        betas = {}
        for i in indices:
            beta_rng = np.random.default_rng([seed, i, 1_000_003])
            limit = 3.0 * config.betas_std
            betas[i] = np.clip(beta_rng.normal(0.0, config.betas_std, size=layer.num_betas), -limit, limit)
        best: dict[int, _Candidate] = {}
        # Each grasp tries its requested type first, then the other types the object affords.
        attempt = {i: 0 for i in indices}
        while attempt:
            retry = {}
            for type_name in GRASP_TYPES:
                slots = [i for i, k in attempt.items() if orders[i][k] == type_name]
                if not slots:
                    continue
                sim = _Simulator(layer, rig, plans[type_name], grid, torch_device)
                failed = _plan_slots(
                    slots, plans[type_name], sites, rig, sim, obj, betas, best, seed, config, hand_faces
                )
                retry.update({i: attempt[i] + 1 for i in failed if attempt[i] + 1 < len(orders[i])})
            attempt = retry
        for i in indices:
            candidate = best[i]
            if not candidate.passed:
                logger.warning(
                    "grasp %d (%s) failed the quality rule with every grasp type; returning the best candidate",
                    i, obj.name,
                )  # fmt: skip
            grasps[i] = _make_grasp(
                candidate, layer, obj, object_id, hand_faces, requests[i][1], seed, i, contact_threshold,
                None if mano_root is None else str(mano_root), side,
            )  # fmt: skip
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    logger.info("generated %d grasps in %.1f s", n, time.perf_counter() - started)
    return [g for g in grasps if g is not None]


def _plan_slots(
    slots: list[int],
    plan: _TypePlan,
    sites: _Sites,
    rig: _Rig,
    sim: _Simulator,
    obj: ObjectMesh,
    betas: dict[int, np.ndarray],
    best: dict[int, _Candidate],
    seed: int,
    config: GraspWorldConfig,
    hand_faces: np.ndarray,
) -> list[int]:
    """Rounds of candidates of one type for some grasp slots; updates ``best``; returns the slots still failing."""
    per_chunk = max(1, config.max_batch // config.candidates_per_round)
    type_index = GRASP_TYPES.index(plan.name)
    pending = list(slots)
    for round_index in range(config.max_rounds):
        if not pending:
            break
        still = []
        for chunk_start in range(0, len(pending), per_chunk):
            chunk = pending[chunk_start : chunk_start + per_chunk]
            rngs = [np.random.default_rng([seed, i, type_index, round_index]) for i in chunk]
            chunk_betas = np.stack([betas[i] for i in chunk])
            results = _simulate_chunk(plan, sites, rig, sim, obj, rngs, chunk_betas, config, hand_faces)
            for i, candidate in zip(chunk, results, strict=True):
                candidate.rounds = round_index + 1
                if i not in best or candidate.score > best[i].score:
                    best[i] = candidate
                if not candidate.passed:
                    still.append(i)
        pending = still
    return pending


def _make_grasp(
    candidate: _Candidate,
    layer: Any,
    obj: ObjectMesh,
    object_id: int,
    hand_faces: np.ndarray,
    requested_type: str,
    seed: int,
    index: int,
    contact_threshold: float,
    mano_root: str | None,
    side: str,
) -> Grasp:
    from scipy.spatial.transform import Rotation

    from haco_grasp.geometry.labels import hand_contact_labels

    dtype, device = layer.v_template.dtype, layer.v_template.device

    def tensor(x: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(x)[None], dtype=dtype, device=device)

    rotation = candidate.rotation
    rest = layer(hand_pose=tensor(candidate.hand_pose), betas=tensor(candidate.betas))
    wrist = rest.joints[0, 0].cpu().double().numpy()
    global_orient = Rotation.from_matrix(rotation).as_rotvec()
    # Simulation: world = local @ R.T + position. MANO rotates about the wrist: (local - J0) @ R.T + J0 + transl.
    transl = candidate.position + rotation @ wrist - wrist
    out = layer(
        global_orient=tensor(global_orient),
        hand_pose=tensor(candidate.hand_pose),
        betas=tensor(candidate.betas),
        transl=tensor(transl),
    )
    hand_verts = out.verts[0].cpu().double().numpy()
    hand_joints = out.joints[0].cpu().double().numpy()
    contact = hand_contact_labels(hand_verts, obj.verts, obj.faces, threshold=contact_threshold)
    meta = {
        "source": "synthetic",
        "generator": GENERATOR_VERSION,
        "seed": int(seed),
        "index": int(index),
        "requested_type": requested_type,
        "site": [float(x) for x in candidate.site],
        "site_normal": [float(x) for x in candidate.normal],
        "contact_digits": [name for name, on in zip(_DIGIT_NAMES, candidate.digits, strict=True) if on],
        "palm_contact": bool(candidate.palm),
        "max_penetration_mm": 1000.0 * float(candidate.depth),
        "intersection_volume_cm3": float(candidate.volume),
        "quality_passed": bool(candidate.passed),
        "rounds": int(candidate.rounds),
        "contact_threshold": float(contact_threshold),
        "mano_root": mano_root,
    }
    return Grasp(
        object_name=obj.name,
        obj_verts_canonical=np.array(obj.verts, dtype=np.float64),
        obj_faces=np.array(obj.faces, dtype=np.int64),
        obj_rotation=np.eye(3),
        obj_translation=np.zeros(3),
        global_orient=global_orient.astype(np.float64),
        hand_pose=np.asarray(candidate.hand_pose, dtype=np.float64),
        betas=np.asarray(candidate.betas, dtype=np.float64),
        transl=np.asarray(transl, dtype=np.float64),
        hand_verts=hand_verts,
        hand_joints=hand_joints,
        hand_faces=hand_faces.copy(),
        hand_contact=contact.astype(np.float64),
        side=side,  # type: ignore[arg-type]
        grasp_type=candidate.grasp_type,
        object_id=int(object_id),
        meta=meta,
    )
