"""Simulation displacement against physics one can compute (free fall, resting, squeezing), caching, bad input."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import trimesh

mujoco = pytest.importorskip("mujoco")
pytest.importorskip("coacd")

from haco_grasp.data.grasp import Grasp  # noqa: E402
from haco_grasp.errors import InputError  # noqa: E402
from haco_grasp.simulation import (  # noqa: E402
    SimProtocol,
    decompose_object,
    get_protocol,
    hand_part_indices,
    simulate_grasps,
    simulate_pieces,
    summarize_simulation,
    with_protocol,
)
from haco_grasp.simulation import decompose as simulation_decompose  # noqa: E402
from haco_grasp.simulation import grasps as simulation_grasps  # noqa: E402

HALF = 0.02  # half side of the test box, metres


def _box_points(half_extents, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(8, 3) corners of an axis-aligned box."""
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    return signs * np.asarray(half_extents, dtype=np.float64) + np.asarray(centre, dtype=np.float64)


@pytest.fixture(scope="module")
def mano():
    """Synthetic MANO root (resolved before the cache folder is redirected) and its rest vertices."""
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path

    root = synthetic_mano_root()
    data = read_mano_pickle(resolve_mano_path("right", root))
    return root, data.v_template.astype(np.float64), data.faces, data.weights


@pytest.fixture(scope="module")
def cache(tmp_path_factory, mano):
    folder = tmp_path_factory.mktemp("haco_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HACO_GRASP_CACHE", str(folder))
        yield folder


def _grasp(obj: trimesh.Trimesh, hand_verts: np.ndarray, hand_faces: np.ndarray, name: str = "box") -> Grasp:
    zeros = np.zeros(3)
    return Grasp(
        object_name=name,
        obj_verts_canonical=np.asarray(obj.vertices, dtype=np.float64),
        obj_faces=np.asarray(obj.faces, dtype=np.int64),
        obj_rotation=np.eye(3),
        obj_translation=zeros.copy(),
        global_orient=zeros.copy(),
        hand_pose=np.zeros(45),
        betas=np.zeros(10),
        transl=zeros.copy(),
        hand_verts=hand_verts,
        hand_joints=np.zeros((21, 3)),
        hand_faces=np.asarray(hand_faces, dtype=np.int64),
        hand_contact=np.zeros(hand_verts.shape[0]),
    )


# --------------------------------------------------------------------------------------------------------------
# physics


def test_free_fall_matches_half_g_t_squared():
    protocol = get_protocol("hold")  # 1 s of gravity along +y
    box = [_box_points((HALF, HALF, HALF))]
    outcome = simulate_pieces(box, [], protocol)
    t = protocol.steps * protocol.timestep
    assert outcome.displacement == pytest.approx(0.5 * protocol.gravity * t**2, rel=0.02)
    assert outcome.contacts == 0 and outcome.direction == (0.0, 1.0, 0.0)
    # obman's 35 semi-implicit Euler steps (as PyBullet's): g dt^2 n (n + 1) / 2, 2.9 % above 1/2 g t^2
    obman = get_protocol("obman")
    n, dt = obman.steps, obman.timestep
    fall = simulate_pieces(box, [], obman).displacement
    assert fall == pytest.approx(obman.gravity * dt**2 * n * (n + 1) / 2, rel=1e-6)
    assert fall == pytest.approx(0.5 * obman.gravity * (n * dt) ** 2, rel=0.03)


@pytest.mark.parametrize("preset", ["obman", "hold"])
def test_box_resting_on_a_static_plane_stays(preset):
    box = [_box_points((HALF, HALF, HALF))]
    plane = [_box_points((0.2, 0.005, 0.2), centre=(0.0, HALF + 0.005, 0.0))]  # under the box (gravity is +y)
    outcome = simulate_pieces(box, plane, preset)
    assert outcome.displacement < 0.001
    assert outcome.contacts_end >= 1  # touching at distance 0 is not yet a MuJoCo contact; resting on it is


def test_box_squeezed_between_plates_stays_only_with_friction():
    box = [_box_points((HALF, HALF, HALF))]
    squeeze = 0.001  # each plate overlaps the box by 1 mm: the soft contact pushes back
    plates = [
        _box_points((0.005, 0.05, 0.05), centre=(-(HALF + 0.005 - squeeze), 0.0, 0.0)),
        _box_points((0.005, 0.05, 0.05), centre=(HALF + 0.005 - squeeze, 0.0, 0.0)),
    ]
    held = simulate_pieces(box, plates, "hold")
    assert held.displacement < 0.005
    assert held.contacts >= 2
    slippery = simulate_pieces(box, plates, with_protocol("hold", friction=0.0, grip=0.0))
    assert slippery.displacement > 0.5  # without friction it drops out (free fall over 1 s: 4.9 m)


def test_touching_plates_hold_only_with_a_grip():
    box = [_box_points((HALF, HALF, HALF))]
    gap = 0.001  # plates 1 mm off the box: touching for the planner, no force for a static hand
    plates = [
        _box_points((0.005, 0.05, 0.05), centre=(-(HALF + 0.005 + gap), 0.0, 0.0)),
        _box_points((0.005, 0.05, 0.05), centre=(HALF + 0.005 + gap, 0.0, 0.0)),
    ]
    obman = get_protocol("obman")
    dropped = simulate_pieces(box, plates, obman)
    n, dt = obman.steps, obman.timestep
    assert dropped.displacement == pytest.approx(obman.gravity * dt**2 * n * (n + 1) / 2, rel=1e-6)  # free fall
    assert dropped.contacts == 0
    gripped = simulate_pieces(box, plates, "hold")  # 30 N adhesion from 2 mm: the plates squeeze
    assert gripped.displacement < 0.01 and gripped.contacts >= 2


# --------------------------------------------------------------------------------------------------------------
# grasps


def test_hand_far_away_changes_nothing(cache, mano):
    root, template, faces, _ = mano
    obj = trimesh.creation.box(extents=(2 * HALF, 2 * HALF, 2 * HALF))
    far = _grasp(obj, template + np.array([1.0, 0.0, 0.0]), faces)
    for preset in ("obman", "hold"):
        (result,) = simulate_grasps([far], protocol=preset, mano_root=root)
        alone = simulate_pieces([np.asarray(obj.vertices)], [], preset, inertia=np.eye(3) * 1e-4)
        assert result.simulated and result.reason == "" and result.status == "simulated"
        assert result.contacts == 0 and result.stayed is False
        assert result.displacement_cm == pytest.approx(100.0 * alone.displacement, rel=1e-6)


def test_decomposition_cached_and_reused(cache, monkeypatch):
    calls = []
    original = simulation_decompose._run_coacd

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(simulation_decompose, "_run_coacd", counting)
    obj = trimesh.creation.box(extents=(0.03, 0.05, 0.07))
    first = decompose_object(obj.vertices, obj.faces, "obman", seed=3)
    files = list((cache / "coacd").glob("*.npz"))
    assert len(calls) == 1 and len(files) >= 1
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    second = decompose_object(obj.vertices, obj.faces, "obman", seed=3)
    assert len(calls) == 1  # read from disk
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes
    assert len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # the pieces cover the box: their joint bounding box is the box's
    joined = np.concatenate(first)
    np.testing.assert_allclose(joined.min(0), obj.vertices.min(0), atol=2e-3)
    np.testing.assert_allclose(joined.max(0), obj.vertices.max(0), atol=2e-3)
    decompose_object(obj.vertices, obj.faces, "obman", seed=4)  # another seed is another cache entry
    assert len(calls) == 2


def test_bad_input_is_reported_not_raised(cache, mano, caplog):
    root, template, faces, _ = mano
    good_obj = trimesh.creation.box(extents=(0.04, 0.04, 0.04))
    far_hand = template + np.array([1.0, 0.0, 0.0])
    open_obj = trimesh.Trimesh(good_obj.vertices, good_obj.faces[:-1], process=False)
    flat = trimesh.Trimesh(good_obj.vertices * np.array([1.0, 1.0, 0.0]), good_obj.faces, process=False)
    huge = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    nan_hand = far_hand.copy()
    nan_hand[5] = np.nan
    grasps = [
        _grasp(good_obj, far_hand, faces),
        _grasp(open_obj, far_hand, faces, name="open"),
        _grasp(flat, far_hand, faces, name="flat"),
        _grasp(huge, template - template.mean(0), faces, name="huge"),
        _grasp(good_obj, nan_hand, faces, name="nan-hand"),
    ]
    with caplog.at_level(logging.WARNING, logger="haco_grasp.simulation"):
        results = simulate_grasps(grasps, mano_root=root)
    assert results[0].simulated
    assert [r.simulated for r in results[1:]] == [False] * 4
    assert "not watertight" in results[1].status and results[1].status.startswith("not simulated: ")
    assert "degenerate" in results[2].reason
    assert "hand inside the object" in results[3].reason
    assert "finite" in results[4].reason
    assert all(math.isnan(r.displacement_cm) and r.stayed is None for r in results[1:])
    assert results[1].to_dict()["displacement_cm"] is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4 and all("\n" not in r.getMessage() for r in warnings)
    summary = summarize_simulation(results)
    assert summary.n == 5 and summary.n_simulated == 1


def test_deterministic_and_independent_of_workers(cache, mano):
    root, template, faces, weights = mano
    obj = trimesh.creation.box(extents=(0.06, 0.03, 0.06))
    # put the box in the palm: just below the rest hand's palmar surface (the synthetic palm faces -y)
    palm = template[hand_part_indices(weights)[0]]
    centre = np.array([palm[:, 0].mean(), palm[:, 1].min() - 0.0145, palm[:, 2].mean()])
    grasps = [_grasp(obj.copy().apply_translation(centre + [dx, 0.0, 0.0]), template, faces) for dx in (0.0, 0.01)]
    protocol = "obman"  # gravity +y presses the box into the palm
    once = simulate_grasps(grasps, protocol=protocol, mano_root=root)
    again = simulate_grasps(grasps, protocol=protocol, mano_root=root)
    assert [r.displacement_cm for r in once] == [r.displacement_cm for r in again]
    assert all(r.simulated and r.contacts > 0 for r in once)
    assert all(r.stayed for r in once)  # resting on the palm
    parallel = simulate_grasps(grasps, protocol=protocol, mano_root=root, workers=2)
    assert [r.displacement_cm for r in parallel] == [r.displacement_cm for r in once]


def test_hand_parts_and_protocol_validation(mano):
    _, _, _, weights = mano
    parts = hand_part_indices(weights)
    assert len(parts) == 16
    assert set(np.concatenate(parts).tolist()) == set(range(weights.shape[0]))  # every vertex in some part
    assert sum(len(p) for p in parts) > weights.shape[0]  # neighbouring parts overlap
    with pytest.raises(InputError, match="obman"):
        get_protocol("nope")
    with pytest.raises(InputError, match="timestep"):
        SimProtocol(timestep=0.0)
    with pytest.raises(InputError, match="directions"):
        SimProtocol(directions=((0.0, 2.0, 0.0),))
    with pytest.raises(InputError, match="workers"):
        simulate_grasps([], workers=0)
    assert get_protocol("obman").duration == pytest.approx(35 / 240)


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, haco_grasp.simulation, haco_grasp.metrics; print('mujoco' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_plausibility_scores_columns_and_per_frame(cache, mano):
    from haco_grasp.evaluation import SIM_COLUMNS, SUMMARY_COLUMNS, markdown_table, plausibility_scores

    root, template, faces, _ = mano
    obj = trimesh.creation.box(extents=(2 * HALF, 2 * HALF, 2 * HALF))
    open_obj = trimesh.Trimesh(obj.vertices, obj.faces[:-1], process=False)
    near = template - template.mean(0) + np.array([0.0, 0.0, 0.15])  # hand beside the box, centimetres away
    grasps = [_grasp(obj, near, faces), _grasp(open_obj, near, faces, name="open")]
    scores = plausibility_scores(grasps, protocol="obman", mano_root=root)
    summary = scores.summary()
    assert summary["sim_protocol"] == "obman" and summary["sim_n_simulated"] == 1
    assert summary["sim_stable_share"] == 0.0 and summary["sim_displacement_cm"] > 10.0  # free fall, 10.7 cm
    assert not scores.in_contact[0]  # (the open box's inside test is undefined)
    frames = scores.per_frame()
    assert frames[0]["status"] == "simulated" and frames[1]["status"].startswith("not simulated: ")
    assert frames[1]["displacement_cm"] is None and frames[0]["in_contact"] is False
    table = markdown_table({"row": summary}, columns=SUMMARY_COLUMNS + SIM_COLUMNS)
    assert "SD cm" in table and "contact ratio" in table


def test_object_mass_properties_of_a_box_either_orientation():
    box = trimesh.creation.box(extents=(0.02, 0.04, 0.06))
    box.apply_translation([0.1, 0.0, 0.0])
    expected = np.diag([0.04**2 + 0.06**2, 0.02**2 + 0.06**2, 0.02**2 + 0.04**2]) / 12.0  # mass 1 kg
    for faces in (box.faces, box.faces[:, ::-1]):  # outward and inward normals
        com, inertia, volume = simulation_grasps._mass_properties(np.asarray(box.vertices), faces, 1.0)
        np.testing.assert_allclose(com, [0.1, 0.0, 0.0], atol=1e-12)
        np.testing.assert_allclose(inertia, expected, atol=1e-10)
        assert volume == pytest.approx(0.02 * 0.04 * 0.06)


def test_every_public_name_imports_from_the_package():
    # simulation.py became a package (protocols, decompose, scene, grasps); the old import path keeps working
    import haco_grasp.simulation as package
    from haco_grasp.simulation import decompose, grasps, protocols, scene

    for name in package.__all__:
        assert any(
            getattr(module, name, None) is getattr(package, name) for module in (protocols, decompose, scene, grasps)
        )
