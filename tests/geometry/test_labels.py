"""Ground-truth contact labels against analytic distances, open3d, and the capped-hand construction."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import trimesh

from haco_grasp import metrics
from haco_grasp.errors import InputError
from haco_grasp.geometry.labels import (
    CONTACT_THRESHOLDS,
    haco_contact_labels,
    hand_contact_labels,
    object_contact_labels,
    surface_distance,
)

HALF = 0.03


def box_distance(points: np.ndarray, half: float) -> tuple[np.ndarray, np.ndarray]:
    """Slow float64 reference: unsigned distance to the surface of the cube [-half, half]^3 and an inside mask."""
    dist = np.empty(len(points))
    inside = np.empty(len(points), dtype=bool)
    for i, p in enumerate(points.tolist()):
        outside = [max(abs(c) - half, 0.0) for c in p]
        inside[i] = all(abs(c) < half for c in p)
        dist[i] = min(half - abs(c) for c in p) if inside[i] else sum(o * o for o in outside) ** 0.5
    return dist, inside


@pytest.fixture
def box():
    return trimesh.creation.box(extents=(2 * HALF,) * 3)


def test_hand_labels_box_analytic(box, rng):
    points = np.array(
        [
            [HALF + 0.005, 0.0, 0.0],  # 5 mm off a face -> contact
            [0.0, HALF + 0.015, 0.0],  # 15 mm off -> no contact
            [HALF + 0.006, HALF + 0.006, 0.0],  # edge, 8.49 mm -> contact
            [HALF + 0.006, HALF + 0.006, HALF + 0.006],  # corner, 10.39 mm -> no contact
            [0.0, 0.0, HALF - 0.004],  # inside, 4 mm under a face -> contact under both rules
            [0.0, 0.0, 0.0],  # centre, 3 cm deep: contact only because it is inside
        ]
    )
    np.testing.assert_array_equal(hand_contact_labels(points, box.vertices, box.faces), [1, 0, 1, 0, 1, 1])
    np.testing.assert_array_equal(haco_contact_labels(points, box.vertices, box.faces), [1, 0, 1, 0, 1, 0])
    random_points = rng.uniform(-0.06, 0.06, size=(400, 3))
    dist, inside = box_distance(random_points, HALF)
    clear = np.abs(dist - 0.01) > 1e-9
    labels = hand_contact_labels(torch.tensor(random_points), torch.tensor(box.vertices), torch.tensor(box.faces))
    assert labels.dtype == bool and labels.shape == (400,)
    np.testing.assert_array_equal(labels[clear], ((dist < 0.01) | inside)[clear])
    haco = haco_contact_labels(random_points, box.vertices, box.faces)
    np.testing.assert_array_equal(haco[clear], (dist < 0.01)[clear])
    assert (labels & ~haco).sum() == (inside & (dist >= 0.01)).sum() > 0  # deep inside points differ


def test_strict_threshold():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))  # binary-exact: the distance is exactly 0.25
    point = np.array([[0.75, 0.0, 0.0]])
    assert not hand_contact_labels(point, box.vertices, box.faces, threshold=0.25)[0]
    assert hand_contact_labels(point, box.vertices, box.faces, threshold=0.25 + 1e-9)[0]


def test_surface_distance_matches_open3d_on_torus(rng):
    o3d = pytest.importorskip("open3d")
    torus = trimesh.creation.torus(major_radius=0.04, minor_radius=0.012, major_sections=32, minor_sections=16)
    points = rng.uniform(-0.07, 0.07, size=(300, 3)) * np.array([1.0, 1.0, 0.5])
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(torus.vertices.astype(np.float32)), o3d.core.Tensor(torus.faces.astype(np.uint32))
    )
    expected = scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
    # trimesh's on_surface (HACO's reference) is off the exact distance by up to ~10 um on this mesh.
    np.testing.assert_allclose(surface_distance(points, torus.vertices, torus.faces), expected, atol=2e-5)


def test_sphere_labels_against_radius(rng):
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.04)
    points = rng.normal(size=(500, 3))
    points *= rng.uniform(0.0, 0.07, size=(500, 1)) / np.linalg.norm(points, axis=1, keepdims=True)
    radius = np.linalg.norm(points, axis=1)
    # Outside: contact iff radius - 0.04 < 0.01; inside always contact (HACO: only within 1 cm of the surface).
    # The polyhedron deviates from the ideal sphere by < 0.1 mm, so points near the boundaries are skipped.
    clear = np.all(np.abs(radius[:, None] - np.array([0.03, 0.04, 0.05])) > 5e-4, axis=1)
    labels = hand_contact_labels(points, sphere.vertices, sphere.faces)
    np.testing.assert_array_equal(labels[clear], (radius < 0.05)[clear])
    haco = haco_contact_labels(points, sphere.vertices, sphere.faces)
    np.testing.assert_array_equal(haco[clear], (np.abs(radius - 0.04) < 0.01)[clear])


def _open_tube() -> tuple[trimesh.Trimesh, np.ndarray]:
    closed = trimesh.creation.cylinder(radius=0.02, height=0.06, sections=24)
    top = np.all(closed.vertices[closed.faces][:, :, 2] > 0.029, axis=1)
    return closed, closed.faces[~top]


def test_object_labels_use_the_capped_hand(rng):
    closed, open_faces = _open_tube()
    assert len(open_faces) < len(closed.faces)
    points = np.concatenate(
        [
            rng.uniform(-0.04, 0.04, size=(300, 3)) * np.array([1.0, 1.0, 1.5]),
            np.array([[0.0, 0.0, 0.035], [0.0, 0.0, 0.0], [0.0, 0.0, 0.045], [0.05, 0.0, 0.0]]),
        ]
    )
    labels = object_contact_labels(points, closed.vertices, open_faces)
    # Reference: the closed cylinder (its cap is the same planar disc as the fan cap).
    reference = hand_contact_labels(points, closed.vertices, closed.faces)
    np.testing.assert_array_equal(labels, reference)
    np.testing.assert_array_equal(labels[-4:], [1, 1, 0, 0])  # 5 mm over the cap, inside, 15 mm over, 3 cm away
    # Without the cap the first point would be 5.4 mm from the rim only by distance to the open surface.
    open_dist = surface_distance(points[-4:-3], closed.vertices, open_faces)
    assert open_dist[0] > 0.005


def test_open_object_falls_back_to_haco_rule(caplog):
    closed, open_faces = _open_tube()
    centre = np.zeros((1, 3))  # 2 cm from the wall, inside the (open) tube
    with caplog.at_level(logging.WARNING, logger="haco_grasp.geometry.labels"):
        labels = hand_contact_labels(centre, closed.vertices, open_faces)
    assert not labels[0]
    assert "not closed" in caplog.text
    assert hand_contact_labels(centre, closed.vertices, closed.faces)[0]


def test_empty_inputs_and_shapes(box):
    assert hand_contact_labels(np.zeros((0, 3)), box.vertices, box.faces).shape == (0,)
    assert object_contact_labels(np.zeros((0, 3)), box.vertices, box.faces).shape == (0,)
    assert haco_contact_labels(np.zeros((0, 3)), box.vertices, box.faces).dtype == bool


def test_validation(box):
    with pytest.raises(InputError, match="hand_verts"):
        hand_contact_labels(np.zeros((2, 778, 3)), box.vertices, box.faces)
    with pytest.raises(InputError, match="obj_faces"):
        hand_contact_labels(np.zeros((778, 3)), box.vertices, box.faces + 100)
    with pytest.raises(InputError, match="threshold"):
        hand_contact_labels(np.zeros((778, 3)), box.vertices, box.faces, threshold=0.0)
    with pytest.raises(InputError, match="hand_faces"):
        object_contact_labels(np.zeros((5, 3)), box.vertices, np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(InputError, match="NaN"):
        hand_contact_labels(np.full((3, 3), np.nan), box.vertices, box.faces)


def test_metrics_reexports_one_implementation():
    assert metrics.contact_labels is haco_contact_labels
    assert metrics.CONTACT_THRESHOLDS is CONTACT_THRESHOLDS
    assert CONTACT_THRESHOLDS["dexycb"] == 0.01 and CONTACT_THRESHOLDS["interhand"] == 0.005


def test_contact_package_still_exports_the_labels():
    import haco_grasp.contact
    import haco_grasp.geometry

    assert haco_grasp.contact.hand_contact_labels is hand_contact_labels
    assert haco_grasp.contact.object_contact_labels is object_contact_labels
    assert haco_grasp.geometry.hand_contact_labels is hand_contact_labels
