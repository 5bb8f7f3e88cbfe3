"""The README front page (issue 15): two set-up commands (the second is what CI runs), a short page, an Architecture
section, and Python examples that name only what they import."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _setup_commands() -> list[str]:
    section = README.split("## Set-up (a fresh machine)", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_two_setup_commands_the_second_is_what_ci_runs():
    commands = _setup_commands()
    assert len(commands) == 2, commands
    assert commands[0] == "bash install.sh && haco-grasp demo"
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert commands[1] in ci, f"README's test command {commands[1]!r} is not a line of .ci/run"


def test_front_page_fits_two_screens_and_ends_with_architecture():
    front, architecture = README.split("\n## Architecture\n", 1)
    assert len(front.splitlines()) <= 100, f"front page above '## Architecture' has {len(front.splitlines())} lines"
    assert "\n## " not in architecture, "'## Architecture' should be the last section"


def test_python_examples_use_only_names_they_define():
    for block in re.findall(r"```python\n(.*?)```", README, re.DOTALL):
        tree = ast.parse(block)
        defined = set(dir(builtins))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
        assert used <= defined, f"undefined names in a README example: {sorted(used - defined)}"
