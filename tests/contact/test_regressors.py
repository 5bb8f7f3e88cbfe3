"""Coarse contact regressors: shapes, partitions, joint reordering, fingertips, coarse-label rule."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import trimesh
from scipy.sparse.csgraph import connected_components

from haco_grasp.contact.regressors import (
    HACO_TIP_VERTEX_IDS,
    build_contact_regressors,
    coarse_labels,
    geodesic_partition_regressor,
    joint_contact_regressor,
    load_official_vertex_regressors,
)
from haco_grasp.errors import AssetError, InputError
from haco_grasp.hand.joints import JOINT_NAMES, MANO_JOINT_NAMES


def _check_partition(matrix: np.ndarray, faces: np.ndarray, groups: int, count: int) -> None:
    assert matrix.shape == (groups, count)
    assert np.all(matrix >= 0)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal((matrix > 0).sum(axis=0), 1)  # every vertex in exactly one group
    for row in matrix:  # equal weights inside a group
        values = row[row > 0]
        np.testing.assert_allclose(values, values[0])
    # each group is connected on the mesh (geodesic Voronoi cells of a graph metric are)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    owner = np.argmax(matrix > 0, axis=0)
    inside = edges[owner[edges[:, 0]] == owner[edges[:, 1]]]
    graph = sp.coo_matrix((np.ones(len(inside)), (inside[:, 0], inside[:, 1])), shape=(count, count))
    components, labels = connected_components(graph, directed=False)
    assert components == groups


@pytest.fixture(scope="module")
def synthetic():
    return build_contact_regressors("synthetic")


def test_synthetic_regressors_shapes_and_partitions(synthetic):
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path

    faces = read_mano_pickle(resolve_mano_path("right", synthetic_mano_root())).faces
    _check_partition(synthetic.vertex_336, faces, 336, 778)
    _check_partition(synthetic.vertex_84, faces, 84, 778)
    assert synthetic.joint.shape == (21, 778)
    np.testing.assert_allclose(synthetic.joint.sum(axis=1), 1.0, atol=1e-9)
    assert synthetic.tip_vertex_ids == HACO_TIP_VERTEX_IDS == (745, 317, 445, 556, 673)
    assert build_contact_regressors("synthetic") is synthetic  # cached


def test_geodesic_partition_on_sphere_and_errors():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    matrix = geodesic_partition_regressor(sphere.vertices, sphere.faces, 12)
    _check_partition(matrix, np.asarray(sphere.faces), 12, len(sphere.vertices))
    sizes = (matrix > 0).sum(axis=1)
    assert sizes.max() <= 4 * sizes.min()  # farthest-point seeds spread the cells evenly on a sphere
    single = geodesic_partition_regressor(sphere.vertices, sphere.faces, 1)
    np.testing.assert_allclose(single, np.full((1, len(sphere.vertices)), 1.0 / len(sphere.vertices)))
    every = geodesic_partition_regressor(sphere.vertices, sphere.faces, len(sphere.vertices))
    np.testing.assert_array_equal((every > 0).sum(axis=1), 1)
    with pytest.raises(InputError):
        geodesic_partition_regressor(sphere.vertices, sphere.faces, 0)


def test_joint_regressor_reorders_mano_and_adds_tips(rng):
    j_regressor = rng.random((16, 778))
    tips = (745, 317, 444, 556, 673)
    joint = joint_contact_regressor(sp.csc_matrix(j_regressor), tips)
    tip_names = ("thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip")
    for row, name in enumerate(JOINT_NAMES):
        if name in tip_names:
            expected = np.zeros(778)
            expected[tips[tip_names.index(name)]] = 1.0
        else:
            expected = j_regressor[MANO_JOINT_NAMES.index(name)]
        np.testing.assert_array_equal(joint[row], expected)
    haco = joint_contact_regressor(j_regressor)  # default: HACO's 445 for the middle tip
    assert haco[12, 445] == 1.0 and haco[12, 444] == 0.0
    assert joint[12, 444] == 1.0 and joint[12, 445] == 0.0
    with pytest.raises(InputError):
        joint_contact_regressor(j_regressor, (745, 317, 445, 556))
    with pytest.raises(InputError):
        joint_contact_regressor(j_regressor[:15])


@pytest.mark.parametrize("batch", [1, 4])
def test_coarse_labels_any_vertex_rule(rng, synthetic, batch):
    labels = (rng.random((batch, 778)) < 0.02).astype(np.float32)
    labels[0] = 0.0  # an empty-contact sample
    for matrix in (synthetic.vertex_336, synthetic.vertex_84, synthetic.joint):
        got = coarse_labels(torch.from_numpy(labels), matrix)
        expected = np.array(
            [[float(any(labels[b, v] > 0 for v in np.flatnonzero(row > 0))) for row in matrix] for b in range(batch)]
        )
        np.testing.assert_array_equal(got.numpy(), expected)
        assert got.dtype == torch.float32
    assert coarse_labels(torch.from_numpy(labels > 0), synthetic.vertex_84).dtype == torch.float32
    assert coarse_labels(torch.zeros(1, 778, dtype=torch.float64), synthetic.vertex_84).sum() == 0
    with pytest.raises(InputError):
        coarse_labels(torch.zeros(2, 777), synthetic.vertex_84)
    with pytest.raises(InputError):
        coarse_labels(np.zeros((2, 778)), synthetic.vertex_84)


def test_official_regressor_files(tmp_path, rng):
    r336, r84 = rng.random((336, 778)), rng.random((84, 778))
    np.save(tmp_path / "V_regressor_336.npy", r336)
    with pytest.raises(AssetError, match="V_regressor_84.npy"):
        load_official_vertex_regressors(tmp_path)
    np.save(tmp_path / "V_regressor_84.npy", r84)
    got336, got84 = load_official_vertex_regressors(tmp_path)
    np.testing.assert_array_equal(got336, r336)
    np.testing.assert_array_equal(got84, r84)
    official = build_contact_regressors("synthetic", official_dir=tmp_path)
    np.testing.assert_array_equal(official.vertex_336, r336)
    assert official.source.startswith("official")
    np.save(tmp_path / "V_regressor_84.npy", r84[:80])
    with pytest.raises(InputError):
        load_official_vertex_regressors(tmp_path)


@pytest.mark.skipif(not os.environ.get("HACO_GRASP_MANO_ROOT"), reason="official MANO not available")
def test_mano_regressors():
    from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path

    mano = build_contact_regressors("mano")
    data = read_mano_pickle(resolve_mano_path("right"))
    _check_partition(mano.vertex_336, data.faces, 336, 778)
    np.testing.assert_allclose(mano.joint[0], data.J_regressor[0])
