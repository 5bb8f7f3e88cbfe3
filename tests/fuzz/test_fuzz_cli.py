"""``haco-grasp refine`` with bad flags, environments and output folders: exit status 2 and one stderr line.

Also the partial folder and the lock of ``--out`` in one process: batches without a manifest, unreadable batches,
an old manifest format, a lock held by a live process, a lock from another host, and a stale lock (a stated
warning, then the run proceeds).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket

import numpy as np
import pytest

from haco_grasp.lockfile import OutputLock
from haco_grasp.safe_pickle import safe_load

from .conftest import bounded, cli_error, write_pickle


def _argv(world, out, *extra):
    return ["refine", "--pred", world.pred, "--out", out, "--mano-root", world.mini.mano_root, "--objects",
            world.mini.models_root, "--contact", "geometric", "--no-progress", "--limit", "1", *extra]  # fmt: skip


def _replace(argv, flag, value):
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def _cases(world, tmp):
    """name -> (argv, environment changes, text the error line must hold)."""
    out = tmp / "out" / "refined.pkl"
    base = _argv(world, out)
    a_file = tmp / "a_file"
    a_file.write_text("x")
    text_pred = tmp / "text.pkl"
    text_pred.write_text("not a pickle")
    empty = tmp / "empty.pkl"
    empty.write_bytes(b"")
    no_samples = write_pickle(tmp / "none.pkl", {**world.raw, "samples": []})
    ids = [s["sample_id"] for s in world.raw["samples"]]
    contact = {
        "nan": (np.array(ids), np.full((len(ids), 778), np.nan)),
        "range": (np.array(ids), np.full((len(ids), 778), 7.0)),
        "dupe": (np.array([ids[0]] * len(ids)), np.zeros((len(ids), 778))),
        "ids-int": (np.arange(len(ids)), np.zeros((len(ids), 778))),
    }
    contact_files = {}
    for name, (sample_id, values) in contact.items():
        contact_files[name] = tmp / f"contact_{name}.npz"
        np.savez(contact_files[name], sample_id=sample_id, hand_contact=values)
    truncated = tmp / "contact_cut.npz"
    truncated.write_bytes(contact_files["range"].read_bytes()[:300])
    empty_mano = tmp / "empty_mano"
    empty_mano.mkdir(exist_ok=True)
    port = "1"  # nothing listens on port 1
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = str(probe.getsockname()[1])
    return {
        "batch-size-zero": ([*base, "--batch-size", "0"], {}, "--batch-size"),
        "batch-size-negative": ([*base, "--batch-size", "-3"], {}, "--batch-size"),
        "batch-size-text": ([*base, "--batch-size", "many"], {}, "--batch-size"),
        "batch-size-float": ([*base, "--batch-size", "1e3"], {}, "--batch-size"),
        "limit-zero": ([*base, "--limit", "0"], {}, "--limit"),
        "limit-negative": ([*base, "--limit", "-1"], {}, "--limit"),
        "limit-text": ([*base, "--limit", "all"], {}, "--limit"),
        "preset-unknown": ([*base, "--preset", "slow"], {}, "--preset"),
        "contact-unknown": ([*base, "--contact", "psychic"], {}, "--contact"),
        "device-unknown": ([*base, "--device", "tpu"], {}, "--device"),
        "device-empty": ([*base, "--device", ""], {}, "--device"),
        "unknown-flag": ([*base, "--colour", "red"], {}, "unrecognized"),
        "missing-pred-flag": (["refine", *base[3:]], {}, "--pred"),
        "pred-missing": (_replace(base, "--pred", tmp / "nope.pkl"), {}, "not found"),
        "pred-is-folder": (_replace(base, "--pred", tmp), {}, "--pred"),
        "pred-empty-file": (_replace(base, "--pred", empty), {}, "not a readable pickle"),
        "pred-text-file": (_replace(base, "--pred", text_pred), {}, "not a readable pickle"),
        "pred-no-samples": (_replace(base, "--pred", no_samples), {}, "no samples"),
        "out-is-folder": (_replace(base, "--out", tmp), {}, "is a folder"),
        "out-parent-is-file": (_replace(base, "--out", a_file / "refined.pkl"), {}, "is a file"),
        "out-grandparent-is-file": (_replace(base, "--out", a_file / "x" / "refined.pkl"), {}, "is a file"),
        "out-unwritable": (_replace(base, "--out", "/proc/haco/refined.pkl"), {}, "--out"),
        "out-is-pred": (_replace(base, "--out", world.pred), {}, "--pred"),
        "objects-missing": (_replace(base, "--objects", tmp / "no_models"), {}, "--objects"),
        "objects-is-file": (_replace(base, "--objects", a_file), {}, "--objects"),
        "objects-empty": (_replace(base, "--objects", empty_mano), {}, "--objects"),
        "mano-root-missing": (_replace(base, "--mano-root", tmp / "no_mano"), {}, "--mano-root"),
        "mano-root-empty": (_replace(base, "--mano-root", empty_mano), {}, "MANO"),
        "dexycb-missing": ([*base, "--dexycb", tmp / "no_dexycb"], {}, "--dexycb"),
        "contact-file-without-source": (
            _replace([*base, "--contact-file", contact_files["nan"]], "--contact", "geometric"), {}, "--contact file"),
        "contact-file-missing": ([*_replace(base, "--contact", "file"), "--contact-file", tmp / "c.npz"], {},
                                 "not found"),
        "contact-file-nan": ([*_replace(base, "--contact", "file"), "--contact-file", contact_files["nan"]], {},
                             "NaN"),
        "contact-file-range": ([*_replace(base, "--contact", "file"), "--contact-file", contact_files["range"]], {},
                               "[0, 1]"),
        "contact-file-dupe": ([*_replace(base, "--contact", "file"), "--contact-file", contact_files["dupe"]], {},
                              "twice"),
        "contact-file-int-ids": ([*_replace(base, "--contact", "file"), "--contact-file", contact_files["ids-int"]],
                                 {}, "sample_id"),
        "contact-file-truncated": ([*_replace(base, "--contact", "file"), "--contact-file", truncated], {},
                                   "readable .npz"),
        "contact-file-is-pickle": ([*_replace(base, "--contact", "file"), "--contact-file", world.pred], {},
                                   "--contact-file"),
        "world-size-text": (base, {"WORLD_SIZE": "two"}, "$WORLD_SIZE"),
        "world-size-zero": (base, {"WORLD_SIZE": "0"}, "WORLD_SIZE"),
        "rank-too-large": (base, {"WORLD_SIZE": "2", "RANK": "5"}, "RANK"),
        "rank-negative": (base, {"WORLD_SIZE": "2", "RANK": "-1"}, "RANK"),
        "rank-text": (base, {"WORLD_SIZE": "2", "RANK": "zero"}, "$RANK"),
        "no-master-addr": (base, {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "", "MASTER_PORT": "1"},
                           "MASTER_ADDR"),
        "master-port-text": (base, {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "p"},
                             "MASTER_PORT"),
        "connect-timeout-text": (base, {"HACO_GRASP_DIST_CONNECT_TIMEOUT_S": "soon"}, "CONNECT_TIMEOUT"),
        "connect-timeout-negative": (base, {"HACO_GRASP_DIST_CONNECT_TIMEOUT_S": "-5"}, "CONNECT_TIMEOUT"),
        "rank1-without-rank0": (base, {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1",
                                       "MASTER_PORT": port, "HACO_GRASP_DIST_CONNECT_TIMEOUT_S": "1"},
                                "rank 0 never started"),
        "mano-env-missing": ([a for a in base if a not in ("--mano-root", str(world.mini.mano_root),
                                                            world.mini.mano_root)],
                             {"HACO_GRASP_MANO_ROOT": str(tmp / "nowhere")}, "MANO"),
        "rank0-without-peers": (base, {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1",
                                       "MASTER_PORT": free_port, "HACO_GRASP_DIST_CONNECT_TIMEOUT_S": "1"},
                                "did not join"),
        "cache-env-is-file": (base, {"HACO_GRASP_CACHE": str(a_file)}, "$HACO_GRASP_CACHE"),
        "cache-env-under-file": (base, {"HACO_GRASP_CACHE": str(a_file / "cache")}, "$HACO_GRASP_CACHE"),
        "dexycb-env-missing": ([a for a in base if a not in ("--objects", world.mini.models_root)],
                               {"DEX_YCB_DIR": str(tmp / "nowhere")}, "--objects"),
    }  # fmt: skip


CASE_NAMES = [
    "batch-size-zero", "batch-size-negative", "batch-size-text", "batch-size-float", "limit-zero", "limit-negative",
    "limit-text", "preset-unknown", "contact-unknown", "device-unknown", "device-empty", "unknown-flag",
    "missing-pred-flag", "pred-missing", "pred-is-folder", "pred-empty-file", "pred-text-file", "pred-no-samples",
    "out-is-folder", "out-parent-is-file", "out-grandparent-is-file", "out-unwritable", "out-is-pred",
    "objects-missing", "objects-is-file", "objects-empty", "mano-root-missing", "mano-root-empty", "dexycb-missing",
    "contact-file-without-source", "contact-file-missing", "contact-file-nan", "contact-file-range",
    "contact-file-dupe", "contact-file-int-ids", "contact-file-truncated", "contact-file-is-pickle",
    "world-size-text", "world-size-zero", "rank-too-large", "rank-negative", "rank-text", "no-master-addr",
    "master-port-text", "connect-timeout-text", "connect-timeout-negative", "rank1-without-rank0",
    "mano-env-missing", "dexycb-env-missing", "cache-env-is-file", "cache-env-under-file",
    "rank0-without-peers",
]  # fmt: skip


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_flag_or_environment(name, world, tmp_path, monkeypatch, capsys):
    argv, environment, expected = _cases(world, tmp_path)[name]
    for variable in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    cli_error(capsys, argv, expected)
    out = tmp_path / "out" / "refined.pkl"
    assert not out.exists() and not out.with_name("refined.pkl.partial").exists()
    assert not out.with_name("refined.pkl.lock").exists()


# ----------------------------------------------------------------------------------------------- partial + lock
@pytest.fixture
def tiny(monkeypatch):
    from haco_grasp.optimize.config import FAST, PRESETS

    monkeypatch.setitem(PRESETS, "fast", FAST.replace(n_iter=2, n_restarts=1, sdf_pitch=0.006))


def _partial(out):
    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    return partial


def test_batches_without_manifest(world, tmp_path, capsys):
    out = tmp_path / "refined.pkl"
    (_partial(out) / "batch_000000_000000.pkl").write_bytes(b"x")
    cli_error(capsys, _argv(world, out), "no manifest.json", "--restart")


def test_unreadable_manifest(world, tmp_path, capsys):
    out = tmp_path / "refined.pkl"
    (_partial(out) / "batch_000000_000000.pkl").write_bytes(b"x")
    (_partial(out) / "manifest.json").write_text("{not json")
    cli_error(capsys, _argv(world, out), "manifest.json", "--restart")


def test_old_manifest_format(world, tmp_path, capsys):
    out = tmp_path / "refined.pkl"
    (_partial(out) / "batch_000000_000000.pkl").write_bytes(b"x")
    (_partial(out) / "manifest.json").write_text(json.dumps({"format": "haco_grasp.refine-partial/v1"}))
    cli_error(capsys, _argv(world, out), "different run", "format", "--restart")


def test_unreadable_batch(world, tiny, tmp_path, monkeypatch, capsys):
    import haco_grasp.optimize as optimize_module
    from haco_grasp.cli import main

    real, calls = optimize_module.optimize_grasp, []

    def interrupted(grasps, *args, **kwargs):
        calls.append(len(grasps))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(grasps, *args, **kwargs)

    monkeypatch.setattr(optimize_module, "optimize_grasp", interrupted)
    out = tmp_path / "refined.pkl"
    argv = _replace(_argv(world, out, "--batch-size", "1"), "--limit", "2")
    assert main([str(a) for a in argv]) == 130
    batches = sorted(_partial(out).glob("batch_*.pkl"))
    assert len(batches) == 1 and (_partial(out) / "manifest.json").is_file()
    batches[0].write_bytes(batches[0].read_bytes()[:100])  # a torn copy
    cli_error(capsys, argv, "unreadable partial batch", str(batches[0]), "--restart")


def test_lock_held_by_a_live_process(world, tmp_path, capsys):
    out = tmp_path / "refined.pkl"
    lock = OutputLock(out.with_name("refined.pkl.lock"), f"--out {out}").acquire()
    try:
        line = cli_error(capsys, _argv(world, out), "in use by another refine run", f"pid {os.getpid()}",
                         socket.gethostname())  # fmt: skip
    finally:
        lock.release()
    assert "choose another --out" in line
    assert not out.with_name("refined.pkl.partial").exists()


def test_lock_naming_another_host(world, tmp_path, capsys):
    out = tmp_path / "refined.pkl"
    record = {"pid": 1, "host": "elsewhere.cluster", "started": "2026-12-04T00:00:00+00:00"}
    out.with_name("refined.pkl.lock").write_text(json.dumps(record))
    cli_error(capsys, _argv(world, out), "elsewhere.cluster", "delete the lock file")


def test_stale_lock_is_taken_over_with_a_warning(world, tiny, tmp_path, caplog):
    from haco_grasp.cli import main

    out = tmp_path / "refined.pkl"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    record = {"pid": dead, "host": socket.gethostname(), "started": "2026-12-04T00:00:00+00:00"}
    out.with_name("refined.pkl.lock").write_text(json.dumps(record))
    stale_tmp = tmp_path / ".refined.pkl.abcd1234.tmp"
    stale_tmp.write_bytes(b"half a file")
    with caplog.at_level(logging.INFO), bounded(seconds=120, traced_mb=1024):
        assert main([str(a) for a in _argv(world, out)]) == 0
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "stale lock" in r.getMessage()
    ]
    assert len(warnings) == 1 and f"pid {dead}" in warnings[0], caplog.text
    assert out.is_file() and not out.with_name("refined.pkl.lock").exists() and not stale_tmp.exists()


def _interrupted_run(world, out, monkeypatch, **replace):
    """A run stopped (Ctrl-C) after its first batch: a partial folder with one batch and the manifest."""
    import haco_grasp.optimize as optimize_module
    from haco_grasp.cli import main

    real, calls = optimize_module.optimize_grasp, []

    def interrupted(grasps, *args, **kwargs):
        calls.append(len(grasps))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(grasps, *args, **kwargs)

    monkeypatch.setattr(optimize_module, "optimize_grasp", interrupted)
    argv = _replace(_argv(world, out, "--batch-size", "1"), "--limit", "2")
    for flag, value in replace.items():
        argv = _replace(argv, flag, value)
    assert main([str(a) for a in argv]) == 130
    monkeypatch.setattr(optimize_module, "optimize_grasp", real)
    assert len(list(_partial(out).glob("batch_*.pkl"))) == 1
    return argv


def test_resume_after_mano_file_changed(world, tiny, tmp_path, monkeypatch, capsys):
    mano = tmp_path / "mano"
    shutil.copytree(world.mini.mano_root, mano)
    out = tmp_path / "refined.pkl"
    argv = _interrupted_run(world, out, monkeypatch, **{"--mano-root": mano})
    raw = safe_load(mano / "MANO_RIGHT.pkl", chumpy=True)
    raw["v_template"] = raw["v_template"] + 1e-4
    write_pickle(mano / "MANO_RIGHT.pkl", raw, protocol=2)
    cli_error(capsys, argv, "--mano-root changed", "MANO right", "--restart")
    assert len(list(_partial(out).glob("batch_*.pkl"))) == 1


def test_resume_after_code_changed(world, tiny, tmp_path, monkeypatch, capsys):
    import haco_grasp.refine.resume as refine_module

    out = tmp_path / "refined.pkl"
    argv = _interrupted_run(world, out, monkeypatch)
    monkeypatch.setattr(refine_module, "_CODE_VERSION", "haco_grasp 9.9.9 0000000")
    cli_error(capsys, argv, "the code changed", "9.9.9", "--restart")


def test_resume_with_other_preset(world, tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path / "refined.pkl"
    argv = _interrupted_run(world, out, monkeypatch)
    cli_error(capsys, [*argv, "--preset", "contactopt"], "different run", "preset")
