"""Tests of haco_grasp.metrics against hand-computed values, naive loops, scipy, trimesh, open3d and manifold3d."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import procrustes as scipy_procrustes
from scipy.spatial.transform import Rotation

from haco_grasp.errors import InputError
from haco_grasp.metrics import (
    CONTACT_THRESHOLDS,
    ContactPRF,
    contact_fraction,
    contact_labels,
    contact_prf,
    contact_ratio,
    frames_in_contact,
    intersection_volume,
    max_penetration_depth,
    mpjpe,
    mpvpe,
)

# ----------------------------------------------------------------------------------------------------------------
# MPJPE / MPVPE


def random_similarity(rng: np.random.Generator, points: np.ndarray) -> np.ndarray:
    rot = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix()
    return 1.3 * points @ rot.T + rng.normal(size=3) * 0.1


def test_mpjpe_none_and_root_hand_computed(rng):
    gt = rng.normal(size=(3, 21, 3)) * 0.05
    pred = gt + np.array([0.003, 0.004, 0.0])  # every joint 5 mm off
    np.testing.assert_allclose(mpjpe(pred, gt), [5.0, 5.0, 5.0], rtol=1e-10)
    np.testing.assert_allclose(mpjpe(pred, gt, align="root"), [0.0, 0.0, 0.0], atol=1e-9)
    # Only joint 4 moves by 21 mm: absolute error = 21 / 21 = 1 mm; relative to root 4 every other joint moves.
    moved = gt.copy()
    moved[:, 4] += np.array([0.0, 0.021, 0.0])
    np.testing.assert_allclose(mpjpe(moved, gt), [1.0] * 3, rtol=1e-10)
    np.testing.assert_allclose(mpjpe(moved, gt, align="root", root_index=4), [20.0] * 3, rtol=1e-10)


def test_mpjpe_accepts_torch_and_unbatched(rng):
    gt = rng.normal(size=(21, 3)) * 0.05
    pred = gt + rng.normal(size=(21, 3)) * 0.01
    result = mpjpe(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt, dtype=torch.float32))
    assert result.shape == (1,) and result.dtype == np.float64
    expected = np.mean([math.dist(p, g) for p, g in zip(pred.tolist(), gt.tolist(), strict=True)]) * 1000
    assert result[0] == pytest.approx(expected, rel=1e-5)


def test_procrustes_matches_scipy(rng):
    """Similarity-aligned error equals the one from scipy.spatial.procrustes (no reflection in these cases)."""
    gt = rng.normal(size=(4, 21, 3)) * 0.05
    pred = np.stack([random_similarity(rng, g) for g in gt]) + rng.normal(size=gt.shape) * 0.004
    errors = mpjpe(pred, gt, align="procrustes")
    for b in range(4):
        mtx_gt, mtx_pred, _ = scipy_procrustes(gt[b], pred[b])
        # scipy standardises gt to zero mean and unit Frobenius norm; undo that to get metres.
        norm = np.linalg.norm(gt[b] - gt[b].mean(0))
        aligned = mtx_pred * norm + gt[b].mean(0)
        np.testing.assert_allclose(mtx_gt * norm + gt[b].mean(0), gt[b], atol=1e-12)
        expected = np.linalg.norm(aligned - gt[b], axis=-1).mean() * 1000
        assert errors[b] == pytest.approx(expected, rel=1e-8)
    assert np.all(errors < mpjpe(pred, gt, align="root"))


def kabsch_similarity_reference(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Proper-rotation similarity alignment built on scipy's Rotation.align_vectors (never reflects)."""
    x = pred - pred.mean(0)
    y = gt - gt.mean(0)
    rot, _ = Rotation.align_vectors(y, x)
    rotated = rot.apply(x)
    scale = np.sum(y * rotated) / np.sum(x * x)
    return scale * rotated + gt.mean(0)


def test_procrustes_is_reflection_safe(rng):
    gt = rng.normal(size=(21, 3)) * 0.05
    mirrored = gt * np.array([-1.0, 1.0, 1.0]) + rng.normal(size=gt.shape) * 0.001
    error = mpjpe(mirrored, gt, align="procrustes")[0]
    reference = np.linalg.norm(kabsch_similarity_reference(mirrored, gt) - gt, axis=-1).mean() * 1000
    assert error == pytest.approx(reference, rel=1e-7)
    # scipy allows the reflection and nearly cancels the mirror; a proper rotation cannot.
    mtx_gt, mtx_pred, _ = scipy_procrustes(gt, mirrored)
    scipy_error = np.linalg.norm(mtx_pred - mtx_gt, axis=-1).mean() * np.linalg.norm(gt - gt.mean(0)) * 1000
    assert error > 10 * scipy_error


def test_procrustes_invariance_and_degenerate(rng):
    gt = rng.normal(size=(2, 21, 3)) * 0.05
    pred = gt + rng.normal(size=gt.shape) * 0.005
    moved = np.stack([random_similarity(rng, p) for p in pred])
    np.testing.assert_allclose(mpjpe(moved, gt, align="procrustes"), mpjpe(pred, gt, align="procrustes"), rtol=1e-8)
    collapsed = np.repeat(pred[:, :1], 21, axis=1)  # all predicted joints coincide: maps to the gt centroid
    expected = np.linalg.norm(gt - gt.mean(1, keepdims=True), axis=-1).mean(1) * 1000
    np.testing.assert_allclose(mpjpe(collapsed, gt, align="procrustes"), expected, rtol=1e-10)


def test_mpvpe_roots(rng):
    gt = rng.normal(size=(2, 778, 3)) * 0.05
    pred = gt + np.array([0.01, 0.0, 0.0]) + rng.normal(size=gt.shape) * 0.002
    np.testing.assert_allclose(
        mpvpe(pred, gt), np.linalg.norm(pred - gt, axis=-1).mean(1) * 1000, rtol=1e-12
    )  # no alignment
    centred = (pred - pred.mean(1, keepdims=True)) - (gt - gt.mean(1, keepdims=True))
    np.testing.assert_allclose(mpvpe(pred, gt, align="root"), np.linalg.norm(centred, axis=-1).mean(1) * 1000)
    root_pred, root_gt = pred[:, 0], gt[:, 5]
    rooted = (pred - root_pred[:, None]) - (gt - root_gt[:, None])
    np.testing.assert_allclose(
        mpvpe(pred, gt, align="root", root_pred=root_pred, root_gt=root_gt),
        np.linalg.norm(rooted, axis=-1).mean(1) * 1000,
    )
    with pytest.raises(InputError, match="together"):
        mpvpe(pred, gt, align="root", root_pred=root_pred)
    with pytest.raises(InputError, match="root_pred"):
        mpvpe(pred, gt, align="root", root_pred=np.zeros((3, 3)), root_gt=np.zeros((3, 3)))


def test_position_error_validation():
    with pytest.raises(InputError, match="align"):
        mpjpe(np.zeros((21, 3)), np.zeros((21, 3)), align="pa")
    with pytest.raises(InputError, match="same shape"):
        mpjpe(np.zeros((21, 3)), np.zeros((20, 3)))
    with pytest.raises(InputError, match="root_index"):
        mpjpe(np.zeros((21, 3)), np.zeros((21, 3)), align="root", root_index=21)
    with pytest.raises(InputError, match="NaN"):
        mpjpe(np.full((21, 3), np.nan), np.zeros((21, 3)))


# ----------------------------------------------------------------------------------------------------------------
# contact precision / recall / F1


def naive_prf(pred, gt, threshold, empty):
    """Per-frame loop with None for undefined values, then HACO-style averaging."""
    rows = []
    for p_row, g_row in zip(pred.tolist(), gt.tolist(), strict=True):
        tp = sum(1 for p, g in zip(p_row, g_row, strict=True) if p >= threshold and g >= 0.5)
        n_pred = sum(1 for p in p_row if p >= threshold)
        n_gt = sum(1 for g in g_row if g >= 0.5)
        precision = tp / n_pred if n_pred else None
        recall = tp / n_gt if n_gt else None
        if precision is None or recall is None:
            f1 = None
        elif precision + recall == 0:
            f1 = 0.0
        else:
            f1 = 2 * precision * recall / (precision + recall)
        rows.append((precision, recall, f1))
    means = []
    for k in range(3):
        values = [row[k] for row in rows]
        if empty == "zero":
            means.append(sum(v or 0.0 for v in values) / len(values))
        else:
            defined = [v for v in values if v is not None]
            means.append(sum(defined) / len(defined) if defined else math.nan)
    return means, rows


def hand_made_frames():
    pred = np.zeros((5, 8))
    gt = np.zeros((5, 8), dtype=bool)
    pred[0, [0, 1, 2]] = 0.9  # predicted {0, 1, 2}
    gt[0, [1, 2, 3, 4]] = True  # ground truth {1, 2, 3, 4}: TP 2, P 2/3, R 1/2, F1 4/7
    gt[1, [0]] = True  # nothing predicted: P undefined, R 0, F1 undefined
    pred[2, [5]] = 0.7  # no ground truth: P 0, R undefined, F1 undefined
    # frame 3: neither: everything undefined
    pred[4, [0]] = 0.6  # disjoint: P 0, R 0, F1 0
    gt[4, [7]] = True
    return pred, gt


def test_contact_prf_hand_computed_skip_and_zero():
    pred, gt = hand_made_frames()
    skip = contact_prf(pred, gt, empty="skip")
    assert isinstance(skip, ContactPRF)
    assert skip.precision == pytest.approx((2 / 3 + 0 + 0) / 3)
    assert skip.recall == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert skip.f1 == pytest.approx((4 / 7 + 0) / 2)
    assert (skip.n_frames, skip.n_frames_used) == (5, 2)
    np.testing.assert_array_equal(np.isnan(skip.precision_per_frame), [False, True, False, True, False])
    np.testing.assert_array_equal(np.isnan(skip.recall_per_frame), [False, False, True, True, False])
    np.testing.assert_array_equal(np.isnan(skip.f1_per_frame), [False, True, True, True, False])
    zero = contact_prf(pred, gt, empty="zero")
    assert zero.precision == pytest.approx(2 / 3 / 5)
    assert zero.recall == pytest.approx(1 / 2 / 5)
    assert zero.f1 == pytest.approx(4 / 7 / 5)
    assert zero.n_frames_used == 5


@pytest.mark.parametrize("empty", ["skip", "zero"])
def test_contact_prf_matches_naive_loop(rng, empty):
    pred = rng.random((40, 778)) ** 3  # mostly low probabilities
    gt = rng.random((40, 778)) < rng.random((40, 1)) * 0.4
    pred[:5] = 0.0  # frames without predicted contact
    gt[5:9] = False  # frames without ground-truth contact
    result = contact_prf(torch.tensor(pred), torch.tensor(gt), threshold=0.3, empty=empty)
    (precision, recall, f1), rows = naive_prf(pred, gt, 0.3, empty)
    assert (result.precision, result.recall, result.f1) == pytest.approx((precision, recall, f1), rel=1e-12)
    expected_f1 = np.array([math.nan if row[2] is None else row[2] for row in rows])
    np.testing.assert_allclose(result.f1_per_frame, expected_f1, rtol=1e-12)


def test_contact_prf_threshold_is_inclusive_and_gt_thresholded():
    pred = np.array([0.5, 0.49, 0.0, 0.0])
    gt = np.array([0.8, 0.0, 0.5, 0.2])  # float labels: >= 0.5 is contact -> {0, 2}
    result = contact_prf(pred, gt, threshold=0.5)
    assert result.precision == 1.0 and result.recall == 0.5
    assert result.f1 == pytest.approx(2 / 3)
    assert result.precision_per_frame.shape == (1,)


def test_contact_prf_validation():
    with pytest.raises(InputError, match="same shape"):
        contact_prf(np.zeros((2, 778)), np.zeros((2, 777)))
    with pytest.raises(InputError, match="empty"):
        contact_prf(np.zeros(778), np.zeros(778), empty="drop")
    with pytest.raises(InputError, match="at least one frame"):
        contact_prf(np.zeros((0, 778)), np.zeros((0, 778)))
    all_undefined = contact_prf(np.zeros(10), np.zeros(10))
    assert math.isnan(all_undefined.f1) and all_undefined.n_frames_used == 0


# ----------------------------------------------------------------------------------------------------------------
# distance-based labels


def box_distance(points: np.ndarray, half: float) -> np.ndarray:
    """Exact unsigned distance from points to the surface of the cube [-half, half]^3."""
    outside = np.linalg.norm(np.maximum(np.abs(points) - half, 0.0), axis=1)
    inside = np.min(half - np.abs(points), axis=1)
    return np.where(np.all(np.abs(points) <= half, axis=1), inside, outside)


def test_contact_thresholds_follow_haco():
    assert CONTACT_THRESHOLDS["dexycb"] == CONTACT_THRESHOLDS["obman"] == 0.01
    assert CONTACT_THRESHOLDS["interhand"] == CONTACT_THRESHOLDS["hic"] == 0.005
    assert CONTACT_THRESHOLDS["mow"] == 0.035
    assert {"ho3d", "h2o3d", "arctic", "hoi4d", "h2o", "prox"} <= set(CONTACT_THRESHOLDS)


def test_contact_labels_box_analytic(rng):
    half = 0.03
    box = trimesh.creation.box(extents=(2 * half,) * 3)
    points = np.array(
        [
            [half + 0.005, 0.0, 0.0],  # 5 mm off a face -> contact
            [0.0, half + 0.015, 0.0],  # 15 mm off a face -> no contact
            [half + 0.006, half + 0.006, 0.0],  # edge: 8.49 mm -> contact
            [half + 0.006, half + 0.006, half + 0.006],  # corner: 10.39 mm -> no contact
            [0.0, 0.0, half - 0.004],  # inside, 4 mm under a face -> contact
            [0.0, 0.0, 0.0],  # centre, 3 cm from every face -> no contact
        ]
    )
    np.testing.assert_array_equal(contact_labels(points, box.vertices, box.faces), [1, 0, 1, 0, 1, 0])
    random_points = rng.uniform(-0.06, 0.06, size=(300, 3))
    labels = contact_labels(torch.tensor(random_points), torch.tensor(box.vertices), torch.tensor(box.faces))
    expected = box_distance(random_points, half) < 0.01
    assert labels.dtype == bool and labels.shape == (300,)
    np.testing.assert_array_equal(labels, expected)
    assert 0 < labels.sum() < 300


def test_contact_labels_strict_threshold():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))  # binary-exact coordinates: distance is exactly 0.25
    point = np.array([[0.75, 0.0, 0.0]])
    assert not contact_labels(point, box.vertices, box.faces, threshold=0.25)[0]
    assert contact_labels(point, box.vertices, box.faces, threshold=0.25 + 1e-9)[0]


def test_contact_labels_match_open3d(rng):
    o3d = pytest.importorskip("open3d")
    torus = trimesh.creation.torus(major_radius=0.04, minor_radius=0.012, major_sections=32, minor_sections=16)
    points = rng.uniform(-0.07, 0.07, size=(400, 3)) * np.array([1.0, 1.0, 0.5])
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(torus.vertices.astype(np.float32)), o3d.core.Tensor(torus.faces.astype(np.uint32))
    )
    distance = scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
    labels = contact_labels(points, torus.vertices, torus.faces, threshold=0.01)
    clear = np.abs(distance - 0.01) > 1e-5  # ignore float32 ties at the threshold
    np.testing.assert_array_equal(labels[clear], (distance < 0.01)[clear])
    assert 10 < labels.sum() < 390


def test_contact_fraction_frames():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.05)
    cluster = np.random.default_rng(1).normal(size=(50, 3)) * 0.001
    frames = np.stack(
        [
            cluster + [0.056, 0.0, 0.0],  # ~6 mm off the surface -> touching
            cluster + [0.09, 0.0, 0.0],  # ~4 cm away -> not touching
            cluster + [0.0, 0.0, -0.053],  # ~3 mm below the bottom -> touching
            cluster,  # deep inside: > 1 cm from the surface -> not touching (surface-distance rule)
        ]
    )
    assert contact_fraction(frames, sphere.vertices, sphere.faces) == pytest.approx(0.5)
    assert contact_fraction(frames[:1], sphere.vertices, sphere.faces, threshold=0.003) == 0.0
    # One object pose per frame: move the sphere onto frame 1's hand.
    per_frame = np.stack([sphere.vertices] * 4)
    per_frame[1] += [0.04, 0.0, 0.0]
    assert contact_fraction(frames, per_frame, sphere.faces) == pytest.approx(0.75)
    with pytest.raises(InputError, match="obj_verts"):
        contact_fraction(frames, per_frame[:2], sphere.faces)


def test_contact_labels_validation():
    box = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    with pytest.raises(InputError, match="hand_verts"):
        contact_labels(np.zeros((2, 778, 3)), box.vertices, box.faces)
    with pytest.raises(InputError, match="obj_faces"):
        contact_labels(np.zeros((778, 3)), box.vertices, box.faces + 100)
    with pytest.raises(InputError, match="threshold"):
        contact_labels(np.zeros((778, 3)), box.vertices, box.faces, threshold=0.0)


# ----------------------------------------------------------------------------------------------------------------
# volume wrappers (need haco_grasp.geometry.volume)


def test_intersection_volume_wrapper_units():
    volume_module = pytest.importorskip("haco_grasp.geometry.volume")
    manifold3d = pytest.importorskip("manifold3d")
    hand = trimesh.creation.box(extents=(0.04, 0.04, 0.04))
    hand.apply_translation([0.021, 0.0, 0.0])
    obj = trimesh.creation.box(extents=(0.04, 0.04, 0.04))
    volume_cm3 = intersection_volume(hand.vertices, hand.faces, obj.vertices, obj.faces, pitch=0.002)
    expected = volume_module.intersection_volume(hand.vertices, hand.faces, obj.vertices, obj.faces, pitch=0.002)
    assert volume_cm3 == pytest.approx(float(expected), rel=1e-12)

    def as_manifold(mesh):
        return manifold3d.Manifold(manifold3d.Mesh(mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32)))

    exact_cm3 = (as_manifold(hand) ^ as_manifold(obj)).volume() * 1e6  # 1.9 x 4 x 4 = 30.4 cm³
    assert exact_cm3 == pytest.approx(30.4, rel=1e-4)
    assert volume_cm3 == pytest.approx(exact_cm3, rel=0.1)


def test_max_penetration_depth_wrapper_in_mm():
    volume_module = pytest.importorskip("haco_grasp.geometry.volume")
    obj = trimesh.creation.box(extents=(0.04, 0.04, 0.04))
    hand = np.array([[0.0, 0.0, 0.017], [0.0, 0.0, 0.05], [0.05, 0.0, 0.0]])  # deepest: 3 mm under the top face
    depth_mm = max_penetration_depth(hand, obj.vertices, obj.faces)
    assert depth_mm == pytest.approx(1000.0 * volume_module.penetration_depths(hand, obj.vertices, obj.faces).max())
    assert depth_mm == pytest.approx(3.0, abs=1e-3)  # open3d computes in float32
    assert max_penetration_depth(hand[1:], obj.vertices, obj.faces) == pytest.approx(0.0, abs=1e-3)


def test_contact_ratio_graspttas_rule():
    obj = trimesh.creation.box(extents=(0.04, 0.04, 0.04))
    frames = np.stack(
        [
            np.array([[0.0, 0.0, 0.024], [0.1, 0.0, 0.0]]),  # 4 mm above the top face: in contact
            np.array([[0.0, 0.0, 0.027], [0.1, 0.0, 0.0]]),  # 7 mm away: not
            np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]]),  # at the centre, 2 cm deep: inside counts as contact
        ]
    )
    np.testing.assert_array_equal(frames_in_contact(frames, obj.vertices, obj.faces), [True, False, True])
    assert contact_ratio(frames, obj.vertices, obj.faces) == pytest.approx(2 / 3)
    assert contact_fraction(frames, obj.vertices, obj.faces, threshold=0.005) == pytest.approx(1 / 3)  # unsigned
    assert contact_ratio(frames[1], obj.vertices, obj.faces, threshold=0.008) == 1.0
    with pytest.raises(InputError):
        contact_ratio(frames, obj.vertices, obj.faces, threshold=0.0)


def test_metrics_import_does_not_load_mujoco():
    import subprocess
    import sys

    code = "import sys, haco_grasp.metrics as m; print(callable(m.simulate_grasps), 'mujoco' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]
