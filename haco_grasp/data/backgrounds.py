"""Procedural backgrounds of the synthetic training images (:mod:`haco_grasp.data.images`).

Four kinds (``BACKGROUND_KINDS``): ``"gradient"`` (linear two- or three-stop ramp), ``"noise"`` (multi-octave value
noise between random colours), ``"checker"`` (rotated checkerboard), ``"blobs"`` (soft random ellipses over a base
colour); optional per-pixel Gaussian grain. Each is a pure function of a numpy Generator: the same stream gives the
same image. Soft ellipses are composited inside each ellipse's bounding box only (outside it the blend weight is
exactly zero), which gives the full-image result at a fraction of the cost.
"""

from __future__ import annotations

import math

import numpy as np

from haco_grasp.errors import InputError

#: Procedural background kinds drawn by ``background="random"``.
BACKGROUND_KINDS: tuple[str, ...] = ("gradient", "noise", "checker", "blobs")


def _interpolation_knots(cells: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation from a coarse grid of cells + 1 knots to size samples: sample i lies between knots
    ``low[i]`` and ``low[i] + 1`` at fraction ``frac[i]``.

    Returns:
        low: (size,) int64; frac: (size,) float64 in [0, 1].
    """
    position = (np.arange(size) + 0.5) / size * cells
    low = np.minimum(np.floor(position).astype(np.int64), cells - 1)
    return low, position - low


def _value_noise(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """(size, size, channels) smooth noise in [0, 1]: a random (cells+1)^2 grid, bilinearly upsampled.

    Separable gathers rather than interpolation-matrix products: the same values (to 1e-16), and no BLAS call,
    whose threads contend on a loaded machine (15 ms vs 1.5 ms per 256 x 256 channel measured on 2 busy cores).
    """
    grid = rng.random((cells + 1, cells + 1, channels))
    low, frac = _interpolation_knots(cells, size)
    rows = grid[low] * (1.0 - frac)[:, None, None] + grid[low + 1] * frac[:, None, None]  # (size, cells + 1, C)
    return rows[:, low] * (1.0 - frac)[None, :, None] + rows[:, low + 1] * frac[None, :, None]  # (size, size, C)


def random_color(rng: np.random.Generator) -> np.ndarray:
    return rng.random(3) ** rng.uniform(0.6, 1.6)


def procedural_background(kind: str, rng: np.random.Generator, size: int, grain: float) -> np.ndarray:
    """(size, size, 3) float64 background in [0, 1] of the given procedural kind."""
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    if kind == "gradient":
        angle = rng.uniform(0.0, 2.0 * math.pi)
        ramp = xs * math.cos(angle) + ys * math.sin(angle)
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
        stops = [random_color(rng) for _ in range(int(rng.integers(2, 4)))]
        positions = np.linspace(0.0, 1.0, len(stops))
        image = np.stack([np.interp(ramp, positions, [s[c] for s in stops]) for c in range(3)], axis=-1)
    elif kind == "noise":
        octaves = [(int(cells), 0.5**k) for k, cells in enumerate(rng.integers(2, 6) * 2 ** np.arange(4))]
        field = sum(amplitude * _value_noise(rng, size, cells, 1)[..., 0] for cells, amplitude in octaves)
        field = (field - field.min()) / max(np.ptp(field), 1e-9)
        low, high = random_color(rng), random_color(rng)
        tint = 0.25 * (_value_noise(rng, size, int(rng.integers(2, 5)), 3) - 0.5)
        image = low + field[..., None] * (high - low) + tint
    elif kind == "checker":
        angle = rng.uniform(0.0, math.pi)
        period = rng.uniform(0.04, 0.3)
        u = (xs * math.cos(angle) + ys * math.sin(angle)) / period
        v = (-xs * math.sin(angle) + ys * math.cos(angle)) / period
        parity = (np.floor(u) + np.floor(v)) % 2.0
        first, second = random_color(rng), random_color(rng)
        image = np.where(parity[..., None] > 0.5, first, second)
    elif kind == "blobs":
        image = np.broadcast_to(random_color(rng), (size, size, 3)).copy()
        for _ in range(int(rng.integers(3, 13))):
            cx, cy = rng.uniform(-0.1, 1.1, size=2)
            ax, ay = rng.uniform(0.05, 0.45, size=2)
            angle = rng.uniform(0.0, math.pi)
            softness, color = rng.uniform(0.05, 0.6), random_color(rng)
            cos, sin = math.cos(angle), math.sin(angle)
            # The ellipse's bounding box (normalised units); outside it radius >= 1 and the blend weight is 0.
            half_x, half_y = math.hypot(ax * cos, ay * sin), math.hypot(ax * sin, ay * cos)
            scale = max(size - 1, 1)
            cols = slice(max(math.floor((cx - half_x) * scale), 0), max(math.ceil((cx + half_x) * scale) + 1, 0))
            rows = slice(max(math.floor((cy - half_y) * scale), 0), max(math.ceil((cy + half_y) * scale) + 1, 0))
            du, dv = xs[rows, cols] - cx, ys[rows, cols] - cy
            radius = np.hypot((du * cos + dv * sin) / ax, (-du * sin + dv * cos) / ay)
            alpha = np.clip((1.0 - radius) / softness, 0.0, 1.0)[..., None]
            image[rows, cols] = image[rows, cols] * (1.0 - alpha) + alpha * color
    else:  # pragma: no cover - kinds are validated by ImageConfig
        raise InputError(f"unknown background kind {kind!r}; expected one of {', '.join(BACKGROUND_KINDS)}")
    if grain > 0.0:
        image = image + rng.normal(0.0, grain, size=image.shape)
    return np.clip(image, 0.0, 1.0)
