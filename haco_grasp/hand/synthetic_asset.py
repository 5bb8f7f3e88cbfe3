"""A license-free synthetic open hand in MANO format: a deterministic generator of ``MANO_RIGHT/LEFT.pkl``.

The official MANO model needs a licence. This module builds a stand-in with the same keys, shapes, dtypes, joint
order and kinematic tree (:mod:`haco_grasp.hand.joints`), so that every MANO code path of the toolkit (loading,
LBS, PCA poses, 21-joint output, contact on 778 vertices) runs and is tested without it. It is a look-alike, not a
copy: no data of the official model is used, and vertex ids other than the fingertips have no relation to MANO's.

Frame (right hand; chosen to resemble MANO's, unverified against the official file): metres, rest pose flat,
fingers pointing along -x, back of the hand facing +y, palm facing -y, thumb on the +z side. The origin lies near
the middle finger's MCP joint and the wrist joint about 9 cm along +x from it.

Mesh: 778 vertices and 1538 triangles forming ONE connected, oriented, manifold, genus-0 surface, open at the wrist
like MANO: exactly one boundary loop of 16 vertices (fan-capping it gives a watertight mesh with outward normals).
It is built from tubes with explicit topology: a 16-vertex wrist ring, palm rings of 34 vertices, a branching top
ring made of the dorsal and palmar arcs of the four finger base rings (10 vertices each) with one crotch patch
between neighbouring fingers, the thumb tube attached to a hole in the palm's radial-palmar side, rounded fingertip
caps ending in one apex vertex each, then a little Taubin smoothing that keeps the wrist loop fixed.

Fingertip ids: the apex vertex of each digit (its most distal vertex, on the tip just palmar of the axis) has the id
MANO's fingertips have in manopth/DexYCB/ContactOpt, :data:`SYNTHETIC_TIP_VERTEX_IDS` = ``MANO_TIP_VERTEX_IDS`` =
(745 thumb, 317 index, 444 middle, 556 ring, 673 pinky), so 21-joint code needs no special case.

Joints (``J_regressor``, rows sum to 1, non-negative): each joint is a weighted mean of the rings of vertices
around it (weights solved so that the mean lands on the anatomical joint centre, on the digit's axis, inside the
flesh); the wrist joint lies at the centre of the wrist.

Skinning (``weights``): a vertex between joint j and its child is bound to j (MANO's convention). Along the
digits the transitions are smooth steps about 1-1.6 cm wide centred on the joints; around the knuckles the weights
are harmonic between the palm (wrist) and the proximal phalanges; the thenar blends wrist -> thumb1 over 3 cm
centred on the CMC joint; then everything is averaged twice over the mesh graph (the wrist opening stays bound to
the wrist only).

Articulation: see :mod:`haco_grasp.hand.synthetic_skeleton` (flexion axes, ``THUMB_FLEXION_AXIS``).

Proportions (rest pose): wrist joint to middle fingertip 18.8 cm; palm breadth 8.0-8.4 cm; palm thickness 2.8 cm;
joint1-to-tip lengths thumb 9.0, index 8.8, middle 9.8, ring 9.3, little 7.5 cm (from the finger webs, i.e. the
visible fingers: about 6.9, 7.7, 7.4, 6.0 cm); finger half-widths 8-10 mm at the roots, 6-7.5 mm at the tips
(elliptic, flatter dorso-palmarly).

Shape (``shapedirs``, 10 components; betas in [-3, 3] stay plausible): each column is the central difference of
the parametric generator for one step of one parameter, so the model is linear in beta by construction:

- beta0 overall size (+3.5 % per unit, about the origin),
- beta1 finger length (all phalanges incl. the thumb's, +4 %),
- beta2 hand breadth (palm width and finger spacing/width, +4 %),
- beta3 palm thickness (+7 %),
- beta4 finger girth (finger and thumb radii, +5 %, less at the finger roots),
- beta5 palm length (wrist to knuckles, +4 %),
- beta6 thumb length (+5 %),
- beta7 finger spread (rest splay, about +1.5 degrees between neighbours),
- beta8 little-finger length (+5 %),
- beta9 fingertip fullness (tip radii +7 %).

Pose correctives (``posedirs``): all zeros (plain LBS). The key exists with MANO's shape (V, 3, 135).

Pose space: :func:`haco_grasp.hand.poses.synthetic_grasp_poses` returns named families (open, relaxed, power,
fist, precision, pinch, lateral/key, spherical, hook, point) of anatomically sensible 45-D axis-angle finger poses
with random variation (seeded). ``hands_mean`` is their mean and ``hands_components`` their PCA (rows =
components, orthonormal, decreasing variance); ``hands_coeffs`` holds the coefficients of every sample. With
seed 0 (480 poses) 15 components explain 98.5 % of the variance (relative reconstruction error 12 %, mean
per-joint rotation error 2.4 degrees).

Left hand: the mirror image across the x = 0 plane (x negated, faces reversed, same J_regressor and weights,
shapedirs' x negated, posedirs mirrored, pose PCA mirrored as axis-angle (x, -y, -z) per joint), as in MANO.

Cache key: :func:`asset_key` hashes what builds the asset (this module, the skeleton module and the pose PCA
baked in), so editing a pose family changes the key only when it changes the asset's PCA.

Length: over 600 lines because the mesh topology, smoothing, joint regressor and skinning weights are one
generator whose steps share the same private ring bookkeeping (``_RawHand``, ``_Template``); the parametric
skeleton and the pose families, which stand alone, live in their own modules.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.optimize import nnls

from haco_grasp.atomic import atomic_write_bytes
from haco_grasp.errors import InputError
from haco_grasp.hand import synthetic_skeleton
from haco_grasp.hand.joints import MANO_PARENTS, MANO_TIP_VERTEX_IDS, NUM_MANO_JOINTS, NUM_VERTS
from haco_grasp.hand.poses import _pose_pca
from haco_grasp.hand.synthetic_skeleton import (
    _BETA_STEPS,
    _DIGIT_JOINTS,
    _FINGERS,
    _HAND_Z0,
    _WRIST_X,
    _make_digits,
    _ShapeParams,
    _smoothstep,
    _unit,
)

__all__ = [
    "SYNTHETIC_TIP_VERTEX_IDS",
    "SYNTHETIC_BETA_NAMES",
    "asset_key",
    "build_synthetic_mano",
    "write_synthetic_mano",
]

#: Fingertip vertex ids of the synthetic hand (thumb, index, middle, ring, pinky): the same as MANO's.
SYNTHETIC_TIP_VERTEX_IDS: tuple[int, ...] = MANO_TIP_VERTEX_IDS

#: Meaning of each shape coefficient (``shapedirs[:, :, k]``).
SYNTHETIC_BETA_NAMES: tuple[str, ...] = (
    "size",
    "finger_length",
    "hand_breadth",
    "palm_thickness",
    "finger_girth",
    "palm_length",
    "thumb_length",
    "finger_spread",
    "little_finger_length",
    "fingertip_fullness",
)

NUM_BETAS = 10
NUM_FACES = 2 * NUM_VERTS - 16 - 2  # Euler: a disc with a 16-vertex boundary.
_UINT32_ROOT = np.uint32(4294967295)

# Ring resolution.
_FINGER_RING = 10  # vertices per finger / thumb ring
_PALM_RING = 34  # vertices per palm ring (= 4 fingers x (4 dorsal + 4 palmar) + 2 sides)
_WRIST_RING = 16
_PALM_TAUS = (0.20, 0.42, 0.63, 0.84)  # palm rings between the wrist ring (0) and the top ring (1)
_HOLE_RINGS = (1, 3)  # the thumb's hole spans palm rings 1..3 (1-based, wrist ring = 0) ...
_HOLE_COLUMNS = (31, 34)  # ... and palm columns 31..34 (34 == 0), the radial-palmar corner
_TAUBIN_ITERATIONS = 8

# Palm cross-section per tau (0 = wrist ring, 1 = knuckle ring): half-width, lateral centre, vertical centre,
# dorsal and palmar half-thickness, superellipse exponent, thenar and hypothenar bulge.
_PALM_KNOTS = np.array([0.0, 0.2, 0.5, 0.8, 1.0])
_PALM_W = np.array([0.0300, 0.0395, 0.0430, 0.0435, 0.0420])
_PALM_ZC = np.array([-0.0050, -0.0060, -0.0065, -0.0065, -0.0060])
_PALM_YC = np.array([0.0000, -0.0005, -0.0010, -0.0010, -0.0005])
_PALM_TD = np.array([0.0160, 0.0135, 0.0122, 0.0112, 0.0095])
_PALM_TP = np.array([0.0180, 0.0150, 0.0145, 0.0132, 0.0100])
_PALM_P = np.array([2.0, 2.5, 2.8, 2.8, 2.6])
_THENAR = np.array([0.0, 0.0045, 0.0050, 0.0015, 0.0])
_HYPOTHENAR = np.array([0.0, 0.0030, 0.0030, 0.0015, 0.0])


def _finger_ring_s(cum: np.ndarray, cap: float) -> np.ndarray:
    """Arc lengths of the 12 rings of a finger beyond its base ring."""
    l1, l2, l3 = np.diff(cum)
    s3, tip = cum[2], cum[3]
    return np.array(
        [
            0.62 * l1,
            0.86 * l1,
            cum[1],
            cum[1] + 0.22 * l2,
            cum[1] + 0.55 * l2,
            cum[1] + 0.82 * l2,
            s3,
            s3 + 0.30 * (tip - cap - s3),
            s3 + 0.68 * (tip - cap - s3),
            tip - cap,
            tip - 0.45 * cap,
            tip - 0.15 * cap,
        ]
    )


def _thumb_ring_s(cum: np.ndarray, cap: float) -> np.ndarray:
    """Arc lengths of the 10 rings of the thumb beyond its hole."""
    l1, l2, l3 = np.diff(cum)
    return np.array(
        [
            0.70 * l1,
            cum[1],
            cum[1] + 0.30 * l2,
            cum[1] + 0.65 * l2,
            cum[2],
            cum[2] + 0.30 * (l3 - cap),
            cum[2] + 0.70 * (l3 - cap),
            cum[3] - cap,
            cum[3] - 0.45 * cap,
            cum[3] - 0.15 * cap,
        ]
    )


def _base_ring_s(phi: np.ndarray, l1: float) -> np.ndarray:
    """Slanted root ring of a finger: dorsal arc at the knuckle, palmar arc and sides further out."""
    side = 0.45 * l1
    palm = 0.27 * l1
    c2, s2 = np.cos(phi) ** 2, np.sin(phi) ** 2
    return side * c2 + np.where(np.sin(phi) < 0, palm * s2, 0.0)


# --------------------------------------------------------------------------------------------- palm
def _palm_contour(tau: float, p: _ShapeParams, num: int = 241) -> tuple[np.ndarray, np.ndarray]:
    """Dorsal and palmar half contours of the palm cross-section at tau: two (num, 2) arrays of (z, y)."""

    def knot(values: np.ndarray) -> float:
        return float(np.interp(tau, _PALM_KNOTS, values))

    w = knot(_PALM_W) * p.hand_breadth
    zc = _HAND_Z0 + (knot(_PALM_ZC) - _HAND_Z0) * p.hand_breadth
    yc = knot(_PALM_YC)
    td, tp = knot(_PALM_TD) * p.palm_thickness, knot(_PALM_TP) * p.palm_thickness
    expo = knot(_PALM_P)
    thenar, hypo = knot(_THENAR), knot(_HYPOTHENAR)
    halves = []
    for lo, hi in ((0.0, np.pi), (np.pi, 2 * np.pi)):
        psi = np.linspace(lo, hi, num)
        c, s = np.cos(psi), np.sin(psi)
        norm = (np.abs(c) ** expo + np.abs(s) ** expo) ** (1.0 / expo)
        t = np.where(s >= 0, td, tp)
        z = w * c / norm
        y = t * s / norm
        # Bulges along the (approximate) outward normal of the normalised section.
        gap_t = np.angle(np.exp(1j * (psi - np.deg2rad(-38.0))))
        gap_h = np.angle(np.exp(1j * (psi - np.deg2rad(212.0))))
        bump = thenar * np.exp(-((gap_t / np.deg2rad(32.0)) ** 2)) + hypo * np.exp(-((gap_h / np.deg2rad(30.0)) ** 2))
        n = _unit(np.stack([c / w, s / t], axis=1))
        halves.append(np.stack([zc + z + bump * n[:, 0], yc + y + bump * n[:, 1]], axis=1))
    return halves[0], halves[1]


def _arc_fractions(points: np.ndarray) -> np.ndarray:
    """points: (N, 2) polyline -> (N,) cumulative arc length fraction in [0, 1]."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    return cum / cum[-1]


def _resample(points: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    frac = _arc_fractions(points)
    return np.stack([np.interp(fractions, frac, points[:, k]) for k in range(points.shape[1])], axis=1)


# --------------------------------------------------------------------------------------------- topology helpers
def _quad_band(a: list[int], b: list[int]) -> list[tuple[int, int, int]]:
    """Triangles between two loops of equal length with a[i] <-> b[i] (same rotational sense)."""
    n = len(a)
    out = []
    for i in range(n):
        j = (i + 1) % n
        out.append((a[i], a[j], b[i]))
        out.append((a[j], b[j], b[i]))
    return out


def _zipper(a: list[int], a_ang: np.ndarray, b: list[int], b_ang: np.ndarray) -> list[tuple[int, int, int]]:
    """Triangles between loops a and b of any lengths, both ordered by increasing angle."""
    two_pi = 2.0 * np.pi
    ta = np.unwrap(a_ang)
    ta = np.concatenate([ta, [ta[0] + two_pi]])
    gaps = np.abs(np.angle(np.exp(1j * (b_ang - a_ang[0]))))
    j0 = int(np.argmin(gaps))
    b = b[j0:] + b[:j0]
    tb = np.unwrap(np.roll(b_ang, -j0))
    tb = tb - two_pi * np.round((tb[0] - ta[0]) / two_pi)
    tb = np.concatenate([tb, [tb[0] + two_pi]])
    m, n = len(a), len(b)
    out: list[tuple[int, int, int]] = []
    i = j = 0
    while i < m or j < n:
        advance_a = j == n or (i < m and ta[i + 1] <= tb[j + 1])
        if advance_a:
            out.append((a[i % m], a[(i + 1) % m], b[j % n]))
            i += 1
        else:
            out.append((a[i % m], b[(j + 1) % n], b[j % n]))
            j += 1
    return out


def _boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Boundary loops as ordered vertex lists following the faces' boundary half-edges."""
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    keys = set(map(tuple, half.tolist()))
    nxt: dict[int, int] = {}
    for u, v in half.tolist():
        if (v, u) not in keys:
            if u in nxt:
                raise RuntimeError("synthetic hand: non-simple boundary (generator bug)")
            nxt[u] = v
    loops = []
    seen: set[int] = set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop = [start]
        seen.add(start)
        v = nxt[start]
        while v != start:
            loop.append(v)
            seen.add(v)
            v = nxt[v]
        loops.append(loop)
    return loops


# --------------------------------------------------------------------------------------------- the raw mesh
@dataclass
class _RawHand:
    verts: np.ndarray  # (V, 3) before smoothing
    faces: np.ndarray  # (F, 3) int64
    digit: np.ndarray  # (V,) -1 palm, 0..4 digit (crotch centres: the radial finger)
    ring: np.ndarray  # (V,) ring number inside palm (0 wrist .. 5 top) or digit (0 base / hole .. n)
    region: np.ndarray  # (V,) 0 palm, 1 digit tube, 2 crotch centre, 3 apex
    palm_column: np.ndarray  # (V,) column of palm ring vertices, -1 elsewhere
    finger_rings: dict[int, list[list[int]]]  # digit -> rings (index 0 = base ring / hole loop)
    palm_rings: list[list[int]]
    apex: dict[int, int]
    crotch: list[tuple[int, int, int]]  # (centre vertex, radial finger, ulnar finger)
    hole_loop: list[int]


class _Builder:
    def __init__(self) -> None:
        self.pos: list[np.ndarray] = []
        self.digit: list[int] = []
        self.ring: list[int] = []
        self.region: list[int] = []
        self.column: list[int] = []

    def add(
        self, points: np.ndarray, digit: int, ring: int, region: int, columns: list[int] | None = None
    ) -> list[int]:
        points = np.atleast_2d(points)
        start = len(self.pos)
        for k, point in enumerate(points):
            self.pos.append(point)
            self.digit.append(digit)
            self.ring.append(ring)
            self.region.append(region)
            self.column.append(-1 if columns is None else columns[k])
        return list(range(start, start + len(points)))


@functools.lru_cache(maxsize=1)
def _top_sources() -> tuple[tuple[int, int], ...]:
    """(finger, ring vertex k) of each of the 34 top-ring vertices: index side k0, the dorsal arcs k1..4 from the
    index to the pinky, the pinky's side k5, then the palmar arcs k6..9 from the pinky back to the index."""
    src: list[tuple[int, int]] = [(1, 0)]
    for f in _FINGERS:
        src += [(f, k) for k in (1, 2, 3, 4)]
    src.append((4, 5))
    for f in reversed(_FINGERS):
        src += [(f, k) for k in (6, 7, 8, 9)]
    return tuple(src)


def _build_raw(p: _ShapeParams) -> _RawHand:
    """Vertices and faces of the hand for one parameter set (topology never depends on p)."""
    digits = _make_digits(p)
    phis = 2.0 * np.pi * np.arange(_FINGER_RING) / _FINGER_RING
    builder = _Builder()

    # Finger base rings (positions only for now): slanted rings at the finger roots.
    base_pos = {}
    for f in _FINGERS:
        dg = digits[f]
        base_pos[f] = dg.ring(_base_ring_s(phis, dg.cum[1]), phis)

    top_src = _top_sources()
    top_xyz = np.array([base_pos[f][k] for f, k in top_src])
    top_zy = top_xyz[:, [2, 1]]
    frac_dorsal = _arc_fractions(top_zy[: _PALM_RING // 2 + 1])
    frac_palmar = _arc_fractions(np.concatenate([top_zy[_PALM_RING // 2 :], top_zy[:1]]))

    x_wrist = _WRIST_X + 0.007 * p.palm_length
    # Wrist ring: an ellipse-like section at tau = 0.
    dorsal0, palmar0 = _palm_contour(0.0, p)
    contour0 = np.concatenate([dorsal0[:-1], palmar0[:-1]])
    psi0 = np.linspace(0.0, 2 * np.pi, contour0.shape[0], endpoint=False)
    psi_w = 2 * np.pi * np.arange(_WRIST_RING) / _WRIST_RING
    wrist_zy = np.stack([np.interp(psi_w, psi0, contour0[:, k], period=2 * np.pi) for k in range(2)], axis=1)
    wrist_xyz = np.stack([np.full(_WRIST_RING, x_wrist), wrist_zy[:, 1], wrist_zy[:, 0]], axis=1)
    palm_rings = [builder.add(wrist_xyz, -1, 0, 0, list(range(_WRIST_RING)))]

    columns = list(range(_PALM_RING))
    for k, tau in enumerate(_PALM_TAUS, start=1):
        dorsal, palmar = _palm_contour(tau, p)
        zy = np.concatenate([_resample(dorsal, frac_dorsal)[:-1], _resample(palmar, frac_palmar)[:-1]])
        # Near the knuckles the section starts to follow the finger roots.
        blend = _smoothstep((tau - 0.7) / 0.3) * 0.35
        zy = (1 - blend) * zy + blend * top_zy
        x = (1 - tau) * x_wrist + tau * top_xyz[:, 0]
        palm_rings.append(builder.add(np.stack([x, zy[:, 1], zy[:, 0]], axis=1), -1, k, 0, columns))
    top_ids = builder.add(top_xyz, -1, len(_PALM_TAUS) + 1, 0, columns)
    palm_rings.append(top_ids)

    # Finger base loops: shared arcs plus new crotch side vertices.
    vertex_of = {src: top_ids[i] for i, src in enumerate(top_src)}
    for f in _FINGERS:
        for k in (0, 5):
            if (f, k) not in vertex_of:
                vertex_of[(f, k)] = builder.add(base_pos[f][k], f, 0, 1)[0]
    finger_rings: dict[int, list[list[int]]] = {}
    apex: dict[int, int] = {}
    for f in _FINGERS:
        dg = digits[f]
        rings = [[vertex_of[(f, k)] for k in range(_FINGER_RING)]]
        for r, s in enumerate(_finger_ring_s(dg.cum, dg.cap), start=1):
            rings.append(builder.add(dg.ring(np.full(_FINGER_RING, s), phis), f, r, 1))
        finger_rings[f] = rings
        apex[f] = builder.add(dg.apex(), f, len(rings), 3)[0]

    faces: list[tuple[int, int, int]] = []

    # Wrist band (16 -> 34) by angle around the palm axis.
    def angles(ids: list[int]) -> np.ndarray:
        pts = np.array([builder.pos[i] for i in ids])
        centre = pts.mean(axis=0)
        return np.arctan2(pts[:, 1] - centre[1], pts[:, 2] - centre[2])

    faces += _zipper(palm_rings[0], angles(palm_rings[0]), palm_rings[1], angles(palm_rings[1]))
    hole_faces = set()
    for k in range(1, len(palm_rings) - 1):
        band = _quad_band(palm_rings[k], palm_rings[k + 1])
        for q, tri in enumerate(band):
            column = q // 2
            if _HOLE_RINGS[0] <= k < _HOLE_RINGS[1] and _HOLE_COLUMNS[0] <= column < _HOLE_COLUMNS[1]:
                hole_faces.add(tri)
                continue
            faces.append(tri)
    for f in _FINGERS:
        rings = finger_rings[f]
        for r in range(len(rings) - 1):
            faces += _quad_band(rings[r], rings[r + 1])
        last = rings[-1]
        faces += [(last[i], last[(i + 1) % _FINGER_RING], apex[f]) for i in range(_FINGER_RING)]

    # Crotches between neighbouring fingers: fill each remaining small hole with a centre vertex.
    loops = _boundary_loops(np.array(faces))
    wrist_set = set(palm_rings[0])
    hole_set = {v for tri in hole_faces for v in tri}
    crotch: list[tuple[int, int, int]] = []
    hole_loop: list[int] = []
    for loop in loops:
        if set(loop) <= wrist_set:
            continue
        if set(loop) <= hole_set:
            hole_loop = loop
            continue
        fingers_in = sorted(
            {builder.digit[v] for v in loop if builder.digit[v] > 0}
            | {f for (f, k), v in vertex_of.items() if v in loop}
        )
        centre = builder.add(np.mean([builder.pos[v] for v in loop], axis=0), fingers_in[0], 0, 2)[0]
        crotch.append((centre, fingers_in[0], fingers_in[-1]))
        faces += [(loop[(i + 1) % len(loop)], loop[i], centre) for i in range(len(loop))]
    if len(crotch) != 3 or len(hole_loop) != 10:
        raise RuntimeError("synthetic hand: unexpected boundary structure (generator bug)")

    # Thumb: its hole loop taken against the palm faces' direction, then rings to the tip.
    thumb = digits[0]
    hole_loop = hole_loop[::-1]
    s_rings = _thumb_ring_s(thumb.cum, thumb.cap)
    _, e1, e2 = thumb.frame(s_rings[:1])
    hole_pts = np.array([builder.pos[v] for v in hole_loop])
    rel = hole_pts - hole_pts.mean(axis=0)
    hole_ang = np.arctan2(rel @ e2[0], rel @ e1[0])
    winding = np.sum(np.angle(np.exp(1j * np.diff(np.concatenate([hole_ang, hole_ang[:1]])))))
    sense = 1.0 if winding > 0 else -1.0
    thumb_phis = sense * phis
    thumb_rings = [hole_loop]
    for r, s in enumerate(s_rings, start=1):
        thumb_rings.append(builder.add(thumb.ring(np.full(_FINGER_RING, s), thumb_phis), 0, r, 1))
    finger_rings[0] = thumb_rings
    apex[0] = builder.add(thumb.apex(), 0, len(thumb_rings), 3)[0]
    faces += _zipper(hole_loop, sense * hole_ang, thumb_rings[1], thumb_phis * sense)
    for r in range(1, len(thumb_rings) - 1):
        faces += _quad_band(thumb_rings[r], thumb_rings[r + 1])
    last = thumb_rings[-1]
    faces += [(last[i], last[(i + 1) % _FINGER_RING], apex[0]) for i in range(_FINGER_RING)]

    # Drop the vertices inside the hole and renumber.
    faces_arr = np.array(faces, dtype=np.int64)
    used = np.zeros(len(builder.pos), dtype=bool)
    used[faces_arr.ravel()] = True
    new_id = np.cumsum(used) - 1
    remap = {int(v): int(new_id[v]) for v in np.flatnonzero(used)}

    def rm(ids: list[int]) -> list[int]:
        return [remap[v] for v in ids]

    return _RawHand(
        verts=np.array(builder.pos)[used],
        faces=new_id[faces_arr],
        digit=np.array(builder.digit)[used],
        ring=np.array(builder.ring)[used],
        region=np.array(builder.region)[used],
        palm_column=np.array(builder.column)[used],
        finger_rings={f: [rm(r) for r in rings] for f, rings in finger_rings.items()},
        palm_rings=[[remap[v] for v in ring if v in remap] for ring in palm_rings],
        apex={f: remap[v] for f, v in apex.items()},
        crotch=[(remap[c], a, b) for c, a, b in crotch],
        hole_loop=rm(hole_loop),
    )


# --------------------------------------------------------------------------------------------- smoothing / order
def _adjacency(faces: np.ndarray, num_verts: int) -> sp.csr_matrix:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    adj = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_verts, num_verts)).tocsr()
    adj.data[:] = 1.0
    return adj


def _mean_operator(faces: np.ndarray, num_verts: int) -> sp.csr_matrix:
    adj = _adjacency(faces, num_verts)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    return sp.diags(1.0 / deg) @ adj


def _taubin(verts: np.ndarray, mean_op: sp.csr_matrix, pinned: np.ndarray, iterations: int) -> np.ndarray:
    """Taubin lambda|mu smoothing with uniform weights; pinned vertices do not move. Linear in verts."""
    out = verts.copy()
    free = ~pinned
    for _ in range(iterations):
        for step in (0.5, -0.53):
            delta = mean_op @ out - out
            out[free] += step * delta[free]
    return out


@dataclass
class _Template:
    raw: _RawHand
    order: np.ndarray  # (V,) final id -> raw id
    mean_op: sp.csr_matrix
    pinned: np.ndarray


@functools.lru_cache(maxsize=1)
def _template() -> _Template:
    raw = _build_raw(_ShapeParams())
    num = raw.verts.shape[0]
    if num != NUM_VERTS or raw.faces.shape[0] != NUM_FACES:
        raise RuntimeError(f"synthetic hand: built {num} vertices / {raw.faces.shape[0]} faces (generator bug)")
    # Final vertex order: construction order with the five apex vertices moved to MANO's fingertip ids.
    tips = [raw.apex[d] for d in range(5)]
    rest = [v for v in range(num) if v not in set(tips)]
    order = np.full(num, -1, dtype=np.int64)
    order[list(SYNTHETIC_TIP_VERTEX_IDS)] = tips
    order[order < 0] = rest
    pinned = np.zeros(num, dtype=bool)
    pinned[raw.palm_rings[0]] = True
    return _Template(raw=raw, order=order, mean_op=_mean_operator(raw.faces, num), pinned=pinned)


def _generate(p: _ShapeParams) -> np.ndarray:
    """Smoothed vertices of the hand for parameters p, in the final vertex order: (V, 3) metres."""
    tpl = _template()
    raw = _build_raw(p)
    verts = _taubin(raw.verts, tpl.mean_op, tpl.pinned, _TAUBIN_ITERATIONS)
    return verts[tpl.order] * p.size


# --------------------------------------------------------------------------------------------- rig
def _joint_targets(p: _ShapeParams) -> np.ndarray:
    """Anatomical joint centres in MANO joint order: (16, 3) metres (before the size factor)."""
    digits = _make_digits(p)
    out = np.zeros((NUM_MANO_JOINTS, 3))
    for d, ids in _DIGIT_JOINTS.items():
        out[list(ids)] = digits[d].joints[:3]
    return out


def _solve_mean_weights(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to 1 whose weighted mean of points is target, close to uniform.

    points: (N, 3) metres. target: (3,) metres. Returns (N,) weights.
    """
    n = points.shape[0]
    scale = 1000.0  # millimetres for conditioning
    strong = 100.0
    a = np.concatenate([strong * points.T * scale, strong * np.ones((1, n)), np.eye(n)], axis=0)
    b = np.concatenate([strong * target * scale, [strong], np.full(n, 1.0 / n)])
    w, _ = nnls(a, b, maxiter=50 * n)
    return w / w.sum()


def _ring_ids(raw: _RawHand, digit: int, s_target: float, s_rings: np.ndarray, count: int) -> list[int]:
    nearest = np.argsort(np.abs(s_rings - s_target), kind="stable")[:count]
    return [v for r in sorted(nearest) for v in raw.finger_rings[digit][r + 1]]


def _joint_regressor(verts: np.ndarray, tpl: _Template, p: _ShapeParams) -> sp.csc_matrix:
    """(16, V) regressor: each joint a weighted mean of the rings around it. verts: (V, 3) in final order."""
    raw = tpl.raw
    inv = np.empty_like(tpl.order)
    inv[tpl.order] = np.arange(len(tpl.order))
    digits = _make_digits(p)
    targets = _joint_targets(p)
    rows = np.zeros((NUM_MANO_JOINTS, verts.shape[0]))
    groups: dict[int, list[int]] = {}
    wrist_ids = raw.palm_rings[0] + raw.palm_rings[1]
    centre = np.array([verts[inv[v]] for v in raw.palm_rings[0]]).mean(axis=0)
    targets[0] = [_WRIST_X, centre[1], centre[2]]
    groups[0] = wrist_ids
    for d in range(5):
        dg = digits[d]
        s_rings = _thumb_ring_s(dg.cum, dg.cap) if d == 0 else _finger_ring_s(dg.cum, dg.cap)
        j1, j2, j3 = _DIGIT_JOINTS[d]
        if d == 0:
            ring1 = raw.palm_rings[1]
            near = [v for v in ring1 + raw.palm_rings[2] if raw.palm_column[v] in (0, 1, 2, 29, 30, 31, 32, 33)]
            groups[j1] = raw.finger_rings[0][0] + raw.finger_rings[0][1] + near
        else:
            columns = {k for k, (f, _) in enumerate(_top_sources()) if f == d}
            below = [v for v in raw.palm_rings[-2] if raw.palm_column[v] in columns]
            groups[j1] = raw.finger_rings[d][0] + raw.finger_rings[d][1] + below
        groups[j2] = _ring_ids(raw, d, dg.cum[1], s_rings, 3)
        groups[j3] = _ring_ids(raw, d, dg.cum[2], s_rings, 3)
    for j, ids in groups.items():
        final = inv[np.array(ids)]
        w = _solve_mean_weights(verts[final], targets[j] * p.size)
        rows[j, final] = w
    rows[rows < 1e-6] = 0.0
    rows /= rows.sum(axis=1, keepdims=True)
    return sp.csc_matrix(rows)


def _chain_weights(s: np.ndarray, cum: np.ndarray, widths: tuple[float, float, float]) -> np.ndarray:
    """Weights of (parent, joint1, joint2, joint3) for arc lengths s along a digit: (N, 4)."""
    sig = [_smoothstep((s - cum[k]) / widths[k] + 0.5) for k in range(3)]
    return np.stack([1 - sig[0], sig[0] - sig[1], sig[1] - sig[2], sig[2]], axis=1)


def _skinning_weights(verts: np.ndarray, tpl: _Template, joints: np.ndarray) -> np.ndarray:
    """(V, 16) weights: analytic along the digits, harmonic around the MCP/CMC roots, then smoothed."""
    raw = tpl.raw
    num = verts.shape[0]
    inv = np.empty_like(tpl.order)
    inv[tpl.order] = np.arange(num)
    weights = np.zeros((num, NUM_MANO_JOINTS))
    fixed = np.zeros(num, dtype=bool)
    # Palm rings below the knuckles belong to the wrist.
    for ring in raw.palm_rings[:-2]:
        ids = inv[np.array(ring)]
        weights[ids, 0] = 1.0
        fixed[ids] = True
    for d in range(5):
        rings = raw.finger_rings[d]
        j1, j2, j3 = _DIGIT_JOINTS[d]
        cum = np.array([0.0, np.linalg.norm(joints[j2] - joints[j1]), 0.0, 0.0])
        cum[2] = cum[1] + np.linalg.norm(joints[j3] - joints[j2])
        ids = inv[np.array([v for ring in rings[1:] for v in ring] + [raw.apex[d]])]
        # Arc length of each vertex: projection on its segment of the joint polyline.
        pts = verts[ids]
        seg_dirs = _unit(np.stack([joints[j2] - joints[j1], joints[j3] - joints[j2], joints[j3] - joints[j2]]))
        s1 = (pts - joints[j1]) @ seg_dirs[0]
        s2 = cum[1] + (pts - joints[j2]) @ seg_dirs[1]
        s3 = cum[2] + (pts - joints[j3]) @ seg_dirs[1]
        s = np.where(s1 < cum[1], s1, np.where(s2 < cum[2], s2, s3))
        chain = _chain_weights(s, cum, (0.016, 0.011, 0.009))
        weights[np.ix_(ids, [0, j1, j2, j3])] = chain
        fixed[ids] = True
    # The thenar (the thumb's hole loop and the palm around it): a smooth step along the metacarpal, centred on
    # the CMC joint, between the wrist and the thumb's first joint.
    wrist_ring = set(raw.palm_rings[0])
    thenar = set(raw.hole_loop)
    adj = _adjacency(raw.faces, num)
    for v in raw.hole_loop:
        thenar |= {int(u) for u in adj[v].indices if raw.digit[u] == -1 and int(u) not in wrist_ring}
    ids = inv[np.array(sorted(thenar))]
    metacarpal = _unit(joints[14] - joints[13])
    step = _smoothstep((verts[ids] - joints[13]) @ metacarpal / 0.03 + 0.5)
    weights[ids] = 0.0
    weights[ids, 0] = 1.0 - step
    weights[ids, 13] = step
    fixed[ids] = True
    # Harmonic interpolation of the free vertices (uniform graph Laplacian, final order).
    adj_final = _adjacency(inv[raw.faces], num)
    lap = sp.diags(np.asarray(adj_final.sum(axis=1)).ravel()) - adj_final
    free = ~fixed
    lap = lap.tocsr()
    lff = lap[free][:, free].tocsc()
    lfb = lap[free][:, fixed]
    weights[free] = spla.splu(lff).solve(-(lfb @ weights[fixed]))
    weights = np.clip(weights, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    mean_op = _mean_operator(inv[raw.faces], num)
    movable = np.ones(num, dtype=bool)
    movable[inv[np.array(raw.palm_rings[0])]] = False  # the wrist opening stays bound to the wrist only
    for _ in range(2):
        weights[movable] = 0.5 * weights[movable] + 0.5 * (mean_op @ weights)[movable]
    weights[weights < 1e-5] = 0.0
    return weights / weights.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------- model
_MIRROR_POSE = np.tile([1.0, -1.0, -1.0], 15)


def _mirror_posedirs(posedirs: np.ndarray) -> np.ndarray:
    """posedirs (V, 3, 135) of a right hand -> the left hand's (mirror across x)."""
    m = np.array([-1.0, 1.0, 1.0])
    feature_sign = np.tile((m[:, None] * m[None, :]).ravel(), 15)  # (R - I)[r, c] picks up m_r m_c
    return posedirs * m[None, :, None] * feature_sign[None, None, :]


@functools.lru_cache(maxsize=1)
def _right_model() -> dict[str, object]:
    return _build_right_model()


def _build_right_model() -> dict[str, object]:
    tpl = _template()
    base = _ShapeParams()
    v_template = _generate(base)
    faces = tpl.raw.faces
    inv = np.empty_like(tpl.order)
    inv[tpl.order] = np.arange(len(tpl.order))
    faces_final = inv[faces]
    j_regressor = _joint_regressor(v_template, tpl, base)
    joints = j_regressor @ v_template
    weights = _skinning_weights(v_template, tpl, joints)
    shapedirs = np.zeros((NUM_VERTS, 3, NUM_BETAS))
    for k, (name, step) in enumerate(_BETA_STEPS):
        value = getattr(base, name)
        plus = _generate(replace(base, **{name: value + step}))
        minus = _generate(replace(base, **{name: value - step}))
        shapedirs[:, :, k] = 0.5 * (plus - minus)
    mean, components, coeffs = _pose_pca()
    kintree = np.array([[_UINT32_ROOT if q < 0 else q for q in MANO_PARENTS], list(range(NUM_MANO_JOINTS))])
    return {
        "v_template": v_template,
        "f": faces_final.astype(np.uint32),
        "J_regressor": j_regressor,
        "kintree_table": kintree.astype(np.uint32),
        "weights": weights,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((NUM_VERTS, 3, 9 * (NUM_MANO_JOINTS - 1))),
        "hands_components": components,
        "hands_mean": mean,
        "hands_coeffs": coeffs,
        "J": np.asarray(joints),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def _mirror(model: dict[str, object]) -> dict[str, object]:
    m = np.array([-1.0, 1.0, 1.0])
    out = dict(model)
    out["v_template"] = np.asarray(model["v_template"]) * m
    out["f"] = np.ascontiguousarray(np.asarray(model["f"])[:, ::-1])
    out["shapedirs"] = np.asarray(model["shapedirs"]) * m[None, :, None]
    out["posedirs"] = _mirror_posedirs(np.asarray(model["posedirs"]))
    out["hands_components"] = np.asarray(model["hands_components"]) * _MIRROR_POSE[None]
    out["hands_mean"] = np.asarray(model["hands_mean"]) * _MIRROR_POSE
    out["J"] = np.asarray(model["J"]) * m
    return out


def _copy(model: dict[str, object]) -> dict[str, object]:
    return {k: (v.copy() if hasattr(v, "copy") else v) for k, v in model.items()}


def build_synthetic_mano(side: Literal["right", "left"] = "right") -> dict[str, object]:
    """The synthetic hand as the dict an official MANO pickle holds (plain numpy / scipy, no chumpy).

    Args:
        side: "right" or "left" (the left hand is the mirror image of the right across x = 0).

    Returns:
        v_template: (778, 3) float64, metres. f: (1538, 3) uint32 faces, open at the wrist.
        J_regressor: (16, 778) scipy.sparse.csc_matrix float64, rows sum to 1.
        kintree_table: (2, 16) uint32, row 0 parents (4294967295 for the root), row 1 ids.
        weights: (778, 16) float64 skinning weights, rows sum to 1.
        shapedirs: (778, 3, 10) float64, metres per unit beta. posedirs: (778, 3, 135) float64 zeros.
        hands_components: (45, 45) float64, rows = orthonormal components. hands_mean: (45,) float64, radians.
        hands_coeffs: (N, 45) float64 PCA coefficients of the synthetic pose set. J: (16, 3) float64 rest joints.
        bs_style: "lbs". bs_type: "lrotmin".
    """
    if side not in ("right", "left"):
        raise InputError(f"side: expected 'right' or 'left', got {side!r}")
    model = _right_model()
    return _copy(model if side == "right" else _mirror(model))


def write_synthetic_mano(root: str | os.PathLike) -> dict[str, Path]:
    """Write ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl`` (pickle protocol 2, byte-identical every time) into root.

    Each file is written to a temporary file in root and then moved into place (atomic on one file system).

    Args:
        root: folder to write into (created if missing).

    Returns:
        {"right": path, "left": path}.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise InputError(f"root: expected a folder path (str or os.PathLike), got {type(root).__name__}")
    folder = Path(root).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"root: expected a folder, got the file {folder}; pass the folder to write the pickles into")
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for side, name in (("right", "MANO_RIGHT.pkl"), ("left", "MANO_LEFT.pkl")):
        data = pickle.dumps(build_synthetic_mano(side), protocol=2)  # type: ignore[arg-type]
        paths[side] = atomic_write_bytes(folder / name, data)
    return paths


@functools.lru_cache(maxsize=1)
def asset_key() -> str:
    """12 hex digits naming this version of the asset in the cache (:func:`haco_grasp.hand.synthetic_mano_root`).

    It hashes what builds the asset: the source of this module and of :mod:`haco_grasp.hand.synthetic_skeleton`,
    and the pose PCA baked into the pickles (``hands_mean``, ``hands_components``, ``hands_coeffs``, from
    :mod:`haco_grasp.hand.poses`). A changed builder never reuses stale pickles; an edit of the pose module that
    leaves the PCA as it is keeps the key.
    """
    digest = hashlib.sha1()
    for module_file in (__file__, synthetic_skeleton.__file__):
        digest.update(Path(module_file).read_bytes())
    for array in _pose_pca():
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()[:12]
