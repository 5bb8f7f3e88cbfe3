"""``haco-grasp refine`` on the generic ``.npz`` format: a left and a right hand on a custom object, end to end.

The file is written with ``numpy.savez`` from plain arrays (MANO parameters, sides, a mesh file name, object poses):
the hands come from the synthetic grasp planner on a custom capsule mesh, then moved 8 mm towards the object, so the
refinement has penetration to remove. The optimizer is shrunk to a few iterations.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest
import trimesh

from haco_grasp.cli import main
from haco_grasp.data.synthetic import generate_grasps
from haco_grasp.objects.procedural import ObjectMesh
from haco_grasp.optimize.config import FAST, PRESETS
from haco_grasp.refine import RefineConfig, auto_contact_source, load_refined

TINY = FAST.replace(n_iter=8, n_restarts=1, sdf_pitch=0.004)


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    """A generic .npz of one right and one left hand holding ``capsule.ply`` (in ``objects/``)."""
    root = tmp_path_factory.mktemp("generic")
    objects = root / "objects"
    objects.mkdir()
    capsule = trimesh.creation.capsule(height=0.07, radius=0.028, count=[24, 24])
    capsule.export(objects / "capsule.ply")
    mesh = ObjectMesh("capsule", np.asarray(capsule.vertices), np.asarray(capsule.faces), float(capsule.volume),
                      capsule.extents, "mesh")  # fmt: skip
    grasps = [generate_grasps(1, seed=0, objects=[mesh], side="right", progress=False)[0],
              generate_grasps(1, seed=1, objects=[mesh], side="left", progress=False)[0]]  # fmt: skip
    # place each grasp somewhere in front of a camera, and push the hand 8 mm into the object
    shift = np.array([[0.05, 0.0, 0.5], [-0.05, 0.02, 0.6]])
    transl, obj_pose = [], []
    for grasp, offset in zip(grasps, shift, strict=True):
        towards = grasp.obj_translation - grasp.hand_joints[9]
        transl.append(grasp.transl + offset + 0.008 * towards / np.linalg.norm(towards))
        obj_pose.append(np.concatenate([grasp.obj_rotation, (grasp.obj_translation + offset)[:, None]], axis=1))
    path = root / "my.npz"
    np.savez(
        path,
        side=np.array(["right", "left"]),
        object=np.array(["capsule.ply", "capsule.ply"]),
        global_orient=np.stack([g.global_orient for g in grasps]),
        hand_pose=np.stack([g.hand_pose for g in grasps]),
        betas=np.stack([g.betas for g in grasps]),
        transl=np.stack(transl),
        obj_pose=np.stack(obj_pose),
        sample_id=np.array(["right_0", "left_0"]),
    )
    return types.SimpleNamespace(root=root, pred=path, objects=objects, grasps=grasps)


@pytest.fixture
def tiny_presets(monkeypatch):
    monkeypatch.setitem(PRESETS, "fast", TINY)


@pytest.fixture(scope="module")
def refined_run(own_data):
    """``refine`` on the generic file with every output: CSV, meshes, ContactOpt export, HTML report."""
    out = own_data.root / "run" / "refined.pkl"
    argv = ["refine", "--pred", str(own_data.pred), "--objects", str(own_data.objects), "--out", str(out),
            "--mano-root", "synthetic", "--contact", "geometric", "--no-progress", "--export-meshes",
            str(own_data.root / "meshes"), "--export-contactopt", str(own_data.root / "co.pkl")]  # fmt: skip
    saved = PRESETS["fast"]
    PRESETS["fast"] = TINY
    try:
        code = main(argv)
    finally:
        PRESETS["fast"] = saved
    assert code == 0
    return types.SimpleNamespace(out=out, csv=out.with_name("refined.pkl.frames.csv"),
                                 html=out.with_name("refined.pkl.report.html"), meshes=own_data.root / "meshes",
                                 contactopt=own_data.root / "co.pkl")  # fmt: skip


def test_refine_runs_on_generic_npz_with_both_hands(refined_run):
    refined = load_refined(refined_run.out)
    assert [s.sample_id for s in refined.samples] == ["right_0", "left_0"]
    assert [s.mano_side for s in refined.samples] == ["right", "left"]
    assert all(s.ycb_id == -1 and s.iterations == TINY.n_iter for s in refined.samples)
    assert all(np.isfinite(s.hand_verts).all() and s.target_hand_contact.sum() > 0 for s in refined.samples)
    assert all(len(s.loss_history["penetration"]) == TINY.n_iter for s in refined.samples)


def test_per_frame_metrics_in_csv_and_output_file(refined_run, own_data):
    from haco_grasp.geometry.labels import hand_contact_labels
    from haco_grasp.metrics import max_penetration_depth
    from haco_grasp.refine.frames import CSV_COLUMNS

    with refined_run.csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(CSV_COLUMNS) and [r["sample_id"] for r in rows] == ["right_0", "left_0"]
    refined = load_refined(refined_run.out)
    assert [m["sample_id"] for m in refined.frame_metrics] == ["right_0", "left_0"]
    capsule = trimesh.load(own_data.objects / "capsule.ply", process=False)
    for row, stored, sample in zip(rows, refined.frame_metrics, refined.samples, strict=True):
        assert row["side"] == sample.mano_side and row["object"] == "capsule.ply"
        # recomputed independently from the stored refined hand and object pose
        posed = np.asarray(capsule.vertices) @ sample.obj_pose[:, :3].T.astype(float) + sample.obj_pose[:, 3]
        depth = max_penetration_depth(sample.hand_verts.astype(float), posed, np.asarray(capsule.faces))
        assert float(row["penetration_mm_refined"]) == pytest.approx(depth, rel=1e-3, abs=1e-3)
        labels = hand_contact_labels(sample.hand_verts.astype(float), posed, np.asarray(capsule.faces))
        assert int(row["contact_verts_refined"]) == stored["contact_verts_refined"] == int(labels.sum())
        assert stored["penetration_mm_input"] > 0.5  # the inputs were pushed 8 mm into the object
        assert stored["contact_verts_target"] == int((sample.target_hand_contact >= 0.5).sum())


def test_meshes_and_contactopt_export(refined_run):
    from contactopt_bridge.contactopt_io import read_contactopt_pickle

    names = sorted(p.name for p in refined_run.meshes.iterdir())
    assert names == sorted(f"{s}_{k}.ply" for s in ("right_0", "left_0")
                           for k in ("input_hand", "refined_hand", "target_hand", "object"))  # fmt: skip
    refined = load_refined(refined_run.out)
    mesh = trimesh.load(refined_run.meshes / "left_0_refined_hand.ply", process=False)
    np.testing.assert_allclose(mesh.vertices, refined.samples[1].hand_verts, atol=1e-6)
    red = mesh.visual.vertex_colors[:, 0].astype(int) - mesh.visual.vertex_colors[:, 1].astype(int) > 100
    assert int(red.sum()) == refined.frame_metrics[1]["contact_verts_refined"]  # contact drawn red
    entries = read_contactopt_pickle(refined_run.contactopt)
    assert len(entries) == 2 and entries[1]["out_ho"].is_left
    np.testing.assert_allclose(entries[0]["out_ho"].hand_verts, refined.samples[0].hand_verts, atol=1e-6)


def test_html_report_is_self_contained(refined_run):
    text = refined_run.html.read_text(encoding="utf-8")
    assert text.count('<div id="frame-') == 2 and "right_0" in text and "left_0" in text
    assert not re.search(r"<script[^>]*\bsrc=", text) and "plotly.js" in text  # plotly.js is embedded, nothing fetched
    assert "Loss curves" in text and "contact_f1_refined" in text


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="needs chromium (apt-get install -y chromium)")
def test_html_report_renders_in_headless_chromium(refined_run, tmp_path):
    """The report opened in headless Chromium shows the 3-D views (WebGL meshes), not a blank page."""
    from PIL import Image

    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-unsafe-swiftshader", f"--screenshot={shot}", "--window-size=1200,900",
             "--virtual-time-budget=15000"]  # fmt: skip
    page = refined_run.html.with_name("views_only.html")
    text = refined_run.html.read_text(encoding="utf-8")
    # show only the 3-D views, so that the first fills the screenshot (headless screenshots of a scrolled page
    # come out blank)
    page.write_text(text.replace("</head>", "<style>body > *:not(.frame) {display: none;}</style></head>"),
                    encoding="utf-8")  # fmt: skip
    subprocess.run([_chromium(), *flags, page.as_uri()], check=True, timeout=120, capture_output=True)
    shutil.copy(shot, refined_run.html.with_name("report_screenshot.png"))  # kept beside the report for a look
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    warm = (image[..., 0] - image[..., 2] > 40).mean()  # skin to red: the hands (tables, text and axes are grey)
    blue = (image[..., 2] - image[..., 0] > 60).mean()  # the object (mostly behind the hand)
    assert image.std() > 10, "blank screenshot"
    # calibrated on screenshots: 3-D views ~6 % warm pixels; the report's top (tables, loss curves) ~0.2 %
    assert warm > 0.02 and blue > 0.001, f"no hand / object drawn: warm {warm:.4f}, blue {blue:.4f}"


def test_mano_root_synthetic_names_the_shipped_hand(monkeypatch):
    from haco_grasp.hand import synthetic_mano_root
    from haco_grasp.hand.mano import MANO_ROOT_ENV, resolve_mano_path

    assert resolve_mano_path("left", "synthetic") == synthetic_mano_root() / "MANO_LEFT.pkl"
    monkeypatch.setenv(MANO_ROOT_ENV, "synthetic")
    assert resolve_mano_path("right") == synthetic_mano_root() / "MANO_RIGHT.pkl"


def test_auto_contact_source_picks_the_best_the_inputs_allow(tmp_path, monkeypatch):
    import haco_grasp.targets as refine_module

    image = tmp_path / "frame.png"
    image.write_bytes(b"")
    box = np.array([0.0, 0.0, 10.0, 10.0], np.float32)

    def pred(**fields):
        values = {"sample_id": "s", "image_path": None, "color_file": "", "crop_box": None, "hand_contact": None}
        return types.SimpleNamespace(**{**values, **fields})

    config = RefineConfig()
    monkeypatch.setattr(refine_module, "learned_contact_sources", lambda: ["haco", "deepcontact"])
    assert auto_contact_source([pred(hand_contact=np.zeros(778))], config)[0] == "file"
    assert auto_contact_source([pred(image_path=str(image), crop_box=box)], config)[0] == "haco"
    assert auto_contact_source([pred(image_path=str(image))], config)[0] == "deepcontact"  # no crop box
    missing = pred(image_path=str(tmp_path / "gone.png"), crop_box=box)
    source, why = auto_contact_source([missing], config)
    assert source == "deepcontact" and "'s'" in why
    monkeypatch.setattr(refine_module, "learned_contact_sources", lambda: [])
    assert auto_contact_source([pred(image_path=str(image), crop_box=box)], config)[0] == "geometric"
    assert Path(image).is_file()


def test_default_contact_is_auto_and_resolved_in_the_output(own_data, tiny_presets, tmp_path):
    contact = np.full((2, 778), 0.0)
    contact[:, :100] = 1.0
    with np.load(own_data.pred) as raw:
        arrays = dict(raw)
    pred = tmp_path / "with_contact.npz"
    np.savez(pred, **arrays, hand_contact=contact)
    out = tmp_path / "refined.pkl"
    assert main(["refine", "--pred", str(pred), "--objects", str(own_data.objects), "--out", str(out),
                 "--mano-root", "synthetic", "--no-progress"]) == 0  # fmt: skip
    refined = load_refined(out)
    assert refined.contact_source == "file"
    np.testing.assert_array_equal(refined.samples[1].target_hand_contact, contact[1])


def test_deepcontact_source_refines_left_and_right_hands(own_data, tiny_presets, tmp_path):
    from contactopt_bridge.deepcontact import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("shipped DeepContact checkpoint not installed")
    out = tmp_path / "refined.pkl"
    assert main(["refine", "--pred", str(own_data.pred), "--objects", str(own_data.objects), "--out", str(out),
                 "--mano-root", "synthetic", "--contact", "deepcontact", "--no-progress"]) == 0  # fmt: skip
    right, left = load_refined(out).samples
    assert left.mano_side == "left" and left.target_obj_points is not None
    # the object targets lie on each grasp's own (camera-frame) object, not on its mirror image
    with np.load(own_data.pred) as raw:
        centres = raw["obj_pose"][:, :, 3]
    for sample, centre in zip((right, left), centres, strict=True):
        assert np.linalg.norm(sample.target_obj_points.mean(0) - centre) < 0.03


@pytest.mark.parametrize(
    ("extra", "match"),
    [(["--report-frames", "-1"], "--report-frames"), (["--dexycb", "."], "--dexycb")],
)
def test_bad_output_options_are_one_line_errors(own_data, tmp_path, capsys, extra, match):
    argv = ["refine", "--pred", str(own_data.pred), "--objects", str(own_data.objects), "--out",
            str(tmp_path / "r.pkl"), "--mano-root", "synthetic", "--no-progress", *extra]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def test_contactopt_export_carries_the_dexycb_ground_truth(tmp_path, tiny_presets):
    from contactopt_bridge.contactopt_io import read_contactopt_pickle
    from haco_grasp.data.dexycb import DexYCB
    from haco_grasp.data.hflnet import load_hflnet
    from haco_grasp.data.mini_dexycb import write_mini_dexycb, write_mini_hflnet

    mini = write_mini_dexycb(tmp_path / "dexycb", n_subjects=1, n_sequences=10, n_serials=1, n_frames=3, n_left=1)
    pred = tmp_path / "hflnet.pkl"
    write_mini_hflnet(mini, pred)
    out = tmp_path / "refined.pkl"
    assert main(["refine", "--pred", str(pred), "--out", str(out), "--mano-root", str(mini.mano_root), "--dexycb",
                 str(mini.root), "--contact", "geometric", "--no-progress", "--no-report", "--export-contactopt",
                 str(tmp_path / "co.pkl"), "--limit", "4"]) == 0  # fmt: skip
    assert not out.with_name("refined.pkl.report.html").exists() and out.with_name("refined.pkl.frames.csv").is_file()
    dataset = DexYCB(mini.root, split="s0_test", subset="all", strict=False)
    entries = read_contactopt_pickle(tmp_path / "co.pkl")
    predictions = load_hflnet(pred).samples[:4]
    assert len(entries) == len(predictions) and {p.mano_side for p in predictions} == {"right", "left"}
    for entry, prediction in zip(entries, predictions, strict=True):
        truth = dataset.sample_at_index(dataset.index_of(prediction.sample_id))
        np.testing.assert_allclose(entry["gt_ho"].hand_joints, truth.joint_3d[0], atol=1e-4)
        assert entry["gt_ho"].is_left == (prediction.mano_side == "left")


def test_haco_on_the_frames_own_images_is_the_auto_choice(own_data, tiny_presets, tmp_path):
    from PIL import Image

    from haco_grasp.contact.predictor import DEFAULT_CHECKPOINT
    from haco_grasp.data.images import render_grasp_images

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("shipped HACO checkpoint not installed")
    crops = render_grasp_images(own_data.grasps, seed=0, progress=False)
    (tmp_path / "img").mkdir()
    for name, crop in zip(("r.png", "l.png"), crops, strict=True):
        Image.fromarray(crop.image).save(tmp_path / "img" / name)
    size = float(crops[0].image.shape[0])
    with np.load(own_data.pred) as raw:
        arrays = dict(raw)
    pred = tmp_path / "with_images.npz"
    np.savez(pred, **arrays, image_path=np.array(["img/r.png", "img/l.png"]),
             crop_box=np.array([[0.0, 0.0, size, size]] * 2))  # fmt: skip
    out = tmp_path / "refined.pkl"
    assert main(["refine", "--pred", str(pred), "--objects", str(own_data.objects), "--out", str(out),
                 "--mano-root", "synthetic", "--no-progress", "--no-report"]) == 0  # fmt: skip
    refined = load_refined(out)
    assert refined.contact_source == "haco"
    for sample in refined.samples:
        target = sample.target_hand_contact
        assert 0.0 <= target.min() and target.max() <= 1.0 and len(np.unique(target)) > 2  # probabilities
