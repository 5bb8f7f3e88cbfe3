"""``haco-grasp refine`` on the generic ``.npz`` format: a left and a right hand on a custom object, end to end.

The file is written with ``numpy.savez`` from plain arrays (MANO parameters, sides, a mesh file name, object poses):
the hands come from the synthetic grasp planner on a custom capsule mesh, then moved 8 mm towards the object, so the
refinement has penetration to remove. The optimizer is shrunk to a few iterations.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import trimesh

from haco_grasp.cli import main
from haco_grasp.data.synthetic import generate_grasps
from haco_grasp.objects.procedural import ObjectMesh
from haco_grasp.optimize.config import FAST, PRESETS
from haco_grasp.refine import RefineConfig, auto_contact_source, load_refined

TINY = FAST.replace(n_iter=8, n_restarts=1, sdf_pitch=0.004)


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    """A generic .npz of one right and one left hand holding ``capsule.ply`` (in ``objects/``)."""
    root = tmp_path_factory.mktemp("generic")
    objects = root / "objects"
    objects.mkdir()
    capsule = trimesh.creation.capsule(height=0.07, radius=0.028, count=[24, 24])
    capsule.export(objects / "capsule.ply")
    mesh = ObjectMesh("capsule", np.asarray(capsule.vertices), np.asarray(capsule.faces), float(capsule.volume),
                      capsule.extents, "mesh")  # fmt: skip
    grasps = [generate_grasps(1, seed=0, objects=[mesh], side="right", progress=False)[0],
              generate_grasps(1, seed=1, objects=[mesh], side="left", progress=False)[0]]  # fmt: skip
    # place each grasp somewhere in front of a camera, and push the hand 8 mm into the object
    shift = np.array([[0.05, 0.0, 0.5], [-0.05, 0.02, 0.6]])
    transl, obj_pose = [], []
    for grasp, offset in zip(grasps, shift, strict=True):
        towards = grasp.obj_translation - grasp.hand_joints[9]
        transl.append(grasp.transl + offset + 0.008 * towards / np.linalg.norm(towards))
        obj_pose.append(np.concatenate([grasp.obj_rotation, (grasp.obj_translation + offset)[:, None]], axis=1))
    path = root / "my.npz"
    np.savez(
        path,
        side=np.array(["right", "left"]),
        object=np.array(["capsule.ply", "capsule.ply"]),
        global_orient=np.stack([g.global_orient for g in grasps]),
        hand_pose=np.stack([g.hand_pose for g in grasps]),
        betas=np.stack([g.betas for g in grasps]),
        transl=np.stack(transl),
        obj_pose=np.stack(obj_pose),
        sample_id=np.array(["right_0", "left_0"]),
    )
    return types.SimpleNamespace(root=root, pred=path, objects=objects)


@pytest.fixture
def tiny_presets(monkeypatch):
    monkeypatch.setitem(PRESETS, "fast", TINY)


def test_refine_runs_on_generic_npz_with_both_hands(own_data, tiny_presets, capsys):
    out = own_data.root / "run" / "refined.pkl"
    code = main(["refine", "--pred", str(own_data.pred), "--objects", str(own_data.objects), "--out", str(out),
                 "--mano-root", "synthetic", "--contact", "geometric", "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    refined = load_refined(out)
    assert [s.sample_id for s in refined.samples] == ["right_0", "left_0"]
    assert [s.mano_side for s in refined.samples] == ["right", "left"]
    assert all(s.ycb_id == -1 and s.iterations == TINY.n_iter for s in refined.samples)
    assert all(np.isfinite(s.hand_verts).all() and s.target_hand_contact.sum() > 0 for s in refined.samples)


def test_mano_root_synthetic_names_the_shipped_hand(monkeypatch):
    from haco_grasp.hand import synthetic_mano_root
    from haco_grasp.hand.mano import MANO_ROOT_ENV, resolve_mano_path

    assert resolve_mano_path("left", "synthetic") == synthetic_mano_root() / "MANO_LEFT.pkl"
    monkeypatch.setenv(MANO_ROOT_ENV, "synthetic")
    assert resolve_mano_path("right") == synthetic_mano_root() / "MANO_RIGHT.pkl"


def test_auto_contact_source_picks_the_best_the_inputs_allow(tmp_path, monkeypatch):
    import haco_grasp.refine as refine_module

    image = tmp_path / "frame.png"
    image.write_bytes(b"")
    box = np.array([0.0, 0.0, 10.0, 10.0], np.float32)

    def pred(**fields):
        values = {"sample_id": "s", "image_path": None, "color_file": "", "crop_box": None, "hand_contact": None}
        return types.SimpleNamespace(**{**values, **fields})

    config = RefineConfig()
    monkeypatch.setattr(refine_module, "learned_contact_sources", lambda: ["haco", "deepcontact"])
    assert auto_contact_source([pred(hand_contact=np.zeros(778))], config)[0] == "file"
    assert auto_contact_source([pred(image_path=str(image), crop_box=box)], config)[0] == "haco"
    assert auto_contact_source([pred(image_path=str(image))], config)[0] == "deepcontact"  # no crop box
    missing = pred(image_path=str(tmp_path / "gone.png"), crop_box=box)
    source, why = auto_contact_source([missing], config)
    assert source == "deepcontact" and "'s'" in why
    monkeypatch.setattr(refine_module, "learned_contact_sources", lambda: [])
    assert auto_contact_source([pred(image_path=str(image), crop_box=box)], config)[0] == "geometric"
    assert Path(image).is_file()


def test_default_contact_is_auto_and_resolved_in_the_output(own_data, tiny_presets, tmp_path):
    contact = np.full((2, 778), 0.0)
    contact[:, :100] = 1.0
    with np.load(own_data.pred) as raw:
        arrays = dict(raw)
    pred = tmp_path / "with_contact.npz"
    np.savez(pred, **arrays, hand_contact=contact)
    out = tmp_path / "refined.pkl"
    assert main(["refine", "--pred", str(pred), "--objects", str(own_data.objects), "--out", str(out),
                 "--mano-root", "synthetic", "--no-progress"]) == 0  # fmt: skip
    refined = load_refined(out)
    assert refined.contact_source == "file"
    np.testing.assert_array_equal(refined.samples[1].target_hand_contact, contact[1])


def test_deepcontact_source_refines_left_and_right_hands(own_data, tiny_presets, tmp_path):
    from contactopt_bridge.deepcontact import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("shipped DeepContact checkpoint not installed")
    out = tmp_path / "refined.pkl"
    assert main(["refine", "--pred", str(own_data.pred), "--objects", str(own_data.objects), "--out", str(out),
                 "--mano-root", "synthetic", "--contact", "deepcontact", "--no-progress"]) == 0  # fmt: skip
    right, left = load_refined(out).samples
    assert left.mano_side == "left" and left.target_obj_points is not None
    # the object targets lie on each grasp's own (camera-frame) object, not on its mirror image
    with np.load(own_data.pred) as raw:
        centres = raw["obj_pose"][:, :, 3]
    for sample, centre in zip((right, left), centres, strict=True):
        assert np.linalg.norm(sample.target_obj_points.mean(0) - centre) < 0.03
