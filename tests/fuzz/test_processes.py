"""Mixing and losing results, with real processes: two concurrent runs on one ``--out``, a resume after
``--objects`` changed, and ``kill -9`` in the middle of a run followed by a resume.

Each child runs under a time bound (``communicate(timeout=...)``) and a memory bound (``RLIMIT_AS``). It is
``haco-grasp refine`` with the fast preset shrunk to 2 iterations and, where a test needs to hold a
run in the middle, a gate: the child finishes its first batch, then waits in its second optimizer call until the
test creates the gate file (or kills it).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from haco_grasp.data.hflnet import load_hflnet, save_hflnet
from haco_grasp.refine import load_refined

from .conftest import write_pickle

CHILD = """
import os, sys, time
from haco_grasp.optimize.config import FAST, PRESETS
PRESETS["fast"] = FAST.replace(n_iter=2, n_restarts=1, sdf_pitch=0.006)
import haco_grasp.optimize as optimize_module
real, calls, gate = optimize_module.optimize_grasp, [], os.environ.get("FUZZ_GATE")
def gated(grasps, *args, **kwargs):
    calls.append(len(grasps))
    if gate and len(calls) >= 2:
        deadline = time.time() + 120
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.05)
    return real(grasps, *args, **kwargs)
optimize_module.optimize_grasp = gated
from haco_grasp.cli import main
sys.exit(main(sys.argv[1:]))
"""
UMASK = 0o027  # group may read, others may not: what the files must show
CHILD_ADDRESS_SPACE = 6 << 30  # memory bound of every child (a refine run peaks at about 1.5 GB of address space)


def _child_limits():
    os.umask(UMASK)
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


def _argv(world, out, objects=None, pred=None, limit=3):
    return ["refine", "--pred", str(pred or world.pred), "--out", str(out), "--mano-root", str(world.mini.mano_root),
            "--objects", str(objects or world.mini.models_root), "--contact", "geometric", "--no-progress",
            "--batch-size", "1", "--limit", str(limit)]  # fmt: skip


def _start(argv, gate=None):
    env = dict(os.environ, FUZZ_GATE=str(gate) if gate else "")
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-c", CHILD, *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_child_limits)  # fmt: skip


def _finish(proc, timeout=150):
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def _wait_for(condition, proc, what, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"child ended ({proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _error_line(err):
    lines = [line for line in err.splitlines() if line.startswith("haco-grasp refine: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def _same(a, b):
    assert [s.sample_id for s in a.samples] == [s.sample_id for s in b.samples]
    for x, y in zip(a.samples, b.samples, strict=True):
        for name in ("global_orient", "hand_pose", "betas", "transl", "hand_verts", "hand_joints", "obj_pose"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)


@pytest.fixture(scope="module")
def other_pred(world, tmp_path_factory):
    """Another prediction file: the same samples in reverse order (what a second run on the same --out would mix)."""
    file = load_hflnet(world.pred)
    file.samples = file.samples[::-1]
    path = tmp_path_factory.mktemp("other") / "hflnet_reversed.pkl"
    save_hflnet(file, path)
    return path


def test_two_runs_on_one_out(world, other_pred, tmp_path):
    out, gate = tmp_path / "runs" / "refined.pkl", tmp_path / "gate"
    first = _start(_argv(world, out, limit=3), gate=gate)
    partial = out.with_name("refined.pkl.partial")
    _wait_for(lambda: any(partial.glob("batch_*.pkl")), first, "the first batch")
    lock = out.with_name("refined.pkl.lock")
    assert lock.is_file() and f'"pid": {first.pid}' in lock.read_text()
    batch = next(partial.glob("batch_*.pkl"))
    assert _mode(batch) == 0o666 & ~UMASK  # partial results readable by the group

    for pred in (other_pred, world.pred):  # other input (mixing) and the same input (lost batches)
        code, _, err = _finish(_start(_argv(world, out, pred=pred, limit=3)), timeout=120)
        line = _error_line(err)
        assert code == 2 and f"pid {first.pid}" in line and "in use by another refine run" in line, err
    assert any(partial.glob("batch_*.pkl"))  # the refused runs touched nothing

    gate.touch()
    code, _, err = _finish(first)
    assert code == 0, err
    refined = load_refined(out)
    assert [s.sample_id for s in refined.samples] == [p.sample_id for p in load_hflnet(world.pred).samples[:3]]
    assert refined.source_file == str(world.pred.resolve())
    assert _mode(out) == 0o666 & ~UMASK
    assert not partial.exists() and not lock.exists()


def test_kill_9_then_objects_changed_then_resume(world, tmp_path):
    from haco_grasp.cli import main
    from haco_grasp.objects.ycb import YCB_CLASSES

    models = tmp_path / "models"
    shutil.copytree(world.mini.models_root, models)
    out, gate = tmp_path / "run" / "refined.pkl", tmp_path / "never"
    argv = _argv(world, out, objects=models, limit=3)
    child = _start(argv, gate=gate)
    partial = out.with_name("refined.pkl.partial")
    _wait_for(lambda: any(partial.glob("batch_*.pkl")), child, "the first batch")
    os.kill(child.pid, signal.SIGKILL)  # lost-work scenario: killed in the middle of the run
    _finish(child)
    kept = sorted(p.name for p in partial.glob("batch_*.pkl"))
    assert kept == ["batch_000000_000000.pkl"] and (partial / "manifest.json").is_file()
    assert out.with_name("refined.pkl.lock").is_file()  # left behind by the killed run, stale now
    torn = out.with_name(".refined.pkl.k9x2ab.tmp")  # as a kill during the final write leaves it
    torn.write_bytes(b"half")
    (partial / ".batch_000001_000001.pkl.zz9.tmp").write_bytes(b"half")

    # mixing scenario: the objects change between the killed run and the resume
    ycb_name = YCB_CLASSES[int(world.raw["samples"][1]["ycb_id"])]
    mesh = models / ycb_name / "textured_simple.obj"
    original = mesh.read_bytes()
    lines = original.decode().splitlines()
    scaled = [" ".join(["v", *(f"{float(x) * 1.01:.9g}" for x in line.split()[1:4])]) if line.startswith("v ") else line
              for line in lines]  # fmt: skip
    mesh.write_text("\n".join(scaled) + "\n")  # the same object, 1 % larger: a plausible re-export
    code, _, err = _finish(_start(argv), timeout=120)
    line = _error_line(err)
    assert code == 2 and "--objects changed" in line and ycb_name in line and "--restart" in line, err
    assert "stale lock" in err  # the killed run's lock was detected and taken over (a stated warning)
    assert sorted(p.name for p in partial.glob("batch_*.pkl")) == kept  # nothing was lost

    mesh.write_bytes(original)
    code, out_text, err = _finish(_start(argv), timeout=150)
    assert code == 0, err
    assert "refined 3 samples (1 resumed)" in out_text
    assert not torn.exists() and not partial.exists() and not out.with_name("refined.pkl.lock").exists()

    clean = tmp_path / "clean" / "refined.pkl"
    from haco_grasp.optimize.config import FAST, PRESETS

    saved = PRESETS["fast"]
    PRESETS["fast"] = FAST.replace(n_iter=2, n_restarts=1, sdf_pitch=0.006)
    try:
        assert main(_argv(world, clean, objects=models, limit=3)) == 0
    finally:
        PRESETS["fast"] = saved
    _same(load_refined(out), load_refined(clean))  # the resumed result is the uninterrupted one


def test_failure_before_any_batch_says_nothing_is_kept(world, tmp_path, monkeypatch, caplog):
    import haco_grasp.optimize as optimize_module
    from haco_grasp.cli import main

    def broken(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(optimize_module, "optimize_grasp", broken)
    out = tmp_path / "refined.pkl"
    with pytest.raises(RuntimeError):
        main(_argv(world, out, limit=1))
    text = caplog.text
    assert "no batch had finished" in text and "finished batches are kept" not in text
    assert not out.with_name("refined.pkl.partial").exists() and not out.with_name("refined.pkl.lock").exists()


def test_pickle_written_by_a_refused_run_is_absent(world, tmp_path):
    """A second run refused by the lock leaves no output, config or partial file of its own."""
    out = tmp_path / "refined.pkl"
    write_pickle(tmp_path / "marker.pkl", {"x": 1})
    from haco_grasp.lockfile import OutputLock

    with OutputLock(out.with_name("refined.pkl.lock"), "--out"):
        code, _, err = _finish(_start(_argv(world, out, limit=1)), timeout=120)
    assert code == 2 and "in use" in _error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker.pkl"]


RACER = """
import sys, time
from haco_grasp.errors import HacoGraspError
from haco_grasp.lockfile import OutputLock
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
try:
    lock = OutputLock(sys.argv[1], "--out race").acquire()
except HacoGraspError as exc:
    print("refused", exc)
    sys.exit(0)
print("held")
time.sleep(1.5)
lock.release()
"""


def test_lock_race_has_one_winner(tmp_path):
    """Four processes take the same lock at the same instant: exactly one holds it, each other is told who does."""
    path = tmp_path / "refined.pkl.lock"
    start = time.time() + 1.0
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(path), repr(start)], stdout=subprocess.PIPE,
                               text=True, preexec_fn=_child_limits) for _ in range(4)]  # fmt: skip
    outputs = [_finish(racer, timeout=60)[1] for racer in racers]
    held = [text for text in outputs if text.startswith("held")]
    refused = [text for text in outputs if text.startswith("refused")]
    assert len(held) == 1 and len(refused) == 3, outputs
    winner = racers[outputs.index(held[0])].pid
    assert all(f"pid {winner}" in text or "keeps changing" in text for text in refused), outputs
    assert not path.exists()
