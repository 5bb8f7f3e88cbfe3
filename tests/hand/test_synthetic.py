"""Tests of the synthetic MANO-format hand (haco_grasp.hand.synthetic_asset, poses, synthetic_skeleton)."""

from __future__ import annotations

import os
import pickle
import pickletools
import subprocess
import sys
import time

import numpy as np
import open3d as o3d
import pytest
import scipy.sparse as sp
import torch
import trimesh
from scipy.sparse.csgraph import connected_components
from scipy.spatial.transform import Rotation
from smplx.lbs import batch_rigid_transform, batch_rodrigues, lbs

from haco_grasp.errors import InputError
from haco_grasp.hand import synthetic_asset
from haco_grasp.hand.assets import synthetic_mano_dir
from haco_grasp.hand.joints import MANO_PARENTS, MANO_TIP_VERTEX_IDS, NUM_VERTS
from haco_grasp.hand.poses import synthetic_grasp_poses
from haco_grasp.hand.synthetic_asset import (
    SYNTHETIC_TIP_VERTEX_IDS,
    build_synthetic_mano,
    write_synthetic_mano,
)
from haco_grasp.hand.synthetic_skeleton import THUMB_FLEXION_AXIS
from tests.helpers import assert_close

TIP = dict(zip(("thumb", "index", "middle", "ring", "pinky"), SYNTHETIC_TIP_VERTEX_IDS, strict=True))
# MANO joints (proximal, middle, distal) of each digit.
DIGIT_JOINTS = {
    "thumb": (13, 14, 15),
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "ring": (10, 11, 12),
    "pinky": (7, 8, 9),
}
MIRROR = np.array([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def right() -> dict:
    return build_synthetic_mano("right")


@pytest.fixture(scope="module")
def left() -> dict:
    return build_synthetic_mano("left")


# ----------------------------------------------------------------------------------------------- helpers
def boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Ordered boundary loops following the boundary half-edges (u -> v with no v -> u)."""
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).tolist()
    present = set(map(tuple, half))
    nxt = {u: v for u, v in half if (v, u) not in present}
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        loop, v = [start], nxt[start]
        seen.add(start)
        while v != start:
            loop.append(v)
            seen.add(v)
            v = nxt[v]
        loops.append(loop)
    return loops


def fan_cap(faces: np.ndarray) -> np.ndarray:
    """Close the single boundary loop with a fan from its first vertex, consistently oriented."""
    (loop,) = boundary_loops(faces)
    cap = [(loop[0], loop[i + 1], loop[i]) for i in range(1, len(loop) - 1)]
    return np.concatenate([faces, np.array(cap, dtype=faces.dtype)])


def edge_triangle_crossings(verts: np.ndarray, faces: np.ndarray) -> int:
    """Naive count of (edge, triangle) pairs sharing no vertex where the edge pierces the triangle."""
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0)
    e_lo, e_hi = verts[edges].min(axis=1), verts[edges].max(axis=1)
    f_lo, f_hi = verts[faces].min(axis=1), verts[faces].max(axis=1)
    overlap = np.all((e_lo[:, None] <= f_hi[None]) & (e_hi[:, None] >= f_lo[None]), axis=2)
    ei, fi = np.nonzero(overlap)
    shared = (edges[ei][:, :, None] == faces[fi][:, None, :]).any(axis=(1, 2))
    ei, fi = ei[~shared], fi[~shared]
    p0, p1 = verts[edges[ei, 0]], verts[edges[ei, 1]]
    a, b, c = verts[faces[fi, 0]], verts[faces[fi, 1]], verts[faces[fi, 2]]
    d, e1, e2 = p1 - p0, b - a, c - a
    h = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, h)
    ok = np.abs(det) > 1e-18
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = p0 - a
    u = inv * np.einsum("ij,ij->i", s, h)
    q = np.cross(s, e1)
    v = inv * np.einsum("ij,ij->i", d, q)
    t = inv * np.einsum("ij,ij->i", e2, q)
    eps = 1e-9
    hit = ok & (u > eps) & (v > eps) & (u + v < 1 - eps) & (t > eps) & (t < 1 - eps)
    return int(hit.sum())


def run_lbs(model: dict, pose: np.ndarray, betas: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """pose: (B, 48) axis-angle incl. global orient; betas: (B, 10). Returns verts (B, V, 3), joints (B, 16, 3)."""
    pose = np.atleast_2d(pose)
    betas = np.zeros((pose.shape[0], 10)) if betas is None else np.atleast_2d(betas)
    parents = torch.tensor(MANO_PARENTS, dtype=torch.long)
    verts, joints = lbs(
        torch.tensor(betas),
        torch.tensor(pose),
        torch.tensor(model["v_template"]),
        torch.tensor(model["shapedirs"]),
        torch.tensor(model["posedirs"].reshape(NUM_VERTS * 3, -1).T.copy()),
        torch.tensor(model["J_regressor"].toarray()),
        parents,
        torch.tensor(model["weights"]),
    )
    return verts.numpy(), joints.numpy()


def occupancy(verts: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    return scene.compute_occupancy(o3d.core.Tensor(points.astype(np.float32))).numpy() > 0.5


def single_joint_pose(joint: int, rotvec) -> np.ndarray:
    pose = np.zeros((1, 48))
    pose[0, 3 * joint : 3 * joint + 3] = rotvec
    return pose


def fist_pose() -> np.ndarray:
    pose = np.zeros((1, 16, 3))
    for name in ("index", "middle", "ring", "pinky"):
        for joint, angle in zip(DIGIT_JOINTS[name], (1.4, 1.6, 0.9), strict=True):
            pose[0, joint] = (0.0, 0.0, angle)
    for joint in DIGIT_JOINTS["thumb"]:
        pose[0, joint] = 0.5 * np.array(THUMB_FLEXION_AXIS)
    return pose.reshape(1, 48)


# ----------------------------------------------------------------------------------------------- format
@pytest.mark.parametrize("side", ["right", "left"])
def test_keys_shapes_dtypes(side: str) -> None:
    model = build_synthetic_mano(side)
    expected = {
        "v_template": ((778, 3), np.float64),
        "f": ((1538, 3), np.uint32),
        "J_regressor": ((16, 778), np.float64),
        "kintree_table": ((2, 16), np.uint32),
        "weights": ((778, 16), np.float64),
        "shapedirs": ((778, 3, 10), np.float64),
        "posedirs": ((778, 3, 135), np.float64),
        "hands_components": ((45, 45), np.float64),
        "hands_mean": ((45,), np.float64),
        "J": ((16, 3), np.float64),
    }
    assert set(model) == set(expected) | {"hands_coeffs", "bs_style", "bs_type"}
    for key, (shape, dtype) in expected.items():
        assert model[key].shape == shape, key
        assert model[key].dtype == dtype, key
    assert isinstance(model["J_regressor"], sp.csc_matrix)
    assert model["hands_coeffs"].ndim == 2 and model["hands_coeffs"].shape[1] == 45
    assert model["bs_style"] == "lbs" and model["bs_type"] == "lrotmin"
    kintree = model["kintree_table"]
    assert kintree[0, 0] == 4294967295
    assert [int(p) for p in kintree[0, 1:]] == list(MANO_PARENTS[1:])
    assert kintree[1].tolist() == list(range(16))
    assert np.all(model["posedirs"] == 0.0)
    assert_close(model["J"], model["J_regressor"] @ model["v_template"], atol=1e-12, rtol=1e-5)


def test_invalid_inputs(tmp_path) -> None:
    with pytest.raises(InputError):
        build_synthetic_mano("middle")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        write_synthetic_mano(42)  # type: ignore[arg-type]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(InputError):
        write_synthetic_mano(a_file)
    with pytest.raises(InputError):
        synthetic_grasp_poses("zero")  # type: ignore[arg-type]


def test_returned_arrays_are_copies() -> None:
    first = build_synthetic_mano("right")
    first["v_template"][0] += 1.0
    first["J_regressor"].data[:] = 0.0
    second = build_synthetic_mano("right")
    assert not np.allclose(second["v_template"][0], first["v_template"][0])
    assert second["J_regressor"].sum() == pytest.approx(16.0)


# ----------------------------------------------------------------------------------------------- topology
@pytest.mark.parametrize("side", ["right", "left"])
def test_surface_topology(side: str) -> None:
    model = build_synthetic_mano(side)
    verts, faces = model["v_template"], model["f"].astype(np.int64)
    assert verts.shape[0] == 778 and faces.shape[0] == 1538
    assert len(np.unique(faces)) == 778
    assert (
        np.all(faces[:, 0] != faces[:, 1]) and np.all(faces[:, 1] != faces[:, 2]) and np.all(faces[:, 0] != faces[:, 2])
    )
    # Manifold: each undirected edge in 1 or 2 faces; each directed half-edge once (consistent orientation).
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, half_counts = np.unique(half, axis=0, return_counts=True)
    assert half_counts.max() == 1
    _, edge_counts = np.unique(np.sort(half, axis=1), axis=0, return_counts=True)
    assert set(edge_counts.tolist()) <= {1, 2}
    # One connected component.
    adjacency = sp.coo_matrix((np.ones(len(half)), (half[:, 0], half[:, 1])), shape=(778, 778))
    assert connected_components(adjacency, directed=False)[0] == 1
    # Exactly one boundary loop, of 16 vertices; Euler characteristic of a disc.
    loops = boundary_loops(faces)
    assert [len(loop) for loop in loops] == [16]
    assert 778 - len(edge_counts) + 1538 == 1
    # Capped: watertight, outward normals (positive volume), and agreeing with manifold3d.
    capped = fan_cap(faces)
    mesh = trimesh.Trimesh(verts, capped, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert 150e-6 < mesh.volume < 450e-6  # cm^3 range of an adult hand without forearm
    assert mesh.volume > 0


def test_no_self_intersection_in_rest_pose(right: dict) -> None:
    verts, capped = right["v_template"], fan_cap(right["f"].astype(np.int64))
    legacy = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(capped))
    assert not legacy.is_self_intersecting()
    assert edge_triangle_crossings(verts, capped) == 0
    # The naive check does detect a real crossing: push one fingertip through the neighbouring finger.
    broken = verts.copy()
    broken[TIP["index"]] = verts[TIP["middle"]] + np.array([0.02, 0.0, 0.0])
    assert edge_triangle_crossings(broken, capped) > 0


@pytest.mark.parametrize("beta_index", [0, 1, 2, 3, 4])
def test_no_self_intersection_at_extreme_betas(right: dict, beta_index: int) -> None:
    capped = fan_cap(right["f"].astype(np.int64))
    for value in (-3.0, 3.0):
        verts = right["v_template"] + value * right["shapedirs"][:, :, beta_index]
        legacy = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(capped))
        assert not legacy.is_self_intersecting()


# ----------------------------------------------------------------------------------------------- geometry
def test_frame_and_proportions(right: dict) -> None:
    verts, joints = right["v_template"], right["J"]
    tips = {name: verts[i] for name, i in TIP.items()}
    # Wrist about 9 cm along +x, fingers along -x, thumb on +z, origin near the middle finger's root.
    assert 0.08 < joints[0, 0] < 0.10
    assert np.linalg.norm(joints[4]) < 0.01
    assert all(tips[name][0] < -0.02 for name in ("index", "middle", "ring", "pinky"))
    assert tips["thumb"][2] > tips["index"][2] > tips["middle"][2] > tips["ring"][2] > tips["pinky"][2]
    # Hand length and finger lengths (joint1 -> tip).
    assert 0.18 <= np.linalg.norm(tips["middle"] - joints[0]) <= 0.19
    lengths = {name: np.linalg.norm(tips[name] - joints[DIGIT_JOINTS[name][0]]) for name in TIP}
    assert lengths["middle"] > lengths["ring"] > lengths["index"] > lengths["pinky"]
    assert 0.085 < lengths["thumb"] < 0.095 and 0.07 < lengths["pinky"] < 0.08 and 0.09 < lengths["middle"] < 0.10
    # Palm width 1.5-2.5 cm proximal of the knuckles (thumb excluded), palm thickness by a ray through the palm.
    thumb_weight = right["weights"][:, 13:].sum(axis=1)
    for offset in (0.015, 0.025):
        slab = (np.abs(verts[:, 0] - (joints[4, 0] + offset)) < 0.01) & (thumb_weight < 0.5)
        assert 0.078 <= np.ptp(verts[slab, 2]) <= 0.086
    mesh = trimesh.Trimesh(verts, fan_cap(right["f"].astype(np.int64)), process=False)
    origin = np.array([[0.045, 0.2, joints[4, 2] - 0.008]])
    hits, _, _ = mesh.ray.intersects_location(origin, np.array([[0.0, -1.0, 0.0]]))
    assert 0.025 <= np.ptp(hits[:, 1]) <= 0.03


def test_finger_radii_taper(right: dict) -> None:
    verts, joints, weights = right["v_template"], right["J"], right["weights"]
    dominant = np.argmax(weights, axis=1)
    for name in ("index", "middle", "ring", "pinky"):
        j1, _, j3 = DIGIT_JOINTS[name]
        axis = (verts[TIP[name]] - joints[j1]) / np.linalg.norm(verts[TIP[name]] - joints[j1])

        def radius(ids: np.ndarray, origin: np.ndarray = joints[j1], axis: np.ndarray = axis) -> np.ndarray:
            rel = verts[ids] - origin
            return np.linalg.norm(rel - (rel @ axis)[:, None] * axis, axis=1)

        along = (verts - joints[j1]) @ axis
        proximal = np.flatnonzero((dominant == j1) & (along > 0.02))
        distal = np.flatnonzero((dominant == j3) & (along < np.max(along[dominant == j3]) - 0.008))
        assert 0.007 < np.median(radius(proximal)) < 0.0105, name
        assert 0.005 < np.median(radius(distal)) < 0.008, name
        assert np.median(radius(distal)) < np.median(radius(proximal))


def test_fingertip_ids_are_most_distal(right: dict) -> None:
    assert SYNTHETIC_TIP_VERTEX_IDS == MANO_TIP_VERTEX_IDS == (745, 317, 444, 556, 673)
    verts, joints = right["v_template"], right["J"]
    dominant = np.argmax(right["weights"], axis=1)
    for name, tip in TIP.items():
        j1, j2, j3 = DIGIT_JOINTS[name]
        members = np.flatnonzero(dominant == j3)  # the vertices of the distal phalanx
        assert tip in members
        # The most distal vertex: farthest from the distal joint, and from the digit's root.
        assert members[np.argmax(np.linalg.norm(verts[members] - joints[j3], axis=1))] == tip, name
        if name != "thumb":  # straight fingers: also the farthest from the root and along the finger's axis
            assert members[np.argmax(np.linalg.norm(verts[members] - joints[j1], axis=1))] == tip, name
            direction = (joints[j3] - joints[j2]) / np.linalg.norm(joints[j3] - joints[j2])
            assert members[np.argmax((verts[members] - joints[j3]) @ direction)] == tip, name


# ----------------------------------------------------------------------------------------------- rig
def test_joint_regressor(right: dict) -> None:
    regressor = right["J_regressor"].toarray()
    assert np.all(regressor >= 0)
    assert_close(regressor.sum(axis=1), 1.0, atol=1e-12, rtol=1e-5)
    joints = right["J"]
    verts, capped = right["v_template"], fan_cap(right["f"].astype(np.int64))
    assert occupancy(verts, capped, joints).all()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts.astype(np.float32)), o3d.core.Tensor(capped.astype(np.uint32)))
    depth = scene.compute_distance(o3d.core.Tensor(joints[1:].astype(np.float32))).numpy()
    assert depth.min() > 0.003  # every finger joint at least 3 mm inside the flesh
    # Wrist joint at the centre of the wrist opening (within 1.5 cm, slightly distal).
    (loop,) = boundary_loops(right["f"].astype(np.int64))
    assert np.linalg.norm(joints[0] - verts[loop].mean(axis=0)) < 0.015
    # Joints of each finger lie on a line and progress distally.
    for name in ("index", "middle", "ring", "pinky"):
        chain = joints[list(DIGIT_JOINTS[name])]
        assert np.all(np.diff(chain[:, 0]) < -0.015)
        direction = chain[2] - chain[0]
        off = np.cross(chain[1] - chain[0], direction) / np.linalg.norm(direction)
        assert np.linalg.norm(off) < 1e-3


def test_skinning_weights(right: dict) -> None:
    weights, verts = right["weights"], right["v_template"]
    assert np.all(weights >= 0)
    assert_close(weights.sum(axis=1), 1.0, atol=1e-12, rtol=1e-5)
    mesh = trimesh.Trimesh(verts, right["f"].astype(np.int64), process=False)
    edges = mesh.edges_unique
    jump = np.abs(weights[edges[:, 0]] - weights[edges[:, 1]]).max(axis=1)
    # Smooth: bounded jumps along edges (the longest ones, up to 3.5 cm, cross the wrist band) and bounded
    # change per centimetre (the tightest spots are the finger crotches, where neighbours are 2-3 mm apart).
    gradient = jump / mesh.edges_unique_length  # per metre
    assert jump.max() < 0.8
    assert jump[mesh.edges_unique_length < 0.008].max() < 0.5
    assert gradient.max() < 150.0
    assert np.percentile(gradient, 99) < 80.0
    assert np.median(gradient) < 10.0
    (loop,) = boundary_loops(right["f"].astype(np.int64))
    assert np.all(weights[loop, 0] > 0.99)
    for name, tip in TIP.items():
        assert weights[tip, DIGIT_JOINTS[name][2]] > 0.99
    # A fingertip is not influenced by any other digit.
    for name, tip in TIP.items():
        others = [j for other, js in DIGIT_JOINTS.items() if other != name for j in js]
        assert weights[tip, others].max() == 0.0


@pytest.mark.parametrize("name", ["index", "middle", "ring", "pinky"])
def test_positive_z_rotation_flexes_toward_palm(right: dict, name: str) -> None:
    rest, _ = run_lbs(right, np.zeros((1, 48)))
    for joint in DIGIT_JOINTS[name]:
        posed, _ = run_lbs(right, single_joint_pose(joint, (0.0, 0.0, 0.8)))
        move = posed[0] - rest[0]
        assert move[TIP[name], 1] < -0.01, (name, joint)
        for other, tip in TIP.items():
            if other != name:
                assert_close(move[tip], 0.0, atol=1e-12, rtol=0.0, msg=f"{name} {joint} {other}")
    posed, _ = run_lbs(right, single_joint_pose(DIGIT_JOINTS[name][0], (0.0, 0.0, 0.8)))
    assert posed[0, TIP[name], 1] - rest[0, TIP[name], 1] < -0.04


def test_thumb_flexion_axis(right: dict) -> None:
    axis = np.array(THUMB_FLEXION_AXIS)
    assert np.linalg.norm(axis) == pytest.approx(1.0, abs=1e-3)
    rest, _ = run_lbs(right, np.zeros((1, 48)))
    posed, _ = run_lbs(right, single_joint_pose(13, 0.8 * axis))
    move = posed[0, TIP["thumb"]] - rest[0, TIP["thumb"]]
    assert move[1] < -0.02 and move[2] < -0.01  # palmar and across toward the fingers
    assert_close(posed[0, TIP["index"]], rest[0, TIP["index"]], atol=1e-12, rtol=0.0)


def test_fist_does_not_explode(right: dict) -> None:
    verts, _ = run_lbs(right, fist_pose())
    verts = verts[0]
    assert np.isfinite(verts).all()
    capped = fan_cap(right["f"].astype(np.int64))
    rest_volume = trimesh.Trimesh(right["v_template"], capped, process=False).volume
    fist_volume = trimesh.Trimesh(verts, capped, process=False).volume
    assert 0.75 < fist_volume / rest_volume < 1.25
    assert np.abs(verts - right["v_template"]).max() < 0.2
    # Fist: the index tip comes back near the palm (palm vertices do not move: they follow the wrist only).
    palm = right["v_template"][right["weights"][:, 0] > 0.9]
    assert np.linalg.norm(palm - verts[TIP["index"]], axis=1).min() < 0.03
    assert verts[TIP["index"], 1] < -0.02
    # Faces do not invert: each posed normal agrees with its rest normal turned by the face's main bone.
    rot = batch_rodrigues(torch.tensor(fist_pose().reshape(-1, 3))).view(1, 16, 3, 3)
    _, transforms = batch_rigid_transform(rot, torch.tensor(right["J"][None]), torch.tensor(MANO_PARENTS))
    bone_rot = transforms[0, :, :3, :3].numpy()
    main_bone = np.argmax(right["weights"][capped].sum(axis=1), axis=1)
    rest_n = trimesh.Trimesh(right["v_template"], capped, process=False).face_normals
    fist_n = trimesh.Trimesh(verts, capped, process=False).face_normals
    expected = np.einsum("fij,fj->fi", bone_rot[main_bone], rest_n)
    assert np.mean(np.einsum("ij,ij->i", expected, fist_n) < 0.0) < 0.01


# ----------------------------------------------------------------------------------------------- pose space
def test_pose_pca(right: dict) -> None:
    components, mean, coeffs = right["hands_components"], right["hands_mean"], right["hands_coeffs"]
    assert_close(components @ components.T, np.eye(45), atol=1e-10, rtol=1e-5)
    poses = np.concatenate(list(synthetic_grasp_poses(0).values()))
    assert coeffs.shape == poses.shape
    assert_close(mean, poses.mean(axis=0), atol=1e-12, rtol=1e-5)
    assert_close(mean + coeffs @ components, poses, atol=1e-10, rtol=1e-5)
    variance = coeffs.var(axis=0)
    assert np.all(np.diff(variance) <= 1e-12)
    # PCA-15 reconstructs the pose set well (numpy SVD as the reference for the optimum).
    recon = mean + coeffs[:, :15] @ components[:15]
    rel = np.linalg.norm(recon - poses) / np.linalg.norm(poses - mean)
    s = np.linalg.svd(poses - mean, compute_uv=False)
    assert rel == pytest.approx(np.sqrt((s[15:] ** 2).sum() / (s**2).sum()), rel=1e-8)
    assert rel < 0.2
    angle_error = (
        Rotation.from_rotvec(poses.reshape(-1, 3)).inv() * Rotation.from_rotvec(recon.reshape(-1, 3))
    ).magnitude()
    assert np.degrees(angle_error.mean()) < 4.0


def test_pose_families_are_anatomical() -> None:
    families = synthetic_grasp_poses(0)
    assert {"open", "relaxed", "power", "fist", "precision", "pinch", "lateral", "spherical", "hook"} <= set(families)
    finger_joints = [j - 1 for name in ("index", "middle", "ring", "pinky") for j in DIGIT_JOINTS[name]]
    flexion = {}
    for name, poses in families.items():
        assert poses.ndim == 2 and poses.shape[1] == 45 and poses.shape[0] >= 16
        per_joint = poses.reshape(-1, 15, 3)[:, finger_joints]
        # Flexion about +z (each finger's axis is within 10 degrees of it), small abduction and twist.
        assert per_joint[..., 2].min() > -0.45, name
        assert per_joint[..., 2].max() < 2.2, name
        assert np.abs(per_joint[..., :2]).max() < 0.5, name
        assert poses.std(axis=0).min() > 0.005, name  # every sample varies in every joint
        flexion[name] = per_joint[..., 2].mean()
    assert flexion["fist"] > flexion["power"] > flexion["relaxed"] > flexion["open"]
    assert synthetic_grasp_poses(0)["pinch"].tobytes() == families["pinch"].tobytes()
    assert not np.allclose(synthetic_grasp_poses(1)["pinch"], families["pinch"])


def test_pinch_brings_thumb_to_index(right: dict) -> None:
    pinch = synthetic_grasp_poses(0)["pinch"].mean(axis=0)
    verts, _ = run_lbs(right, np.concatenate([np.zeros(3), pinch])[None])
    gap = np.linalg.norm(verts[0, TIP["thumb"]] - verts[0, TIP["index"]])
    rest_gap = np.linalg.norm(right["v_template"][TIP["thumb"]] - right["v_template"][TIP["index"]])
    assert gap < 0.025 < rest_gap


# ----------------------------------------------------------------------------------------------- left hand
def test_left_is_mirror_of_right(right: dict, left: dict) -> None:
    assert np.array_equal(left["v_template"], right["v_template"] * MIRROR)
    assert np.array_equal(left["f"], right["f"][:, ::-1])
    assert (left["J_regressor"] != right["J_regressor"]).nnz == 0
    assert np.array_equal(left["weights"], right["weights"])
    rng = np.random.default_rng(3)
    pose = rng.normal(0.0, 0.4, size=(3, 48))
    betas = rng.normal(0.0, 1.0, size=(3, 10))
    sign = np.tile([1.0, -1.0, -1.0], 16)
    verts_r, joints_r = run_lbs(right, pose, betas)
    verts_l, joints_l = run_lbs(left, pose * sign, betas)
    assert_close(verts_l, verts_r * MIRROR, atol=1e-8, rtol=0.0)  # batch_rodrigues' epsilon: ~1e-9
    assert_close(joints_l, joints_r * MIRROR, atol=1e-8, rtol=0.0)
    # The mirrored PCA space: same coefficients give mirrored poses.
    coeffs = right["hands_coeffs"][:5]
    pose_r = right["hands_mean"] + coeffs @ right["hands_components"]
    pose_l = left["hands_mean"] + coeffs @ left["hands_components"]
    assert_close(pose_l, pose_r * sign[3:], atol=1e-12, rtol=1e-5)


def test_mirror_posedirs_rule() -> None:
    # A non-zero right-hand corrective must give the mirrored offset on the left for the mirrored pose.
    rng = np.random.default_rng(0)
    posedirs_r = rng.normal(size=(4, 3, 135))
    posedirs_l = synthetic_asset._mirror_posedirs(posedirs_r)
    rot = Rotation.from_rotvec(rng.normal(0.0, 0.5, size=(15, 3))).as_matrix()
    flip = np.diag(MIRROR)
    rot_l = flip @ rot @ flip
    feature_r = (rot - np.eye(3)).reshape(-1)
    feature_l = (rot_l - np.eye(3)).reshape(-1)
    assert_close(posedirs_l @ feature_l, (posedirs_r @ feature_r) * MIRROR, atol=1e-12, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- shape
def test_betas_change_length_monotonically(right: dict) -> None:
    regressor = right["J_regressor"]
    for k in (0, 1, 5):
        lengths = []
        for value in np.linspace(-3, 3, 7):
            verts = right["v_template"] + value * right["shapedirs"][:, :, k]
            joints = regressor @ verts
            lengths.append(np.linalg.norm(verts[TIP["middle"]] - joints[0]))
        assert np.all(np.diff(lengths) > 0.001), k
    for k in range(10):
        assert np.abs(right["shapedirs"][:, :, k]).max() > 3e-4, k
    base = right["v_template"]

    def extent(verts: np.ndarray, axis: int) -> float:
        core = right["weights"][:, 0] > 0.9
        return float(np.ptp(verts[core, axis]))

    assert extent(base + right["shapedirs"][:, :, 2], 2) > extent(base, 2)  # hand breadth
    assert extent(base + right["shapedirs"][:, :, 3], 1) > extent(base, 1)  # palm thickness
    thumb = right["J"][13]
    length = np.linalg.norm((base + right["shapedirs"][:, :, 6])[TIP["thumb"]] - thumb)
    assert length > np.linalg.norm(base[TIP["thumb"]] - thumb)  # thumb length


# ----------------------------------------------------------------------------------------------- determinism / io
def test_deterministic_build() -> None:
    first = synthetic_asset._build_right_model()
    start = time.process_time()
    second = synthetic_asset._build_right_model()
    assert time.process_time() - start < 5.0
    for key, value in first.items():
        other = second[key]
        if sp.issparse(value):
            assert (value != other).nnz == 0
        elif isinstance(value, np.ndarray):
            assert value.tobytes() == other.tobytes(), key
        else:
            assert value == other


def test_write_is_byte_identical_and_plain(tmp_path) -> None:
    paths_a = write_synthetic_mano(tmp_path / "a")
    paths_b = write_synthetic_mano(tmp_path / "b")
    again = write_synthetic_mano(tmp_path / "a")
    assert set(paths_a) == {"right", "left"}
    assert paths_a["right"].name == "MANO_RIGHT.pkl" and paths_a["left"].name == "MANO_LEFT.pkl"
    for side in ("right", "left"):
        assert paths_a[side].read_bytes() == paths_b[side].read_bytes() == again[side].read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["MANO_LEFT.pkl", "MANO_RIGHT.pkl"]
    data = paths_a["right"].read_bytes()
    assert data[:2] == b"\x80\x02"  # protocol 2
    globals_used = {arg for op, arg, _ in pickletools.genops(data) if op.name in ("GLOBAL", "STACK_GLOBAL", "INST")}
    for name in globals_used:
        module = name.split(" ")[0]
        assert module.split(".")[0] in ("numpy", "scipy", "_codecs", "copyreg"), name
    loaded = pickle.loads(data)
    expected = build_synthetic_mano("right")
    for key, value in loaded.items():
        assert isinstance(value, (np.ndarray, sp.spmatrix, str)), key
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, expected[key])
    left = pickle.loads(paths_a["left"].read_bytes())
    assert np.array_equal(left["v_template"], expected["v_template"] * MIRROR)


def test_write_is_identical_across_processes(tmp_path) -> None:
    here = write_synthetic_mano(tmp_path / "here")
    code = (
        "import sys; from haco_grasp.hand.synthetic_asset import write_synthetic_mano; "
        "write_synthetic_mano(sys.argv[1])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], check=True, env=env, timeout=120)
    for name in ("MANO_RIGHT.pkl", "MANO_LEFT.pkl"):
        assert (tmp_path / "there" / name).read_bytes() == here["right" if "RIGHT" in name else "left"].read_bytes()


def test_loads_through_the_restricted_unpickler(tmp_path) -> None:
    safe_pickle = pytest.importorskip("haco_grasp.safe_pickle")
    paths = write_synthetic_mano(tmp_path)
    loaded = safe_pickle.safe_load(paths["right"], chumpy=True)
    assert np.array_equal(loaded["v_template"], build_synthetic_mano("right")["v_template"])
    assert np.allclose(loaded["J_regressor"].toarray(), build_synthetic_mano("right")["J_regressor"].toarray())


def test_asset_key_hashes_the_builder_and_the_baked_pose_pca(monkeypatch) -> None:
    key = synthetic_asset.asset_key()
    assert len(key) == 12 and int(key, 16) >= 0
    assert synthetic_mano_dir().name == key
    # The key follows the pose PCA baked into the pickles, not the pose module's text.
    mean, components, coeffs = synthetic_asset._pose_pca()
    monkeypatch.setattr(synthetic_asset, "_pose_pca", lambda: (mean + 1e-9, components, coeffs))
    synthetic_asset.asset_key.cache_clear()
    try:
        assert synthetic_asset.asset_key() != key
    finally:
        monkeypatch.undo()
        synthetic_asset.asset_key.cache_clear()
    assert synthetic_asset.asset_key() == key
