"""The haco-grasp command line: instant help, the demo end to end, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from haco_grasp.cli import main


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from haco_grasp.cli import build_parser; build_parser(['--help']).format_help(); "
        "print(sorted(m for m in ('torch', 'timm', 'open3d', 'trimesh') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_every_command_is_listed(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("demo", "refine", "predict", "info"):
        assert command in text


def test_demo_end_to_end_writes_metrics_and_renders(tmp_path, capsys):
    out = tmp_path / "demo"
    metrics = tmp_path / "demo.json"
    code = main(["demo", "--n", "2", "--contact", "oracle", "--out", str(out), "--json", str(metrics)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "ORACLE" in printed and "SYNTHETIC" in printed
    report = json.loads(metrics.read_text())
    assert report["oracle"] is True and report["contact_source"] == "oracle" and report["data"] == "synthetic"
    assert report["after"]["intersection_cm3"] <= report["before"]["intersection_cm3"]
    assert report["after"]["contact_f1"] >= report["before"]["contact_f1"] - 0.05
    assert len(report["renders"]) == 2 and all((out / f"grasp_{i:02d}.png").is_file() for i in range(2))
    assert json.loads((out / "config.json").read_text())["n_grasps"] == 2


def test_bad_demo_input_is_a_one_line_error(tmp_path, capsys):
    assert main(["demo", "--n", "0", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--n" in err
