"""Visualisation: a small CPU rasteriser, colour maps and image helpers."""

from haco_grasp.viz.colormap import CONTACT_RED, HEAT_TABLE, OBJECT_PALETTE, SKIN, contact_colors, heat
from haco_grasp.viz.render import (
    Camera,
    MeshLayer,
    Projection,
    RenderResult,
    add_label,
    image_grid,
    orbit_cameras,
    render,
    render_turntable,
    render_views,
    save_png,
)

__all__ = [
    "CONTACT_RED",
    "HEAT_TABLE",
    "OBJECT_PALETTE",
    "SKIN",
    "Camera",
    "MeshLayer",
    "Projection",
    "RenderResult",
    "add_label",
    "contact_colors",
    "heat",
    "image_grid",
    "orbit_cameras",
    "render",
    "render_turntable",
    "render_views",
    "save_png",
]
