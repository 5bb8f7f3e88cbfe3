"""Library code logs through ``logging``; only command entry points print their results to stdout."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (file, function) pairs that print a command's result by design; cli.py prints everywhere (it is the CLI).
ENTRY_POINTS = {
    ("haco_grasp/demo.py", "run_demo"),
    ("haco_grasp/contact/train/cli.py", "run_training"),
    ("haco_grasp/contact/train/cli.py", "run_eval"),
    ("contactopt_bridge/train.py", "main"),
    ("contactopt_bridge/evaluation.py", "run_from_args"),
}


def _print_calls(path: Path) -> list[tuple[str, int]]:
    """(enclosing top-level function or "<module>", line) of every ``print(...)`` call in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        owner = node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else "<module>"
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "print":
                found.append((owner, sub.lineno))
    return found


def test_library_code_does_not_print() -> None:
    offenders = []
    for package in ("haco_grasp", "contactopt_bridge"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "haco_grasp/cli.py":
                continue
            offenders += [
                f"{rel}:{line} in {owner}" for owner, line in _print_calls(path) if (rel, owner) not in ENTRY_POINTS
            ]
    assert not offenders, "use logging.getLogger(__name__) instead of print: " + ", ".join(offenders)
