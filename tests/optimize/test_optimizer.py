"""The contact-guided optimizer: repairs perturbed grasps, batched, deterministic, robust to degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError
from haco_grasp.geometry.volume import intersection_volume
from haco_grasp.hand import load_mano
from haco_grasp.hand.assets import synthetic_mano_root
from haco_grasp.optimize import CONTACTOPT, FAST, HACO, PRESETS, OptimizeConfig, optimize_grasp
from tests.optimize.conftest import QUICK, palm_grasp, perturbed


def _mpjpe_mm(joints: torch.Tensor, grasp: Grasp) -> float:
    return 1000.0 * float(np.linalg.norm(joints.detach().numpy() - grasp.hand_joints, axis=-1).mean())


def test_presets_are_full_configs_with_reference_constants():
    assert set(PRESETS) == {"contactopt", "haco", "fast"}
    assert all(isinstance(c, OptimizeConfig) for c in PRESETS.values())
    c = CONTACTOPT
    assert (c.lr, c.amsgrad, c.n_iter, c.n_restarts, c.num_pca_comps) == (0.01, True, 250, 8, 15)
    assert (c.restart_trans_sigma, c.restart_rot_sigma_deg, c.perturb_first_restart) == (0.02, 5.0, True)
    assert (c.w_obj_contact, c.w_hand_contact, c.w_pen, c.asym, c.pen_allowance) == (1.0, 2.5, 320.0, 2.0, 0.002)
    assert (c.w_opt_trans, c.contact_model, c.penetration_model) == (0.3, "capsule", "hinge")
    assert HACO.w_obj_contact == 0.0 and HACO.w_hand_contact == 2.5
    with pytest.raises(InputError, match="n_restarts"):
        FAST.replace(n_restarts=0)
    with pytest.raises(InputError, match="no field"):
        FAST.replace(learning_rate=1.0)


def test_oracle_contact_repairs_a_shifted_grasp(layer, grasps):
    gt = grasps[0]
    start = perturbed(gt, (0.008, -0.006, 0.0))  # across the can's axis (along it, contact barely changes)
    config = QUICK.replace(n_iter=80)
    result = optimize_grasp([start], target_hand_contact=gt.hand_contact[None], config=config, layer=layer)
    refined = result.to_grasps([start])[0]
    # the grasp error is the hand relative to the object: either may have moved
    in_object = (refined.hand_joints - refined.obj_translation) @ refined.obj_rotation
    truth = (gt.hand_joints - gt.obj_translation) @ gt.obj_rotation
    before = 1000.0 * np.linalg.norm([0.008, -0.006, 0.0])
    after = 1000.0 * float(np.linalg.norm(in_object - truth, axis=-1).mean())
    assert after < 0.8 * before
    volume = intersection_volume(refined.hand_verts, layer.faces, refined.obj_verts, gt.obj_faces)
    assert volume < 1.0
    assert result.loss_history["total"].shape == (config.n_iter, 1)
    assert result.loss_history["total"][-1, 0] < result.loss_history["total"][0, 0]


def test_oracle_objective_is_minimal_at_the_ground_truth(layer, grasps):
    config = QUICK.replace(n_iter=0, n_restarts=1)
    at_truth = optimize_grasp(grasps, target_hand_contact=np.stack([g.hand_contact for g in grasps]), config=config,
                              layer=layer)  # fmt: skip
    shifted = [perturbed(g, (0.004, 0.004, 0.0)) for g in grasps]
    off = optimize_grasp(shifted, target_hand_contact=np.stack([g.hand_contact for g in grasps]), config=config,
                         layer=layer)  # fmt: skip
    assert (at_truth.loss < 1e-5).all() and (off.loss > 100 * at_truth.loss.clamp_min(1e-9)).all()
    assert at_truth.iterations == 0 and at_truth.loss_history["total"].shape == (0, 2)


def test_batch_equals_single_runs_and_is_deterministic(layer, grasps):
    starts = [perturbed(grasps[0], (0.005, 0.0, 0.0)), perturbed(grasps[1], (0.0, 0.006, 0.0))]
    targets = np.stack([g.hand_contact for g in grasps])
    config = QUICK.replace(n_iter=15)
    both = optimize_grasp(starts, target_hand_contact=targets, config=config, layer=layer)
    again = optimize_grasp(starts, target_hand_contact=targets, config=config, layer=layer)
    torch.testing.assert_close(both.verts, again.verts, rtol=0, atol=0)
    single = optimize_grasp(starts[1:], target_hand_contact=targets[1:], config=config, layer=layer)
    torch.testing.assert_close(both.verts[1:], single.verts, rtol=0, atol=1e-9)


def test_selection_picks_the_lowest_final_loss(layer, grasps):
    start = perturbed(grasps[0], (0.01, 0.0, 0.0))
    config = QUICK.replace(n_iter=10, n_restarts=3, perturb_first_restart=True, restart_trans_sigma=0.02)
    result = optimize_grasp([start], target_hand_contact=grasps[0].hand_contact[None], config=config, layer=layer)
    assert 0 <= int(result.chosen_restart[0]) < 3
    assert torch.isfinite(result.loss).all()


@pytest.mark.parametrize("preset", ["contactopt", "haco"])
def test_contactopt_style_presets_run_batched(layer, grasps, preset):
    config = PRESETS[preset].replace(n_iter=5, n_restarts=2, n_obj_points=256)
    start = perturbed(grasps[0], (0.0, 0.0, 0.005))
    result = optimize_grasp([start], target_hand_contact=grasps[0].hand_contact[None], config=config, layer=layer)
    assert result.verts.shape == (1, 778, 3) and torch.isfinite(result.verts).all()


def test_degenerate_inputs_give_no_nan(layer, grasps):
    far = perturbed(grasps[0], (1.0, -0.5, 0.8))
    empty = np.zeros((1, 778))
    result = optimize_grasp([far], target_hand_contact=empty, config=QUICK.replace(n_iter=10), layer=layer)
    assert torch.isfinite(result.verts).all() and torch.isfinite(result.loss).all()
    plate = palm_grasp(layer, "thin_plate", "precision")
    result = optimize_grasp([plate], target_hand_contact=plate.hand_contact[None], config=QUICK, layer=layer)
    assert torch.isfinite(result.verts).all()
    no_target = optimize_grasp([grasps[1]], config=QUICK.replace(n_iter=5), layer=layer)
    assert torch.isfinite(no_target.verts).all()


def test_object_pose_can_be_optimised(layer, grasps):
    start = perturbed(grasps[0], (0.006, 0.0, 0.0))
    config = QUICK.replace(optimize_object=True, n_iter=20)
    result = optimize_grasp([start], target_hand_contact=grasps[0].hand_contact[None], config=config, layer=layer)
    rotation = result.obj_rotation[0]
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3, dtype=rotation.dtype), atol=1e-9, rtol=0)
    moved = (result.obj_translation[0] - torch.as_tensor(grasps[0].obj_translation)).norm()
    assert moved > 1e-5  # the object took part in the optimisation


def test_input_validation(layer, grasps):
    with pytest.raises(InputError, match="target_hand_contact"):
        optimize_grasp([grasps[0]], target_hand_contact=np.zeros((1, 10)), config=QUICK, layer=layer)
    with pytest.raises(InputError, match="use_pca=False"):
        pca_layer = load_mano(root=synthetic_mano_root(), use_pca=True)
        optimize_grasp([grasps[0]], config=QUICK, layer=pca_layer)
    with pytest.raises(InputError, match="preset"):
        optimize_grasp([grasps[0]], config="fastest", layer=layer)
    with pytest.raises(InputError, match="left"):
        optimize_grasp([grasps[0].with_hand(side="left")], config=QUICK, layer=layer)
    with pytest.raises(InputError, match="target_obj_points"):
        optimize_grasp([grasps[0]], target_obj_contact=np.zeros((1, 5)), config=QUICK, layer=layer)
