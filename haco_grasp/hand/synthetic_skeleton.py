"""The synthetic hand's parametric skeleton: shape parameters, digit centre lines and frames, joint axes.

Shared by the mesh builder (:mod:`haco_grasp.hand.synthetic_asset`) and the pose families
(:mod:`haco_grasp.hand.poses`); see the former's docstring for the frame (metres, right hand, fingers along -x,
back of the hand +y, thumb on the +z side) and the proportions.

Articulation: with MANO's LBS a positive rotation about +z at index/middle/ring/pinky joints flexes the finger
toward the palm (-y). Each finger flexes about its own lateral axis (+z tilted by its splay of a few degrees).
The thumb flexes about ``THUMB_FLEXION_AXIS`` (about (0.61, -0.63, 0.47) for the right hand: the lateral axis of
the thumb's cross-section, perpendicular to its metacarpal and to its nail): a positive rotation carries the tip
palmar and across toward the fingers, under the palm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["THUMB_FLEXION_AXIS"]

# Digit order inside this module: thumb, index, middle, ring, pinky (the 21-joint order).
_FINGERS = (1, 2, 3, 4)
# MANO joint ids of each digit's three joints (proximal to distal).
_DIGIT_JOINTS = {0: (13, 14, 15), 1: (1, 2, 3), 2: (4, 5, 6), 3: (10, 11, 12), 4: (7, 8, 9)}


# --------------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class _ShapeParams:
    """Parameters of the generator (multipliers and offsets around the mean hand)."""

    size: float = 1.0
    finger_length: float = 1.0
    hand_breadth: float = 1.0
    palm_thickness: float = 1.0
    finger_girth: float = 1.0
    palm_length: float = 1.0
    thumb_length: float = 1.0
    finger_spread_deg: float = 0.0
    little_finger_length: float = 1.0
    fingertip_fullness: float = 1.0


# One beta unit of each parameter, in SYNTHETIC_BETA_NAMES order.
_BETA_STEPS = (
    ("size", 0.035),
    ("finger_length", 0.04),
    ("hand_breadth", 0.04),
    ("palm_thickness", 0.07),
    ("finger_girth", 0.05),
    ("palm_length", 0.04),
    ("thumb_length", 0.05),
    ("finger_spread_deg", 1.5),
    ("little_finger_length", 0.05),
    ("fingertip_fullness", 0.07),
)

_WRIST_X = 0.090  # wrist joint x (right hand)
_HAND_Z0 = -0.006  # lateral centre line of the palm


@dataclass(frozen=True)
class _FingerSpec:
    mcp: tuple[float, float, float]
    splay_deg: float  # rest rotation about +y (positive = toward the thumb)
    lengths: tuple[float, float, float]  # MCP->PIP, PIP->DIP, DIP->tip
    base_radii: tuple[float, float]  # (lateral, dorsal-palmar) half-axes at the root
    tip_radii: tuple[float, float]
    spread_gain: float  # how much finger_spread_deg rotates this finger


_FINGER_SPECS = {
    1: _FingerSpec((0.006, 0.0, 0.026), 4.0, (0.041, 0.025, 0.022), (0.0096, 0.0086), (0.0073, 0.0064), 1.0),
    2: _FingerSpec((0.000, 0.0, 0.003), 0.5, (0.046, 0.028, 0.024), (0.0098, 0.0088), (0.0075, 0.0066), 0.0),
    3: _FingerSpec((0.004, -0.001, -0.0185), -4.0, (0.043, 0.027, 0.023), (0.0093, 0.0084), (0.0071, 0.0062), -1.0),
    4: _FingerSpec((0.014, -0.002, -0.0375), -9.0, (0.034, 0.020, 0.021), (0.0081, 0.0074), (0.0063, 0.0056), -2.0),
}
# Thumb: CMC joint, direction of each segment (CMC->MCP, MCP->IP, IP->tip), lengths, nail reference direction.
_THUMB_CMC = (0.066, -0.010, 0.024)
_THUMB_DIRS = ((-0.74, -0.25, 0.62), (-0.89, -0.10, 0.44), (-0.96, -0.02, 0.28))
_THUMB_LENGTHS = (0.040, 0.028, 0.024)
_THUMB_NAIL_REF = (0.0, 0.6, 0.8)
_THUMB_RADII = ((0.0125, 0.0112), (0.0102, 0.0090), (0.0084, 0.0072))  # at ring 1, at the MCP, at the tip


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * t * (t * (6.0 * t - 15.0) + 10.0)


# --------------------------------------------------------------------------------------------- digits
@dataclass(frozen=True)
class _Digit:
    """A digit's centre line: joints[0..2] then the tip, one frame per segment, radii profile."""

    joints: np.ndarray  # (4, 3) joint1, joint2, joint3, tip
    dirs: np.ndarray  # (3, 3) unit direction of each segment
    nail_ref: np.ndarray  # (3,) reference dorsal direction
    cum: np.ndarray  # (4,) arc length of joints and tip along the centre line
    base_radii: np.ndarray  # (2,)
    mid_radii: np.ndarray  # (2,) radii at joint2
    tip_radii: np.ndarray  # (2,)
    girth: float
    cap: float  # length of the rounded tip cap
    is_thumb: bool

    def center(self, s: np.ndarray) -> np.ndarray:
        """s: (N,) arc length -> (N, 3) points of the centre line (extended straight before joint1)."""
        seg = np.clip(np.searchsorted(self.cum, s, side="right") - 1, 0, 2)
        return self.joints[seg] + (s - self.cum[seg])[:, None] * self.dirs[seg]

    def frame(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Direction d, lateral e1 (= flexion axis) and dorsal e2 at arc lengths s: each (N, 3)."""
        w1 = _smoothstep((s - self.cum[1]) / 0.012 + 0.5)
        w2 = _smoothstep((s - self.cum[2]) / 0.010 + 0.5)
        d = _unit(self.dirs[0] * (1 - w1)[:, None] + self.dirs[1] * (w1 - w2)[:, None] + self.dirs[2] * w2[:, None])
        e2 = _unit(self.nail_ref[None] - (d @ self.nail_ref)[:, None] * d)
        e1 = np.cross(e2, d)
        return d, e1, e2

    def radii(self, s: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lateral and dorsal-palmar half-axes at arc length s for ring angle phi: each (N,)."""
        s_cap0 = self.cum[3] - self.cap
        t_mid = np.clip(s / self.cum[1], 0.0, 1.0)
        t_tip = np.clip((s - self.cum[1]) / (s_cap0 - self.cum[1]), 0.0, 1.0)
        r = np.where(
            (s <= self.cum[1])[:, None],
            self.base_radii[None] + (self.mid_radii - self.base_radii)[None] * t_mid[:, None],
            self.mid_radii[None] + (self.tip_radii - self.mid_radii)[None] * t_tip[:, None],
        )
        # Finger girth acts fully from the middle of the proximal phalanx on (the roots stay apart).
        girth = 1.0 + (self.girth - 1.0) * (0.35 + 0.65 * _smoothstep(s / (0.6 * self.cum[1])))
        bulge = (
            1.0
            + 0.05 * np.exp(-(((s - self.cum[1]) / 0.006) ** 2))
            + 0.04 * np.exp(-(((s - self.cum[2]) / 0.005) ** 2))
        )
        palmar = np.sin(phi) < 0
        pad_center = self.cum[2] + 0.45 * (self.cum[3] - self.cum[2])
        pad = 1.0 + palmar * (0.05 + 0.10 * np.exp(-(((s - pad_center) / 0.007) ** 2)))
        u = np.clip((s - s_cap0) / self.cap, 0.0, 1.0)
        cap = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
        rz = r[:, 0] * girth * bulge * cap
        ry = r[:, 1] * girth * bulge * cap * pad
        return rz, ry

    def ring(self, s: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Surface points at arc lengths s and ring angles phi (both (N,)): (N, 3)."""
        _, e1, e2 = self.frame(s)
        rz, ry = self.radii(s, phi)
        return self.center(s) + (rz * np.cos(phi))[:, None] * e1 + (ry * np.sin(phi))[:, None] * e2

    def apex(self) -> np.ndarray:
        s = self.cum[3:4]
        _, _, e2 = self.frame(s)
        return self.center(s)[0] - 0.25 * self.tip_radii[1] * self.girth * e2[0]


def _make_digits(p: _ShapeParams) -> dict[int, _Digit]:
    digits: dict[int, _Digit] = {}
    for f, spec in _FINGER_SPECS.items():
        mcp = np.array(spec.mcp)
        mcp[0] = _WRIST_X + (mcp[0] - _WRIST_X) * p.palm_length
        mcp[2] = _HAND_Z0 + (mcp[2] - _HAND_Z0) * p.hand_breadth
        angle = np.deg2rad(spec.splay_deg + spec.spread_gain * p.finger_spread_deg)
        d = np.array([-np.cos(angle), 0.0, np.sin(angle)])
        scale = p.finger_length * (p.little_finger_length if f == 4 else 1.0)
        lengths = np.array(spec.lengths) * scale
        cum = np.concatenate([[0.0], np.cumsum(lengths)])
        joints = mcp[None] + cum[:, None] * d[None]
        base = np.array(spec.base_radii) * np.array([p.hand_breadth, 1.0])
        tip = np.array(spec.tip_radii) * p.fingertip_fullness
        mid = 0.55 * base + 0.45 * np.array(spec.tip_radii)
        digits[f] = _Digit(
            joints=joints,
            dirs=np.repeat(d[None], 3, axis=0),
            nail_ref=np.array([0.0, 1.0, 0.0]),
            cum=cum,
            base_radii=base,
            mid_radii=mid,
            tip_radii=tip,
            girth=p.finger_girth,
            cap=0.85 * tip[1],
            is_thumb=False,
        )
    cmc = np.array(_THUMB_CMC)
    cmc[0] = _WRIST_X + (cmc[0] - _WRIST_X) * p.palm_length
    cmc[2] = _HAND_Z0 + (cmc[2] - _HAND_Z0) * p.hand_breadth
    dirs = _unit(np.array(_THUMB_DIRS))
    lengths = np.array(_THUMB_LENGTHS) * p.thumb_length * np.array([1.0, p.finger_length, p.finger_length])
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    joints = [cmc]
    for k in range(3):
        joints.append(joints[-1] + lengths[k] * dirs[k])
    tip = np.array(_THUMB_RADII[2]) * p.fingertip_fullness
    digits[0] = _Digit(
        joints=np.array(joints),
        dirs=dirs,
        nail_ref=_unit(np.array(_THUMB_NAIL_REF)),
        cum=cum,
        base_radii=np.array(_THUMB_RADII[0]),
        mid_radii=np.array(_THUMB_RADII[1]),
        tip_radii=tip,
        girth=p.finger_girth,
        cap=0.85 * tip[1],
        is_thumb=True,
    )
    return digits


def _digit_axes(p: _ShapeParams | None = None) -> dict[int, np.ndarray]:
    """Per digit, per joint: (3, 3) rows = flexion axis, abduction axis, twist axis (rest frame)."""
    digits = _make_digits(p or _ShapeParams())
    axes: dict[int, np.ndarray] = {}
    for d, dg in digits.items():
        per_joint = []
        for k in range(3):
            s = np.array([0.5 * (dg.cum[k] + dg.cum[k + 1])])
            direction, e1, e2 = dg.frame(s)
            if dg.is_thumb:
                # The thumb's second axis is palmar abduction: it carries the tip toward -y (out of the palm).
                e2 = _unit(np.cross(direction, np.array([[0.0, -1.0, 0.0]])))
                e2 = _unit(e2 - (e2 @ e1[0])[:, None] * e1)
            per_joint.append(np.stack([e1[0], e2[0], direction[0]]))
        axes[d] = np.stack(per_joint)
    return axes


#: Flexion axis of the right thumb (its CMC joint's lateral axis), unit vector.
THUMB_FLEXION_AXIS: tuple[float, float, float] = tuple(float(x) for x in np.round(_digit_axes()[0][0, 0], 4))
