"""Where generated assets live: the toolkit's cache folder and the synthetic MANO-format hand in it."""

from __future__ import annotations

import os
from pathlib import Path

from haco_grasp.hand import synthetic_asset

CACHE_ENV = "HACO_GRASP_CACHE"


def cache_dir() -> Path:
    """The toolkit's cache folder: ``$HACO_GRASP_CACHE``, else ``~/.cache/haco_grasp``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "haco_grasp").expanduser()


def synthetic_mano_dir() -> Path:
    """Where :func:`synthetic_mano_root` keeps the synthetic hand of this version (nothing is written)."""
    # keyed by what builds the asset (synthetic_asset.asset_key), so a changed builder never reuses stale pickles
    return cache_dir() / "synthetic_mano" / synthetic_asset.asset_key()


def synthetic_mano_root() -> Path:
    """Folder holding the synthetic ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``, written on first use.

    Use it as ``load_mano(root=synthetic_mano_root())``.
    """
    root = synthetic_mano_dir()
    if not all((root / name).is_file() for name in ("MANO_RIGHT.pkl", "MANO_LEFT.pkl")):
        root.mkdir(parents=True, exist_ok=True)
        synthetic_asset.write_synthetic_mano(root)
    return root
