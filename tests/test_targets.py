"""The one contact-source registry (haco_grasp.targets): the paths it joined (refine, demo, benchmarks) give the same
targets, DeepContact's value targets are decided once, and the shared helpers (to_numpy's check, preset names,
the torchrun environment) behave as their former copies did."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from haco_grasp.arrays import to_numpy
from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError
from haco_grasp.geometry.labels import hand_contact_labels
from haco_grasp.hand import synthetic_mano_root
from haco_grasp.hand.conventions import ManoLayerCache
from haco_grasp.objects.procedural import make_object
from haco_grasp.targets import (
    ORACLE_SOURCES,
    SOURCES,
    ContactContext,
    ContactTargets,
    contact_targets,
    synthetic_contact_sources,
)


@pytest.fixture(scope="module")
def grasps():
    """Two right-hand grasps of a box whose contact labels were computed when they were built (1 cm)."""
    layer = ManoLayerCache(synthetic_mano_root()).layer("right")
    out = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        params = {"global_orient": rng.normal(0, 0.3, 3), "hand_pose": rng.normal(0, 0.2, 45),
                  "betas": np.zeros(10), "transl": np.array([0.0, -0.02, 0.04])}  # fmt: skip
        out.append(Grasp.from_mano(params, layer, make_object("box"), meta={"sample_id": f"s{seed}"}))
    return out


def test_refine_offers_the_registry_sources_without_ground_truth():
    from haco_grasp.refine import CONTACT_SOURCES

    assert set(SOURCES) == {"oracle", "geometric", "file", "haco", "deepcontact"}
    assert CONTACT_SOURCES == {name: SOURCES[name] for name in SOURCES if name not in ORACLE_SOURCES}
    assert synthetic_contact_sources(available_only=False) == ["haco", "deepcontact", "oracle", "geometric"]


def test_cli_choices_come_from_the_registry_and_the_preset_dict():
    import argparse

    from haco_grasp.cli import build_parser
    from haco_grasp.optimize.config import PRESETS, preset_names

    assert preset_names()[0] == "fast" and set(preset_names()) == set(PRESETS)
    for command, sources in (("demo", synthetic_contact_sources(False)), ("refine", ["geometric", "file", "haco",
                                                                                       "deepcontact"])):  # fmt: skip
        parser = build_parser([command])
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
        choices = {action.dest: action.choices for action in sub._actions}
        assert choices["contact"] == ["auto", *sources]
        assert choices["preset"] == list(preset_names())


def test_geometric_labels_are_reused_only_while_they_describe_the_hand(grasps):
    expected = np.stack([hand_contact_labels(g.hand_verts, g.obj_verts, g.obj_faces, 0.01) for g in grasps])
    assert all(g.contact_threshold == 0.01 for g in grasps)  # typed, not a tag in meta
    targets = contact_targets("geometric", grasps)
    np.testing.assert_array_equal(targets.hand, expected)
    moved = [g.with_hand(hand_verts=g.hand_verts + [0.0, 0.0, 0.004]) for g in grasps]
    assert all(g.contact_threshold is None for g in moved)
    recomputed = np.stack([hand_contact_labels(g.hand_verts, g.obj_verts, g.obj_faces, 0.01) for g in moved])
    np.testing.assert_array_equal(contact_targets("geometric", moved).hand, recomputed)
    wider = contact_targets("geometric", grasps, context=ContactContext(contact_threshold=0.02)).hand
    assert wider.sum() >= targets.hand.sum()


def test_oracle_needs_the_ground_truth(grasps):
    truth = [g.with_hand(hand_contact=np.ones(778)) for g in grasps]
    oracle = contact_targets("oracle", grasps, context=ContactContext(truth=truth))
    assert oracle.oracle and np.all(oracle.hand == 1.0)
    with pytest.raises(InputError, match="ground truth"):
        contact_targets("oracle", grasps)


def test_deepcontact_values_are_decided_once(grasps, monkeypatch):
    """Refine (checkpoint, device) and the synthetic runs (seed) call the same entry point the same way."""
    calls = []

    def predict_contact(batch, checkpoint=None, device="cpu", seed=0):
        calls.append({"n": len(batch), "checkpoint": checkpoint, "device": device, "seed": seed})
        points = np.stack([g.obj_verts[:8] for g in batch])
        return types.SimpleNamespace(hand=torch.full((len(batch), 778), 0.3), obj=np.full((len(batch), 8), 0.2),
                                     obj_points=points, obj_normals=np.ones_like(points))  # fmt: skip

    fake = types.ModuleType("contactopt_bridge.deepcontact")
    fake.predict_contact = predict_contact
    monkeypatch.setitem(sys.modules, "contactopt_bridge.deepcontact", fake)
    from haco_grasp.optimize.config import FAST
    from haco_grasp.refine import RefineConfig

    refine_targets = contact_targets(
        "deepcontact", grasps, None, RefineConfig(contact_checkpoint="x.pt").contact_context()
    )
    demo_targets = contact_targets("deepcontact", grasps, context=ContactContext(seed=3))
    assert calls == [{"n": 2, "checkpoint": "x.pt", "device": "cpu", "seed": 0},
                     {"n": 2, "checkpoint": None, "device": "cpu", "seed": 3}]  # fmt: skip
    for targets in (refine_targets, demo_targets):
        assert targets.hand_is_value and targets.hand.dtype == np.float32 and targets.obj.shape == (2, 8)
        assert targets.optimizer_config(FAST).target_mapping == "value"
    geometric = contact_targets("geometric", grasps)
    assert not geometric.hand_is_value and geometric.optimizer_config(FAST) is FAST


def test_haco_on_synthetic_grasps_sees_renders_of_the_truth(grasps, monkeypatch):
    seen = {}

    def predict_hand_contact(images, boxes, sides, checkpoint=None, device="cpu"):
        seen.update(images=images, boxes=boxes, sides=list(sides))
        return torch.full((len(images), 778), 0.75)

    def render_grasp_images(truth, seed=0, progress=True):
        seen["rendered"] = (list(truth), seed)
        return [types.SimpleNamespace(image=np.full((32, 32, 3), i, np.uint8)) for i in range(len(truth))]

    fake = types.ModuleType("haco_grasp.contact.predictor")
    fake.predict_hand_contact = predict_hand_contact
    monkeypatch.setitem(sys.modules, "haco_grasp.contact.predictor", fake)
    import haco_grasp.data.images as images

    monkeypatch.setattr(images, "render_grasp_images", render_grasp_images)
    truth = list(reversed(grasps))
    targets = contact_targets("haco", grasps, context=ContactContext(seed=5, truth=truth))
    assert seen["rendered"] == (truth, 5) and seen["sides"] == ["right", "right"]
    np.testing.assert_array_equal(seen["boxes"], [[0, 0, 32, 32]] * 2)  # the renders are hand crops
    assert targets.name == "haco" and not targets.oracle and np.all(targets.hand == 0.75)


def test_rows_and_optimizer_kwargs():
    targets = ContactTargets(hand=np.arange(3 * 778.0).reshape(3, 778), name="x")
    part = targets.rows(1, 3)
    assert part.hand.shape == (2, 778) and part.obj is None and part.name == "x"
    assert part.optimizer_kwargs()["target_hand_contact"] is part.hand
    assert part.optimizer_kwargs()["target_obj_points"] is None


def test_unknown_source_names_the_candidates(grasps):
    with pytest.raises(InputError, match="geometric, file, haco, deepcontact, oracle"):
        contact_targets("magic", grasps)


def test_to_numpy_shape_check_matches_the_old_private_converter():
    tensor = torch.ones(2, 778, requires_grad=True)
    out = to_numpy(tensor, np.float32, name="hand", shape=(2, 778))
    assert out.dtype == np.float32 and out.shape == (2, 778)
    assert to_numpy(np.zeros((4, 3), np.int64), np.float32, name="p", shape=(None, 3)).dtype == np.float32
    with pytest.raises(InputError, match=r"hand: expected a float array of shape \(2, 778\), got float32 \(2, 777\)"):
        to_numpy(np.zeros((2, 777), np.float32), np.float32, name="hand", shape=(2, 778))
    with pytest.raises(InputError, match="expected a float array"):
        to_numpy(np.zeros(3, bool), np.float32, name="flags", shape=(3,))
    with pytest.raises(InputError, match="hand: contains NaN or inf"):
        to_numpy([np.nan, 1.0], np.float32, name="hand", shape=(2,))
    assert to_numpy([1, 2]).dtype == np.int64  # without a check: unchanged behaviour


def test_torchrun_environment_is_read_once_for_refine_and_training(monkeypatch):
    from haco_grasp.contact.train.distributed import _init_distributed
    from haco_grasp.distributed import torchrun_env

    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert torchrun_env() == (0, 1) and _init_distributed(torch.device("cpu")) == (0, 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(InputError, match="MASTER_ADDR is not set"):
        _init_distributed(torch.device("cpu"))
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(InputError, match=r"\$RANK: expected an integer"):
        torchrun_env()
