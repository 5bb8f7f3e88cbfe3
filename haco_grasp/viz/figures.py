"""Figures that explain themselves: colour bars, palm / back views of a hand heat map, histograms of per-frame change.

Everything is drawn with numpy, the toolkit's rasteriser (:mod:`haco_grasp.viz.render`) and Pillow (matplotlib is
not a dependency). Images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from haco_grasp.errors import InputError
from haco_grasp.viz.colormap import contact_colors
from haco_grasp.viz.render import MeshLayer, add_label, render_views

__all__ = [
    "color_bar",
    "hand_heat_map_figure",
    "histogram_image",
    "palm_frame",
    "place_beside",
    "stack_below",
]

_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_GREY = (120, 120, 120)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: Any) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return int(right - left)


def color_bar(
    colors: Callable[[np.ndarray], np.ndarray] = contact_colors,
    width: int = 512,
    label: str = "contact probability",
    ticks: Sequence[tuple[float, str]] = ((0.0, "0"), (0.5, "0.5"), (1.0, "1")),
    mark: tuple[float, str] | None = None,
    font_size: int = 13,
) -> np.ndarray:
    """A horizontal colour bar over [0, 1] with tick labels, a caption and an optional marked value.

    Args:
        colors: maps (V,) values in [0, 1] to (V, 3) RGB floats (default: the contact heat map, skin to red).
        width: image width, pixels.
        label: caption under the bar.
        ticks: (value in [0, 1], text) pairs written under the bar.
        mark: (value, text): a vertical line across the bar at value, its text above the bar (e.g. a threshold).
        font_size: text size, pixels.

    Returns:
        (H, width, 3) uint8 image.
    """
    if width < 64:
        raise InputError(f"color_bar: width must be at least 64 pixels, got {width}")
    margin, bar_height = 16, 18
    top = font_size + 8 if mark else 6
    height = top + bar_height + 2 * font_size + 16
    canvas = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    font = _font(font_size)
    span = width - 2 * margin
    ramp = np.clip(np.rint(colors(np.linspace(0.0, 1.0, span)) * 255), 0, 255).astype(np.uint8)  # (span, 3)
    bar = np.repeat(ramp[None], bar_height, axis=0)  # (bar_height, span, 3)
    canvas.paste(Image.fromarray(bar), (margin, top))
    draw.rectangle((margin - 1, top - 1, margin + span, top + bar_height), outline=_BLACK)
    for value, text in ticks:
        x = margin + round(float(value) * (span - 1))
        draw.line((x, top + bar_height, x, top + bar_height + 4), fill=_BLACK)
        text_x = min(max(x - _text_width(draw, text, font) // 2, 2), width - _text_width(draw, text, font) - 2)
        draw.text((text_x, top + bar_height + 5), text, fill=_BLACK, font=font)
    if mark is not None:
        x = margin + round(float(mark[0]) * (span - 1))
        draw.line((x, top - 4, x, top + bar_height + 2), fill=_BLACK, width=2)
        text_x = min(max(x - _text_width(draw, mark[1], font) // 2, 2), width - _text_width(draw, mark[1], font) - 2)
        draw.text((text_x, 2), mark[1], fill=_BLACK, font=font)
    caption_y = top + bar_height + font_size + 9
    draw.text(((width - _text_width(draw, label, font)) // 2, caption_y), label, fill=_BLACK, font=font)
    return np.asarray(canvas).copy()


def stack_below(images: Sequence[np.ndarray], pad: int = 4) -> np.ndarray:
    """Images one under another, left-aligned on white, as wide as the widest."""
    width = max(image.shape[1] for image in images)
    rows = []
    for image in images:
        row = np.full((image.shape[0], width, 3), 255, dtype=np.uint8)
        row[:, : image.shape[1]] = image
        rows.append(row)
        rows.append(np.full((pad, width, 3), 255, dtype=np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def place_beside(images: Sequence[np.ndarray], pad: int = 4) -> np.ndarray:
    """Images side by side, top-aligned on white, as high as the highest."""
    height = max(image.shape[0] for image in images)
    columns = []
    for image in images:
        column = np.full((height, image.shape[1], 3), 255, dtype=np.uint8)
        column[: image.shape[0]] = image
        columns.append(column)
        columns.append(np.full((height, pad, 3), 255, dtype=np.uint8))
    return np.concatenate(columns[:-1], axis=1)


# ----------------------------------------------------------------------------------------------- hands
def palm_frame(joints: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """The palm's outward normal and the finger direction of a hand, from its MANO-order joints.

    Args:
        joints: (16, 3) or (21, 3) float, metres: MANO order (16: wrist, index1, ..., thumb3) or the toolkit's
            21-joint order (:mod:`haco_grasp.hand.joints`).
        side: "right" or "left".

    Returns:
        (palm_normal (3,), finger_direction (3,)) unit vectors: the normal points out of the palm (a camera there
        sees the palm), the direction from the wrist to the middle finger's base.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape == (16, 3):
        wrist, index, middle, pinky = joints[0], joints[1], joints[4], joints[7]
    elif joints.shape == (21, 3):
        wrist, index, middle, pinky = joints[0], joints[5], joints[9], joints[17]
    else:
        raise InputError(f"palm_frame: expected joints of shape (16, 3) or (21, 3), got {joints.shape}")
    if side not in ("right", "left"):
        raise InputError(f"palm_frame: side must be 'right' or 'left', got {side!r}")
    # right hand, palm towards a viewer, fingers up: index on the right, pinky on the left, so index × pinky points
    # at the viewer (out of the palm); a left hand is the mirror image
    normal = np.cross(index - wrist, pinky - wrist)
    if side == "left":
        normal = -normal
    finger = middle - wrist
    normal_len, finger_len = np.linalg.norm(normal), np.linalg.norm(finger)
    if normal_len < 1e-9 or finger_len < 1e-9:
        raise InputError("palm_frame: wrist, index, middle and pinky joints are collinear or coincide")
    return normal / normal_len, finger / finger_len


def hand_heat_map_figure(
    verts: np.ndarray,
    faces: np.ndarray,
    joints: np.ndarray,
    values: np.ndarray,
    side: str,
    crop: np.ndarray | None = None,
    threshold: float | None = None,
    title: str = "",
    size: int = 256,
) -> np.ndarray:
    """A hand contact heat map as a reader needs it: the input crop, palm and back views, a colour bar.

    Args:
        verts: (778, 3) float, metres: the hand mesh (e.g. the template).
        faces: (F, 3) int.
        joints: (16, 3) or (21, 3) float, metres: its joints (orient the views, :func:`palm_frame`).
        values: (778,) float in [0, 1]: contact probability per vertex.
        side: "right" or "left".
        crop: (H, W, 3) uint8, the image the contact was predicted from (resized to ``size`` high); None: none.
        threshold: probability above which a vertex counts as contact (marked on the colour bar); None: none.
        title: text over the figure.
        size: pixel size of each view.

    Returns:
        (H, W, 3) uint8 image.
    """
    verts = np.asarray(verts, dtype=np.float64)
    normal, finger = palm_frame(joints, side)
    center = 0.5 * (verts.min(0) + verts.max(0))
    radius = float(np.linalg.norm(verts - center, axis=1).max())
    layer = MeshLayer(verts, np.asarray(faces), contact_colors(np.asarray(values, dtype=np.float64)))
    views = render_views([layer], center, radius, n_views=2, size=size, up=finger, front=normal)  # palm, then back
    panels = [add_label(views[:, :size], "palm"), add_label(views[:, size:], "back")]
    if crop is not None:
        image = Image.fromarray(np.asarray(crop, dtype=np.uint8))
        resized = image.resize((max(1, round(image.width * size / image.height)), size), Image.BILINEAR)
        panels.insert(0, add_label(np.asarray(resized), "input crop"))
    body = place_beside(panels)
    mark = None if threshold is None else (float(threshold), f"threshold {threshold:g}")
    bar = color_bar(width=min(body.shape[1], 520), label=f"HACO contact probability ({side} hand)", mark=mark)
    parts = [body, bar]
    if title:
        parts.insert(0, add_label(np.full((22, body.shape[1], 3), 255, dtype=np.uint8), title))
    return stack_below(parts)


# ----------------------------------------------------------------------------------------------- histograms
def histogram_image(
    values: Sequence[float] | np.ndarray,
    title: str,
    x_label: str,
    bins: int = 20,
    size: tuple[int, int] = (520, 320),
    better: str = "left",
) -> np.ndarray:
    """A histogram of per-frame values with a line at zero and the share of frames on each side of it.

    Args:
        values: (N,) float, e.g. per-frame change (refined − input) of MPJPE in mm; NaNs are dropped.
        title: text over the plot.
        x_label: axis caption (name and unit).
        bins: number of equal-width bins.
        size: (width, height) in pixels.
        better: "left" if negative values are improvements (the caption says so), "right" otherwise.

    Returns:
        (height, width, 3) uint8 image.
    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    array = array[np.isfinite(array)]
    width, height = size
    canvas = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    font, small = _font(14), _font(12)
    left, right, top, bottom = 48, width - 16, 46, height - 52
    draw.text((left, 6), title, fill=_BLACK, font=font)
    if array.size == 0:
        draw.text((left, top + 20), "no frames", fill=_GREY, font=font)
        return np.asarray(canvas).copy()
    low, high = float(min(array.min(), 0.0)), float(max(array.max(), 0.0))
    if high - low < 1e-12:
        low, high = low - 1.0, high + 1.0
    pad = 0.05 * (high - low)
    low, high = low - pad, high + pad
    counts, edges = np.histogram(array, bins=bins, range=(low, high))
    peak = max(int(counts.max()), 1)

    def x_of(value: float) -> float:
        return left + (value - low) / (high - low) * (right - left)

    def y_of(count: float) -> float:
        return bottom - count / peak * (bottom - top)

    for count, start, end in zip(counts, edges[:-1], edges[1:], strict=True):
        if count:
            colour = (70, 130, 180) if end <= 0 else (214, 96, 77) if start >= 0 else (150, 150, 150)
            draw.rectangle((x_of(start) + 1, y_of(count), x_of(end) - 1, bottom), fill=colour)
    draw.line((left, bottom, right, bottom), fill=_BLACK)
    draw.line((left, top, left, bottom), fill=_BLACK)
    for count in sorted({0, peak // 2, peak}):
        y = y_of(count)
        draw.line((left - 4, y, left, y), fill=_BLACK)
        draw.text((left - 8 - _text_width(draw, str(count), small), y - 7), str(count), fill=_BLACK, font=small)
    for value in np.linspace(low, high, 5):
        x = x_of(value)
        text = f"{value:.3g}"
        draw.line((x, bottom, x, bottom + 4), fill=_BLACK)
        draw.text((x - _text_width(draw, text, small) // 2, bottom + 6), text, fill=_BLACK, font=small)
    zero = x_of(0.0)
    draw.line((zero, top - 4, zero, bottom), fill=_BLACK, width=2)
    down, up = float(np.mean(array < 0)), float(np.mean(array > 0))
    summary = f"{array.size} frames: {down:.0%} < 0, {up:.0%} > 0, median {np.median(array):.3g}"
    draw.text((left, 26), summary, fill=_GREY, font=small)
    caption = f"{x_label} ({'negative' if better == 'left' else 'positive'} = better; frames per bin on the y axis)"
    draw.text(((width - _text_width(draw, caption, small)) // 2, height - 22), caption, fill=_BLACK, font=small)
    return np.asarray(canvas).copy()
