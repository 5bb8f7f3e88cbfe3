"""Tests for haco_grasp.geometry.mesh against naive float64 loops and trimesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from haco_grasp.errors import InputError
from haco_grasp.geometry.mesh import boundary_loops, cap_boundary, face_normals, is_watertight, vertex_normals
from tests.helpers import assert_close


def _naive_face_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    out = np.zeros((len(faces), 3))
    for i, (a, b, c) in enumerate(faces):
        n = np.cross(verts[b] - verts[a], verts[c] - verts[a])
        length = np.linalg.norm(n)
        out[i] = n / length if length > 0 else 0.0
    return out


def _naive_vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    out = np.zeros_like(verts)
    for a, b, c in faces:
        n = np.cross(verts[b] - verts[a], verts[c] - verts[a])
        for v in (a, b, c):
            out[v] += n
    lengths = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, lengths, out=np.zeros_like(out), where=lengths > 0)


def _open_cylinder(sections: int = 16) -> trimesh.Trimesh:
    """A closed trimesh cylinder with its two cap fans (faces touching the axis centre vertices) removed."""
    closed = trimesh.creation.cylinder(radius=0.02, height=0.05, sections=sections)
    centre_ids = np.where(np.linalg.norm(closed.vertices[:, :2], axis=1) < 1e-9)[0]
    keep = ~np.isin(closed.faces, centre_ids).any(axis=1)
    return trimesh.Trimesh(closed.vertices, closed.faces[keep], process=False)


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=2, radius=0.05)


def test_face_normals_match_naive_and_batch(sphere):
    rng = np.random.default_rng(0)
    verts = sphere.vertices + rng.normal(scale=0.003, size=sphere.vertices.shape)
    faces = torch.as_tensor(sphere.faces)
    expected = _naive_face_normals(verts, sphere.faces)
    got = face_normals(torch.as_tensor(verts), faces)
    assert_close(got, expected, atol=1e-12, rtol=1e-7)
    batch = torch.stack([torch.as_tensor(verts), torch.as_tensor(verts * 2.0)])
    got_batch = face_normals(batch, faces)
    assert got_batch.shape == (2, len(faces), 3)
    assert_close(got_batch[1], expected, atol=1e-12, rtol=1e-7)  # scaling keeps directions


def test_zero_area_faces_give_zero_normals_without_nan():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [5, 5, 5]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 1, 3], [1, 1, 2]])  # 2nd collinear, 3rd repeated vertex
    verts.requires_grad_(True)
    normals = face_normals(verts, faces)
    assert_close(normals, [[0, 0, 1], [0, 0, 0], [0, 0, 0]], atol=1e-15, rtol=1e-7)
    vnormals = vertex_normals(verts, faces)
    assert torch.all(vnormals[4] == 0)  # isolated vertex
    (normals.sum() + vnormals.sum()).backward()
    assert torch.isfinite(verts.grad).all()


def test_vertex_normals_match_naive_and_point_outward(sphere):
    rng = np.random.default_rng(1)
    verts = sphere.vertices * rng.uniform(0.95, 1.05, size=(len(sphere.vertices), 1))
    got = vertex_normals(torch.as_tensor(verts), torch.as_tensor(sphere.faces)).numpy()
    assert_close(got, _naive_vertex_normals(verts, sphere.faces), atol=1e-12, rtol=1e-7)
    radial = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)
    assert np.min(np.sum(got * radial, axis=1)) > 0.9
    batch = vertex_normals(torch.as_tensor(np.stack([verts, -verts])), torch.as_tensor(sphere.faces)).numpy()
    assert_close(batch[0], got, atol=1e-12, rtol=1e-7)
    assert_close(batch[1], got, atol=1e-12, rtol=1e-7)  # (-b + a) x (-c + a) = (b - a) x (c - a)


def test_vertex_normals_gradcheck():
    verts = torch.tensor(
        [[0.0, 0, 0], [1, 0.1, 0], [0.2, 1, 0.1], [0.3, 0.2, 1.1]], dtype=torch.float64, requires_grad=True
    )
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    assert torch.autograd.gradcheck(lambda v: vertex_normals(v, faces), (verts,))
    assert torch.autograd.gradcheck(lambda v: face_normals(v, faces), (verts,))


def test_boundary_loops_of_open_cylinder():
    mesh = _open_cylinder(16)
    loops = boundary_loops(mesh.faces)
    assert len(loops) == 2 and all(len(loop) == 16 for loop in loops)
    directed = {tuple(e) for f in mesh.faces for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    for loop in loops:
        assert loop[0] == loop.min()
        assert len(np.unique(np.round(mesh.vertices[loop][:, 2], 9))) == 1  # each loop is one rim
        for start, end in zip(loop, np.roll(loop, -1), strict=True):
            assert (start, end) in directed and (end, start) not in directed
    assert boundary_loops(trimesh.creation.icosphere(1).faces) == []


def test_cap_boundary_closes_open_cylinder_with_same_volume():
    closed = trimesh.creation.cylinder(radius=0.02, height=0.05, sections=16)
    mesh = _open_cylinder(16)
    assert not is_watertight(mesh.faces)
    capped_faces = cap_boundary(mesh.faces)
    assert len(capped_faces) - len(mesh.faces) == 2 * 14  # 16-vertex loop -> 14 faces, like MANO's wrist
    capped = trimesh.Trimesh(mesh.vertices, capped_faces, process=False)
    assert capped.is_watertight and capped.is_winding_consistent and is_watertight(capped_faces)
    assert capped.volume == pytest.approx(closed.volume, rel=1e-9)
    assert capped.volume > 0  # outward winding kept


def test_cap_boundary_on_sphere_with_removed_vertex_fan():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.05)
    apex = 7
    fan = np.isin(sphere.faces, [apex]).any(axis=1)
    open_faces = sphere.faces[~fan]
    capped_faces = cap_boundary(open_faces)
    new = capped_faces[len(open_faces) :]
    ring = boundary_loops(open_faces)[0]
    assert len(new) == len(ring) - 2
    capped = trimesh.Trimesh(sphere.vertices, capped_faces, process=False)
    assert capped.is_watertight and capped.is_winding_consistent
    # The removed pyramid = original fan faces + the caps reversed; volumes must add up.
    pyramid = trimesh.Trimesh(sphere.vertices, np.concatenate([sphere.faces[fan], new[:, ::-1]]), process=False)
    assert pyramid.is_watertight
    assert capped.volume + pyramid.volume == pytest.approx(sphere.volume, rel=1e-9)
    assert 0 < pyramid.volume < 0.01 * sphere.volume


@pytest.mark.parametrize("drop", [None, 0, 5])
def test_is_watertight_matches_trimesh(drop):
    for mesh in (trimesh.creation.icosphere(1), trimesh.creation.box(), trimesh.creation.cylinder(1, 2)):
        faces = mesh.faces if drop is None else np.delete(mesh.faces, drop, axis=0)
        expected = trimesh.Trimesh(mesh.vertices, faces, process=False).is_watertight
        assert is_watertight(faces) == expected
        assert is_watertight(torch.as_tensor(faces)) == expected
    assert not is_watertight(np.zeros((0, 3), dtype=np.int64))


def test_invalid_inputs_raise_input_error():
    with pytest.raises(InputError):
        face_normals(torch.zeros(4, 2), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(InputError):
        vertex_normals(torch.zeros(4, 3), torch.tensor([[0, 1, 4]]))
    with pytest.raises(InputError):
        cap_boundary(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(InputError):
        is_watertight(np.zeros((2, 3), dtype=np.float32))
