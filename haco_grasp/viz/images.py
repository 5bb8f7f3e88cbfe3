"""uint8 image helpers of the figures: write a PNG atomically, tile images into a grid, draw a text label.

Needs numpy and Pillow only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from haco_grasp.atomic import atomic_open
from haco_grasp.errors import InputError

__all__ = ["add_label", "image_grid", "save_png"]


def _check_image(image: Any, name: str = "image") -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InputError(
            f"{name} must be uint8 (H, W), (H, W, 3) or (H, W, 4), got {array.dtype} {array.shape}; "
            "convert floats with np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)"
        )
    return array


def save_png(image: Any, path: str | os.PathLike[str]) -> Path:
    """Write a PNG atomically (temporary file in the same folder, then ``os.replace``); creates parent folders.

    Args:
        image: (H, W, 3) uint8 RGB, (H, W, 4) RGBA or (H, W) grey

    Returns:
        the written path
    """
    array = _check_image(image)
    target = Path(path)
    with atomic_open(target) as stream:
        Image.fromarray(array).save(stream, format="PNG")
    return target


def image_grid(images: Sequence[Any], ncols: int, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile images row by row into one image; cells are as large as the largest image, images sit top-left.

    Args:
        images: sequence of (H_i, W_i, 3) uint8
        ncols: images per row (>= 1)
        pad: pixels between cells

    Returns:
        (rows * Hc + (rows - 1) * pad, cols * Wc + (cols - 1) * pad, 3) uint8
    """
    if len(images) == 0:
        raise InputError("image_grid needs at least one image")
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1 or pad < 0:
        raise InputError(f"image_grid needs ncols >= 1 and pad >= 0, got ncols={ncols!r}, pad={pad!r}")
    arrays = [_check_image(image, f"images[{i}]") for i, image in enumerate(images)]
    if any(array.ndim != 3 or array.shape[2] != 3 for array in arrays):
        raise InputError("image_grid needs RGB images of shape (H, W, 3)")
    cell_height = max(array.shape[0] for array in arrays)
    cell_width = max(array.shape[1] for array in arrays)
    cols = min(int(ncols), len(arrays))
    rows = -(-len(arrays) // cols)
    grid = np.full(
        (rows * cell_height + (rows - 1) * pad, cols * cell_width + (cols - 1) * pad, 3), pad_value, dtype=np.uint8
    )
    for index, array in enumerate(arrays):
        top = (index // cols) * (cell_height + pad)
        left = (index % cols) * (cell_width + pad)
        grid[top : top + array.shape[0], left : left + array.shape[1]] = array
    return grid


def add_label(
    image: Any,
    text: str,
    position: tuple[int, int] = (3, 3),
    color: tuple[int, int, int] = (0, 0, 0),
    box_color: tuple[int, int, int] | None = (255, 255, 255),
) -> np.ndarray:
    """Draw ``text`` with Pillow's default font on a copy of ``image``, over a filled box unless ``box_color`` is None.

    Args:
        image: (H, W, 3) uint8
        position: (x, y) of the text's top-left corner in pixels
        color, box_color: 8-bit RGB

    Returns:
        (H, W, 3) uint8, a new array
    """
    array = _check_image(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"add_label needs an RGB image (H, W, 3), got {array.shape}")
    canvas = Image.fromarray(array.copy())
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if box_color is not None:
        left, top, right, bottom = draw.textbbox(position, str(text), font=font)
        draw.rectangle((left - 2, top - 2, right + 1, bottom + 1), fill=tuple(box_color))
    draw.text(position, str(text), fill=tuple(color), font=font)
    return np.asarray(canvas).copy()
