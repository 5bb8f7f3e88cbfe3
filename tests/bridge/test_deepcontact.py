"""Tests for contactopt_bridge.deepcontact: official state_dict layout, bins, loading, determinism, shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from contactopt_bridge.deepcontact import (
    CLASS_BIN_WEIGHTS,
    DEFAULT_CHECKPOINT,
    DeepContactNet,
    bin_to_contact,
    contact_to_bin,
    load_deepcontact,
    predict_contact,
)
from haco_grasp.errors import AssetError, InputError
from tests.bridge import fake_grasps

TSV = Path("/work/shared/reference/state_dicts/deepcontact.tsv")
if not TSV.is_file():  # the reference folder sits beside the repository in the development setup
    TSV = Path(__file__).resolve().parents[3] / "shared" / "reference" / "state_dicts" / "deepcontact.tsv"


def _read_tsv() -> tuple[str, list[tuple[str, tuple[int, ...], str]]]:
    lines = TSV.read_text().splitlines()
    header = lines[0]
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        name, shape, dtype = line.split("\t")
        rows.append((name, tuple(int(x) for x in shape.split(",")) if shape else (), dtype))
    return header, rows


@pytest.fixture(scope="module")
def model() -> DeepContactNet:
    torch.manual_seed(0)
    return DeepContactNet().eval()


@pytest.mark.skipif(not TSV.is_file(), reason="reference deepcontact.tsv not available")
def test_state_dict_matches_official_layout_exactly(model):
    header, rows = _read_tsv()
    state = model.state_dict()
    assert list(state) == [name for name, _, _ in rows]  # same keys, same order
    for name, shape, dtype in rows:
        assert tuple(state[name].shape) == shape, name
        assert str(state[name].dtype).replace("torch.", "") == dtype, name
    count = sum(p.numel() for p in model.parameters())
    assert count == 1_424_138
    assert f"{len(rows)} tensors, {count} parameters" in header


def test_official_checkpoint_loads_strict_weights_only(tmp_path, model):
    # an official-style file: a flat state_dict saved with torch.save, every value changed
    torch.manual_seed(1)
    state = {k: (torch.randn_like(v) if v.is_floating_point() else v + 3) for k, v in model.state_dict().items()}
    path = tmp_path / "deepcontact_checkpoint.pt"
    torch.save(state, path)
    loaded = load_deepcontact(path)
    assert not loaded.training
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, state[key])
    fresh = DeepContactNet()
    fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)
    # a training checkpoint ({"model": ...}) loads too; a wrong key set is refused
    torch.save({"model": state, "epoch": 1}, tmp_path / "train.pt")
    torch.testing.assert_close(
        load_deepcontact(tmp_path / "train.pt").state_dict()["pointnet.lin3.bias"], state["pointnet.lin3.bias"]
    )
    bad = dict(state)
    bad["pointnet.extra"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(InputError):
        load_deepcontact(tmp_path / "bad.pt")
    with pytest.raises(AssetError):
        load_deepcontact(tmp_path / "missing.pt")


def test_bins_encode_decode():
    values = torch.tensor([-0.2, 0.0, 0.05, 0.0999, 0.1, 0.35, 0.5, 0.9, 0.9999, 1.0, 1.3])
    # float32 arithmetic, as the network's targets (0.9f * 10 rounds to 9.0f)
    expected = np.clip(np.floor(values.numpy() * np.float32(10)), 0, 9).astype(int).tolist()
    assert expected[:5] == [0, 0, 0, 0, 1] and expected[-3:] == [9, 9, 9]
    assert contact_to_bin(values).tolist() == expected
    bins = torch.arange(10)
    np.testing.assert_allclose(bin_to_contact(bins).numpy(), (np.arange(10) + 0.5) / 10)
    assert torch.equal(contact_to_bin(bin_to_contact(bins)), bins)
    assert len(CLASS_BIN_WEIGHTS) == 10 and CLASS_BIN_WEIGHTS[0] == pytest.approx(0.17630)
    with pytest.raises(InputError):
        contact_to_bin(torch.tensor([1, 2]))
    with pytest.raises(InputError):
        bin_to_contact(torch.tensor([0.5]))


def test_forward_is_deterministic_and_roll_changes_it(model):
    grasps = fake_grasps(("box", "box"))
    from contactopt_bridge.features import grasp_inputs

    inputs = grasp_inputs(grasps, n_obj_points=256)
    args = (inputs.hand_verts, inputs.hand_feats, inputs.obj_points, inputs.obj_feats)
    seen = []
    hook = model.pointnet.register_forward_hook(lambda module, inp, out: seen.append(inp[1]))
    try:
        with torch.no_grad():
            a, b = model(*args), model(*args)
            model(*args, roll=torch.tensor([1.0, 2.0]))
    finally:
        hook.remove()
    assert a.hand.shape == (2, 778, 10) and a.obj.shape == (2, 256, 10)
    torch.testing.assert_close(a.hand, b.hand, rtol=0, atol=0)
    torch.testing.assert_close(a.hand.exp().sum(-1), torch.ones(2, 778))
    plain_pts, rolled_pts = seen[0], seen[2]  # the network-frame cloud; a roll turns it about +x
    torch.testing.assert_close(rolled_pts[..., 0], plain_pts[..., 0])
    angle = torch.atan2(rolled_pts[..., 2], rolled_pts[..., 1]) - torch.atan2(plain_pts[..., 2], plain_pts[..., 1])
    wrapped = torch.remainder(angle, 2 * torch.pi)
    np.testing.assert_allclose(wrapped[0].median().item(), 2 * np.pi - 1.0, atol=1e-3)  # frame roll = -point roll
    torch.testing.assert_close(plain_pts, seen[1])
    first = predict_contact(grasps, checkpoint=model, n_obj_points=256)
    second = predict_contact(grasps, checkpoint=model, n_obj_points=256)
    assert torch.equal(first.hand, second.hand) and torch.equal(first.obj, second.obj)
    assert first.hand.shape == (2, 778) and first.obj.shape == (2, 256) and first.obj_points.shape == (2, 256, 3)
    torch.testing.assert_close(first.obj_points, inputs.obj_points)
    averaged = predict_contact(grasps, checkpoint=model, n_obj_points=256, n_rolls=2)
    assert averaged.obj.shape == (2, 256)
    torch.testing.assert_close(averaged.obj, bin_to_contact(contact_to_bin(averaged.obj)))  # decoded bin centres
    with pytest.raises(InputError):
        predict_contact(grasps, checkpoint=model, n_rolls=-1)


@pytest.mark.slow
def test_shipped_checkpoint_beats_constant_on_heldout_objects():
    from haco_grasp.data.perturb import perturb_grasps
    from haco_grasp.data.synthetic import generate_grasps
    from haco_grasp.geometry.contact import GT_CAPSULE_BOTTOM, contact_maps

    assert DEFAULT_CHECKPOINT.is_file() and DEFAULT_CHECKPOINT.with_suffix(".json").is_file()
    report = json.loads(DEFAULT_CHECKPOINT.with_suffix(".json").read_text())
    heldout = report["data"]["test_objects"]
    assert heldout and not set(heldout) & set(report["data"]["train_objects"])
    # fresh grasps (a seed never used in training) on the held-out objects, perturbed like the training data
    gt = generate_grasps(2, seed=2024, objects=heldout, progress=False)
    noisy = perturb_grasps(gt, model="contactopt-aug", seed=77, relabel=False)
    pred = predict_contact(noisy, n_obj_points=2048, seed=0)
    hand_gt = torch.as_tensor(np.stack([g.hand_verts for g in gt]), dtype=torch.float64)
    target = contact_maps(hand_gt, pred.obj_points.double(), pred.obj_normals.double(), bottom=GT_CAPSULE_BOTTOM)
    torch.testing.assert_close(pred.obj, bin_to_contact(contact_to_bin(pred.obj)))  # decoded bin centres

    def balanced_accuracy(pred_values, target_values):
        p, t = contact_to_bin(pred_values.float()), contact_to_bin(target_values.float())
        return float(np.mean([(p[t == k] == k).float().mean().item() for k in torch.unique(t).tolist()]))

    # any constant predictor has balanced accuracy 1 / (number of target bins present)
    for pred_values, target_values in ((pred.obj, target.obj), (pred.hand, target.hand)):
        constant = 1.0 / len(torch.unique(contact_to_bin(target_values.float())))
        assert balanced_accuracy(pred_values, target_values) > constant
