"""``haco-grasp refine --noise-profile``: the predictions' profile reaches the MAP optimizer and the output header."""

from __future__ import annotations

import json

import pytest

from haco_grasp.cli import main
from haco_grasp.data.mini_dexycb import write_mini_dexycb, write_mini_hflnet
from haco_grasp.refine import load_refined


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise_profile")
    dexycb = write_mini_dexycb(root / "dexycb", n_subjects=1, n_sequences=5, n_serials=1, n_frames=2, n_left=0)
    pred = root / "hflnet.pkl"
    write_mini_hflnet(dexycb, pred)
    return root, dexycb.root, pred


def _refine(root, dexycb, pred, name, *extra):
    out = root / name / "refined.pkl"
    code = main(["refine", "--pred", str(pred), "--out", str(out), "--dexycb", str(dexycb), "--mano-root", "synthetic",
                 "--contact", "geometric", "--limit", "1", "--no-progress", "--no-report", *extra])  # fmt: skip
    assert code in (0, None)
    return load_refined(out)


def test_noise_profile_flag_reaches_the_optimizer(mini, tmp_path, capsys):
    root, dexycb, pred = mini
    default = _refine(root, dexycb, pred, "default")
    assert default.optimize_config["noise_profile"] == "hflnet-dexycb"
    assert "obj_add_mm" in default.metrics["refined"] and "mpjpe_down_share" in default.metrics["refined"]
    custom = tmp_path / "still_object.json"
    custom.write_text(json.dumps({"hand_transl_m": 0.003, "hand_rot_rad": 0.05, "hand_pose_rad": 0.19, "betas": 0.5,
                                  "obj_transl_m": 0.0, "obj_rot_rad": 0.0}))  # fmt: skip
    pinned = _refine(root, dexycb, pred, "pinned", "--noise-profile", str(custom))
    assert pinned.optimize_config["noise_profile"] == str(custom)
    # a profile that gives the object no uncertainty leaves its pose exactly as predicted
    assert pinned.metrics["refined"]["obj_add_mm"] == pytest.approx(pinned.metrics["input"]["obj_add_mm"], abs=1e-9)
    capsys.readouterr()
    code = main(["refine", "--pred", str(pred), "--out", str(tmp_path / "x.pkl"), "--noise-profile", "nope",
                 "--mano-root", "synthetic", "--contact", "geometric"])  # fmt: skip
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and "'nope' is neither a shipped profile" in error[0]
