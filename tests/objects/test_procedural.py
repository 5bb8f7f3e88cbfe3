"""Tests of the procedural objects: watertight, outward, exact volumes against analytic formulas and trimesh."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from haco_grasp.errors import InputError
from haco_grasp.objects.procedural import OBJECT_NAMES, ObjectMesh, all_objects, make_object

EXPECTED_NAMES = {"box", "can", "bottle", "mug", "ball", "bowl", "tool", "thin_plate", "small_cube"}


@pytest.fixture(scope="module")
def objects() -> dict[str, ObjectMesh]:
    return all_objects()


def analytic_volume(name: str) -> float | None:
    """Ideal volumes of the default objects, written out independently of the builders."""
    pi = math.pi
    if name == "box":
        return 0.06 * 0.09 * 0.16
    if name == "thin_plate":
        return 0.12 * 0.08 * 0.004
    if name == "small_cube":
        return 0.05**3
    if name == "can":
        return pi * 0.033**2 * 0.102
    if name == "ball":
        return 4 / 3 * pi * 0.033**3
    if name == "bottle":  # body cylinder + conical frustum shoulder + neck cylinder
        body = pi * 0.035**2 * 0.125
        shoulder = pi * (0.19 - 0.125 - 0.03) / 3 * (0.035**2 + 0.035 * 0.013 + 0.013**2)
        neck = pi * 0.013**2 * 0.03
        return body + shoulder + neck
    if name == "bowl":  # outer spherical cap minus the concentric inner cap
        big = (0.08**2 + 0.055**2) / (2 * 0.055)
        small = big - 0.004

        def cap(radius, height):
            return pi * height**2 * (3 * radius - height) / 3

        return cap(big, 0.055) - cap(small, 0.055 - 0.004)
    if name == "tool":  # handle cylinder outside the head + head box
        return pi * 0.014**2 * (0.2 - 0.016) + 0.1 * 0.032 * 0.032
    return None


def test_names_and_all_objects(objects):
    assert set(OBJECT_NAMES) == EXPECTED_NAMES
    assert list(objects) == list(OBJECT_NAMES)
    assert all(obj.name == name for name, obj in objects.items())


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_watertight_outward_and_exact_volume(objects, name):
    obj = objects[name]
    assert obj.verts.dtype == np.float64 and obj.verts.ndim == 2 and obj.verts.shape[1] == 3
    assert obj.faces.dtype == np.int64 and obj.faces.shape[1] == 3
    mesh = trimesh.Trimesh(obj.verts, obj.faces, process=False)
    assert mesh.is_watertight
    assert mesh.is_winding_consistent
    assert mesh.volume > 0  # outward winding
    assert obj.volume_m3 == pytest.approx(mesh.volume, rel=1e-9)  # manifold3d's volume = the mesh's volume
    assert len(obj.faces) <= 5000
    assert len(np.unique(obj.faces, axis=0)) == len(obj.faces)
    # Bounding box centred at the origin and extents consistent with the vertices.
    np.testing.assert_allclose(obj.verts.min(0) + obj.verts.max(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(obj.extents, obj.verts.max(0) - obj.verts.min(0), atol=1e-12)
    # Vertices spread over the surface: no edge longer than 3 cm.
    assert mesh.edges_unique_length.max() < 0.03


@pytest.mark.parametrize("name", ["box", "thin_plate", "small_cube", "can", "ball", "bottle", "bowl", "tool"])
def test_volume_matches_analytic_formula(objects, name):
    obj = objects[name]
    expected = analytic_volume(name)
    assert obj.analytic_volume_m3 == pytest.approx(expected, rel=1e-12)
    tolerance = 1e-9 if obj.kind == "box" else 0.01
    assert obj.volume_m3 == pytest.approx(expected, rel=tolerance)
    if obj.kind != "box":
        assert obj.volume_m3 < expected  # inscribed polygons lose volume


@pytest.mark.parametrize(
    ("name", "extents"),
    [
        ("box", (0.06, 0.09, 0.16)),
        ("thin_plate", (0.12, 0.08, 0.004)),
        ("small_cube", (0.05, 0.05, 0.05)),
        ("can", (0.066, 0.066, 0.102)),
        ("ball", (0.066, 0.066, 0.066)),
        ("bottle", (0.07, 0.07, 0.19)),
        ("bowl", (0.16, 0.16, 0.055)),
        ("tool", (0.1, 0.032, 0.216)),
        ("mug", (0.08 + 0.025 + 0.006, 0.08, 0.095)),
    ],
)
def test_default_extents(objects, name, extents):
    np.testing.assert_allclose(objects[name].extents, extents, atol=2e-4)


def test_parameters_change_size():
    can = make_object("can", radius=0.02, height=0.05)
    np.testing.assert_allclose(can.extents, (0.04, 0.04, 0.05), atol=1e-4)
    assert can.volume_m3 == pytest.approx(math.pi * 0.02**2 * 0.05, rel=0.01)
    box = make_object("box", size=(0.1, 0.02, 0.03), max_edge=None)
    assert len(box.faces) == 12 and box.volume_m3 == pytest.approx(0.1 * 0.02 * 0.03, rel=1e-12)
    ball = make_object("ball", radius=0.05, subdivisions=4)
    assert len(ball.faces) == 5120 and ball.volume_m3 == pytest.approx(4 / 3 * math.pi * 0.05**3, rel=0.01)
    cube = make_object("small_cube", edge=0.03)
    np.testing.assert_allclose(cube.extents, (0.03, 0.03, 0.03), atol=1e-12)


def test_mug_is_an_open_cup_with_a_handle(objects):
    mug = objects["mug"]
    assert mug.kind == "composite" and mug.analytic_volume_m3 is None
    radius, height, wall, bottom = 0.04, 0.095, 0.004, 0.006
    cup = math.pi * radius**2 * height - math.pi * (radius - wall) ** 2 * (height - bottom)
    torus = 2 * math.pi**2 * 0.025 * 0.006**2
    assert cup < mug.volume_m3 < cup + torus  # the handle adds part of a torus
    mesh = mug.as_trimesh()
    # Undo the bounding-box centring: the cup axis is at x = -(extent_x / 2) + radius.
    offset = np.array([mug.verts[:, 0].min() + radius, 0.0, mug.verts[:, 2].min()])
    probes = np.array(
        [
            [0.0, 0.0, height - 0.01],  # inside the cavity: empty
            [0.0, 0.0, bottom / 2],  # in the bottom: solid
            [radius - wall / 2, 0.0, height / 2],  # in the wall: solid
            [radius + 0.025, 0.0, height / 2],  # in the handle tube: solid
            [radius + 0.012, 0.0, height / 2],  # inside the handle loop: empty
        ]
    )
    np.testing.assert_array_equal(mesh.contains(probes + offset), [False, True, True, True, False])


def test_bowl_and_plate_are_thin(objects):
    bowl = objects["bowl"].as_trimesh()
    centre_bottom = np.array([[0.0, 0.0, bowl.bounds[0, 2] + 0.002]])  # in the 4 mm shell
    above_bottom = np.array([[0.0, 0.0, bowl.bounds[0, 2] + 0.02]])  # in the open bowl
    assert bowl.contains(centre_bottom)[0] and not bowl.contains(above_bottom)[0]
    assert objects["thin_plate"].extents.min() == pytest.approx(0.004, abs=1e-12)


def test_deterministic():
    first, second = make_object("mug"), make_object("mug")
    np.testing.assert_array_equal(first.verts, second.verts)
    np.testing.assert_array_equal(first.faces, second.faces)


def test_invalid_requests():
    with pytest.raises(InputError, match="expected one of"):
        make_object("teapot")
    with pytest.raises(InputError, match="accepted"):
        make_object("can", diameter=0.05)
    with pytest.raises(InputError, match="radius"):
        make_object("can", radius=-0.01)
    with pytest.raises(InputError, match="neck_radius"):
        make_object("bottle", neck_radius=0.05)
    with pytest.raises(InputError, match="size"):
        make_object("box", size=(0.1, 0.1))
    with pytest.raises(InputError, match="thickness"):
        make_object("bowl", thickness=0.06)
    with pytest.raises(InputError, match="segments"):
        make_object("can", segments=3)
