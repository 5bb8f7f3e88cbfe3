"""Tests for haco_grasp.geometry.sdf against analytic shapes, trimesh and open3d."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

import haco_grasp.geometry.sdf as sdf_module
from haco_grasp.errors import InputError
from haco_grasp.geometry.sdf import SdfGrid, clear_sdf_grid_cache, inside_mesh, sdf_grid, signed_distance

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=3, radius=0.03)


@pytest.fixture(scope="module")
def sphere_grid(sphere) -> SdfGrid:
    return SdfGrid.from_mesh(sphere.vertices, sphere.faces, pitch=0.004, padding=0.01)


def _open3d_sdf(points: np.ndarray, mesh: trimesh.Trimesh) -> np.ndarray:
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(mesh.vertices.astype(np.float32)), o3d.core.Tensor(mesh.faces.astype(np.uint32))
    )
    return scene.compute_signed_distance(o3d.core.Tensor(points.astype(np.float32)), nsamples=3).numpy()


def _shell_points(rng: np.random.Generator, count: int, low: float, high: float) -> np.ndarray:
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return directions * rng.uniform(low, high, size=(count, 1))


def test_inside_mesh_matches_analytic_and_trimesh(sphere):
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.04, 0.04, size=(3000, 3))
    radius = np.linalg.norm(points, axis=1)
    clear = np.abs(radius - 0.03) > 1e-3  # the icosphere deviates < 0.3 mm from the true sphere
    inside = inside_mesh(points, sphere.vertices, sphere.faces)
    assert inside.dtype == bool and inside.shape == (3000,)
    np.testing.assert_array_equal(inside[clear], radius[clear] < 0.03)
    np.testing.assert_array_equal(inside, sphere.contains(points))
    as_torch = inside_mesh(torch.as_tensor(points).reshape(30, 100, 3), torch.as_tensor(sphere.vertices), sphere.faces)
    assert as_torch.dtype == torch.bool and as_torch.shape == (30, 100)
    np.testing.assert_array_equal(as_torch.reshape(-1).numpy(), inside)


def test_signed_distance_numpy_matches_trimesh(sphere):
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.05, 0.05, size=(300, 3))
    ours = signed_distance(points, sphere.vertices, sphere.faces)
    theirs = -trimesh.proximity.ProximityQuery(sphere).signed_distance(points)  # trimesh: positive inside
    assert ours.shape == (300,) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, theirs, atol=2e-5)  # open3d float32; trimesh's face search is approximate
    analytic = np.linalg.norm(points, axis=1) - 0.03
    assert np.max(np.abs(ours - analytic)) < 3e-4  # icosphere faceting


def test_signed_distance_torch_paths_agree(sphere):
    rng = np.random.default_rng(2)
    points = rng.uniform(-0.05, 0.05, size=(2, 50, 3))
    reference = signed_distance(points, sphere.vertices, sphere.faces)
    no_grad = signed_distance(
        torch.as_tensor(points, dtype=torch.float32), torch.as_tensor(sphere.vertices), sphere.faces
    )
    assert no_grad.dtype == torch.float32 and no_grad.shape == (2, 50)
    np.testing.assert_allclose(no_grad.numpy(), reference, atol=1e-6)
    query = torch.tensor(points, requires_grad=True)
    with_grad = signed_distance(query, torch.as_tensor(sphere.vertices), torch.as_tensor(sphere.faces))
    np.testing.assert_allclose(with_grad.detach().numpy(), reference, atol=1e-6)
    with_grad.sum().backward()
    np.testing.assert_allclose(query.grad.norm(dim=-1).numpy(), 1.0, atol=1e-9)  # |grad sdf| = 1
    radial = query.detach() / query.detach().norm(dim=-1, keepdim=True)
    assert torch.all((query.grad * radial).sum(-1) > 0.9)  # grows outwards, inside and out


def test_signed_distance_gradcheck_wrt_points_and_verts():
    box = trimesh.creation.box((1.0, 0.8, 1.2))
    verts = torch.tensor(box.vertices, requires_grad=True)
    faces = torch.as_tensor(box.faces)
    points = torch.tensor(
        [[0.1, 0.05, 0.2], [0.9, 0.1, -0.3], [-0.2, 0.7, 0.4], [0.3, -0.25, -0.1]],
        dtype=torch.float64,
        requires_grad=True,
    )
    assert torch.autograd.gradcheck(lambda p, v: signed_distance(p, v, faces), (points, verts))
    signs = torch.sign(signed_distance(points, verts, faces)).detach()
    torch.testing.assert_close(signs, torch.tensor([-1.0, 1.0, 1.0, -1.0], dtype=torch.float64))


def test_grid_nodes_equal_open3d(sphere, sphere_grid):
    grid = sphere_grid
    assert grid.values.shape == grid.shape and grid.values.dtype == torch.float32
    idx = np.array([[0, 0, 0], [3, 7, 11], [10, 10, 10], [20, 5, 9], [6, 12, 13]])
    nodes = grid.origin.double().numpy() + grid.pitch * idx
    np.testing.assert_allclose(grid.values[tuple(idx.T)].numpy(), _open3d_sdf(nodes, sphere), atol=1e-7)
    queried = grid.query(torch.as_tensor(nodes, dtype=torch.float32))
    np.testing.assert_allclose(queried.numpy(), _open3d_sdf(nodes, sphere), atol=1e-6)
    assert np.all(grid.origin.numpy() <= sphere.vertices.min(0) - 0.01 + 1e-7)
    assert np.all(grid.origin.numpy() + grid.pitch * (np.array(grid.shape) - 1) >= sphere.vertices.max(0) + 0.01 - 1e-7)


def test_grid_query_accuracy_near_surface(sphere, sphere_grid):
    rng = np.random.default_rng(3)
    points = _shell_points(rng, 2000, 0.025, 0.035)
    got = sphere_grid.query(torch.as_tensor(points).reshape(4, 500, 3)).reshape(-1)
    # Trilinear error of a smooth field: (pitch^2 / 8) * sum |d2f/dxi2| <= pitch^2 / (4 r); allow 2x for facets.
    tolerance = sphere_grid.pitch**2 / (2 * 0.025)
    np.testing.assert_allclose(got.numpy(), _open3d_sdf(points, sphere), atol=tolerance)


def test_grid_is_exact_where_the_sdf_is_linear():
    box = trimesh.creation.box((0.1, 0.1, 0.1))
    grid = SdfGrid.from_mesh(box.vertices, box.faces, pitch=0.004, padding=0.01)
    rng = np.random.default_rng(4)
    points = np.stack([rng.uniform(0.035, 0.058, 500), rng.uniform(-0.02, 0.02, 500), rng.uniform(-0.02, 0.02, 500)], 1)
    got = grid.query(torch.as_tensor(points)).numpy()
    np.testing.assert_allclose(got, points[:, 0] - 0.05, atol=1e-6)  # sdf = x - 0.05 near the +x face


def test_grid_outside_box_is_a_safe_overestimate(sphere, sphere_grid):
    rng = np.random.default_rng(5)
    points = _shell_points(rng, 300, 0.06, 0.2)
    got = sphere_grid.query(torch.as_tensor(points)).numpy()
    exact = np.linalg.norm(points, axis=1) - 0.03
    assert np.all(got >= exact - 1e-4)
    lo = sphere_grid.origin.double().numpy()
    hi = lo + sphere_grid.pitch * (np.array(sphere_grid.shape) - 1)
    clamped = np.clip(points, lo, hi)
    expected = sphere_grid.query(torch.as_tensor(clamped)).numpy() + np.linalg.norm(points - clamped, axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_grid_query_gradcheck(sphere_grid):
    grid = sphere_grid.to(dtype=torch.float64)
    assert grid.values.dtype == torch.float64 and sphere_grid.values.dtype == torch.float32  # copy, not in place
    rng = np.random.default_rng(6)
    inside_box = _shell_points(rng, 5, 0.005, 0.03)
    outside_box = _shell_points(rng, 3, 0.07, 0.1)
    points = torch.tensor(np.concatenate([inside_box, outside_box])[None], requires_grad=True)
    assert torch.autograd.gradcheck(grid.query, (points,))


def test_grid_rejects_bad_input(sphere, sphere_grid):
    with pytest.raises(InputError):
        SdfGrid.from_mesh(sphere.vertices, sphere.faces, pitch=0.0005, max_cells=10_000)
    with pytest.raises(InputError):
        sphere_grid.query(torch.zeros(4, 2))
    with pytest.raises(InputError):
        signed_distance(np.zeros((3, 3)), sphere.vertices, sphere.faces + len(sphere.vertices))


def test_sdf_grid_cache_memory_and_disk(monkeypatch, tmp_path, sphere):
    builds = []
    original = SdfGrid.from_mesh.__func__

    def counting(cls, *args, **kwargs):
        builds.append(1)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(sdf_module.SdfGrid, "from_mesh", classmethod(counting))
    clear_sdf_grid_cache()
    first = sdf_grid(sphere.vertices, sphere.faces, pitch=0.006, padding=0.006, cache_dir=tmp_path)
    second = sdf_grid(torch.as_tensor(sphere.vertices), sphere.faces, pitch=0.006, padding=0.006, cache_dir=tmp_path)
    assert second is first and len(builds) == 1
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary left behind
    clear_sdf_grid_cache()  # as in a fresh process: the npz file is read, nothing is rebuilt
    third = sdf_grid(sphere.vertices, sphere.faces, pitch=0.006, padding=0.006, cache_dir=tmp_path)
    assert len(builds) == 1 and third is not first
    torch.testing.assert_close(third.values, first.values)
    torch.testing.assert_close(third.origin, first.origin)
    assert third.pitch == first.pitch
    sdf_grid(sphere.vertices * 1.01, sphere.faces, pitch=0.006, padding=0.006)  # a different mesh is a miss
    assert len(builds) == 2
    clear_sdf_grid_cache()


@pytest.mark.cuda
@cuda
def test_grid_query_on_cuda(sphere_grid):
    points = torch.rand(2, 100, 3, dtype=torch.float32) * 0.1 - 0.05
    cpu = sphere_grid.query(points)
    gpu = sphere_grid.to("cuda").query(points.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-6, rtol=1e-5)


def _naive_trilinear(grid: SdfGrid, point: np.ndarray) -> float:
    """The obvious float64 trilinear interpolation of one point (plus the distance to the box outside it)."""
    values = grid.values.double().numpy()
    coord = (point - grid.origin.double().numpy()) / grid.pitch
    clamped = np.clip(coord, 0, np.array(values.shape) - 1)
    outside = np.linalg.norm((coord - clamped) * grid.pitch)
    base = np.minimum(np.floor(clamped), np.array(values.shape) - 2).astype(int)
    frac = clamped - base
    total = 0.0
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                weight = (frac[0] if dx else 1 - frac[0]) * (frac[1] if dy else 1 - frac[1])
                weight *= frac[2] if dz else 1 - frac[2]
                total += weight * values[base[0] + dx, base[1] + dy, base[2] + dz]
    return total + outside


def test_packed_grids_mix_objects_in_one_lookup(sphere, sphere_grid):
    from haco_grasp.geometry.sdf import PackedSdfGrids

    box = trimesh.creation.box(extents=(0.06, 0.03, 0.09))
    grids = [sphere_grid, SdfGrid.from_mesh(box.vertices, box.faces, pitch=0.003, padding=0.01),
             SdfGrid.from_mesh(sphere.vertices * 1.5, sphere.faces, pitch=0.005, padding=0.02)]  # fmt: skip
    packed = PackedSdfGrids.pack(grids, dtype=torch.float64)
    rng = np.random.default_rng(11)
    grid_index = torch.as_tensor(rng.integers(0, 3, size=7))
    points = torch.tensor(_shell_points(rng, 7 * 9, 0.0, 0.09).reshape(7, 9, 3), requires_grad=True)
    packed_sdf = packed.query(points, grid_index)  # (7, 9)
    for b in range(7):
        grid = grids[int(grid_index[b])].to(dtype=torch.float64)
        torch.testing.assert_close(packed_sdf[b], grid.query(points[b]), rtol=1e-12, atol=1e-12)
        for p in range(0, 9, 4):
            assert abs(float(packed_sdf[b, p].detach()) - _naive_trilinear(grid, points[b, p].detach().numpy())) < 1e-10
    # the same points in another order give the same values: a sample's result ignores the rest of the batch
    order = torch.as_tensor(rng.permutation(7))
    torch.testing.assert_close(packed.query(points[order], grid_index[order]), packed_sdf[order], rtol=0, atol=0)
    # gradients: the custom backward equals finite differences, inside and outside every box
    assert torch.autograd.gradcheck(lambda x: packed.query(x, grid_index), (points,))
