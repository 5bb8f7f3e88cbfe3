"""Atomic file writes: a finished file or none, never a half-written one (a crash or Ctrl-C keeps the old file).

Files are created with the permissions of a plain ``open()``: ``0o666`` less the process umask (``mkstemp`` alone
would give ``0o600``, which hides results from the group on a shared cluster). A process killed between creating
its temporary file and the final ``os.replace`` leaves ``.<name>.<random>.tmp`` beside the target;
:func:`remove_stale_temporaries` deletes those once the caller knows no other writer is active.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)


def current_umask() -> int:
    """The process umask, read without changing it where ``/proc`` allows (else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_pattern(target: str | os.PathLike) -> str:
    """Glob pattern of the temporary files :func:`atomic_open` creates for ``target`` (in its folder)."""
    return f".{Path(target).name}.*.tmp"


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete leftover temporary files of ``target`` (a killed :func:`atomic_open`); returns what was removed.

    Only call this while no other process writes ``target`` (e.g. under a lock on it).
    """
    path = Path(target).expanduser()
    removed = []
    if not path.parent.is_dir():
        return removed
    for stale in sorted(path.parent.glob(temporary_pattern(path))):
        try:
            stale.unlink()
        except FileNotFoundError:
            continue
        removed.append(stale)
    if removed:
        logger.info("removed %d stale temporary file(s) of %s left by a killed write (e.g. %s)", len(removed), path,
                    removed[0].name)  # fmt: skip
    return removed


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on success it replaces ``path``.

    Parent folders are created. The file gets mode ``0o666 & ~umask``. The data are flushed and fsync'ed before
    ``os.replace``; on any exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), 0o666 & ~current_umask())
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path) as stream:
        stream.write(data)
    return Path(path).expanduser()
