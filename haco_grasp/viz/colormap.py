"""Colours for renders: skin and object palette, contact heat maps and a perceptual ``heat`` colormap.

All colours are RGB floats in [0, 1]. matplotlib is not a dependency: ``heat`` interpolates its own small table of
control points sampled from the perceptually uniform *inferno* ramp (dark purple → red → orange → pale yellow), whose
luminance rises monotonically, so it stays readable in greyscale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from haco_grasp.arrays import to_numpy
from haco_grasp.errors import InputError

#: Light skin tone used for hands.
SKIN: tuple[float, float, float] = (0.93, 0.75, 0.62)
#: Saturated red used for "in contact" in contact heat maps.
CONTACT_RED: tuple[float, float, float] = (0.86, 0.08, 0.10)
#: Muted, mutually distinguishable object colours (blue, green, grey, purple, ochre, teal).
OBJECT_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.36, 0.56, 0.82),
    (0.45, 0.72, 0.45),
    (0.62, 0.62, 0.66),
    (0.62, 0.48, 0.78),
    (0.85, 0.70, 0.32),
    (0.30, 0.68, 0.70),
)

# Eleven evenly spaced control points (positions 0, 0.1, ..., 1) of the inferno colormap, as 8-bit sRGB.
_HEAT_TABLE_UINT8 = np.array(
    [
        (0, 0, 4),
        (22, 11, 57),
        (66, 10, 104),
        (106, 23, 110),
        (147, 38, 103),
        (188, 55, 84),
        (221, 81, 58),
        (243, 120, 25),
        (252, 165, 10),
        (246, 215, 70),
        (252, 255, 164),
    ],
    dtype=np.float64,
)
HEAT_TABLE: np.ndarray = _HEAT_TABLE_UINT8 / 255.0
"""(11, 3) float: the ``heat`` control colours at positions ``np.linspace(0, 1, 11)``."""


def _check_rgb(colour: Any, name: str) -> np.ndarray:
    rgb = to_numpy(colour, np.float64)
    if rgb.shape != (3,) or not np.all(np.isfinite(rgb)) or rgb.min() < 0.0 or rgb.max() > 1.0:
        raise InputError(
            f"{name} must be an RGB triple of floats in [0, 1], got {np.asarray(colour).tolist()!r}; "
            "divide 8-bit colours by 255"
        )
    return rgb


def _check_values(values: Any, name: str) -> np.ndarray:
    array = to_numpy(values, np.float64)
    if array.ndim != 1:
        raise InputError(f"{name} must be a 1-D array (V,), got shape {array.shape}; flatten per-vertex values first")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} must be finite, got {int((~np.isfinite(array)).sum())} NaN/inf entries")
    return array


def heat(values: Any, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Map scalars to colours with an inferno-like perceptual ramp (dark = low, pale yellow = high).

    Values are normalised to ``(values - vmin) / (vmax - vmin)`` and clipped to [0, 1] (as colormaps usually do);
    the colour is the piecewise-linear interpolation of ``HEAT_TABLE``.

    Args:
        values: (V,) float, any range; a torch tensor is accepted

    Returns:
        (V, 3) float64 RGB in [0, 1]
    """
    array = _check_values(values, "values")
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmax > vmin):
        raise InputError(f"heat needs finite vmin < vmax, got vmin={vmin}, vmax={vmax}")
    position = np.clip((array - vmin) / (vmax - vmin), 0.0, 1.0) * (len(HEAT_TABLE) - 1)
    lower = np.minimum(np.floor(position).astype(np.int64), len(HEAT_TABLE) - 2)
    frac = (position - lower)[:, None]
    return HEAT_TABLE[lower] * (1.0 - frac) + HEAT_TABLE[lower + 1] * frac


def contact_colors(
    values: Any,
    base: tuple[float, float, float] = SKIN,
    hot: tuple[float, float, float] = CONTACT_RED,
) -> np.ndarray:
    """Per-vertex contact heat-map colours: a linear blend from ``base`` (no contact) to ``hot`` (contact).

    Values outside [0, 1] are clipped.

    Args:
        values: (V,) float, contact probability in [0, 1]; a torch tensor is accepted
        base: (3,) float RGB in [0, 1], colour at 0
        hot: (3,) float RGB in [0, 1], colour at 1

    Returns:
        (V, 3) float64 RGB in [0, 1]
    """
    array = np.clip(_check_values(values, "values"), 0.0, 1.0)[:, None]
    base_rgb = _check_rgb(base, "base")
    hot_rgb = _check_rgb(hot, "hot")
    return base_rgb[None, :] * (1.0 - array) + hot_rgb[None, :] * array
