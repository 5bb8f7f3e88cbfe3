"""Before/after figures of grasps with contact heat maps (for the demo and the benchmark reports)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from haco_grasp.viz.colormap import OBJECT_PALETTE, contact_colors
from haco_grasp.viz.render import MeshLayer, add_label, image_grid, render_views, save_png


def grasp_row(hand_verts, hand_faces, obj_verts, obj_faces, contact, label: str, n_views: int = 3, size: int = 200):
    """One labelled row of ``n_views`` renders around a grasp, hand coloured by contact.

    hand_verts: (778, 3) metres. obj_verts: (Vo, 3) metres. contact: (778,) in [0, 1] (heat map on the hand).
    Returns an (H, n_views·W, 3) uint8 image.
    """
    meshes = [
        MeshLayer(
            np.asarray(hand_verts), np.asarray(hand_faces), contact_colors(np.asarray(contact, dtype=np.float64))
        ),
        MeshLayer(np.asarray(obj_verts), np.asarray(obj_faces), OBJECT_PALETTE[0]),
    ]
    points = np.concatenate([np.asarray(hand_verts), np.asarray(obj_verts)])
    centre = 0.5 * (points.min(0) + points.max(0))
    radius = 0.5 * float(np.linalg.norm(points.max(0) - points.min(0)))
    return add_label(render_views(meshes, center=centre, radius=radius, n_views=n_views, size=size), label)


def save_comparison(rows: Sequence[tuple[str, object, np.ndarray]], path: str | Path, title: str = "SYNTHETIC") -> Path:
    """Stack labelled rows ``(label, grasp, contact (778,))`` of :class:`~haco_grasp.data.grasp.Grasp` into one PNG."""
    images = [
        grasp_row(g.hand_verts, g.hand_faces, g.obj_verts, g.obj_faces, contact, f"{title} | {label}")
        for label, g, contact in rows
    ]
    return save_png(image_grid(images, ncols=1), path)
