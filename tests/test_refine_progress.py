"""``haco-grasp refine`` shows progress within a batch (the optimizer's iterations), and ``--no-progress`` hides it."""

from __future__ import annotations

import pytest

import haco_grasp.optimize as optimize_module
from haco_grasp.cli import main
from haco_grasp.data.mini_dexycb import write_mini_dexycb, write_mini_hflnet


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    dexycb = write_mini_dexycb(root / "dexycb", n_subjects=1, n_sequences=5, n_serials=1, n_frames=2, n_left=0)
    pred = root / "hflnet.pkl"
    write_mini_hflnet(dexycb, pred)
    return dexycb, pred


@pytest.mark.parametrize("quiet", [False, True])
def test_iteration_bar_within_a_batch(mini, tmp_path, monkeypatch, capsys, quiet):
    dexycb, pred = mini
    real, calls = optimize_module.optimize_grasp, []

    def recorded(*args, **kwargs):
        calls.append(kwargs["progress"])
        return real(*args, **kwargs)

    monkeypatch.setattr(optimize_module, "optimize_grasp", recorded)
    code = main(["refine", "--pred", str(pred), "--out", str(tmp_path / "refined.pkl"), "--mano-root", "synthetic",
                 "--objects", str(dexycb.models_root), "--contact", "geometric", "--limit", "1",
                 "--no-report", "--opt.n-iter", "3", "--opt.n-restarts", "1", "--opt.sdf-pitch", "0.004",
                 *(["--no-progress"] if quiet else [])])  # fmt: skip
    assert code == 0 and calls and all(shown is not quiet for shown in calls)
    err = capsys.readouterr().err
    assert ("optimize:" in err and "refine:" in err) is not quiet
