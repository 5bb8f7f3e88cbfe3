"""Imports flow one way: checked on the modules a fresh interpreter loads."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(m for m in sys.modules if m.startswith('haco_grasp'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return set(out.stdout.split())


def test_geometry_imports_only_the_leaf_modules() -> None:
    allowed = {"haco_grasp", "haco_grasp.errors", "haco_grasp.atomic", "haco_grasp.arrays"}
    assert {m for m in _loaded("haco_grasp.geometry") if not m.startswith("haco_grasp.geometry")} <= allowed


@pytest.mark.parametrize("module", ["haco_grasp.metrics", "haco_grasp.geometry.labels"])
def test_metrics_and_labels_do_not_reach_up_into_contact(module: str) -> None:
    # contact/train/evaluation.py imports metrics (contact_prf); nothing on metrics' side may import contact back.
    assert not {m for m in _loaded(module) if m.startswith("haco_grasp.contact")}


_UPPER_LAYERS = ("haco_grasp.contact", "haco_grasp.optimize", "haco_grasp.refine", "haco_grasp.targets")
_UPPER_LAYERS += ("haco_grasp.cli",)


@pytest.mark.parametrize(
    "module",
    [
        "haco_grasp.simulation",
        "haco_grasp.simulation.protocols",
        "haco_grasp.simulation.decompose",
        "haco_grasp.simulation.scene",
        "haco_grasp.simulation.grasps",
        "haco_grasp.viz.render",
        "haco_grasp.viz.camera",
        "haco_grasp.viz.images",
    ],
)
def test_simulation_and_rendering_do_not_reach_up(module: str) -> None:
    # the simulation and the rasteriser sit beside metrics: they read grasps and meshes, never contact or refinement
    assert not {m for m in _loaded(module) if m.startswith(_UPPER_LAYERS)}


@pytest.mark.parametrize("module", ["haco_grasp.targets", "haco_grasp.distributed", "haco_grasp.refine.frames"])
def test_contact_sources_and_torchrun_do_not_reach_up_into_refine(module: str) -> None:
    # refine uses the contact-source registry and the torchrun setup, never the other way round
    loaded = _loaded(module)
    above = ("haco_grasp.cli", "haco_grasp.demo") + (
        () if module.startswith("haco_grasp.refine") else ("haco_grasp.refine",)
    )
    assert not {m for m in loaded if m.startswith(above)}


def test_nothing_imports_the_cli() -> None:
    import ast
    from pathlib import Path

    import haco_grasp

    package = Path(haco_grasp.__file__).parent
    importers = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "__main__.py" and path.parent == package:
            continue  # python -m haco_grasp runs the CLI
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if any(name == "haco_grasp.cli" or name.startswith("haco_grasp.cli.") for name in names):
                importers.append(str(path.relative_to(package)))
    assert importers == []
