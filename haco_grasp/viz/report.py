"""Before/after figures of grasps with contact heat maps (for the demo and the benchmark reports).

:func:`save_refinement_figure` is the one figure of a refinement: ground truth (when known), input, the contact
target on the input hand, refined; achieved contact is the toolkit's contact label at one stated threshold
(:data:`CONTACT_THRESHOLD_M`, 1 cm), and a colour bar under the rows says what the colours mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from haco_grasp.viz.colormap import OBJECT_PALETTE, contact_colors
from haco_grasp.viz.figures import color_bar, stack_below
from haco_grasp.viz.render import MeshLayer, add_label, image_grid, render_views, save_png

#: Distance under which a hand vertex is "in contact" in the figures: the toolkit's contact-label threshold
#: (:func:`haco_grasp.geometry.labels.hand_contact_labels`, 1 cm as in DexYCB, ObMan and HO3D), metres.
CONTACT_THRESHOLD_M = 0.01


def grasp_row(hand_verts, hand_faces, obj_verts, obj_faces, contact, label: str, n_views: int = 3, size: int = 200):
    """One labelled row of ``n_views`` renders around a grasp, hand coloured by contact.

    Args:
        hand_verts: (778, 3) metres.
        obj_verts: (Vo, 3) metres.
        contact: (778,) in [0, 1] (heat map on the hand).

    Returns:
        (H, n_views·W, 3) uint8 image.
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


def save_refinement_figure(
    path: str | Path,
    before: object,
    after: object,
    target: np.ndarray,
    truth: object | None = None,
    target_label: str = "contact target",
    refined_label: str = "refined",
    title: str = "SYNTHETIC",
    threshold: float = CONTACT_THRESHOLD_M,
) -> Path:
    """One PNG of a refinement: rows ground truth (if given), input, target, refined, and a colour bar.

    Args:
        path: the PNG to write.
        before, after, truth: :class:`~haco_grasp.data.grasp.Grasp` records: the input, the refined grasp, the
            ground truth (None: no such row).
        target: (778,) float in [0, 1], the contact target per hand vertex (probabilities or contact values), drawn
            on the input hand.
        target_label: what the target is (e.g. "HACO target", "oracle target").
        refined_label: the refined row's name (e.g. "refined (fast)").
        title: the first word of every row label (e.g. "SYNTHETIC").
        threshold: contact-label distance of the ground truth, input and refined rows, metres.

    Returns:
        the written path.
    """
    from haco_grasp.geometry.labels import hand_contact_labels

    distance = f"{threshold * 1000:g} mm" if threshold < 0.01 else f"{threshold * 100:g} cm"
    rows: list[tuple[str, object, np.ndarray]] = []
    for label, grasp in (("ground truth", truth), ("input", before)):
        if grasp is not None:
            labels = hand_contact_labels(grasp.hand_verts, grasp.obj_verts, grasp.obj_faces, threshold=threshold)
            rows.append((f"{label} | red = within {distance} of the object", grasp, labels.astype(np.float64)))
    rows.append((f"{target_label}, on the input hand | red = target contact", before, np.asarray(target, np.float64)))
    labels = hand_contact_labels(after.hand_verts, after.obj_verts, after.obj_faces, threshold=threshold)
    rows.append((f"{refined_label} | red = within {distance} of the object", after, labels.astype(np.float64)))
    images = [grasp_row(g.hand_verts, g.hand_faces, g.obj_verts, g.obj_faces, contact, f"{title} | {label}")
              for label, g, contact in rows]  # fmt: skip
    body = image_grid(images, ncols=1)
    bar = color_bar(width=min(body.shape[1], 560), label=f"hand colour: contact label (1 = a vertex within {distance} "
                    "of the object) or target (0..1)", ticks=((0.0, "0: no contact"), (1.0, "1: contact")))  # fmt: skip
    return save_png(stack_below([body, bar]), path)
