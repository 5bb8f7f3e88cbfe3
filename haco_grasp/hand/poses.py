"""Named grasp-pose families of the synthetic right hand (45-D axis-angle) and the pose PCA fitted on them.

:func:`synthetic_grasp_poses` returns named families (open, relaxed, power, fist, precision, pinch, lateral/key,
spherical, hook, point) of anatomically sensible 45-D axis-angle finger poses with random variation (seeded),
about the joint axes of :mod:`haco_grasp.hand.synthetic_skeleton`. The synthetic hand asset
(:mod:`haco_grasp.hand.synthetic_asset`) bakes the PCA of the seed-0 set into its pickles (``hands_mean``,
``hands_components``, ``hands_coeffs``), so an edit here that changes :func:`_pose_pca`'s output changes the
asset and its cache key; any other edit (a new helper, a comment) leaves both alone.
"""

from __future__ import annotations

import numpy as np

from haco_grasp.errors import InputError
from haco_grasp.hand.joints import NUM_MANO_JOINTS
from haco_grasp.hand.synthetic_skeleton import _DIGIT_JOINTS, _FINGERS, _digit_axes

__all__ = ["synthetic_grasp_poses"]

# positive), then the thumb (CMC flexion, CMC palmar abduction, CMC twist about the bone, MCP flexion, IP flexion),
# radians, about the axes of _digit_axes. The thumb values of the grasps were tuned so that the mean posture closes
# the grasp (pinch: thumb and index tips 1.3 cm apart; precision: thumb tip at the index and middle tips; lateral:
# thumb pad on the side of the index; fist/point: thumb over the middle phalanges).
_FAMILIES: dict[str, dict[str, object]] = {
    "open": {
        "flex": ((0.05, 0.05, 0.03), (0.05, 0.05, 0.03), (0.05, 0.05, 0.03), (0.05, 0.05, 0.03)),
        "abd": (0.10, 0.0, -0.08, -0.15),
        "thumb": (-0.10, -0.15, 0.0, 0.05, 0.05),
        "count": 64,
    },
    "relaxed": {
        "flex": ((0.25, 0.35, 0.20), (0.30, 0.40, 0.25), (0.35, 0.45, 0.25), (0.40, 0.50, 0.30)),
        "abd": (0.02, 0.0, -0.02, -0.05),
        "thumb": (0.20, 0.20, 0.10, 0.20, 0.20),
        "count": 96,
    },
    "power": {
        "flex": ((0.90, 1.10, 0.50), (1.00, 1.20, 0.55), (1.05, 1.20, 0.60), (1.10, 1.20, 0.60)),
        "abd": (-0.05, 0.0, 0.03, 0.08),
        "thumb": (0.25, 0.10, 0.08, 0.20, 0.10),
        "count": 48,
    },
    "fist": {
        "flex": ((1.40, 1.70, 0.90), (1.45, 1.70, 0.90), (1.45, 1.70, 0.90), (1.45, 1.60, 0.90)),
        "abd": (-0.05, 0.0, 0.05, 0.10),
        "thumb": (0.30, -0.05, 0.01, 0.53, 0.35),
        "count": 32,
    },
    "precision": {
        "flex": ((0.70, 0.90, 0.50), (0.70, 0.90, 0.50), (0.80, 1.00, 0.50), (0.85, 1.00, 0.50)),
        "abd": (0.0, 0.0, 0.0, 0.0),
        "thumb": (0.70, 0.00, 0.14, 0.10, 0.10),
        "count": 48,
    },
    "pinch": {
        "flex": ((0.70, 1.05, 0.55), (0.55, 0.85, 0.45), (0.60, 1.00, 0.50), (0.70, 1.10, 0.50)),
        "abd": (0.0, 0.0, -0.02, -0.05),
        "thumb": (0.41, 0.19, -0.04, 0.21, 0.10),
        "count": 48,
    },
    "lateral": {
        "flex": ((0.80, 1.40, 0.70), (0.85, 1.40, 0.70), (0.90, 1.40, 0.70), (0.95, 1.40, 0.70)),
        "abd": (0.0, 0.0, 0.0, 0.0),
        "thumb": (0.09, -0.03, -0.18, 0.33, 0.32),
        "count": 40,
    },
    "spherical": {
        "flex": ((0.45, 0.55, 0.35), (0.45, 0.55, 0.35), (0.45, 0.55, 0.35), (0.50, 0.55, 0.35)),
        "abd": (0.15, 0.0, -0.12, -0.25),
        "thumb": (0.64, 0.13, 0.18, 0.44, 0.19),
        "count": 40,
    },
    "hook": {
        "flex": ((0.15, 1.30, 0.80), (0.15, 1.30, 0.80), (0.15, 1.30, 0.80), (0.15, 1.30, 0.80)),
        "abd": (0.0, 0.0, 0.0, 0.0),
        "thumb": (0.0, 0.10, 0.0, 0.10, 0.10),
        "count": 32,
    },
    "point": {
        "flex": ((0.05, 0.05, 0.05), (1.40, 1.60, 0.80), (1.40, 1.60, 0.80), (1.40, 1.50, 0.80)),
        "abd": (0.05, 0.0, 0.03, 0.08),
        "thumb": (0.51, -0.05, 0.09, 0.35, 0.17),
        "count": 32,
    },
}


def synthetic_grasp_poses(seed: int = 0) -> dict[str, np.ndarray]:
    """The named synthetic pose set of the right hand, used to fit the pose PCA.

    Each family (open, relaxed, power, fist, precision, pinch, lateral, spherical, hook, point) holds its base
    posture with per-sample variation: an overall closure factor, per-joint flexion noise, small abduction and
    twist noise (seeded, deterministic). Flexion is about each digit's own lateral axis (see the module docstring);
    abduction about the dorsal axis; twist about the bone.

    Args:
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        family name -> poses: (n, 45) float64 axis-angle, radians, MANO joints 1..15 (right hand).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise InputError(f"seed: expected an int, got {type(seed).__name__}; pass e.g. seed=0")
    rng = np.random.default_rng(int(seed))
    axes = _digit_axes()
    out: dict[str, np.ndarray] = {}
    for name, fam in _FAMILIES.items():
        count = int(fam["count"])  # type: ignore[call-overload]
        flex = np.array(fam["flex"])  # (4, 3)
        abd = np.array(fam["abd"])  # (4,)
        thumb = np.array(fam["thumb"])  # (5,)
        closure = rng.uniform(0.8, 1.15, size=count)
        poses = np.zeros((count, NUM_MANO_JOINTS, 3))
        for n in range(count):
            for fi, f in enumerate(_FINGERS):
                for k in range(3):
                    theta = np.clip(flex[fi, k] * closure[n] + rng.normal(0.0, 0.08), -0.15, 1.9)
                    a = (abd[fi] + rng.normal(0.0, 0.05)) if k == 0 else rng.normal(0.0, 0.02)
                    t = rng.normal(0.0, 0.03 if k == 0 else 0.02)
                    poses[n, _DIGIT_JOINTS[f][k]] = axes[f][k].T @ np.array([theta, a, t])
            cmc = thumb[:3] * np.array([closure[n], 1.0, 1.0]) + rng.normal(0.0, 0.08, size=3)
            poses[n, 13] = axes[0][0].T @ cmc
            for k, value in ((1, thumb[3]), (2, thumb[4])):
                theta = np.clip(value * closure[n] + rng.normal(0.0, 0.08), -0.3, 1.4)
                poses[n, 13 + k] = axes[0][k].T @ np.array([theta, rng.normal(0.0, 0.03), rng.normal(0.0, 0.03)])
        out[name] = poses[:, 1:].reshape(count, 45)
    return out


def _pose_pca(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (45,), components (45, 45) rows, coefficients (N, 45) of the synthetic pose set."""
    poses = np.concatenate(list(synthetic_grasp_poses(seed).values()), axis=0)
    mean = poses.mean(axis=0)
    centred = poses - mean
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    # Fix the sign of each component: largest entry positive.
    signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    components = vt * signs[:, None]
    return mean, components, centred @ components.T
