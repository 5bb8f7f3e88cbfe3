"""Tests for haco_grasp.geometry.volume against manifold3d booleans, analytic volumes and trimesh."""

from __future__ import annotations

import manifold3d
import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from haco_grasp.errors import InputError
from haco_grasp.geometry.volume import (
    intersection_volume,
    intersection_volume_batch,
    penetration_depths,
    voxelize_interior,
)


def _manifold(mesh: trimesh.Trimesh) -> manifold3d.Manifold:
    return manifold3d.Manifold(
        manifold3d.Mesh(vert_properties=mesh.vertices.astype(np.float32), tri_verts=mesh.faces.astype(np.uint32))
    )


def _exact_overlap_cm3(a: trimesh.Trimesh, b: trimesh.Trimesh) -> float:
    return (_manifold(a) ^ _manifold(b)).volume() * 1e6


def _primitive(kind: str, size: float) -> trimesh.Trimesh:
    if kind == "sphere":
        return trimesh.creation.icosphere(subdivisions=4, radius=size)
    if kind == "box":
        return trimesh.creation.box((2.0 * size, 1.5 * size, size))
    return trimesh.creation.cylinder(radius=0.6 * size, height=3.0 * size, sections=48)


def _posed(mesh: trimesh.Trimesh, rng: np.random.Generator, spread: float) -> trimesh.Trimesh:
    rotation = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
    return trimesh.Trimesh(mesh.vertices @ rotation.T + rng.normal(scale=spread, size=3), mesh.faces, process=False)


def _overlapping_pairs(count: int, seed: int, low: float = 1.0, high: float = 20.0):
    rng = np.random.default_rng(seed)
    kinds = ("sphere", "box", "cylinder")
    pairs = []
    while len(pairs) < count:
        hand = _posed(_primitive(kinds[rng.integers(3)], rng.uniform(0.01, 0.03)), rng, 0.0)
        obj = _posed(_primitive(kinds[rng.integers(3)], rng.uniform(0.015, 0.04)), rng, 0.015)
        exact = _exact_overlap_cm3(hand, obj)
        if low <= exact <= high:
            pairs.append((hand, obj, exact))
    return pairs


def test_voxelize_interior_sphere_matches_analytic_and_trimesh():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.03)
    pitch = 0.002
    centres = voxelize_interior(sphere.vertices, sphere.faces, pitch)
    assert centres.ndim == 2 and centres.shape[1] == 3
    assert len(centres) * pitch**3 == pytest.approx(sphere.volume, rel=0.01)
    assert sphere.volume == pytest.approx(4 / 3 * np.pi * 0.03**3, rel=0.01)
    # A filled interior: grid aligned to the bbox minimum, every centre inside, none missing (vs trimesh's test).
    offsets = (centres - sphere.vertices.min(0)) / pitch - 0.5
    np.testing.assert_allclose(offsets, np.round(offsets), atol=1e-6)
    assert np.all(np.linalg.norm(centres, axis=1) < 0.03)
    counts = np.ceil((sphere.vertices.max(0) - sphere.vertices.min(0)) / pitch).astype(int)
    axes = [sphere.vertices.min(0)[i] + (np.arange(counts[i]) + 0.5) * pitch for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    assert abs(int(sphere.contains(grid).sum()) - len(centres)) <= 2


def test_intersection_volume_matches_manifold3d_on_posed_primitives():
    for hand, obj, exact in _overlapping_pairs(20, seed=0):
        got = intersection_volume(hand.vertices, hand.faces, obj.vertices, obj.faces, pitch=0.002)
        # Voxel-centre counting at 2 mm: within 3 % from ~3 cm^3 up; small overlaps within 0.15 cm^3.
        assert abs(got - exact) <= max(0.03 * exact, 0.15), (got, exact)
        assert abs(got - exact) <= 0.03 * exact or exact < 3.0, (got, exact)


def test_small_overlaps_within_three_percent_at_one_millimetre():
    for hand, obj, exact in _overlapping_pairs(3, seed=1, low=1.0, high=3.0):
        got = intersection_volume(hand.vertices, hand.faces, obj.vertices, obj.faces, pitch=0.001)
        assert got == pytest.approx(exact, rel=0.03)


def test_box_overlap_counts_exactly_the_object_grid_centres():
    obj = trimesh.creation.box((0.03, 0.03, 0.03))
    obj.apply_translation([0.015, 0.015, 0.015])  # bbox minimum at the origin: centres at 1, 3, 5, ... mm
    hand = trimesh.creation.box(bounds=[[0.0101, -0.01, 0.0041], [0.05, 0.0169, 0.0199]])
    # centres inside the hand: x 11..29 mm (10), y 1..15 mm (8), z 5..19 mm (8)
    expected = 10 * 8 * 8 * 0.002**3 * 1e6
    assert intersection_volume(hand.vertices, hand.faces, obj.vertices, obj.faces) == pytest.approx(expected, rel=1e-9)
    far = hand.vertices + [1.0, 0.0, 0.0]
    assert intersection_volume(far, hand.faces, obj.vertices, obj.faces) == 0.0


def test_open_hand_is_capped():
    closed = trimesh.creation.cylinder(radius=0.012, height=0.06, sections=16)
    centre_ids = np.where(np.linalg.norm(closed.vertices[:, :2], axis=1) < 1e-9)[0]
    open_faces = closed.faces[~np.isin(closed.faces, centre_ids).any(axis=1)]
    obj = trimesh.creation.icosphere(subdivisions=3, radius=0.025)
    obj.apply_translation([0.02, 0.003, 0.025])
    expected = intersection_volume(closed.vertices, closed.faces, obj.vertices, obj.faces)
    assert expected > 1.0
    got = intersection_volume(closed.vertices, open_faces, obj.vertices, obj.faces, cap_hand=True)
    assert got == pytest.approx(expected, rel=1e-9)
    exact = _exact_overlap_cm3(closed, obj)
    assert got == pytest.approx(exact, rel=0.03)


def test_batch_equals_single_calls_and_accepts_torch():
    pairs = _overlapping_pairs(1, seed=2)
    hand, obj, _ = pairs[0]
    rng = np.random.default_rng(3)
    hands = np.stack([hand.vertices, hand.vertices + rng.normal(scale=0.005, size=3), hand.vertices + [0.5, 0, 0]])
    batch = intersection_volume_batch(torch.as_tensor(hands), torch.as_tensor(hand.faces), obj.vertices, obj.faces)
    assert batch.shape == (3,) and batch.dtype == np.float64
    singles = [intersection_volume(h, hand.faces, obj.vertices, obj.faces) for h in hands]
    np.testing.assert_allclose(batch, singles, rtol=1e-12)
    assert batch[2] == 0.0 and batch[0] > 0.0
    assert intersection_volume_batch(np.zeros((0, 8, 3)), hand.faces, obj.vertices, obj.faces).shape == (0,)


def test_penetration_depths_in_a_box():
    box = trimesh.creation.box((0.04, 0.04, 0.04))
    hand = np.array([[0.015, 0.0, 0.0], [0.001, 0.002, -0.003], [0.05, 0.0, 0.0]])
    depths = penetration_depths(hand, box.vertices, box.faces)
    np.testing.assert_allclose(depths, [0.005, 0.017, 0.0], atol=1e-6)  # metres, 0 outside
    assert depths.max() == pytest.approx(0.017, abs=1e-6)
    tensor_depths = penetration_depths(torch.as_tensor(hand[:1]), box.vertices, box.faces)
    assert tensor_depths.max() == pytest.approx(0.005, abs=1e-6)
    assert penetration_depths(hand[2:] + 0.1, box.vertices, box.faces).max() == 0.0


def test_invalid_inputs_raise_input_error():
    box = trimesh.creation.box((0.04, 0.04, 0.04))
    with pytest.raises(InputError):
        intersection_volume(box.vertices, box.faces, box.vertices, box.faces, pitch=0.0)
    with pytest.raises(InputError):
        intersection_volume(box.vertices[None], box.faces, box.vertices, box.faces)
    with pytest.raises(InputError):
        intersection_volume_batch(box.vertices, box.faces, box.vertices, box.faces)
    with pytest.raises(InputError):
        voxelize_interior(box.vertices, box.faces[:, :2], 0.002)
