"""Shared pieces of the fuzz suite: a tiny world, the time and memory bound of every case, and the error checks.

Every case runs under :func:`bounded`: a wall-clock alarm (``signal.setitimer``) and two memory bounds, the peak of
Python and numpy allocations (``tracemalloc``) and the growth of the process's peak resident size
(``getrusage``). A case that hangs or allocates beyond its bound fails as such, not as a slow test run.
"""

from __future__ import annotations

import contextlib
import pickle
import resource
import signal
import tracemalloc
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from haco_grasp.errors import HacoGraspError

SEED = 20261204
CASE_SECONDS = 20.0
CASE_TRACED_MB = 256
CASE_RSS_GROWTH_MB = 768


class CaseTimeout(BaseException):
    """A fuzz case ran past its time bound (BaseException: no handler under test may swallow it)."""


@contextlib.contextmanager
def bounded(seconds: float = CASE_SECONDS, traced_mb: int = CASE_TRACED_MB) -> Iterator[None]:
    """Run the body under a time bound and a memory bound; fail the test when either is exceeded."""

    def alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"fuzz case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert peak < traced_mb * 2**20, f"fuzz case allocated {peak / 2**20:.0f} MB (bound {traced_mb} MB)"
    assert growth_mb < CASE_RSS_GROWTH_MB, f"fuzz case grew the peak RSS by {growth_mb:.0f} MB"


def one_line_error(
    call: Callable[[], Any], *expected: str, kind: type[BaseException] = HacoGraspError, **bounds: Any
) -> str:
    """Run ``call`` bounded; it must raise ``kind`` (a HacoGraspError) with a one-line message holding ``expected``."""
    with bounded(**bounds):
        try:
            call()
        except HacoGraspError as exc:
            error: HacoGraspError | None = exc
        else:
            error = None
    assert error is not None, "expected a HacoGraspError, the input was accepted"
    assert isinstance(error, kind), f"expected {kind.__name__}, got {type(error).__name__}: {error}"
    message = str(error)
    assert "\n" not in message and message.strip() == message, f"not one line: {message!r}"
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"
    return message


def cli_error(capsys: pytest.CaptureFixture, argv: list[str], *expected: str, **bounds: Any) -> str:
    """``haco-grasp`` with ``argv`` must exit 2 with exactly one stderr line (holding ``expected``), no traceback."""
    from haco_grasp.cli import main

    capsys.readouterr()
    with bounded(**bounds):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            code = exc.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}, stderr {captured.err!r}"
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    """A miniature DexYCB (5 sequences, 1 camera, 2 frames) and its ground-truth hflnet.pkl (right and left)."""
    from haco_grasp.data.mini_dexycb import write_mini_dexycb, write_mini_hflnet
    from haco_grasp.safe_pickle import safe_load

    root = tmp_path_factory.mktemp("fuzz_world")
    mini = write_mini_dexycb(root / "dexycb", n_subjects=1, n_sequences=10, n_serials=1, n_frames=2, n_left=1)
    pred = root / "hflnet.pkl"
    write_mini_hflnet(mini, pred, noise=None)
    raw = safe_load(pred)
    return types.SimpleNamespace(mini=mini, pred=pred, raw=raw, root=root)


def write_pickle(path: Path, value: Any, protocol: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    return path
