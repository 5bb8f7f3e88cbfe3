"""``haco-grasp refine`` on the generic ``.npz`` format: a left and a right hand on a custom object, end to end.

The file is written with ``numpy.savez`` from plain arrays (MANO parameters, sides, a mesh file name, object poses):
the hands come from the synthetic grasp planner on a custom capsule mesh, then moved 8 mm towards the object, so the
refinement has penetration to remove. The optimizer is shrunk to a few iterations.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import trimesh

from haco_grasp.cli import main
from haco_grasp.data.synthetic import generate_grasps
from haco_grasp.objects.procedural import ObjectMesh
from haco_grasp.optimize.config import FAST, PRESETS
from haco_grasp.refine import load_refined

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
    from haco_grasp.hand import synthetic_mano_root

    out = own_data.root / "run" / "refined.pkl"
    code = main(["refine", "--pred", str(own_data.pred), "--objects", str(own_data.objects), "--out", str(out),
                 "--mano-root", str(synthetic_mano_root()), "--contact", "geometric", "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    refined = load_refined(out)
    assert [s.sample_id for s in refined.samples] == ["right_0", "left_0"]
    assert [s.mano_side for s in refined.samples] == ["right", "left"]
    assert all(s.ycb_id == -1 and s.iterations == TINY.n_iter for s in refined.samples)
    assert all(np.isfinite(s.hand_verts).all() and s.target_hand_contact.sum() > 0 for s in refined.samples)
