"""One device resolver for every part of a run (optimizer, contact predictors, training)."""

from __future__ import annotations

import pytest
import torch

import haco_grasp.devices as devices
from haco_grasp.devices import resolve_device
from haco_grasp.errors import InputError


def test_auto_and_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda", "--device")
    with pytest.raises(InputError, match="--device: expected"):
        resolve_device("tpu", "--device")


def test_cuda_means_the_local_rank_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)  # an explicit index is kept
    with pytest.raises(InputError, match="only 2 CUDA"):
        resolve_device("cuda:5")
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(InputError, match="LOCAL_RANK"):
        resolve_device("cuda")


def test_refine_gives_the_contact_source_the_resolved_device(monkeypatch, tmp_path):
    """The predictors run where the optimizer runs (before: the raw --device string, e.g. 'cuda' on every rank)."""
    import haco_grasp.refine as refine
    from haco_grasp.data.mini_dexycb import write_mini_dexycb, write_mini_hflnet
    from haco_grasp.optimize.config import FAST

    mini = write_mini_dexycb(tmp_path / "dexycb", n_subjects=1, n_sequences=5, n_serials=1, n_frames=2, n_left=0)
    pred = tmp_path / "hflnet.pkl"
    write_mini_hflnet(mini, pred)
    seen = []
    geometric = refine.CONTACT_SOURCES["geometric"]

    def spy(grasps, predictions, config):
        seen.append(config.device)
        return geometric(grasps, predictions, config)

    monkeypatch.setitem(refine.CONTACT_SOURCES, "geometric", spy)
    monkeypatch.setattr(devices, "resolve_device", lambda device, what="device": torch.device("cpu"))
    config = refine.RefineConfig(pred=pred, out=tmp_path / "out" / "refined.pkl", dexycb=mini.root,
                                 mano_root="synthetic", contact="geometric", device="cuda", limit=1, progress=False,
                                 report=False, optimize=FAST.replace(n_iter=2, n_restarts=1))  # fmt: skip
    refine.run_refine(config)
    assert seen == ["cpu"]


def test_auto_batch_size_fills_the_device(monkeypatch):
    from haco_grasp.devices import CPU_BATCH_SIZE, auto_batch_size

    assert auto_batch_size("cpu") == CPU_BATCH_SIZE
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (120 * 2**30, 140 * 2**30))
    assert auto_batch_size(torch.device("cuda", 0)) == 8192  # an H200's free memory: the cap
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * 2**30, 8 * 2**30))
    assert auto_batch_size(torch.device("cuda", 0)) == (3 * 2**30) // 6_000_000
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, 8 * 2**30))
    assert auto_batch_size(torch.device("cuda", 0)) == 64
