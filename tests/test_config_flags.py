"""``--config FILE`` and the generated ``--opt.*`` flags: one mechanism for every command that runs the optimizer."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Literal

import pytest

import haco_grasp.optimize as optimize_module
from haco_grasp.cli import build_parser, main
from haco_grasp.config_flags import add_config_flags, apply_overrides, field_docs, overrides_from_args
from haco_grasp.data.mini_dexycb import write_mini_dexycb, write_mini_hflnet
from haco_grasp.errors import InputError
from haco_grasp.optimize.config import FAST
from haco_grasp.refine import load_refined

QUICK = ["--opt.n-restarts", "1", "--opt.sdf-pitch", "0.004"]


@dataclass(frozen=True)
class _Settings:
    """Settings.

    Variables:
        steps: as named.
        rate (per second), mode: speed and direction.
        enabled: switch. limit: a cap (None: none).
    """

    steps: int = 3
    rate: float = 0.5
    mode: Literal["a", "b"] = "a"
    enabled: bool = True
    limit: int | None = None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_config_flags(parser, _Settings, {"base": _Settings(), "other": _Settings(steps=9)}, "s")
    return parser


def test_flags_are_generated_from_the_fields_with_their_docs_and_types():
    parser = _parser()
    help_text = " ".join(parser.format_help().split())
    assert "--s.steps N steps (default: the preset's: base 3, other 9)" in help_text
    assert "--s.rate X speed and direction; per second (default: 0.5 in every preset)" in help_text
    assert "--s.mode {a,b}" in help_text and "--s.enabled {true,false}" in help_text
    args = parser.parse_args(["--s.steps", "5", "--s.enabled", "false", "--s.limit", "none", "--s.mode", "b"])
    assert overrides_from_args(args, "s") == {"steps": 5, "enabled": False, "limit": None, "mode": "b"}
    assert overrides_from_args(parser.parse_args([]), "s") == {}  # flags not given do not override the preset
    assert apply_overrides(_Settings(), {"steps": 5, "rate": 1}) == _Settings(steps=5, rate=1.0)
    assert field_docs(_Settings)["mode"] == "speed and direction"


def test_config_file_then_flags(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("steps: 7\nrate: '0.25'\nlimit: 4\n")
    args = _parser().parse_args(["--config", str(path), "--s.steps", "8"])
    overrides = overrides_from_args(args, "s")
    assert overrides == {"steps": 8, "rate": "0.25", "limit": 4}  # the flag wins over the file
    assert apply_overrides(_Settings(), overrides) == _Settings(steps=8, rate=0.25, limit=4)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"stepz": 1}, "unknown setting 'stepz'; did you mean 'steps'? known: 'steps', 'rate', 'mode'"),
        ({"mode": "c"}, "mode: expected one of a, b, got 'c'"),
        ({"steps": 1.5}, "steps: expected N, got 1.5"),
        ({"enabled": "maybe"}, "enabled: expected true or false, got 'maybe'"),
    ],
)
def test_bad_settings_are_one_line_errors(overrides, expected):
    with pytest.raises(InputError) as error:
        apply_overrides(_Settings(), overrides, where="--config x.yaml")
    assert expected in str(error.value) and "\n" not in str(error.value)


# ----------------------------------------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("config_flags")
    dexycb = write_mini_dexycb(root / "dexycb", n_subjects=1, n_sequences=5, n_serials=1, n_frames=2, n_left=0)
    pred = root / "hflnet.pkl"
    write_mini_hflnet(dexycb, pred)
    return root, dexycb, pred


def _refine(mini, out, *extra):
    root, dexycb, pred = mini
    return main(["refine", "--pred", str(pred), "--out", str(out), "--mano-root", "synthetic", "--objects",
                 str(dexycb.models_root), "--contact", "geometric", "--limit", "1", "--no-progress", "--no-report",
                 *extra])  # fmt: skip


def test_refine_flags_and_config_file_reach_the_optimizer(mini, tmp_path):
    out = tmp_path / "flags" / "refined.pkl"
    assert _refine(mini, out, "--opt.n-iter", "3", "--opt.lr", "0.05", *QUICK) == 0
    flags = load_refined(out).optimize_config
    assert (flags["n_iter"], flags["lr"], flags["n_restarts"]) == (3, 0.05, 1)
    assert flags["w_prior"] == FAST.w_prior  # the rest is the preset's
    saved = json.loads(out.with_name("refined.pkl.config.json").read_text())
    assert saved["optimize_config"]["n_iter"] == 3 and saved["config"]["optimize_overrides"]["lr"] == 0.05

    settings = tmp_path / "opt.yaml"
    settings.write_text("n_iter: 2\nn-restarts: 1\nsdf_pitch: 0.004\nw_pen: 100\n")
    from_file = tmp_path / "file" / "refined.pkl"
    assert _refine(mini, from_file, "--config", str(settings), "--opt.n-iter", "4") == 0
    loaded = load_refined(from_file).optimize_config
    assert (loaded["n_iter"], loaded["n_restarts"], loaded["w_pen"]) == (4, 1, 100.0)

    again = tmp_path / "again" / "refined.pkl"  # a saved run config reproduces the run's settings
    assert _refine(mini, again, "--config", str(out.with_name("refined.pkl.config.json"))) == 0
    assert load_refined(again).optimize_config == flags


def test_unknown_keys_name_the_key_and_the_candidates(mini, tmp_path, capsys):
    settings = tmp_path / "bad.json"
    settings.write_text(json.dumps({"n_iters": 3}))
    assert _refine(mini, tmp_path / "a.pkl", "--config", str(settings)) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "unknown setting 'n_iters'; did you mean 'n_iter'?" in error
    assert "'n_restarts'" in error  # every candidate
    with pytest.raises(SystemExit) as stopped:
        _refine(mini, tmp_path / "b.pkl", "--opt.n-iters", "3")
    error = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and error.count("\n") == 0
    assert "--opt.n-iters: no such optimizer setting, did you mean --opt.n-iter?" in error and "lr-schedule" in error


def test_demo_takes_the_same_flags(tmp_path, monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def fake_optimize(grasps, config=None, **kwargs):
        seen["config"] = config
        raise Stop

    monkeypatch.setattr(optimize_module, "optimize_grasp", fake_optimize)
    settings = tmp_path / "opt.json"
    settings.write_text(json.dumps({"lr": 0.3, "n_iter": 7}))
    out = tmp_path / "demo"
    with pytest.raises(Stop):
        main(["demo", "--n-grasps", "1", "--contact", "oracle", "--out", str(out), "--no-progress", "--config",
              str(settings), "--opt.n-iter", "9", "--preset", "contactopt"])  # fmt: skip
    assert (seen["config"].lr, seen["config"].n_iter, seen["config"].n_restarts) == (0.3, 9, 8)
    assert json.loads((out / "config.json").read_text())["optimizer"]["n_iter"] == 9


def test_only_commands_that_optimise_import_the_optimizer_for_their_flags():
    for command in ("refine", "demo"):
        parser = build_parser([command])
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
        assert "--opt.n-iter" in sub.format_help() and "iterations per restart" in sub.format_help()
    info = build_parser(["info"])
    sub = next(a for a in info._actions if isinstance(a, argparse._SubParsersAction)).choices["refine"]
    assert "--opt.n-iter" not in sub.format_help()  # not built unless refine is the command
