"""Every ``haco-grasp`` subcommand documents every flag and its default; shared flags have one spelling."""

from __future__ import annotations

import argparse

import pytest

from haco_grasp.cli import LAZY_COMMANDS, build_parser, field_docs, main

COMMANDS = ["demo", "refine", "info", *LAZY_COMMANDS]


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser([name])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_flag_has_help_and_a_default(name):
    parser = _subparser(name)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest}: no help"
        switch = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
        if action.option_strings and not switch and not action.required:
            assert "default" in action.help, f"{name} {action.option_strings}: help does not state the default"
    parser.format_help()  # every %(default)s expands


def test_shared_flags_have_one_spelling_and_old_ones_still_work(tmp_path):
    outs = {name: [s for a in _subparser(name)._actions for s in a.option_strings if s.startswith("--out")]
            for name in ("demo", "refine", "predict", "train-haco", "train-deepcontact")}  # fmt: skip
    assert all(flags == ["--out"] for name, flags in outs.items() if name != "train-deepcontact")
    deepcontact = _subparser("train-deepcontact")
    assert "--out-dir" not in deepcontact.format_help()  # hidden alias of --out
    assert deepcontact.parse_args(["--out-dir", "x"]).out_dir == "x"
    assert deepcontact.parse_args(["--out", "y"]).out_dir == "y"
    assert deepcontact.parse_args([]).resume is True and deepcontact.parse_args(["--no-resume"]).resume is False
    demo = _subparser("demo")
    assert demo.parse_args(["--n", "3"]).n == 3 and demo.parse_args(["--n-grasps", "5"]).n == 5
    assert "--n-grasps" in demo.format_help() and "--n N" not in demo.format_help()
    haco = _subparser("train-haco")
    assert haco.parse_args(["--resume"]).resume is True and haco.parse_args(["--no-resume"]).resume is False
    assert haco.parse_args([]).resume is None  # the preset decides
    help_text = haco.format_help()
    assert "from the synthetic-small preset" in help_text and "--resume, --no-resume" in help_text


def test_field_docs_reads_grouped_and_continued_definitions():
    class Config:
        """Settings.

        alpha: the first
            value, continued.
        beta, gamma: shared text. delta: another ``one`` (:func:`f`).
        epsilon: as named (metres).
        """

    docs = field_docs(Config)
    assert docs == {"alpha": "the first value, continued", "beta": "shared text", "gamma": "shared text",
                    "delta": "another one (f)", "epsilon": "epsilon (metres)"}  # fmt: skip


def test_info_lists_assets_and_where(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "assets:" in out
    for key in ("MANO", "synthetic hand", "HACO checkpoint", "DeepContact ckpt", "DexYCB", "cache"):
        assert f"{key}: " in out
    assert "haco_synthetic.ckpt" in out
