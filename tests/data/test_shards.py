"""The sharded training-data store: writing, resuming after a kill, streaming loaders, the split by object.

A tiny dataset (3 procedural objects, one held out; one grasp per shard; 64-px crops; 2 perturbations of 128 object
points) is prepared once per module with the real grasp planner, so the loaders are checked against what
``prepare-data`` actually writes.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from haco_grasp.contact.datasets import UNIT_NORMALIZATION, ShardedContactDataset
from haco_grasp.data.shards import (
    ShardTable,
    finished_shards,
    is_finished,
    is_shard_root,
    read_index,
    remove_stale_shards,
    shard_dir,
    write_shard,
)
from haco_grasp.errors import InputError
from haco_grasp.prepare_data import PrepareConfig, make_shard, run_prepare

TINY = {
    "train_shards": 1,
    "test_shards": 1,
    "grasps_per_shard": 1,
    "objects": ("can", "box", "ball"),
    "test_objects": ("ball",),
    "haco_views": 2,
    "deepcontact_perturbations": 2,
    "deepcontact_test_perturbations": 1,
    "n_obj_points": 128,
    "image_size": 64,
    "supersample": 1,
    "progress": False,
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    config = PrepareConfig(out_dir=str(root), **TINY)
    result = run_prepare(config)
    return root, config, result


def test_index_counts_and_split_by_object(prepared):
    root, config, result = prepared
    assert sorted(result.written) == ["test/shard_00000", "train/shard_00000"] and result.skipped == []
    index = read_index(root)
    assert index["split_by_object"] == {"train": ["box", "can"], "test": ["ball"]}
    assert index["counts"]["train"] == {"shards": 1, "grasps": 1, "crops": 2, "samples": 2}
    assert index["counts"]["test"] == {"shards": 1, "grasps": 1, "crops": 2, "samples": 1}
    assert index["config"]["seed"] == 0 and is_shard_root(root)
    assert index["provenance"]["commit"] and "torch" in json.dumps(index["provenance"]["environment"])
    for split, allowed in (("train", {"box", "can"}), ("test", {"ball"})):
        for record in finished_shards(root, split):
            assert set(record["objects"]) <= allowed
            assert record["seeds"]["grasps"] == (0 if split == "train" else 500_000)
        names = set(np.load(shard_dir(root, split, 0) / "grasp_objects.npy").tolist())
        assert names <= allowed
    train = ShardedContactDataset(root, split="train", normalization=UNIT_NORMALIZATION, size=64)
    test = ShardedContactDataset(root, split="test", normalization=UNIT_NORMALIZATION, size=64)
    assert not set(train.object_names) & set(test.object_names)
    assert set(test.object_names) == {"ball"}


def test_haco_loader_yields_the_written_crops(prepared):
    root, _, _ = prepared
    dataset = ShardedContactDataset(root, split="train", normalization=UNIT_NORMALIZATION, size=64)
    folder = shard_dir(root, "train", 0)
    images = np.load(folder / "haco_images.npy")
    contact = np.load(folder / "haco_contact.npy")
    grasp_contact = np.load(folder / "grasp_contact.npy")
    assert len(dataset) == 2 and images.shape == (2, 64, 64, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(dataset.labels(), contact.astype(np.float32))
    np.testing.assert_array_equal(contact, grasp_contact[np.load(folder / "haco_grasp.npy")])
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["image"].shape == (3, 64, 64)
        # No augmentation, the whole crop at its own size: the stored pixels (up to resampling round-off).
        np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), images[index] / 255.0, atol=2e-2)
        np.testing.assert_array_equal(item["contact"].numpy(), contact[index])
        np.testing.assert_allclose(item["joints_2d"].numpy(), np.load(folder / "haco_joints_2d.npy")[index], atol=1e-3)
    assert contact.sum() > 0  # the grasp touches its object


def test_shards_are_reproducible(prepared, tmp_path):
    root, config, _ = prepared
    again = PrepareConfig(**{**config.__dict__, "out_dir": str(tmp_path)})
    folder = make_shard(again, "test", 0)
    for name in ("haco_images", "haco_contact", "dc_hand_verts", "dc_obj_target"):
        np.testing.assert_array_equal(
            np.load(folder / f"{name}.npy"), np.load(shard_dir(root, "test", 0) / f"{name}.npy")
        )


def test_resume_skips_finished_shards_and_redoes_unfinished_ones(prepared):
    root, config, _ = prepared
    finished = shard_dir(root, "train", 0) / "shard.json"
    stamp = (finished.stat().st_mtime_ns, finished.stat().st_ino)
    # A writer killed mid-shard leaves only its temporary folder: no shard_00001 exists.
    stale = root / "train" / ".shard_00001.tmp-99999-0"
    stale.mkdir()
    (stale / "dc_hand_verts.npy").write_bytes(b"half written")
    assert not is_finished(root, "train", 1)
    grown = PrepareConfig(**{**config.__dict__, "train_shards": 2})
    result = run_prepare(grown)
    assert result.written == ["train/shard_00001"]
    assert sorted(result.skipped) == ["test/shard_00000", "train/shard_00000"]
    assert (finished.stat().st_mtime_ns, finished.stat().st_ino) == stamp  # not rewritten
    assert not stale.exists() and is_finished(root, "train", 1)
    assert read_index(root)["counts"]["train"]["shards"] == 2
    assert ShardTable.open(root, "train", "crops").locate(3) == (1, 1)


def test_a_failed_write_leaves_no_shard(tmp_path, monkeypatch):
    calls = []
    real_save = np.save

    def failing_save(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    arrays = {"a": np.zeros(3), "b": np.ones(3)}
    with pytest.raises(OSError, match="disk full"):
        write_shard(tmp_path, "train", 0, arrays, {"counts": {"crops": 3}})
    assert not is_finished(tmp_path, "train", 0) and not list((tmp_path / "train").iterdir())
    monkeypatch.setattr(np, "save", real_save)
    write_shard(tmp_path, "train", 0, arrays, {"counts": {"crops": 3}})
    assert is_finished(tmp_path, "train", 0) and remove_stale_shards(tmp_path) == []
    record = json.loads((shard_dir(tmp_path, "train", 0) / "shard.json").read_text())
    assert record["arrays"]["a"] == {"shape": [3], "dtype": "float64"} and record["counts"] == {"crops": 3}
    with pytest.raises(InputError, match="non-object"):
        write_shard(tmp_path, "train", 1, {"bad": np.array([{}], dtype=object)}, {})


def test_resuming_with_other_settings_is_refused(prepared):
    root, config, _ = prepared
    with pytest.raises(InputError, match="image_size"):
        run_prepare(PrepareConfig(**{**config.__dict__, "image_size": 32}))


def test_config_validation():
    with pytest.raises(InputError, match="nothing to prepare"):
        PrepareConfig(haco_views=0, deepcontact_perturbations=0)
    with pytest.raises(InputError, match="unknown procedural objects"):
        PrepareConfig(objects=("can", "teapot"))
    with pytest.raises(InputError, match="leave at least one object"):
        PrepareConfig(objects=("ball",), test_objects=("ball",))


def test_deepcontact_loader_matches_prepare_samples(prepared):
    from contactopt_bridge.shards import ShardedDeepContactDataset, collate_features, load_split

    root, _, _ = prepared
    dataset = ShardedDeepContactDataset(root, "train")
    assert len(dataset) == 2 * len(finished_shards(root, "train"))  # 2 per shard (the resume test may add one)
    folder = shard_dir(root, "train", 0)
    for index in range(2):
        item = dataset[index]
        np.testing.assert_array_equal(item["hand_verts"].numpy(), np.load(folder / "dc_hand_verts.npy")[index])
        assert item["obj_points"].shape == (128, 3) and item["hand_target"].shape == (778,)
    batch = collate_features([dataset[0], dataset[1]])
    assert batch["hand_feats"].shape == (2, 778, 25) and batch["obj_feats"].shape == (2, 128, 25)
    test = load_split(root, "test")
    assert test["hand_verts"].shape == (1, 778, 3) and test["grasp_index"].tolist() == [0]


def test_deepcontact_features_equal_prepare_samples():
    from contactopt_bridge.shards import collate_features, deepcontact_arrays
    from contactopt_bridge.train import prepare_samples
    from tests.data.test_images import build_grasp

    grasps = [build_grasp(0), build_grasp(1, family="pinch")]
    arrays = deepcontact_arrays(grasps, perturbations=2, perturb_seed=7, n_obj_points=96, point_seed=3)
    reference = prepare_samples(grasps, 2, 7, 96, 3)
    items = []
    for sample, grasp_row in enumerate(arrays["dc_grasp"]):
        item = {name[3:]: torch.from_numpy(arrays[name][sample]) for name in
                ("dc_hand_verts", "dc_hand_normals", "dc_hand_joints")}  # fmt: skip
        item.update({name[3:]: torch.from_numpy(arrays[name][grasp_row]) for name in
                     ("dc_obj_points", "dc_obj_normals", "dc_hand_target", "dc_obj_target")})  # fmt: skip
        items.append(item)
    batch = collate_features(items)
    np.testing.assert_array_equal(arrays["dc_grasp"], reference["grasp_index"].numpy())
    for key in ("hand_verts", "obj_points", "hand_target", "obj_target"):
        torch.testing.assert_close(batch[key], reference[key])
    for key in ("hand_feats", "obj_feats"):
        torch.testing.assert_close(batch[key], reference[key], atol=1e-5, rtol=1e-5)


def test_reading_shards_does_not_import_open3d(prepared):
    import subprocess
    import sys

    root, _, _ = prepared
    code = (
        "import sys; from haco_grasp.contact.datasets import ShardedContactDataset; "
        "from contactopt_bridge.shards import ShardedDeepContactDataset; "
        f"d = ShardedContactDataset({str(root)!r}); d[0]; ShardedDeepContactDataset({str(root)!r})[0]; "
        "print('open3d' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300, env=env)
    assert out.stdout.strip().endswith("False")


def test_train_haco_reads_prepared_roots(prepared):
    from haco_grasp.contact.train import TrainConfig
    from haco_grasp.contact.train.data import build_datasets

    root, _, _ = prepared
    train_set, val_set = build_datasets(TrainConfig(train_data=(str(root),), image_size=64))
    assert isinstance(train_set, ShardedContactDataset) and isinstance(val_set, ShardedContactDataset)
    assert set(train_set.object_names) <= {"box", "can"} and set(val_set.object_names) == {"ball"}
    assert train_set.train and not val_set.train


def test_train_deepcontact_streams_prepared_shards(prepared, tmp_path):
    from contactopt_bridge.train import TrainConfig, add_arguments, config_from_args, run_training

    root, _, _ = prepared
    config = TrainConfig(out_dir=str(tmp_path / "run"), shards=str(root), epochs=1, batch_size=2, progress=False)
    result = run_training(config)
    assert result.epochs_done == 1 and np.isfinite(result.history[0]["train_loss_total"])
    assert result.history[0]["steps"] == len(finished_shards(root, "train"))  # 2 samples per shard, batch 2
    report = json.loads(result.metrics_path.read_text())
    assert report["data"]["train_objects"] == ["box", "can"] and report["data"]["test_objects"] == ["ball"]
    assert report["data"]["n_test_samples"] == 1 and "prepared shards" in report["data"]["description"]
    assert len(report["heldout_metrics"]["hand"]["per_bin_accuracy"]) == 10
    # the mean-map reference reads the training targets per shard; they equal the loader's, sample by sample
    from contactopt_bridge.evaluation import training_hand_contact
    from contactopt_bridge.shards import ShardedDeepContactDataset

    train = ShardedDeepContactDataset(root, "train")
    by_item = np.stack([train[i]["hand_target"].numpy() >= 0.1 for i in range(len(train))])
    np.testing.assert_array_equal(training_hand_contact(train), by_item)
    assert report["heldout_metrics"]["calibration"]["n_mean_samples"] == len(train)
    np.testing.assert_allclose(report["heldout_metrics"]["calibration"]["mean_hand"], by_item.mean(0), atol=5e-5)
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--shards", str(root)])).shards == str(root)
    # `haco-grasp eval-deepcontact` on the written state_dict reproduces the training report's held-out metrics
    from haco_grasp.cli import main

    out = tmp_path / "eval.json"
    argv = ["eval-deepcontact", "--checkpoint", str(result.state_dict_path), "--shards", str(root), "--json", str(out)]
    assert main(argv) == 0
    evaluated = json.loads(out.read_text())
    assert evaluated["checkpoint"] == str(result.state_dict_path) and evaluated["n_test_samples"] == 1
    for key in ("hand", "obj", "calibrated", "calibration", "summary"):
        assert evaluated[key] == report["heldout_metrics"][key], key
    assert main(["eval-deepcontact", "--checkpoint", str(tmp_path / "missing.pt"), "--shards", str(root)]) == 2
