"""The shipped synthetic HACO checkpoint: consistent with its provenance, and better than a constant map on new data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from haco_grasp.contact.checkpoint import config_path_for, load_haco
from haco_grasp.contact.predictor import DEFAULT_CHECKPOINT

PROVENANCE = DEFAULT_CHECKPOINT.with_name("haco_synthetic.provenance.json")


def test_shipped_checkpoint_matches_its_provenance():
    provenance = json.loads(PROVENANCE.read_text())
    model = load_haco(DEFAULT_CHECKPOINT)
    assert DEFAULT_CHECKPOINT.stat().st_size == provenance["size_bytes"]
    assert sum(p.numel() for p in model.parameters()) == provenance["num_parameters"]
    assert json.loads(config_path_for(DEFAULT_CHECKPOINT).read_text())["threshold"] == provenance["threshold"]
    assert model.config.threshold == provenance["threshold"]
    assert provenance["epochs_completed"] == len(provenance["history"]) == provenance["train_config"]["epochs"]
    assert "SYNTHETIC" in provenance["trained_on"]
    mean_map = np.asarray(provenance["mean_contact_map"])
    assert mean_map.shape == (778,) and ((mean_map >= 0) & (mean_map <= 1)).all()


@pytest.mark.slow
def test_shipped_checkpoint_beats_the_mean_map_on_new_heldout_grasps(tmp_path):
    """New grasps (a seed no training or test chunk used) of the held-out objects, rendered 3 times each.

    Both predictors use their own validation-calibrated threshold (from the provenance), the README's comparison.
    """
    from haco_grasp.contact.datasets import ImageFolderContactDataset
    from haco_grasp.contact.train import evaluate
    from haco_grasp.contact.train.data import _normalization
    from haco_grasp.data.images import ImageConfig, write_image_dataset
    from haco_grasp.data.synthetic import generate_grasps
    from haco_grasp.metrics import contact_prf

    provenance = json.loads(PROVENANCE.read_text())
    heldout = provenance["training_data"]["val_objects"]
    assert heldout and provenance["training_data"]["grasp_seeds"] == "1000 + chunk"  # chunks < 1000: seeds < 2000
    grasps = generate_grasps(8, seed=424242, objects=heldout, progress=False)
    folder = write_image_dataset([g for g in grasps for _ in range(3)], tmp_path / "views", seed=515151,
                                 config=ImageConfig(supersample=1), progress=False)  # fmt: skip
    model = load_haco(DEFAULT_CHECKPOINT)
    dataset = ImageFolderContactDataset(folder, normalization=_normalization(model.config.backbone))
    result = evaluate(model, dataset, model.config.threshold, batch_size=8)
    labels = dataset.labels()
    mean_map = np.broadcast_to(np.asarray(provenance["mean_contact_map"]), labels.shape)
    baseline = contact_prf(mean_map, labels, provenance["mean_map_threshold"], "skip")
    assert result.num_samples == 24
    # measured 0.651 vs 0.569 (the 16-epoch checkpoint of an earlier commit: 0.613, which this bar rejects)
    assert result.f1 > baseline.f1 + 0.05, (result.f1, baseline.f1)
