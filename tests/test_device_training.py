"""benchmarks/device_training.py, the GPU recipe, run on the CPU the way a lent GPU machine would run it.

That machine lacks open3d, smplx, trimesh and manifold3d (shared/reference/gpu.md), so the script runs in a
subprocess where importing them fails; it must still train DeepContact and HACO from a prepared root and write the
checkpoints, their provenance and its report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from haco_grasp.geometry.sdf import clear_sdf_grid_cache
from haco_grasp.prepare_data import PrepareConfig, run_prepare
from tests.helpers import REPO, run_script_without

SCRIPT = REPO / "benchmarks" / "device_training.py"
MISSING_ON_THE_GPU_MACHINE = ("open3d", "smplx", "trimesh", "manifold3d", "rtree")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("device_root")
    config = PrepareConfig(
        out_dir=str(out), train_shards=2, test_shards=1, grasps_per_shard=1, objects=("can", "box", "ball"),
        test_objects=("ball",), haco_views=2, deepcontact_perturbations=2, deepcontact_test_perturbations=1,
        n_obj_points=128, image_size=256, supersample=1, progress=False,
    )  # fmt: skip
    run_prepare(config)
    return out


def test_the_recipe_trains_both_models_without_the_packages_a_gpu_machine_lacks(root, tmp_path):
    haco_config = tmp_path / "haco.json"
    haco_config.write_text(json.dumps({
        "backbone_kwargs": {"embed_dim": 32, "depth": 1, "num_heads": 2, "drop_path_rate": 0.0}, "decoder_dim": 32,
        "depth": 1, "heads": 2, "dim_head": 16, "mlp_dim": 64, "batch_size": 2, "epochs": 1, "workers": 0,
    }))  # fmt: skip
    out = tmp_path / "out"
    args = [
        "--shards", root, "--out", out, "--device", "cpu", "--deepcontact-epochs", "2", "--deepcontact-milestones", "1",
        "--haco-data", root, "--haco-config", haco_config,
    ]  # fmt: skip
    done = run_script_without(MISSING_ON_THE_GPU_MACHINE, SCRIPT, args)
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((out / "device_training.json").read_text())
    assert report["environment"]["device"] == "cpu"
    assert not any(report["environment"]["importable"][name] for name in ("open3d", "smplx", "trimesh"))
    dc = report["deepcontact"]
    assert dc["epochs_done"] == 2 and 0.0 <= dc["hand_f1"] <= 1.0 and 0.0 <= dc["obj_f1"] <= 1.0
    assert len(dc["hand_per_bin_accuracy"]) == 10
    assert dc["hand_summary"]["best_reference"] in ("all contact", "mean map")
    assert "calibrated_margin" in dc["obj_summary"]
    provenance = json.loads((out / "deepcontact" / "deepcontact.json").read_text())
    assert [entry["lr"] for entry in provenance["history"]] == pytest.approx([0.01, 0.001])  # milestone 1
    assert provenance["history"][0]["steps"] == 1  # 2 training grasps x 2 perturbations: one batch of 4
    assert provenance["data"]["test_objects"] == ["ball"]
    from contactopt_bridge.deepcontact import load_deepcontact

    state = torch.load(out / "deepcontact" / "deepcontact.pt", weights_only=True)
    model = load_deepcontact(out / "deepcontact" / "deepcontact.pt")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    haco = report["haco"]
    assert haco["epochs_done"] == 1 and Path(haco["checkpoint"]).is_file()
    assert (out / "haco" / "train_config.json").is_file()


@pytest.mark.slow
def test_the_recipe_makes_crops_on_the_device_without_open3d(tmp_path, monkeypatch):
    """--make-crops plans grasps and renders crops with the torch fallbacks (open3d blocked; trimesh, manifold3d,
    smplx and rtree travel as wheels): the same grasps and labels as prepare-data with open3d. (32-px crops: HACO,
    which needs 256 px, is skipped here; the test above trains it from a root with crops.)"""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HACO_GRASP_CACHE", str(cache))
    settings = {"train_shards": 1, "test_shards": 1, "grasps_per_shard": 1, "haco_views": 2, "image_size": 32}
    reference = tmp_path / "reference"  # with open3d; also fills the SDF grid cache that the device run reads
    clear_sdf_grid_cache()  # grids held in memory by earlier tests would not be written to the new cache folder
    run_prepare(PrepareConfig(out_dir=str(reference), deepcontact_perturbations=0, progress=False, **settings))
    assert len(list((cache / "sdf").glob("sdf_*.npz"))) == 2

    dc_root = tmp_path / "dc_root"
    run_prepare(PrepareConfig(
        out_dir=str(dc_root), train_shards=1, test_shards=1, grasps_per_shard=1, objects=("can", "box", "ball"),
        test_objects=("ball",), haco_views=0, deepcontact_perturbations=2, deepcontact_test_perturbations=1,
        n_obj_points=64, progress=False,
    ))  # fmt: skip
    out, crops = tmp_path / "out", tmp_path / "crops"
    args = [
        "--shards", dc_root, "--out", out, "--device", "cpu", "--deepcontact-epochs", "1", "--make-crops", "1",
        "--crop-test-shards", "1", "--crop-grasps-per-shard", "1", "--crop-views", "2", "--crop-size", "32",
        "--crop-workers", "1", "--crops-root", crops, "--haco-minutes", "0",
    ]  # fmt: skip
    done = run_script_without(["open3d"], SCRIPT, args, timeout=900, env={"HACO_GRASP_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((out / "device_training.json").read_text())
    assert not report["environment"]["importable"]["open3d"]
    assert report["crops"]["counts"]["train"]["crops"] == 2 and report["crops"]["counts"]["test"]["crops"] == 2
    index = json.loads((crops / "index.json").read_text())
    assert index["config"]["renderer"] == "torch"
    import numpy as np

    from haco_grasp.data.shards import shard_dir

    for split in ("train", "test"):
        made, expected = shard_dir(crops, split, 0), shard_dir(reference, split, 0)
        names = sorted(p.name for p in expected.glob("*.npy"))
        assert "haco_images.npy" in names and names == sorted(p.name for p in made.glob("*.npy"))
        for name in names:
            a, b = np.load(made / name), np.load(expected / name)
            if name == "haco_images.npy":  # two renderers: the same views, pixels equal but for a few edge pixels
                assert np.abs(a.astype(np.int64) - b.astype(np.int64)).mean() < 2.0
            elif a.dtype.kind == "f":
                np.testing.assert_allclose(a, b, atol=1e-4, err_msg=name)
            else:
                np.testing.assert_array_equal(a, b, err_msg=name)
    assert "haco" not in report
