"""torchrun: the one process-group setup of the toolkit (``haco-grasp refine`` and HACO training).

Under ``torchrun`` (``WORLD_SIZE > 1``) every rank reads ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``
from the environment (:func:`torchrun_env`), meets the others at rank 0's TCP store within a connect timeout
(``$HACO_GRASP_DIST_CONNECT_TIMEOUT_S``, :func:`connect_timeout`), so a rank launched without its peers stops with a
one-line error instead of waiting for the collective timeout, and then joins the process group (gloo on the CPU,
nccl on CUDA) whose collectives wait ``timeout_s``. A single process (``WORLD_SIZE`` unset or 1) needs none of it.

This module imports only the standard library at import time; torch is imported when a group is joined.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

from haco_grasp.errors import InputError

__all__ = ["CONNECT_TIMEOUT_ENV", "ProcessGroup", "connect_timeout", "torchrun_env", "wait_for_port"]

#: Environment variable overriding the connect timeout (seconds the ranks wait for each other at the start).
CONNECT_TIMEOUT_ENV = "HACO_GRASP_DIST_CONNECT_TIMEOUT_S"


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise InputError(f"${name}: expected an integer (set by torchrun), got {text!r}") from None


def torchrun_env() -> tuple[int, int]:
    """This process's ``(rank, world_size)`` from torchrun's environment: (0, 1) outside torchrun.

    Raises:
        InputError: ``RANK`` / ``WORLD_SIZE`` are not integers with 0 <= RANK < WORLD_SIZE, or ``WORLD_SIZE > 1``
            without ``MASTER_ADDR`` and an integer ``MASTER_PORT``.
    """
    rank, world_size = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"$RANK / $WORLD_SIZE: expected 0 <= RANK < WORLD_SIZE, got {rank} / {world_size}")
    if world_size > 1:
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise InputError(f"${name} is not set but WORLD_SIZE={world_size}; launch with torchrun, or unset "
                                 "WORLD_SIZE (and RANK) for a single process")  # fmt: skip
        _env_int("MASTER_PORT", 0)
    return rank, world_size


def connect_timeout(default_s: float) -> float:
    """Seconds the ranks wait for each other at the start: ``$HACO_GRASP_DIST_CONNECT_TIMEOUT_S``, else ``default_s``.

    Raises:
        InputError: not a positive number of seconds.
    """
    text = os.environ.get(CONNECT_TIMEOUT_ENV)
    value: Any = default_s
    what = "dist_connect_timeout_s"
    if text:
        what = f"${CONNECT_TIMEOUT_ENV}"
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"{what}: expected a number of seconds, got {text!r}; e.g. 120") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e7:
        raise InputError(f"{what}: expected a positive number of seconds, got {value!r}; e.g. 120")
    return float(value)


def wait_for_port(address: str, port: int, seconds: float) -> bool:
    """Whether something accepts TCP connections at ``address:port`` within ``seconds`` (rank 0's store)."""
    import socket

    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((address, port), timeout=min(1.0, seconds)):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


class ProcessGroup:
    """The torchrun process group, or a single process; errors can be shared so every rank stops together.

    Args:
        rank, world_size: from :func:`torchrun_env`.
        backend: "gloo" (CPU) or "nccl" (CUDA).
        connect_timeout_s: how long the ranks wait for each other at the start, seconds.
        timeout_s: timeout of the collective operations afterwards, seconds.

    Raises:
        InputError: the other ranks did not join within ``connect_timeout_s`` (the message says how to launch them).
    """

    def __init__(
        self, rank: int, world_size: int, backend: str = "gloo", connect_timeout_s: float = 120.0,
        timeout_s: float = 6 * 3600.0,
    ) -> None:  # fmt: skip
        self.rank, self.world_size, self.owned = rank, world_size, False
        if self.world_size == 1:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            return
        # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from the environment (torchrun sets them). The store waits
        # connect_timeout_s for the peers; the collectives then use timeout_s.
        address, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
        wait = datetime.timedelta(seconds=connect_timeout_s)
        peers = (f"WORLD_SIZE={self.world_size}, RANK={self.rank}: the other ranks did not join at "
                 f"{address}:{port} within {connect_timeout_s:g} s")  # fmt: skip
        fix = (f"start every rank (torchrun --nproc-per-node {self.world_size} ...), or unset WORLD_SIZE and "
               f"RANK for one process; raise ${CONNECT_TIMEOUT_ENV} if they start slowly")  # fmt: skip
        if self.rank != 0 and not wait_for_port(address, port, connect_timeout_s):
            raise InputError(f"{peers} (nothing listens there: rank 0 never started); {fix}")
        try:
            store = dist.TCPStore(address, port, self.world_size, self.rank == 0, timeout=wait,
                                  wait_for_workers=True)  # fmt: skip
            long_wait = datetime.timedelta(seconds=float(timeout_s))
            store.set_timeout(long_wait)  # every rank is connected: from now on the long timeout applies
            dist.init_process_group(backend, store=store, rank=self.rank, world_size=self.world_size,
                                    timeout=long_wait)  # fmt: skip
        except (RuntimeError, ValueError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise InputError(f"{peers} ({first}); {fix}") from None
        self.owned = True

    def share_from_root(self, error: str | None) -> str | None:
        """Rank 0's error message (or None), on every rank."""
        if self.world_size == 1:
            return error
        import torch.distributed as dist

        box = [error]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, error: str | None) -> list[str | None]:
        """Every rank's error message (or None), on every rank."""
        if self.world_size == 1:
            return [error]
        import torch.distributed as dist

        boxes: list[str | None] = [None] * self.world_size
        dist.all_gather_object(boxes, error)
        return boxes

    def close(self) -> None:
        """Leave the process group if this object joined it."""
        if self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()
