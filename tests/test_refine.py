"""Tests of ``haco-grasp refine`` (haco_grasp.refine) on a miniature DexYCB with the synthetic hand.

References: the stored MANO parameters against the stored vertices (an independent float64 MANO forward pass); the
geometric contact target against trimesh's closest-point distance and inside test; the before/after MPJPE of the
metrics against numpy on the DexYCB labels (``joint_3d``); a resumed, a file-sourced and a 2-process run against
a clean 1-process run. The optimizer is shrunk to 5 iterations and one restart.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
import trimesh

import haco_grasp.optimize as optimize_module
from haco_grasp.cli import main
from haco_grasp.data.dexycb import DexYCB
from haco_grasp.data.hflnet import load_hflnet, save_hflnet
from haco_grasp.data.mini_dexycb import write_mini_dexycb, write_mini_hflnet
from haco_grasp.errors import AssetError, InputError
from haco_grasp.hand.conventions import ManoLayerCache, pose_hand
from haco_grasp.objects.ycb import YCB_CLASSES
from haco_grasp.optimize.config import FAST, PRESETS
from haco_grasp.refine import (
    CONTACT_SOURCES,
    PRESET_NAMES,
    REFINED_FORMAT,
    RefineConfig,
    load_refined,
    run_refine,
)
from haco_grasp.safe_pickle import safe_load

TINY = FAST.replace(n_iter=5, n_restarts=1, sdf_pitch=0.004)
LIMIT = 4  # two right hands, then two left hands
ARRAYS = ("global_orient", "hand_pose", "betas", "transl", "hand_verts", "hand_joints", "obj_pose")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("refine")
    mini = write_mini_dexycb(root / "dexycb", n_subjects=1, n_sequences=10, n_serials=1, n_frames=3, n_left=1)
    pred = root / "hflnet.pkl"
    write_mini_hflnet(mini, pred)
    sides = [s.mano_side for s in load_hflnet(pred).samples[:LIMIT]]
    assert sides == ["right", "right", "left", "left"]  # the batches the tests rely on
    return types.SimpleNamespace(mini=mini, pred=pred, tmp=root)


@pytest.fixture(scope="module")
def reference(world):
    """A clean 1-process run (API) of the first LIMIT samples, batch size 2."""
    out = world.tmp / "reference" / "refined.pkl"
    config = RefineConfig(pred=world.pred, out=out, mano_root=world.mini.mano_root, objects=world.mini.models_root,
                          optimize=TINY, batch_size=2, limit=LIMIT, progress=False, contact="geometric")  # fmt: skip
    summary = run_refine(config)
    assert summary.written and summary.n_refined == LIMIT and summary.n_batches == 2
    return load_refined(out)


@pytest.fixture(scope="module")
def pred_with_contact(world, reference):
    """The predictions with ``hand_contact`` = the reference's geometric targets (first LIMIT samples)."""
    file = load_hflnet(world.pred)
    for sample, refined in zip(file.samples, reference.samples, strict=False):
        sample.hand_contact = refined.target_hand_contact
    path = world.tmp / "hflnet_with_contact.pkl"
    save_hflnet(file, path)
    return path


@pytest.fixture
def tiny_presets(monkeypatch):
    """The CLI's presets shrunk to TINY (the CLI cannot take an OptimizeConfig)."""
    monkeypatch.setitem(PRESETS, "fast", TINY)
    monkeypatch.setitem(PRESETS, "haco", TINY.replace(w_pen=100.0))


def _args(world, out, *extra):
    return ["refine", "--pred", str(world.pred), "--out", str(out), "--mano-root", str(world.mini.mano_root),
            "--objects", str(world.mini.models_root), "--no-progress", "--contact", "geometric",
            *map(str, extra)]  # fmt: skip


def _assert_same(a, b, atol=1e-6, atol_m=1e-6):
    """Same samples; ``atol`` for every array, ``atol_m`` for those in metres (vertices, joints, translations)."""
    assert [s.sample_id for s in a.samples] == [s.sample_id for s in b.samples]
    for x, y in zip(a.samples, b.samples, strict=True):
        for name in ARRAYS:
            tol = atol_m if name in ("transl", "hand_verts", "hand_joints", "obj_pose") else atol
            np.testing.assert_allclose(getattr(x, name), getattr(y, name), atol=tol, rtol=0, err_msg=name)
        np.testing.assert_array_equal(x.target_hand_contact, y.target_hand_contact)
        assert x.chosen_restart == y.chosen_restart and x.iterations == y.iterations


def _error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("haco-grasp refine: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------------------------- output
def test_reference_output_is_consistent(world, reference):
    raw = safe_load(world.tmp / "reference" / "refined.pkl")
    assert raw["format"] == REFINED_FORMAT and raw["preset"] == "custom" and raw["contact_source"] == "geometric"
    assert raw["optimize_config"]["n_iter"] == 5 and raw["metrics"] is None and raw["n_samples"] == LIMIT
    assert raw["contact_oracle"] is False and raw["config"]["batch_size"] == 2
    assert {"torch", "numpy", "haco_grasp"} <= set(raw["versions"])
    assert (world.tmp / "reference" / "refined.pkl.config.json").is_file()
    assert not (world.tmp / "reference" / "refined.pkl.partial").exists()

    predictions = load_hflnet(world.pred).samples[:LIMIT]
    assert [s.sample_id for s in reference.samples] == [p.sample_id for p in predictions]
    cache = ManoLayerCache(world.mini.mano_root)  # float64, independent of the float32 optimisation layer
    for sample, pred in zip(reference.samples, predictions, strict=True):
        assert sample.mano_side == pred.mano_side and sample.dex_index == pred.dex_index
        params = {k: getattr(sample, k).astype(np.float64) for k in ("global_orient", "hand_pose", "betas", "transl")}
        posed = pose_hand(cache.layer(sample.mano_side), params)
        np.testing.assert_allclose(posed.verts, sample.hand_verts, atol=2e-5)
        np.testing.assert_allclose(posed.joints, sample.hand_joints, atol=2e-5)
        # the fast preset also refines the object pose: still a rigid pose, close to the input's
        rotation = sample.obj_pose[:, :3].astype(np.float64)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
        assert np.linalg.det(rotation) > 0.99
        assert np.linalg.norm(sample.obj_pose[:, 3] - pred.obj_pose[:, 3]) < 0.05
        # geometric target: the input hand's 1 cm labels, here from trimesh (closest point + inside test)
        mesh = trimesh.load(world.mini.models_root / YCB_CLASSES[pred.ycb_id] / "textured_simple.obj", force="mesh")
        mesh.apply_transform(np.vstack([pred.obj_pose.astype(np.float64), [0, 0, 0, 1]]))
        _, distance, _ = trimesh.proximity.closest_point(mesh, pred.hand_verts)
        expected = (distance < 0.01) | mesh.contains(pred.hand_verts)
        assert np.mean(expected == (sample.target_hand_contact > 0.5)) > 0.995
        assert 0 < sample.target_hand_contact.sum() < 778
        assert np.isfinite(sample.loss) and sample.seconds > 0 and sample.iterations == 5


def test_cli_end_to_end_with_metrics(world, reference, tiny_presets, tmp_path, capsys):
    out = tmp_path / "cli" / "refined.pkl"
    assert main(_args(world, out, "--limit", LIMIT, "--batch-size", 2, "--dexycb", world.mini.root)) == 0
    stdout = capsys.readouterr().out
    refined = load_refined(out)
    assert refined.preset == "fast" and refined.world_size == 1
    _assert_same(refined, reference)
    # metrics: MPJPE recomputed from the DexYCB labels
    dataset = DexYCB(world.mini.root, split="s0_test", subset="all", strict=False)
    predictions = load_hflnet(world.pred).samples[:LIMIT]
    truth = np.stack([dataset.sample_at_index(dataset.index_of(p.sample_id)).joint_3d[0] for p in predictions])
    before = np.linalg.norm(np.stack([p.hand_joints for p in predictions]) - truth, axis=-1).mean() * 1000
    after = np.linalg.norm(np.stack([s.hand_joints for s in refined.samples]) - truth, axis=-1).mean() * 1000
    metrics = refined.metrics
    assert metrics["input"]["n"] == LIMIT and metrics["refined"]["n"] == LIMIT
    assert metrics["input"]["mpjpe_mm"] == pytest.approx(before, abs=0.01)
    assert metrics["refined"]["mpjpe_mm"] == pytest.approx(after, abs=0.01)
    rows = {line.split("|")[1].strip(): line for line in stdout.splitlines() if line.startswith("| ")}
    assert f"{metrics['input']['mpjpe_mm']:.3f}" in rows["input"]
    assert f"{metrics['refined']['intersection_cm3']:.3f}" in rows["refined"]


# ----------------------------------------------------------------------------------------------- resume
def _counting(monkeypatch, fail_on=None):
    real, calls = optimize_module.optimize_grasp, []

    def counted(grasps, *args, **kwargs):
        calls.append(len(grasps))
        if fail_on is not None and len(calls) == fail_on:
            raise KeyboardInterrupt
        return real(grasps, *args, **kwargs)

    monkeypatch.setattr(optimize_module, "optimize_grasp", counted)
    return calls


def test_resume_after_interrupt(world, reference, tiny_presets, tmp_path, monkeypatch):
    out = tmp_path / "refined.pkl"
    args = _args(world, out, "--limit", LIMIT, "--batch-size", 2)
    calls = _counting(monkeypatch, fail_on=2)
    assert main(args) == 130
    assert calls == [2, 2] and not out.exists()
    kept = sorted((tmp_path / "refined.pkl.partial").glob("batch_*.pkl"))
    assert [p.name for p in kept] == ["batch_000000_000001.pkl"]
    assert [s["sample_id"] for s in safe_load(kept[0])["samples"]] == [s.sample_id for s in reference.samples[:2]]

    calls = _counting(monkeypatch)
    assert main(args) == 0
    assert calls == [2]  # only the unfinished batch ran again
    assert not (tmp_path / "refined.pkl.partial").exists()
    _assert_same(load_refined(out), reference)


def test_mismatched_partial_is_refused(world, tiny_presets, tmp_path, monkeypatch, capsys):
    out = tmp_path / "refined.pkl"
    _counting(monkeypatch, fail_on=2)
    assert main(_args(world, out, "--limit", 2, "--batch-size", 1)) == 130
    assert len(list((tmp_path / "refined.pkl.partial").glob("batch_*.pkl"))) == 1
    capsys.readouterr()

    assert main(_args(world, out, "--limit", 2, "--batch-size", 1, "--preset", "haco")) == 2
    line = _error_line(capsys)
    assert "different run" in line and "preset" in line and "--restart" in line

    other = tmp_path / "other.pkl"
    file = load_hflnet(world.pred)
    file.samples = file.samples[1:]
    save_hflnet(file, other)
    args = _args(world, out, "--limit", 2, "--batch-size", 1)
    args[args.index("--pred") + 1] = str(other)
    assert main(args) == 2
    line = _error_line(capsys)
    assert "different run" in line and "--pred differs" in line

    calls = _counting(monkeypatch)
    assert main(_args(world, out, "--limit", 2, "--batch-size", 1, "--preset", "haco", "--restart")) == 0
    assert calls == [1, 1] and load_refined(out).preset == "haco"


# ----------------------------------------------------------------------------------------------- bad input
def _write_pickle(path, mutate, world):
    with open(world.pred, "rb") as handle:
        raw = pickle.load(handle)
    mutate(raw)
    with open(path, "wb") as handle:
        pickle.dump(raw, handle)
    return path


def _bad_case(name, world, tmp_path):
    """(argv, expected text) of one malformed input."""
    ids = [s.sample_id for s in load_hflnet(world.pred).samples]
    base = _args(world, tmp_path / "out.pkl", "--limit", 2)

    def with_pred(path):
        args = list(base)
        args[args.index("--pred") + 1] = str(path)
        return args

    if name == "missing-pred":
        return with_pred(tmp_path / "nope.pkl"), "not found"
    if name == "wrong-format":
        return with_pred(_write_pickle(tmp_path / "p.pkl", lambda r: r.update(format="x/v0"), world)), "'format'"
    if name == "bad-ycb-id":
        path = _write_pickle(tmp_path / "p.pkl", lambda r: r["samples"][0].update(ycb_id=99), world)
        return with_pred(path), "ycb_id"
    if name == "object-model-missing":
        (tmp_path / "models").mkdir()
        args = list(base)
        args[args.index("--objects") + 1] = str(tmp_path / "models")
        return args, "--objects"
    if name == "limit-zero":
        return [*base, "--limit", "0"], "--limit"
    if name == "batch-size-zero":
        return [*base, "--batch-size", "0"], "--batch-size"
    if name == "out-is-folder":
        args = list(base)
        args[args.index("--out") + 1] = str(tmp_path)
        return args, "--out"
    if name == "mano-root-missing":
        args = list(base)
        args[args.index("--mano-root") + 1] = str(tmp_path / "no_mano")
        return args, "--mano-root"
    if name == "dexycb-missing":
        return [*base, "--dexycb", tmp_path / "no_dexycb"], "--dexycb"
    if name == "dexycb-lacks-sample":
        fake = "20200820-subject-03_20200101_000000_836212060125_000000"
        path = _write_pickle(tmp_path / "p.pkl", lambda r: r["samples"][0].update(sample_id=fake), world)
        return [*with_pred(path), "--dexycb", world.mini.root], "absent"
    if name == "contact-file-missing":
        return [*base, "--contact", "file", "--contact-file", tmp_path / "c.npz"], "not found"
    if name == "contact-file-shape":
        np.savez(tmp_path / "c.npz", sample_id=np.array(ids), hand_contact=np.zeros((len(ids), 10)))
        return [*base, "--contact", "file", "--contact-file", tmp_path / "c.npz"], "hand_contact"
    if name == "contact-file-range":
        np.savez(tmp_path / "c.npz", sample_id=np.array(ids), hand_contact=np.full((len(ids), 778), 3.0))
        return [*base, "--contact", "file", "--contact-file", tmp_path / "c.npz"], "[0, 1]"
    if name == "contact-file-ids-absent":
        np.savez(tmp_path / "c.npz", sample_id=np.array(["other"]), hand_contact=np.zeros((1, 778)))
        return [*base, "--contact", "file", "--contact-file", tmp_path / "c.npz"], "absent"
    if name == "contact-file-not-npz":
        (tmp_path / "c.npz").write_text("not an archive")
        return [*base, "--contact", "file", "--contact-file", tmp_path / "c.npz"], "readable .npz"
    if name == "contact-file-without-file-source":
        np.savez(tmp_path / "c.npz", sample_id=np.array(ids), hand_contact=np.zeros((len(ids), 778)))
        return [*base, "--contact-file", tmp_path / "c.npz"], "--contact file"
    if name == "file-source-without-contact":
        return [*base, "--contact", "file"], "hand_contact"
    if name == "cuda-unavailable":
        return [*base, "--device", "cuda"], "CUDA"
    raise AssertionError(name)


BAD_CASES = [
    "missing-pred", "wrong-format", "bad-ycb-id", "object-model-missing", "limit-zero", "batch-size-zero",
    "out-is-folder", "mano-root-missing", "dexycb-missing", "dexycb-lacks-sample", "contact-file-missing",
    "contact-file-shape", "contact-file-range", "contact-file-ids-absent", "contact-file-not-npz",
    "contact-file-without-file-source", "file-source-without-contact", "cuda-unavailable",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CASES)
def test_malformed_input_exits_2_with_one_line(case, world, tmp_path, capsys):
    if case == "cuda-unavailable" and torch.cuda.is_available():
        pytest.skip("CUDA is available")
    argv, expected = _bad_case(case, world, tmp_path)
    assert main([str(arg) for arg in argv]) == 2
    line = _error_line(capsys)
    assert expected in line, line
    assert not (tmp_path / "out.pkl").exists() and not (tmp_path / "out.pkl.partial").exists()


def test_load_refined_rejects_other_files(tmp_path, world, reference):
    with pytest.raises(InputError, match="format"):
        load_refined(world.pred)
    with pytest.raises(AssetError):
        load_refined(tmp_path / "missing.pkl")
    raw = safe_load(world.tmp / "reference" / "refined.pkl")
    del raw["samples"][0]["hand_verts"]
    with open(tmp_path / "broken.pkl", "wb") as handle:
        pickle.dump(raw, handle)
    with pytest.raises(InputError, match="hand_verts"):
        load_refined(tmp_path / "broken.pkl")


def test_registry_and_presets():
    assert set(CONTACT_SOURCES) == {"geometric", "file", "haco", "deepcontact"}
    assert set(PRESET_NAMES) == set(PRESETS)


# ----------------------------------------------------------------------------------------------- contact sources
def test_file_source_round_trip(world, reference, tiny_presets, tmp_path):
    """The geometric targets written to a contact file give the same refinement as the geometric source."""
    contact = tmp_path / "contact.npz"
    np.savez(contact, sample_id=np.array([s.sample_id for s in reference.samples]),
             hand_contact=np.stack([s.target_hand_contact for s in reference.samples]))  # fmt: skip
    out = tmp_path / "refined.pkl"
    assert main(_args(world, out, "--limit", LIMIT, "--batch-size", 2, "--contact", "file", "--contact-file",
                      str(contact))) == 0  # fmt: skip
    refined = load_refined(out)
    assert refined.contact_source == "file"
    _assert_same(refined, reference)


def test_file_source_from_prediction_field(world, reference, pred_with_contact, tiny_presets, tmp_path):
    """--contact file without --contact-file reads the predictions' own hand_contact."""
    args = _args(world, tmp_path / "refined.pkl", "--limit", 2, "--batch-size", 2, "--contact", "file")
    args[args.index("--pred") + 1] = str(pred_with_contact)
    assert main(args) == 0
    refined = load_refined(tmp_path / "refined.pkl")
    assert refined.contact_source == "file"
    _assert_same(refined, types.SimpleNamespace(samples=reference.samples[:2]))


@pytest.mark.parametrize(
    ("contact", "module"), [("haco", "haco_grasp.contact.predictor"), ("deepcontact", "contactopt_bridge.deepcontact")]
)
def test_model_sources_unavailable(contact, module, world, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)  # as if the module were not installed
    assert main(_args(world, tmp_path / "out.pkl", "--limit", 2, "--contact", contact)) == 2
    line = _error_line(capsys)
    assert f"--contact {contact} is not available" in line and "--contact geometric" in line and module in line

    monkeypatch.setitem(sys.modules, module, types.ModuleType(module))  # present, without the entry point
    assert main(_args(world, tmp_path / "out.pkl", "--limit", 2, "--contact", contact)) == 2
    assert "has no predict_" in _error_line(capsys)


def test_haco_source_calls_predictor(world, tiny_presets, tmp_path, monkeypatch, capsys):
    from PIL import Image

    seen, returned = {}, np.random.default_rng(1).uniform(size=(2, 778)).astype(np.float32)

    def predict_hand_contact(images, boxes, sides, checkpoint=None, device="cpu"):
        seen.update(images=images, boxes=boxes, sides=list(sides), checkpoint=checkpoint, device=device)
        return torch.from_numpy(returned)

    fake = types.ModuleType("haco_grasp.contact.predictor")
    fake.predict_hand_contact = predict_hand_contact
    monkeypatch.setitem(sys.modules, "haco_grasp.contact.predictor", fake)
    monkeypatch.setenv("DEX_YCB_DIR", str(world.mini.root))  # the images' root without --dexycb (no metrics)
    out = tmp_path / "refined.pkl"
    assert main(_args(world, out, "--limit", 2, "--contact", "haco", "--preset", "haco")) == 0
    predictions = load_hflnet(world.pred).samples[:2]
    expected = np.stack([np.asarray(Image.open(world.mini.root / p.color_file).convert("RGB")) for p in predictions])
    assert seen["images"].dtype == np.uint8 and seen["images"].shape == (2, 480, 640, 3)
    np.testing.assert_array_equal(seen["images"], expected)
    np.testing.assert_array_equal(seen["boxes"], np.stack([p.crop_box for p in predictions]))
    assert seen["sides"] == ["right", "right"] and seen["checkpoint"] is None and seen["device"] == "cpu"
    refined = load_refined(out)
    assert refined.contact_source == "haco" and refined.preset == "haco"
    np.testing.assert_array_equal(np.stack([s.target_hand_contact for s in refined.samples]), returned)

    def missing_checkpoint(*args, **kwargs):
        raise AssetError("HACO checkpoint not found: /nowhere/haco.pth; download it")

    fake.predict_hand_contact = missing_checkpoint
    capsys.readouterr()
    assert main(_args(world, tmp_path / "again.pkl", "--limit", 2, "--contact", "haco")) == 2
    line = _error_line(capsys)
    assert "--contact haco is not available: HACO checkpoint not found" in line

    fake.predict_hand_contact = predict_hand_contact
    no_box = _write_pickle(tmp_path / "no_box.pkl", lambda r: r["samples"][0].update(crop_box=None), world)
    args = _args(world, tmp_path / "no_box_refined.pkl", "--limit", 2, "--contact", "haco")
    args[args.index("--pred") + 1] = str(no_box)
    assert main(args) == 2
    assert "has no crop_box" in _error_line(capsys)


def test_deepcontact_source_object_targets(world, tiny_presets, tmp_path, monkeypatch):
    received = {}

    def predict_contact(grasps, checkpoint=None, device="cpu"):
        received["ids"] = [g.meta["sample_id"] for g in grasps]
        points = np.stack([g.obj_verts[:64] for g in grasps])
        normals = np.broadcast_to([0.0, 0.0, 1.0], points.shape)
        return types.SimpleNamespace(
            hand=np.full((len(grasps), 778), 0.5), obj=np.full((len(grasps), 64), 0.25), obj_points=points,
            obj_normals=normals,
        )  # fmt: skip

    fake = types.ModuleType("contactopt_bridge.deepcontact")
    fake.predict_contact = predict_contact
    monkeypatch.setitem(sys.modules, "contactopt_bridge.deepcontact", fake)
    out = tmp_path / "refined.pkl"
    assert main(_args(world, out, "--limit", 2, "--contact", "deepcontact")) == 0
    refined = load_refined(out)
    assert received["ids"] == [s.sample_id for s in refined.samples]
    for sample in refined.samples:
        assert sample.target_obj_contact.shape == (64,) and np.all(sample.target_obj_contact == 0.25)
        assert sample.target_obj_points.shape == (64, 3) and np.all(sample.target_hand_contact == 0.5)


# ----------------------------------------------------------------------------------------------- scale-out, CLI
def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_match_one(world, reference, pred_with_contact, tiny_presets, tmp_path, monkeypatch, capsys):
    """torchrun's environment for 2 ranks: rank 1 in a subprocess, rank 0 in this process (its imports are warm).

    The contact targets come from the prediction file (``--contact file``), equal to the reference's geometric
    ones, so the subprocess needs no mesh queries.
    """
    out = tmp_path / "refined.pkl"
    argv = _args(world, out, "--limit", LIMIT, "--batch-size", 2, "--contact", "file")
    argv[argv.index("--pred") + 1] = str(pred_with_contact)
    code = (
        "import sys\n"
        "from haco_grasp.optimize.config import FAST, PRESETS\n"
        "PRESETS['fast'] = FAST.replace(n_iter=5, n_restarts=1, sdf_pitch=0.004)\n"
        "from haco_grasp.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, **env, RANK="1", LOCAL_RANK="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        for name, value in {**env, "RANK": "0", "LOCAL_RANK": "0"}.items():
            monkeypatch.setenv(name, value)
        rank0 = main(argv)
        rank1_output = proc.communicate(timeout=150)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (rank0, proc.returncode) == (0, 0), rank1_output
    assert "refined 4 samples" in capsys.readouterr().out and "refined 4 samples" not in rank1_output
    refined = load_refined(out)
    assert refined.world_size == 2
    # other batches (rank 0: samples 0 and 2, rank 1: 1 and 3) and threads: float32 round-off only
    _assert_same(refined, reference, atol=5e-4, atol_m=2e-5)
    assert not (tmp_path / "refined.pkl.partial").exists()


def test_parser_stays_light():
    code = (
        "import sys\nfrom haco_grasp.cli import build_parser\n"
        "build_parser().parse_args(['refine', '--pred', 'a', '--out', 'b'])\n"
        "print(sorted(m for m in ('torch', 'haco_grasp.optimize', 'haco_grasp.data.dexycb') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_one_mano_cache_per_run(world, tiny_presets, tmp_path, monkeypatch):
    """Input grasps, ground truth (--dexycb) and the optimizer's layers share one ManoLayerCache: each MANO file is
    read once per run, and the optimizer's layer (own dtype and device) is never the one that builds grasps."""
    import haco_grasp.hand.conventions as conventions

    created, reads = [], []
    init, read = conventions.ManoLayerCache.__init__, conventions.read_mano_pickle

    def counting_init(self, *args, **kwargs):
        created.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(conventions.ManoLayerCache, "__init__", counting_init)
    def counting_read(path):
        reads.append(os.path.basename(path))
        return read(path)

    monkeypatch.setattr(conventions, "read_mano_pickle", counting_read)
    out = tmp_path / "refined.pkl"
    assert main(_args(world, out, "--limit", LIMIT, "--batch-size", 2, "--dexycb", world.mini.root, "--no-report")) == 0
    assert len(created) == 1 and sorted(reads) == ["MANO_LEFT.pkl", "MANO_RIGHT.pkl"]
    cache = created[0]
    assert cache.layer("right") is not cache.layer("right", dtype=torch.float32, device="cpu")
    assert load_refined(out).metrics is not None
