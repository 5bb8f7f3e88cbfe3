"""Where generated assets live: the toolkit's cache folder and the synthetic MANO-format hand in it."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "HACO_GRASP_CACHE"
#: Bump when the synthetic hand generator changes, so stale cached pickles are not reused.
SYNTHETIC_HAND_VERSION = "v1"


def cache_dir() -> Path:
    """The toolkit's cache folder: ``$HACO_GRASP_CACHE``, else ``~/.cache/haco_grasp``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "haco_grasp").expanduser()


def synthetic_mano_root() -> Path:
    """Folder holding the synthetic ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``, written on first use.

    Use it as ``load_mano(root=synthetic_mano_root())``.
    """
    from haco_grasp.hand.synthetic import write_synthetic_mano

    root = cache_dir() / "synthetic_mano" / SYNTHETIC_HAND_VERSION
    if not all((root / name).is_file() for name in ("MANO_RIGHT.pkl", "MANO_LEFT.pkl")):
        root.mkdir(parents=True, exist_ok=True)
        write_synthetic_mano(root)
    return root
