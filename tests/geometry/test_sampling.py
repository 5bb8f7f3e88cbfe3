import numpy as np
import torch
import trimesh

from haco_grasp.geometry.sampling import sample_surface


def test_points_lie_on_the_surface_with_outward_normals():
    mesh = trimesh.creation.box(extents=(0.1, 0.04, 0.02))
    points, normals = sample_surface(mesh.vertices, mesh.faces, 4000, generator=torch.Generator().manual_seed(0))
    _, dist, face = trimesh.proximity.closest_point(mesh, points.numpy())
    assert dist.max() < 1e-9
    np.testing.assert_allclose(np.linalg.norm(normals.numpy(), axis=1), 1.0, atol=1e-12)
    # outward: moving along the normal leaves the box
    assert not mesh.contains(points.numpy() + 1e-3 * normals.numpy()).any()


def test_area_uniform():
    mesh = trimesh.creation.box(extents=(0.1, 0.04, 0.02))
    points, normals = sample_surface(mesh.vertices, mesh.faces, 20000, generator=torch.Generator().manual_seed(1))
    # fraction of samples on the two large faces (normal ±z) equals their area fraction
    on_z = (normals[:, 2].abs() > 0.99).double().mean().item()
    expected = 2 * 0.1 * 0.04 / mesh.area
    assert abs(on_z - expected) < 0.015


def test_deterministic_for_a_seed():
    mesh = trimesh.creation.icosphere(2, 0.05)
    a = sample_surface(mesh.vertices, mesh.faces, 100, generator=torch.Generator().manual_seed(3))
    b = sample_surface(mesh.vertices, mesh.faces, 100, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
