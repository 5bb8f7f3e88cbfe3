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
        try:
            if importlib.util.find_spec(name) is None:
                return "not installed"
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


def _files_state(paths: list[Path]) -> str:
    found = [p for p in paths if p.is_file()]
    if len(found) == len(paths):
        return "found"
    return "missing " + ", ".join(p.name for p in paths if not p.is_file())


def asset_report() -> dict[str, str]:
    """Which assets this installation finds and where: MANO files, checkpoints, datasets and caches.

    Returns:
        name -> "path (found | missing ... | not set)"; cheap (no file is read, only checked).
    """
    import os

    from haco_grasp.hand.assets import CACHE_ENV, cache_dir, synthetic_mano_dir
    from haco_grasp.hand.mano import MANO_FILES, MANO_ROOT_ENV, SYNTHETIC_ROOT

    package = Path(__file__).resolve().parent
    report: dict[str, str] = {}
    mano_env = os.environ.get(MANO_ROOT_ENV)
    if not mano_env:
        report["MANO"] = f"${MANO_ROOT_ENV} not set (pass --mano-root DIR, or --mano-root synthetic)"
    elif mano_env == SYNTHETIC_ROOT:
        report["MANO"] = f"${MANO_ROOT_ENV}=synthetic: the shipped synthetic hand"
    else:
        root = Path(mano_env).expanduser()
        files = [root / name for name in MANO_FILES.values()]
        if not all(f.is_file() for f in files):
            files = [root / "models" / name for name in MANO_FILES.values()]
        report["MANO"] = f"{files[0].parent} ({_files_state(files)}, from ${MANO_ROOT_ENV})"
    synthetic = synthetic_mano_dir()
    report["synthetic hand"] = (f"{synthetic} (found)" if (synthetic / "MANO_RIGHT.pkl").is_file()
                                else f"{synthetic} (written on first use)")  # fmt: skip
    haco = package / "contact" / "checkpoints" / "haco_synthetic.ckpt"
    report["HACO checkpoint"] = f"{haco} ({_files_state([haco, haco.with_suffix('.json')])})"
    deepcontact = package.parent / "contactopt_bridge" / "checkpoints" / "deepcontact_synthetic.pt"
    report["DeepContact ckpt"] = f"{deepcontact} ({_files_state([deepcontact])})"
    dexycb = os.environ.get("DEX_YCB_DIR")
    if dexycb:
        models = Path(dexycb).expanduser() / "models"
        state = "found" if models.is_dir() else "no models/ folder"
        report["DexYCB"] = f"{dexycb} ({state}, from $DEX_YCB_DIR)"
    else:
        report["DexYCB"] = "$DEX_YCB_DIR not set (pass --dexycb DIR / --objects DIR)"
    source = f"from ${CACHE_ENV}" if os.environ.get(CACHE_ENV) else f"${CACHE_ENV} not set"
    caches = [name for name in ("sdf", "coacd", "synthetic_mano") if (cache_dir() / name).is_dir()]
    report["cache"] = f"{cache_dir()} ({source}; holds {', '.join(caches) or 'nothing yet'})"
    return report


def machine_description(threads: int | None = None) -> str:
    """One line naming the processor, core count and torch threads, for benchmark provenance."""
    import os

    import torch

    threads = torch.get_num_threads() if threads is None else threads
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {threads}"
