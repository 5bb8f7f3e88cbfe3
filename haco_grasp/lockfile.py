"""An exclusive lock on an output path, held by one process at a time: ``<out>.lock``.

The lock file holds its owner as JSON (``pid``, ``host``, ``started`` UTC ISO time, ``command``) and is locked
with ``fcntl.flock`` for as long as the owner runs, so the kernel releases it when the owner dies, even by
``kill -9``. A second process that finds the file locked refuses with :class:`LockHeldError` naming the owner. A
process that finds the file unlocked but still naming an owner on this host (which died without cleaning up) takes
it over with a warning. An unlocked file naming another host is refused too: this host cannot tell whether that
owner still runs (on file systems whose locks do not cross hosts); the message says to delete the file once it is
gone.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from haco_grasp.errors import HacoGraspError, InputError

__all__ = ["LockHeldError", "OutputLock"]

logger = logging.getLogger(__name__)


class LockHeldError(HacoGraspError):
    """Another process holds the lock of an output path."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _describe(owner: dict[str, Any]) -> str:
    return f"pid {owner.get('pid')} on host {owner.get('host')} (started {owner.get('started')})"


class OutputLock:
    """Exclusive lock of ``path`` (the lock file itself, e.g. ``refined.pkl.lock``).

    Args:
        path: the lock file; its folder must exist.
        what: the option naming the locked output in messages (e.g. ``"--out refined.pkl"``).

    Use :meth:`acquire` / :meth:`release`, or ``with OutputLock(...):``.
    """

    def __init__(self, path: str | os.PathLike, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _read_owner(self, fd: int) -> dict[str, Any]:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            text = os.read(fd, 65536).decode("utf-8", "replace")
            owner = json.loads(text) if text.strip() else {}
        except (OSError, ValueError):
            owner = {"pid": "?", "host": "?", "started": "?"}
        return owner if isinstance(owner, dict) else {"pid": "?", "host": "?", "started": "?"}

    def acquire(self) -> OutputLock:
        """Take the lock, or raise.

        Raises:
            LockHeldError: another live process holds it (the message names pid, host and start time).
            InputError: the lock file cannot be created (the output's folder is not writable).
        """
        if self._fd is not None:
            return self
        for _ in range(20):  # retried only when the file was replaced while we locked it
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise InputError(
                    f"{self.what}: cannot create the lock file {self.path} ({exc.strerror}); choose an --out in a "
                    "writable folder"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = self._read_owner(fd)
                for _ in range(50):  # the holder may be between its flock and writing its record
                    if owner:
                        break
                    time.sleep(0.02)
                    owner = self._read_owner(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise LockHeldError(
                        f"{self.what}: in use by another refine run, {_describe(owner)}, lock {self.path}; wait for "
                        "it to finish or choose another --out"
                    ) from None
                raise InputError(
                    f"{self.what}: cannot lock {self.path} ({exc.strerror}); put --out on a file system with locks"
                ) from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # the previous owner removed it between our open and flock: lock the new one
                os.close(fd)
                continue
            owner = self._read_owner(fd)
            if owner:
                host = owner.get("host")
                pid = owner.get("pid")
                if host == socket.gethostname():
                    state = "has ended" if not (isinstance(pid, int) and _pid_alive(pid)) else "no longer holds it"
                    logger.warning("%s: taking over the stale lock %s of %s, which %s (killed?)", self.what,
                                   self.path, _describe(owner), state)  # fmt: skip
                else:
                    os.close(fd)
                    raise LockHeldError(
                        f"{self.what}: lock {self.path} names {_describe(owner)}, which this host cannot check; if "
                        "that run has ended, delete the lock file and rerun"
                    )
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv[:1] + sys.argv[1:][:40]),
            }
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(record) + "\n").encode())
            os.fsync(fd)
            self._fd = fd
            return self
        raise LockHeldError(f"{self.what}: the lock file {self.path} keeps changing; another run is starting there")

    def release(self) -> None:
        """Remove the lock file and unlock (no-op when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)  # closing releases the flock

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
