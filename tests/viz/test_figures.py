"""Figures that teach: palm/back orientation, colour bars, change histograms, the refinement figure, the visual
report's index."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from haco_grasp.errors import InputError
from haco_grasp.viz.colormap import CONTACT_RED, SKIN
from haco_grasp.viz.figures import color_bar, hand_heat_map_figure, histogram_image, palm_frame


def _joints_16(side: str) -> np.ndarray:
    """A flat hand, fingers along +y, palm towards +z: index on +x for the right hand (the thumb side)."""
    sign = 1.0 if side == "right" else -1.0
    joints = np.zeros((16, 3))
    joints[1] = (sign * 0.02, 0.08, 0.0)  # index1
    joints[4] = (0.0, 0.09, 0.0)  # middle1
    joints[7] = (-sign * 0.03, 0.07, 0.0)  # pinky1
    return joints


@pytest.mark.parametrize("side", ["right", "left"])
def test_palm_frame_points_out_of_the_palm(side):
    normal, finger = palm_frame(_joints_16(side), side)
    np.testing.assert_allclose(normal, [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(finger, [0.0, 1.0, 0.0], atol=1e-12)
    joints_21 = np.zeros((21, 3))
    joints_21[[0, 5, 9, 17]] = _joints_16(side)[[0, 1, 4, 7]]
    np.testing.assert_allclose(palm_frame(joints_21, side)[0], normal)


def test_palm_frame_rejects_bad_input():
    with pytest.raises(InputError, match="shape"):
        palm_frame(np.zeros((5, 3)), "right")
    with pytest.raises(InputError, match="collinear"):
        palm_frame(np.zeros((16, 3)), "right")


def test_synthetic_hands_palm_normals_mirror():
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path

    normals = {}
    for side in ("right", "left"):
        data = read_mano_pickle(resolve_mano_path(side, synthetic_mano_root()))
        normals[side] = palm_frame(np.asarray(data.J_regressor @ data.v_template), side)[0]
    np.testing.assert_allclose(normals["left"], normals["right"] * [-1.0, 1.0, 1.0], atol=1e-6)  # mirror in x


def test_color_bar_runs_from_skin_to_red_with_its_mark():
    bar = color_bar(width=300, mark=(0.5, "threshold 0.5"))
    row = bar[bar.shape[0] // 2 - 8]  # a row through the bar
    middle = np.flatnonzero(np.abs(row.astype(int) - 255).sum(1) > 30)
    assert middle.size > 200
    left, right = row[middle[2]] / 255.0, row[middle[-3]] / 255.0
    np.testing.assert_allclose(left, SKIN, atol=0.03)
    np.testing.assert_allclose(right, CONTACT_RED, atol=0.03)


def test_histogram_colours_improvements_and_worsenings():
    image = histogram_image([-3.0, -2.0, -2.5, 4.0], "MPJPE change", "mm")
    blue = np.all(image == (70, 130, 180), axis=-1).sum()
    red = np.all(image == (214, 96, 77), axis=-1).sum()
    assert blue > 2 * red > 0  # three frames better, one worse
    empty = histogram_image([float("nan")], "MPJPE change", "mm")
    assert empty.shape == image.shape


def test_heat_map_figure_has_crop_two_views_and_bar():
    from haco_grasp.hand.assets import synthetic_mano_root
    from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path

    data = read_mano_pickle(resolve_mano_path("left", synthetic_mano_root()))
    verts = np.asarray(data.v_template)
    values = (verts[:, 1] > np.median(verts[:, 1])).astype(float)
    crop = np.zeros((64, 64, 3), np.uint8)
    figure = hand_heat_map_figure(verts, data.faces, data.J_regressor @ verts, values, "left", crop=crop,
                                  threshold=0.5, size=96)  # fmt: skip
    assert figure.shape[1] >= 3 * 96 and figure.shape[0] > 96 + 40
    views = figure[:96, 96:]  # right of the crop
    assert (np.abs(views.astype(int) - np.array(CONTACT_RED) * 255).sum(-1) < 90).any()  # contact is drawn


def _load_visual_report():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "visual_report.py"
    spec = importlib.util.spec_from_file_location("visual_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_visual_report_shows_its_images(tmp_path, monkeypatch):
    import haco_grasp.optimize as optimize_module
    from haco_grasp.optimize.config import FAST

    tiny = FAST.replace(n_iter=3, n_restarts=1, sdf_pitch=0.004)
    monkeypatch.setattr(optimize_module, "get_config", lambda name: tiny)
    out = tmp_path / "report"
    paths = _load_visual_report().main(["--n", "2", "--out", str(out), "--no-progress"])
    assert [p.name for p in paths] == ["grasp_00.png", "grasp_01.png"]
    page = (out / "index.html").read_text()
    markdown = (out / "index.md").read_text()
    for name in ("grasp_00.png", "grasp_01.png", "change_mpjpe.png", "change_penetration.png"):
        assert (out / name).is_file()
        assert f'<img src="{name}"' in page and f"]({name})" in markdown
    with Image.open(out / "grasp_00.png") as figure:  # four rows (truth, input, target, refined) and a colour bar
        assert figure.height > 4 * 200
