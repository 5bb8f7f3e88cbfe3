"""Provenance: versions, devices and optional accelerators, for ``haco-grasp info`` and benchmark JSON."""

from __future__ import annotations

import importlib.util
import platform
import subprocess
from pathlib import Path


def git_commit(path: str | Path | None = None) -> str:
    """The commit of the source tree holding this package (``"unknown"`` outside a git checkout)."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=where, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_report() -> dict[str, str]:
    """Versions and devices as strings (cheap: imports torch, numpy and probes optional packages)."""
    import numpy
    import torch

    import haco_grasp

    def version(name: str) -> str:
        if importlib.util.find_spec(name) is None:
            return "not installed"
        try:
            module = __import__(name)
            return str(getattr(module, "__version__", "installed"))
        except Exception as exc:  # an optional package that fails to import is reported, not fatal
            return f"import fails ({type(exc).__name__})"

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "haco_grasp": haco_grasp.__version__,
        "commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": str(__import__("os").cpu_count()),
        "torch": torch.__version__,
        "cuda_device": cuda,
        "numpy": numpy.__version__,
        "open3d": version("open3d"),
        "trimesh": version("trimesh"),
        "smplx": version("smplx"),
        "pytorch3d": version("pytorch3d"),
    }


def machine_description(threads: int | None = None) -> str:
    """One line naming the processor, core count and torch threads, for benchmark provenance."""
    import os

    import torch

    threads = torch.get_num_threads() if threads is None else threads
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {threads}"
