"""Per-frame metrics, exports and the HTML report of refine (haco_grasp.refine.frames, haco_grasp.refine.report).

References: numpy / trimesh on the same arrays (displacement, contact F1, inside vertices), a hand–object pair built
with :meth:`Grasp.from_mano`, the refined hand being the input moved by a known offset.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import trimesh

from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError
from haco_grasp.hand import synthetic_mano_root
from haco_grasp.hand.conventions import ManoLayerCache
from haco_grasp.objects.procedural import make_object
from haco_grasp.refine.frames import (
    CSV_COLUMNS,
    build_frames,
    penetrating_vertices,
    refined_grasp,
    target_contact_labels,
)
from haco_grasp.refine.report import write_html_report, write_outputs

SHIFT = np.array([0.0, 0.0, 0.004])


@pytest.fixture(scope="module")
def samples():
    layers = ManoLayerCache(synthetic_mano_root())
    box = make_object("box")
    out = []
    for index, side in enumerate(("right", "left")):
        params = {"global_orient": np.zeros(3), "hand_pose": np.zeros(45), "transl": np.array([0.0, 0.0, 0.02])}
        grasp = Grasp.from_mano(params, layers.layer(side), box, meta={"object": "box"})
        target = np.zeros(778)
        target[:200] = 0.9
        record = {
            "sample_id": f"s{index}",
            "global_orient": grasp.global_orient,
            "hand_pose": grasp.hand_pose,
            "betas": grasp.betas,
            "transl": grasp.transl + SHIFT,
            "hand_verts": grasp.hand_verts + SHIFT,
            "hand_joints": grasp.hand_joints + SHIFT,
            "obj_pose": np.concatenate([grasp.obj_rotation, grasp.obj_translation[:, None]], axis=1),
            "target_hand_contact": target,
            "loss": 0.5,
            "iterations": 3,
            "seconds": 0.1,
            "loss_history": {"total": np.array([1.0, 0.7, 0.5]), "penetration": np.array([0.2, 0.0, 0.0])},
        }
        out.append((grasp, record))
    return out


def test_refined_grasp_takes_the_record(samples):
    grasp, record = samples[0]
    refined = refined_grasp(grasp, record)
    np.testing.assert_allclose(refined.hand_verts, grasp.hand_verts + SHIFT)
    np.testing.assert_allclose(refined.transl, grasp.transl + SHIFT)
    assert refined.side == grasp.side and refined.object_name == grasp.object_name


def test_refined_grasp_of_a_record_is_the_optimizers_refined_grasp(samples):
    """refine rebuilds refined grasps from its records exactly as OptimizeResult.to_grasps does from the tensors."""
    import types

    import torch

    from haco_grasp.optimize.optimizer import OptimizeResult
    from haco_grasp.refine.output import records
    from haco_grasp.targets import ContactTargets

    grasps = [grasp for grasp, _ in samples]
    rng = np.random.default_rng(0)

    def tensor(*shape):
        return torch.as_tensor(rng.normal(size=(2, *shape)), dtype=torch.float32)

    rotations = torch.as_tensor(np.stack([g.obj_rotation for g in grasps]), dtype=torch.float32)
    result = types.SimpleNamespace(
        global_orient=tensor(3), hand_pose=tensor(45), betas=tensor(10), transl=tensor(3), verts=tensor(778, 3),
        joints=tensor(21, 3), obj_rotation=rotations,
        obj_translation=tensor(3), loss=torch.zeros(2), chosen_restart=torch.zeros(2, dtype=torch.long), iterations=1,
        loss_history={"total": torch.zeros(1, 2)},
    )  # fmt: skip
    predictions = [types.SimpleNamespace(sample_id=f"s{i}", dex_index=i, mano_side=g.side, ycb_id=-1)
                   for i, g in enumerate(grasps)]  # fmt: skip
    rows = records(predictions, result, ContactTargets(hand=None), 1.0)
    direct = OptimizeResult.to_grasps(result, grasps)
    for grasp, row, expected in zip(grasps, rows, direct, strict=True):
        rebuilt = refined_grasp(grasp, row)
        for name in ("global_orient", "hand_pose", "betas", "transl", "hand_verts", "hand_joints", "obj_rotation",
                     "obj_translation", "hand_contact"):  # fmt: skip
            np.testing.assert_array_equal(getattr(rebuilt, name), getattr(expected, name), err_msg=name)
            assert getattr(rebuilt, name).dtype == np.float64


def test_target_thresholds_per_source():
    values = np.array([0.05, 0.15, 0.45, 0.55])
    np.testing.assert_array_equal(target_contact_labels(values, "haco"), [False, False, False, True])
    np.testing.assert_array_equal(target_contact_labels(values, "deepcontact"), [False, True, True, True])


def test_frame_metrics_against_numpy_and_trimesh(samples):
    frames = build_frames(samples, "file", pitch=0.004)
    for frame, (grasp, record) in zip(frames, samples, strict=True):
        m = frame.metrics
        assert (m.sample_id, m.side, m.object, m.iterations) == (record["sample_id"], grasp.side, "box", 3)
        assert m.hand_shift_mm == pytest.approx(4.0, abs=1e-6)
        posed = trimesh.Trimesh(grasp.obj_verts, grasp.obj_faces, process=False)
        inside = posed.contains(frame.after.hand_verts)
        assert abs(int(inside.sum()) - m.penetrating_verts_refined) <= 2
        np.testing.assert_array_equal(frame.penetrating_after, penetrating_vertices(frame.after))
        target = record["target_hand_contact"] >= 0.5
        achieved = frame.after.hand_contact > 0.5
        tp = np.sum(target & achieved)
        expected = 2 * tp / (target.sum() + achieved.sum())
        assert m.contact_f1_refined == pytest.approx(expected)
        assert m.contact_verts_target == 200 and m.contact_verts_refined == int(achieved.sum())
        assert (m.penetration_mm_input > 0) == (m.penetrating_verts_input > 0)


def test_outputs_and_report(samples, tmp_path):
    frames = build_frames(samples, "file", pitch=0.004)
    written = write_outputs(frames, tmp_path / "f.csv", meshes_dir=tmp_path / "m", report_path=tmp_path / "r.html",
                            report_frames=1, title="t <1>", notes=["note & more"])  # fmt: skip
    with (tmp_path / "f.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS and [r["sample_id"] for r in rows] == ["s0", "s1"]
    assert len(written["meshes"]) == 8
    target = trimesh.load(tmp_path / "m" / "s1_target_hand.ply", process=False)
    red = target.visual.vertex_colors[:, 0].astype(int) - target.visual.vertex_colors[:, 1].astype(int) > 100
    assert red[:200].all() and not red[200:].any()  # 0.9 is above the 0.5 threshold, 0 below
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert text.count('<div id="frame-') == 1 and "3-D views (1 of 2 frames)" in text
    assert "t &lt;1&gt;" in text and "note &amp; more" in text  # escaped


def test_report_refuses_bad_input(samples, tmp_path):
    with pytest.raises(InputError, match="no frames"):
        write_html_report(tmp_path / "r.html", [])
    with pytest.raises(InputError, match="report-frames"):
        write_html_report(tmp_path / "r.html", build_frames(samples[:1], "file", pitch=0.004), max_views=-1)
