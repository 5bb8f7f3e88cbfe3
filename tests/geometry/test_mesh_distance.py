"""Tests for haco_grasp.geometry.mesh_distance against float64 references, dense sampling and trimesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

import haco_grasp.geometry.mesh_distance as md
from haco_grasp.errors import InputError
from haco_grasp.geometry.mesh_distance import closest_point_on_triangles, point_mesh_distance

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _segment_reference(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    length_sq = d @ d
    w = 0.0 if length_sq == 0 else np.clip((p - a) @ d / length_sq, 0.0, 1.0)
    return a + w * d


def _triangle_reference(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest point by candidates: the plane projection if it falls inside, and the three edges."""
    candidates = [_segment_reference(p, a, b), _segment_reference(p, b, c), _segment_reference(p, a, c)]
    basis = np.stack([b - a, c - a], axis=1)  # (3, 2)
    if np.linalg.matrix_rank(basis, tol=1e-12) == 2:
        (s, t), *_ = np.linalg.lstsq(basis, p - a, rcond=None)
        if s >= 0 and t >= 0 and s + t <= 1:
            candidates.append(a + basis @ np.array([s, t]))
    return min(candidates, key=lambda q: np.sum((p - q) ** 2))


def _mesh_reference(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Brute-force squared point-mesh distance in float64 (vectorised candidate method)."""
    a, b, c = (verts[faces[:, i]][None] for i in range(3))  # (1, F, 3)
    p = points[:, None]  # (P, 1, 3)

    def seg_sq(start, end):
        d = end - start
        w = np.clip(np.sum((p - start) * d, -1) / np.maximum(np.sum(d * d, -1), 1e-300), 0, 1)
        return np.sum((p - start - w[..., None] * d) ** 2, -1)

    best = np.minimum(np.minimum(seg_sq(a, b), seg_sq(b, c)), seg_sq(a, c))
    n = np.cross(b - a, c - a)
    nn = np.sum(n * n, -1)
    with np.errstate(invalid="ignore", divide="ignore"):  # zero-area faces: NaN heights fail the test below
        height = np.sum((p - a) * n, -1) / np.sqrt(nn)
        proj = p - (height / np.sqrt(nn))[..., None] * n
    # barycentric test of the projection via signed sub-areas
    inside = np.ones(best.shape, dtype=bool)
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= np.sum(np.cross(v - u, proj - u) * n, -1) >= 0
    best = np.where(inside, np.minimum(best, height**2), best)
    return best.min(axis=1)


def test_closest_point_matches_reference_and_dense_sampling():
    rng = np.random.default_rng(0)
    tri = rng.normal(size=(400, 3, 3))
    points = rng.normal(scale=1.5, size=(400, 3))
    got = closest_point_on_triangles(torch.as_tensor(points), *(torch.as_tensor(tri[:, i]) for i in range(3))).numpy()
    expected = np.stack([_triangle_reference(points[i], *tri[i]) for i in range(400)])
    np.testing.assert_allclose(got, expected, atol=1e-10)
    # Dense barycentric sampling bounds the distance from above and comes within its spacing.
    s, t = np.meshgrid(np.linspace(0, 1, 301), np.linspace(0, 1, 301))
    keep = s + t <= 1
    s, t = s[keep], t[keep]
    for i in range(10):
        a, b, c = tri[i]
        samples = a + s[:, None] * (b - a) + t[:, None] * (c - a)
        dense = np.sqrt(np.min(np.sum((samples - points[i]) ** 2, axis=1)))
        exact = np.linalg.norm(got[i] - points[i])
        spacing = max(np.linalg.norm(b - a), np.linalg.norm(c - a), np.linalg.norm(c - b)) / 300
        assert exact <= dense + 1e-12 and dense - exact <= spacing


def test_closest_point_broadcasts():
    tri = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    points = torch.tensor([[[0.2, 0.2, 1.0]], [[2.0, 2.0, 0.0]]], dtype=torch.float64)  # (2, 1, 3)
    out = closest_point_on_triangles(points, tri[0], tri[1], tri[2])
    torch.testing.assert_close(out, torch.tensor([[[0.2, 0.2, 0.0]], [[0.5, 0.5, 0.0]]], dtype=torch.float64))


@pytest.mark.parametrize(
    "corners",
    [
        [[0.0, 0, 0], [1, 0, 0], [2, 0, 0]],  # collinear, middle vertex between
        [[0.0, 0, 0], [2, 0, 0], [1, 0, 0]],  # collinear, last vertex between
        [[0.0, 0, 0], [1, 1, 0], [0, 0, 0]],  # repeated vertex
        [[0.5, 0.5, 0.5]] * 3,  # a point
        [[0.0, 0, 0], [1, 0, 0], [0.5, 1e-9, 0]],  # nearly collinear sliver
    ],
)
def test_degenerate_triangles_are_exact_and_finite(corners):
    rng = np.random.default_rng(1)
    a, b, c = (np.asarray(x, dtype=np.float64) for x in corners)
    points = rng.normal(size=(200, 3))
    points[:20, 1:] *= 1e-6  # some points near the collapsed edge
    pts = torch.tensor(points, requires_grad=True)
    corner_t = [torch.tensor(x, requires_grad=True) for x in (a, b, c)]
    got = closest_point_on_triangles(pts, *corner_t)
    expected = np.stack([_triangle_reference(p, a, b, c) for p in points])
    ref_sq = np.sum((points - expected) ** 2, axis=1)
    got_sq = np.sum((points - got.detach().numpy()) ** 2, axis=1)
    np.testing.assert_allclose(got_sq, ref_sq, atol=1e-12, rtol=1e-9)
    ((pts - got) ** 2).sum().backward()
    assert torch.isfinite(pts.grad).all() and all(torch.isfinite(x.grad).all() for x in corner_t)


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=3, radius=0.05)


def test_point_mesh_distance_matches_brute_force_batched(sphere):
    rng = np.random.default_rng(2)
    verts = np.stack([sphere.vertices, sphere.vertices * [1.2, 0.8, 1.0] + 0.01])  # (2, V, 3)
    points = rng.normal(scale=0.05, size=(2, 150, 3))
    points[:, :10] = 0.0  # centre points: every face is equally far
    result = point_mesh_distance(torch.as_tensor(points), torch.as_tensor(verts), torch.as_tensor(sphere.faces))
    assert (
        result.sq_dist.shape == (2, 150) and result.closest.shape == (2, 150, 3) and result.face_idx.shape == (2, 150)
    )
    for b in range(2):
        expected = _mesh_reference(points[b], verts[b], sphere.faces)
        np.testing.assert_allclose(result.sq_dist[b].numpy(), expected, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(np.sum((result.closest[b].numpy() - points[b]) ** 2, -1), expected, rtol=1e-9)
        # the closest point lies on the reported face
        tri = verts[b][sphere.faces[result.face_idx[b].numpy()]]
        on_face = np.stack([_triangle_reference(q, *t) for q, t in zip(result.closest[b].numpy(), tri, strict=True)])
        np.testing.assert_allclose(on_face, result.closest[b].numpy(), atol=1e-12)


def test_point_mesh_distance_agrees_with_trimesh(sphere):
    rng = np.random.default_rng(3)
    points = np.concatenate([rng.normal(scale=0.04, size=(200, 3)), rng.normal(scale=0.5, size=(50, 3))])
    result = point_mesh_distance(
        torch.as_tensor(points)[None], torch.as_tensor(sphere.vertices), torch.as_tensor(sphere.faces)
    )
    _, trimesh_dist, _ = trimesh.proximity.closest_point(sphere, points)
    ours = np.sqrt(result.sq_dist[0].numpy())
    # Ours is the exact minimum; trimesh returns a true surface point, so it can only be equal or farther.
    assert np.all(ours <= trimesh_dist + 1e-12)
    assert np.median(trimesh_dist - ours) < 1e-12 and np.max(trimesh_dist - ours) < 5e-5


def test_shared_verts_small_chunks_and_float32(monkeypatch, sphere):
    rng = np.random.default_rng(4)
    offset = np.array([0.3, -0.1, 0.7])  # camera-frame coordinates
    verts = sphere.vertices + offset
    points = rng.normal(scale=0.05, size=(3, 60, 3)) + offset
    faces = torch.as_tensor(sphere.faces)
    expected = np.stack([_mesh_reference(p, verts, sphere.faces) for p in points])
    shared = point_mesh_distance(torch.as_tensor(points), torch.as_tensor(verts), faces)
    np.testing.assert_allclose(shared.sq_dist.numpy(), expected, rtol=1e-9, atol=1e-15)
    monkeypatch.setattr(md, "_CANDIDATE_BLOCK", 101)
    tiny_chunks = point_mesh_distance(torch.as_tensor(points), torch.as_tensor(verts)[None], faces, chunk=5000)
    torch.testing.assert_close(tiny_chunks.sq_dist, shared.sq_dist)
    torch.testing.assert_close(tiny_chunks.face_idx, shared.face_idx)
    single = point_mesh_distance(
        torch.as_tensor(points, dtype=torch.float32), torch.as_tensor(verts, dtype=torch.float32), faces
    )
    np.testing.assert_allclose(np.sqrt(single.sq_dist.numpy()), np.sqrt(expected), atol=2e-6)


def test_degenerate_faces_inside_a_mesh():
    box = trimesh.creation.box((0.02, 0.03, 0.04))
    verts = np.concatenate([box.vertices, [[0.05, 0.0, 0.0], [0.07, 0.0, 0.0]]])
    faces = np.concatenate([box.faces, [[8, 9, 9], [8, 9, 8]]])  # two collapsed "needle" faces
    rng = np.random.default_rng(5)
    points = rng.normal(scale=0.04, size=(1, 100, 3))
    points[0, :5] = [[0.06, 1e-3, 0.0], [0.08, 0, 0], [0.06, 0, 0], [0.04, 0, 0.001], [0.0, 0.0, 0.0]]
    result = point_mesh_distance(torch.as_tensor(points), torch.as_tensor(verts), torch.as_tensor(faces))
    expected = _mesh_reference(points[0], verts, faces)
    np.testing.assert_allclose(result.sq_dist[0].numpy(), expected, rtol=1e-9, atol=1e-18)
    assert result.sq_dist[0, 2] == 0.0 and torch.isfinite(result.closest).all()


def test_gradcheck_points_and_verts():
    verts = torch.tensor(
        [[0.0, 0, 0], [1, 0.1, 0], [0.2, 1, 0.1], [0.3, 0.2, 1.1]], dtype=torch.float64, requires_grad=True
    )
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    rng = np.random.default_rng(6)
    points = torch.tensor(rng.normal(scale=0.8, size=(2, 6, 3)) + 0.3, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, v: point_mesh_distance(p, v, faces).sq_dist, (points, verts))
    assert torch.autograd.gradcheck(lambda p, v: point_mesh_distance(p, v, faces).closest, (points, verts))


def test_gradient_is_twice_the_offset(sphere):
    rng = np.random.default_rng(7)
    points = torch.tensor(rng.normal(scale=0.05, size=(1, 40, 3)), requires_grad=True)
    result = point_mesh_distance(points, torch.as_tensor(sphere.vertices), torch.as_tensor(sphere.faces))
    result.sq_dist.sum().backward()
    torch.testing.assert_close(points.grad, 2.0 * (points - result.closest).detach())


def test_empty_points_and_invalid_inputs(sphere):
    verts = torch.as_tensor(sphere.vertices)
    faces = torch.as_tensor(sphere.faces)
    empty = point_mesh_distance(torch.zeros(2, 0, 3, dtype=torch.float64), verts, faces)
    assert empty.sq_dist.shape == (2, 0) and empty.closest.shape == (2, 0, 3)
    with pytest.raises(InputError):
        point_mesh_distance(torch.zeros(5, 3, dtype=torch.float64), verts, faces)
    with pytest.raises(InputError):
        point_mesh_distance(torch.zeros(1, 5, 3), verts, faces)  # dtype mismatch
    with pytest.raises(InputError):
        point_mesh_distance(torch.zeros(1, 5, 3, dtype=torch.float64), verts, faces[:0])
    with pytest.raises(InputError):
        point_mesh_distance(torch.zeros(1, 5, 3, dtype=torch.float64), verts, faces + len(verts))
    with pytest.raises(InputError):
        closest_point_on_triangles(torch.zeros(4, 3), torch.zeros(3, 3), torch.zeros(3, 3), torch.zeros(3, 3))


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu(sphere):
    rng = np.random.default_rng(8)
    points = torch.as_tensor(rng.normal(scale=0.05, size=(2, 300, 3)), dtype=torch.float32)
    verts = torch.as_tensor(sphere.vertices, dtype=torch.float32)
    faces = torch.as_tensor(sphere.faces)
    cpu = point_mesh_distance(points, verts, faces)
    gpu = point_mesh_distance(points.cuda(), verts.cuda(), faces.cuda())
    torch.testing.assert_close(gpu.sq_dist.cpu(), cpu.sq_dist, atol=1e-9, rtol=1e-4)
