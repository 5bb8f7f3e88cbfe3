"""Watertight procedural objects with YCB-like sizes and known volumes.

Every object is built with manifold3d's exact constructive solid geometry (revolved profiles, cylinders, cubes
and boolean unions), so each mesh is closed, consistently wound outward and has an exact volume. Coarse
primitives are refined (``max_edge``) so that the vertices are spread over the whole surface: ContactOpt-style
contact models sample object *vertices*, and an 8-vertex box would give them almost nothing to work with.

Conventions (all objects):

- metres; z is the long / revolution axis; the origin is the centre of the axis-aligned bounding box;
- ``volume_m3`` is the exact volume of the returned mesh (manifold3d); ``analytic_volume_m3`` is the volume of
  the ideal smooth solid the mesh approximates (``None`` where no closed formula exists, e.g. the mug handle).
  Polygonal approximations of round shapes are slightly smaller than the ideal solid (48 segments: -0.3 %).
- the builders are deterministic: the same parameters give bit-identical arrays.

Default sizes (YCB look-alikes): ``box`` 6 x 9 x 16 cm (sugar box), ``can`` r 3.3 cm h 10.2 cm (soup can),
``bottle`` 19 cm (mustard/bleach-like body, shoulder, neck), ``mug`` r 4 cm h 9.5 cm with a handle, ``ball``
r 3.3 cm, ``bowl`` 16 cm wide 5.5 cm deep, ``tool`` a 20 cm hammer-like handle with a 10 cm head,
``thin_plate`` 12 x 8 x 0.4 cm, ``small_cube`` 5 cm.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from haco_grasp.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import manifold3d
    import trimesh

__all__ = [
    "OBJECT_NAMES",
    "ObjectMesh",
    "all_objects",
    "make_object",
]

#: Default maximum edge length (metres) to which flat faces are refined.
DEFAULT_MAX_EDGE = 0.015


@dataclass
class ObjectMesh:
    """A closed triangle mesh of an object, in metres.

    Attributes:
        name: object name (``"box"``, ``"006_mustard_bottle"``, ...).
        verts: (V, 3) float64, metres.
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside (outward normals).
        volume_m3: exact volume of this mesh in m³ (NaN for a mesh that is not watertight).
        extents: (3,) float64, size of the axis-aligned bounding box, metres.
        kind: shape family: ``"box"``, ``"cylinder"``, ``"sphere"``, ``"revolved"``, ``"composite"`` or ``"mesh"``
            (a mesh loaded from a file).
        analytic_volume_m3: volume of the ideal smooth solid in m³, or ``None`` when no closed formula exists.
    """

    name: str
    verts: np.ndarray
    faces: np.ndarray
    volume_m3: float
    extents: np.ndarray
    kind: str
    analytic_volume_m3: float | None = None

    def as_trimesh(self) -> trimesh.Trimesh:
        """Return a ``trimesh.Trimesh`` view of this mesh (no processing, vertices unchanged)."""
        import trimesh

        return trimesh.Trimesh(vertices=self.verts, faces=self.faces, process=False)


# --------------------------------------------------------------------------------------------------------------
# helpers


def _is_real(value: object) -> bool:
    """True for Python and numpy real scalars (not bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_positive(**values: float) -> None:
    for key, value in values.items():
        if not (_is_real(value) and math.isfinite(value) and value > 0):
            raise InputError(f"expected {key} to be a positive finite number (metres), got {value!r}; pass e.g. 0.01")


def _check_segments(segments: int) -> None:
    if not isinstance(segments, int | np.integer) or isinstance(segments, bool) or segments < 8:
        raise InputError(f"expected segments to be an int >= 8, got {segments!r}; pass e.g. segments=48")


def _polygon_factor(segments: int) -> float:
    """Area of a regular ``segments``-gon inscribed in the unit circle divided by the circle's area."""
    return segments * math.sin(2.0 * math.pi / segments) / (2.0 * math.pi)


def _revolve(profile: np.ndarray, segments: int) -> manifold3d.Manifold:
    """Revolve a closed (r, z) polygon (r >= 0) about the z axis."""
    import manifold3d

    profile = np.asarray(profile, dtype=np.float64)
    # Signed area (shoelace); manifold3d's default fill rule keeps only counter-clockwise contours.
    signed_area = 0.5 * float(
        np.sum(profile[:, 0] * np.roll(profile[:, 1], -1) - np.roll(profile[:, 0], -1) * profile[:, 1])
    )
    if signed_area < 0:
        profile = profile[::-1].copy()
    return manifold3d.CrossSection([profile]).revolve(segments)


def _finish(
    name: str, kind: str, solid: manifold3d.Manifold, analytic_volume: float | None, max_edge: float | None
) -> ObjectMesh:
    """Refine, centre on the bounding box and convert a manifold to an ``ObjectMesh``."""
    if max_edge is not None:
        solid = solid.refine_to_length(max_edge)
    mesh = solid.to_mesh64()
    verts = np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3]  # (V, 3)
    faces = np.asarray(mesh.tri_verts, dtype=np.int64)  # (F, 3)
    lower, upper = verts.min(axis=0), verts.max(axis=0)
    verts = verts - 0.5 * (lower + upper)
    return ObjectMesh(
        name=name,
        verts=np.ascontiguousarray(verts),
        faces=np.ascontiguousarray(faces),
        volume_m3=float(solid.volume()),
        extents=upper - lower,
        kind=kind,
        analytic_volume_m3=None if analytic_volume is None else float(analytic_volume),
    )


# --------------------------------------------------------------------------------------------------------------
# builders (one per object name; every keyword has a YCB-like default)


def _box_solid(size: tuple[float, float, float]) -> manifold3d.Manifold:
    import manifold3d

    return manifold3d.Manifold.cube([float(s) for s in size], True)


def _check_size(size: Any) -> tuple[float, float, float]:
    array = np.asarray(size, dtype=np.float64) if np.ndim(size) == 1 else None
    if array is None or array.shape != (3,):
        raise InputError(
            f"expected size to be three lengths (x, y, z) in metres, got {size!r}; pass e.g. (0.06, 0.09, 0.16)"
        )
    _check_positive(size_x=float(array[0]), size_y=float(array[1]), size_z=float(array[2]))
    return float(array[0]), float(array[1]), float(array[2])


def _make_box(
    size: tuple[float, float, float] = (0.06, 0.09, 0.16), max_edge: float | None = 0.01, name: str = "box"
) -> ObjectMesh:
    """Rectangular box of ``size`` = (x, y, z) metres (default: a sugar-box-like 6 x 9 x 16 cm)."""
    sx, sy, sz = _check_size(size)
    if max_edge is not None:
        _check_positive(max_edge=max_edge)
    return _finish(name, "box", _box_solid((sx, sy, sz)), sx * sy * sz, max_edge)


def _make_thin_plate(
    size: tuple[float, float, float] = (0.12, 0.08, 0.004), max_edge: float | None = 0.01
) -> ObjectMesh:
    """Thin flat plate (default 12 x 8 x 0.4 cm) for degenerate thin-object cases."""
    return _make_box(size=size, max_edge=max_edge, name="thin_plate")


def _make_small_cube(edge: float = 0.05, max_edge: float | None = 0.01) -> ObjectMesh:
    """Cube of side ``edge`` metres (default 5 cm)."""
    _check_positive(edge=edge)
    return _make_box(size=(edge, edge, edge), max_edge=max_edge, name="small_cube")


def _make_can(
    radius: float = 0.033, height: float = 0.102, segments: int = 48, max_edge: float | None = DEFAULT_MAX_EDGE
) -> ObjectMesh:
    """Closed cylinder along z (default: a soup-can-like r 3.3 cm, h 10.2 cm)."""
    import manifold3d

    _check_positive(radius=radius, height=height)
    _check_segments(segments)
    if max_edge is not None:
        _check_positive(max_edge=max_edge)
    solid = manifold3d.Manifold.cylinder(float(height), float(radius), -1.0, segments, True)
    return _finish("can", "cylinder", solid, math.pi * radius**2 * height, max_edge)


def _make_ball(radius: float = 0.033, subdivisions: int = 3) -> ObjectMesh:
    """Icosphere of ``radius`` metres (default 3.3 cm, 3 subdivisions: 642 vertices, 1280 faces)."""
    import trimesh

    _check_positive(radius=radius)
    if not isinstance(subdivisions, int) or isinstance(subdivisions, bool) or not 1 <= subdivisions <= 5:
        raise InputError(f"expected subdivisions to be an int in [1, 5], got {subdivisions!r}; pass e.g. 3")
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=float(radius))
    verts = np.asarray(sphere.vertices, dtype=np.float64)
    faces = np.asarray(sphere.faces, dtype=np.int64)
    lower, upper = verts.min(axis=0), verts.max(axis=0)
    return ObjectMesh(
        name="ball",
        verts=np.ascontiguousarray(verts - 0.5 * (lower + upper)),
        faces=np.ascontiguousarray(faces),
        volume_m3=float(sphere.volume),
        extents=upper - lower,
        kind="sphere",
        analytic_volume_m3=4.0 / 3.0 * math.pi * radius**3,
    )


def _make_bottle(
    height: float = 0.19,
    body_radius: float = 0.035,
    body_height: float = 0.125,
    neck_radius: float = 0.013,
    neck_height: float = 0.03,
    segments: int = 48,
    max_edge: float | None = DEFAULT_MAX_EDGE,
) -> ObjectMesh:
    """Revolved bottle: cylindrical body, conical shoulder, cylindrical neck (default 19 cm, mustard/bleach-like)."""
    _check_positive(
        height=height,
        body_radius=body_radius,
        body_height=body_height,
        neck_radius=neck_radius,
        neck_height=neck_height,
    )
    _check_segments(segments)
    if max_edge is not None:
        _check_positive(max_edge=max_edge)
    shoulder = height - body_height - neck_height
    if shoulder <= 0:
        raise InputError(
            f"expected body_height + neck_height < height, got {body_height} + {neck_height} >= {height}; "
            "lower body_height or neck_height"
        )
    if neck_radius >= body_radius:
        raise InputError(f"expected neck_radius < body_radius, got {neck_radius} >= {body_radius}")
    profile = np.array(
        [
            [0.0, 0.0],
            [body_radius, 0.0],
            [body_radius, body_height],
            [neck_radius, body_height + shoulder],
            [neck_radius, height],
            [0.0, height],
        ]
    )
    analytic = math.pi * (
        body_radius**2 * body_height
        + shoulder * (body_radius**2 + body_radius * neck_radius + neck_radius**2) / 3.0
        + neck_radius**2 * neck_height
    )
    return _finish("bottle", "revolved", _revolve(profile, segments), analytic, max_edge)


def _make_mug(
    radius: float = 0.04,
    height: float = 0.095,
    wall: float = 0.004,
    bottom: float = 0.006,
    handle_radius: float = 0.025,
    handle_thickness: float = 0.006,
    segments: int = 48,
    max_edge: float | None = DEFAULT_MAX_EDGE,
) -> ObjectMesh:
    """Open cup (revolved wall and bottom) with a half-torus handle on +x, joined by a manifold union.

    ``handle_radius`` is the torus's centre-line radius and ``handle_thickness`` its tube radius. The part of
    the torus inside the cup's wall is cut away so the handle does not protrude into the cavity.
    ``analytic_volume_m3`` is ``None`` (no closed formula for the handle/wall junction).
    """
    import manifold3d

    _check_positive(
        radius=radius,
        height=height,
        wall=wall,
        bottom=bottom,
        handle_radius=handle_radius,
        handle_thickness=handle_thickness,
    )
    _check_segments(segments)
    if max_edge is not None:
        _check_positive(max_edge=max_edge)
    if wall >= radius or bottom >= height:
        raise InputError(
            f"expected wall < radius and bottom < height, got wall={wall}, radius={radius}, bottom={bottom}, "
            f"height={height}; thin the wall or the bottom"
        )
    if handle_radius + handle_thickness >= height / 2 or handle_thickness >= handle_radius:
        raise InputError(
            f"expected handle_thickness < handle_radius and handle_radius + handle_thickness < height / 2, got "
            f"{handle_thickness}, {handle_radius}, height {height}; shrink the handle"
        )
    inner = radius - wall
    cup_profile = np.array(
        [[0.0, 0.0], [radius, 0.0], [radius, height], [inner, height], [inner, bottom], [0.0, bottom]]
    )
    cup = _revolve(cup_profile, segments)
    tube_segments = max(8, segments // 3)
    torus = manifold3d.CrossSection.circle(float(handle_thickness), tube_segments).translate([handle_radius, 0.0])
    handle = torus.revolve(segments)  # ring in the xy plane, axis z
    handle = handle.rotate([90.0, 0.0, 0.0]).translate([radius, 0.0, height / 2])  # ring in the xz plane at +x
    solid_core = manifold3d.Manifold.cylinder(float(height) * 2, float(radius - wall / 2), -1.0, segments, True)
    handle = handle - solid_core.translate([0.0, 0.0, height / 2])
    return _finish("mug", "composite", cup + handle, None, max_edge)


def _make_bowl(
    radius: float = 0.08,
    height: float = 0.055,
    thickness: float = 0.004,
    segments: int = 64,
    arc_segments: int = 16,
    max_edge: float | None = DEFAULT_MAX_EDGE,
) -> ObjectMesh:
    """Spherical-cap shell (a hemisphere when ``height == radius``) with a flat rim of width ``thickness``.

    ``radius`` is the rim's outer radius, ``height`` the outer depth; the inner surface is the concentric sphere
    ``thickness`` smaller. The ideal volume is the difference of the two spherical caps.
    """
    _check_positive(radius=radius, height=height, thickness=thickness)
    _check_segments(segments)
    if not isinstance(arc_segments, int) or isinstance(arc_segments, bool) or arc_segments < 2:
        raise InputError(f"expected arc_segments to be an int >= 2, got {arc_segments!r}; pass e.g. 16")
    if max_edge is not None:
        _check_positive(max_edge=max_edge)
    if height > radius:
        raise InputError(f"expected height <= radius (at most a hemisphere), got height={height} > radius={radius}")
    if thickness >= height:
        raise InputError(f"expected thickness < height, got thickness={thickness} >= height={height}")
    sphere_radius = (radius**2 + height**2) / (2.0 * height)  # outer sphere, centre at z = sphere_radius
    inner_radius = sphere_radius - thickness
    outer_angle = math.acos((sphere_radius - height) / sphere_radius)  # polar angle from the bottom to the rim
    inner_angle = math.acos((sphere_radius - height) / inner_radius)
    phi = np.linspace(0.0, outer_angle, arc_segments + 1)
    psi = np.linspace(inner_angle, 0.0, arc_segments + 1)
    outer = np.stack([sphere_radius * np.sin(phi), sphere_radius - sphere_radius * np.cos(phi)], axis=1)
    inner = np.stack([inner_radius * np.sin(psi), sphere_radius - inner_radius * np.cos(psi)], axis=1)
    outer[-1, 1] = inner[0, 1] = height  # the flat rim lies exactly at z = height
    profile = np.concatenate([outer, inner], axis=0)

    def cap_volume(sphere_r: float, cap_h: float) -> float:
        return math.pi * cap_h**2 * (3.0 * sphere_r - cap_h) / 3.0

    analytic = cap_volume(sphere_radius, height) - cap_volume(inner_radius, height - thickness)
    return _finish("bowl", "revolved", _revolve(profile, segments), analytic, max_edge)


def _make_tool(
    handle_radius: float = 0.014,
    handle_length: float = 0.2,
    head_size: tuple[float, float, float] = (0.1, 0.032, 0.032),
    segments: int = 32,
    max_edge: float | None = DEFAULT_MAX_EDGE,
) -> ObjectMesh:
    """Hammer-like tool: a cylindrical handle along z whose top end is buried in the centre of a box head.

    The handle runs from z = 0 to z = ``handle_length``; the head (x, y, z = ``head_size``) is centred at the top
    end. The ideal volume is handle + head - the handle's part inside the head.
    """
    import manifold3d

    _check_positive(handle_radius=handle_radius, handle_length=handle_length)
    hx, hy, hz = _check_size(head_size)
    _check_segments(segments)
    if max_edge is not None:
        _check_positive(max_edge=max_edge)
    if 2 * handle_radius >= min(hx, hy) or hz / 2 >= handle_length:
        raise InputError(
            f"expected the handle (radius {handle_radius}, length {handle_length}) to fit inside the head {head_size}: "
            "need 2 * handle_radius < head x and y sizes and head z size < 2 * handle_length"
        )
    handle = manifold3d.Manifold.cylinder(float(handle_length), float(handle_radius), -1.0, segments, False)
    head = manifold3d.Manifold.cube([hx, hy, hz], True).translate([0.0, 0.0, handle_length])
    analytic = math.pi * handle_radius**2 * (handle_length - hz / 2) + hx * hy * hz
    return _finish("tool", "composite", handle + head, analytic, max_edge)


_BUILDERS: dict[str, Callable[..., ObjectMesh]] = {
    "box": _make_box,
    "can": _make_can,
    "bottle": _make_bottle,
    "mug": _make_mug,
    "ball": _make_ball,
    "bowl": _make_bowl,
    "tool": _make_tool,
    "thin_plate": _make_thin_plate,
    "small_cube": _make_small_cube,
}

#: Names accepted by :func:`make_object`, in a fixed order.
OBJECT_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def _accepted_params(name: str) -> list[str]:
    return [p for p in inspect.signature(_BUILDERS[name]).parameters if p != "name"]


def make_object(name: str, **params: Any) -> ObjectMesh:
    """Build the procedural object ``name`` with optional size parameters (metres).

    Args:
        name: one of :data:`OBJECT_NAMES`.
        **params: builder keywords, e.g. ``make_object("can", radius=0.04, height=0.12)``. Every builder accepts
            ``max_edge`` (refinement length in metres, ``None`` for the coarsest mesh) except ``ball``
            (``subdivisions``); round shapes accept ``segments``.

    Returns:
        ObjectMesh with ``verts: (V, 3) float64, metres`` and ``faces: (F, 3) int64``, centred on its bounding box.

    Raises:
        InputError: unknown name, unknown parameter, or an impossible size.
    """
    if name not in _BUILDERS:
        raise InputError(f"unknown object name {name!r}; expected one of {', '.join(OBJECT_NAMES)}")
    accepted = _accepted_params(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InputError(f"unknown parameter(s) {unknown} for object {name!r}; accepted: {', '.join(accepted)}")
    return _BUILDERS[name](**params)


def all_objects() -> dict[str, ObjectMesh]:
    """Build every procedural object with its default parameters, keyed by name in :data:`OBJECT_NAMES` order."""
    return {name: make_object(name) for name in OBJECT_NAMES}
