"""What ``haco-grasp refine`` writes besides ``refined.pkl``: per-frame metrics, meshes, a ContactOpt export and a
self-contained interactive HTML report (plotly, its JavaScript embedded once).

Files (:func:`write_outputs`; the frames and their metrics come from :mod:`haco_grasp.refine.frames`):

- ``<out>.frames.csv``: one row per frame, :data:`~haco_grasp.refine.frames.CSV_COLUMNS`;
- with ``meshes_dir``, four PLY files per frame, ``<sample>_{input,refined,target}_hand.ply`` and
  ``<sample>_object.ply``, hand vertex colours = contact (skin -> red: the achieved 1 cm contact of the input and
  refined hands; the target on the refined hand, scaled so that its contact threshold is the middle colour);
- with ``contactopt_path``, ContactOpt's ``optimized_<split>.pkl`` format
  (:func:`contactopt_bridge.contactopt_io.write_contactopt_results`; ``gt_ho`` is the ground truth when known, else
  the input);
- with ``report_path``, the HTML report (:func:`write_html_report`).

The report's contents, top to bottom: the title and run notes; the mean metrics, input vs refined; the per-frame metric
table (the columns of ``<out>.frames.csv``); the loss curves of every frame (total loss per iteration, log scale); then,
for the first ``max_views`` frames, a 3-D view with three panels:

1. **target contact**: the refined hand coloured by the contact target (skin -> red; the target's contact threshold
   is the middle colour), the input hand as a translucent grey mesh, the object in blue;
2. **achieved contact**: the refined hand coloured by its achieved contact (red: vertices within 1 cm of the object;
   magenta: vertices inside the object, also marked as dots), the object;
3. the frame's loss terms per iteration.

Coordinates are shown in millimetres relative to the refined object's position. The file needs no network access:
open it in any browser (3-D views need WebGL). Figures are written with ``plotly.io.to_html``; nothing is rendered
here.
"""

from __future__ import annotations

import csv
import html
import io
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from haco_grasp.atomic import atomic_write_bytes
from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError
from haco_grasp.refine.frames import CSV_COLUMNS, RefinedFrame
from haco_grasp.viz.colormap import CONTACT_RED, OBJECT_PALETTE, SKIN

__all__ = ["write_html_report", "write_outputs"]

logger = logging.getLogger(__name__)

_PENETRATION_COLOUR = "rgb(214, 0, 214)"
_INPUT_COLOUR = "rgb(120, 120, 120)"
_SUMMARY = (
    ("penetration_mm", "max. penetration (mm)"),
    ("intersection_cm3", "intersection volume (cm³)"),
    ("penetrating_verts", "hand vertices inside the object"),
    ("contact_verts", "hand vertices in contact (1 cm)"),
    ("contact_f1", "contact F1 vs target"),
)


def _rgb(colour: Sequence[float]) -> str:
    return "rgb({}, {}, {})".format(*(int(round(255 * c)) for c in colour))


_CONTACT_SCALE = [[0.0, _rgb(SKIN)], [1.0, _rgb(CONTACT_RED)]]


def _mesh(go, verts: np.ndarray, faces: np.ndarray, name: str, **style):
    style = {"showlegend": True, **style}
    return go.Mesh3d(x=verts[:, 0], y=verts[:, 1], z=verts[:, 2], i=faces[:, 0], j=faces[:, 1], k=faces[:, 2],
                     name=name, flatshading=False, **style)  # fmt: skip


def _frame_figure(go, make_subplots, frame: RefinedFrame, show_scale: bool):
    """The three-panel figure of one frame (module docstring)."""
    origin = np.asarray(frame.after.obj_translation, np.float64)

    def mm(points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, np.float64) - origin) * 1000.0  # (V, 3) millimetres, object-centred

    target = frame.target_display()
    titles = ("target contact (refined hand; grey: input hand)",
              "achieved contact (red: within 1 cm; magenta: inside)", "loss terms per iteration")  # fmt: skip
    figure = make_subplots(rows=1, cols=3, column_widths=[0.38, 0.38, 0.24], subplot_titles=titles,
                           specs=[[{"type": "scene"}, {"type": "scene"}, {"type": "xy"}]])  # fmt: skip
    hand_faces = np.asarray(frame.after.hand_faces)
    obj_verts, obj_faces = mm(frame.after.obj_verts), np.asarray(frame.after.obj_faces)
    contact_style = {"colorscale": _CONTACT_SCALE, "cmin": 0.0, "cmax": 1.0}
    scale_bar = {"colorbar": {"title": {"text": "contact", "side": "top"}, "orientation": "h", "len": 0.3,
                              "x": 0.19, "y": -0.02, "yanchor": "top", "thickness": 12, "tickvals": [0, 0.5, 1],
                              "ticktext": ["none", "threshold", "full"]}}  # fmt: skip
    # panel 2: 0 = no contact (skin), 1 = contact (red), 2 = inside the object (magenta)
    achieved = np.asarray(frame.after.hand_contact, np.float64) + 2.0 * np.asarray(frame.penetrating_after, bool)
    achieved_style = {"colorscale": [*_CONTACT_SCALE[:1], [0.5, _rgb(CONTACT_RED)], [1.0, _PENETRATION_COLOUR]],
                      "cmin": 0.0, "cmax": 2.0}  # fmt: skip
    target_values = np.zeros(len(frame.after.hand_verts)) if target is None else target
    for col, values, style in ((1, target_values, contact_style), (2, np.minimum(achieved, 2.0), achieved_style)):
        show = show_scale and col == 1
        figure.add_trace(_mesh(go, obj_verts, obj_faces, "object", color=_rgb(OBJECT_PALETTE[0]), opacity=0.55,
                               legendgroup="object", showlegend=col == 1), row=1, col=col)  # fmt: skip
        figure.add_trace(_mesh(go, mm(frame.after.hand_verts), hand_faces, "refined hand", intensity=values,
                               showscale=show, legendgroup="refined", showlegend=col == 1,
                               **style, **(scale_bar if show else {})), row=1, col=col)  # fmt: skip
    figure.add_trace(_mesh(go, mm(frame.before.hand_verts), hand_faces, "input hand", color=_INPUT_COLOUR,
                           opacity=0.25, legendgroup="input"), row=1, col=1)  # fmt: skip
    inside = mm(frame.after.hand_verts[frame.penetrating_after])
    figure.add_trace(go.Scatter3d(x=inside[:, 0], y=inside[:, 1], z=inside[:, 2], mode="markers",
                                  marker={"size": 2, "color": _PENETRATION_COLOUR}, name="inside the object"),
                     row=1, col=2)  # fmt: skip
    for term, values in (frame.loss_history or {}).items():
        values = np.asarray(values, np.float64)
        if values.size and np.any(values > 0):
            positive = np.where(values > 0, values, np.nan)  # zero: a gap on the log axis
            figure.add_trace(go.Scatter(y=positive, mode="lines", name=term, legendgroup="loss", connectgaps=False),
                             row=1, col=3)  # fmt: skip
    figure.update_yaxes(type="log", title_text="weighted loss", exponentformat="power", row=1, col=3)
    axes = {"xaxis_title": "x mm", "yaxis_title": "y mm", "zaxis_title": "z mm", "aspectmode": "data"}
    figure.update_layout(scene=axes, scene2=axes, height=560, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         legend={"orientation": "h", "x": 0.42, "y": -0.02, "yanchor": "top", "entrywidth": 120,
                                 "entrywidthmode": "pixels"})  # fmt: skip
    return figure


def _loss_figure(go, frames: Sequence[RefinedFrame]):
    figure = go.Figure()
    for frame in frames[:50]:
        if not frame.loss_history:
            continue
        history = frame.loss_history
        total = history.get("total", np.sum([np.asarray(v, np.float64) for v in history.values()], axis=0))
        figure.add_trace(go.Scatter(y=np.where(total > 0, total, np.nan), mode="lines", name=frame.metrics.sample_id))
    figure.update_layout(title="total loss per iteration (first 50 frames)", xaxis_title="iteration",
                         yaxis_title="loss", yaxis_type="log", height=360,
                         margin={"l": 10, "r": 10, "t": 40, "b": 10})  # fmt: skip
    return figure


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.3f}"
    return html.escape(str(value))


def _mean(frames: Sequence[RefinedFrame], name: str) -> float:
    values = np.array([getattr(f.metrics, name) for f in frames], np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def _tables(frames: Sequence[RefinedFrame]) -> str:
    rows = "".join(
        f"<tr><td>{label}</td><td>{_cell(_mean(frames, key + '_input'))}</td>"
        f"<td>{_cell(_mean(frames, key + '_refined'))}</td></tr>"
        for key, label in _SUMMARY
    )
    summary = f"<table><tr><th>mean over {len(frames)} frames</th><th>input</th><th>refined</th></tr>{rows}</table>"
    header = "".join(f"<th>{html.escape(c)}</th>" for c in frames[0].metrics.to_row())
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in frame.metrics.to_row().values()) + "</tr>" for frame in frames
    )
    return f"<h2>Metrics</h2>{summary}<h3>Per frame</h3><div class='wide'><table><tr>{header}</tr>{body}</table></div>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f1f1f1; }
td:first-child, th:first-child { text-align: left; }
.wide { overflow-x: auto; }
.note { color: #555; margin: 0.2em 0; }
.frame { border-top: 1px solid #ddd; margin-top: 1em; padding-top: 0.5em; }
"""


def write_html_report(
    path: str | os.PathLike,
    frames: Sequence[RefinedFrame],
    title: str = "haco-grasp refine",
    notes: Sequence[str] = (),
    max_views: int = 12,
) -> Path:
    """Write the report (module docstring) as one self-contained HTML file.

    Args:
        path: the ``.html`` file.
        frames: refined frames (:func:`haco_grasp.refine.frames.build_frames`).
        title: page title. notes: lines shown under it.
        max_views: 3-D views for the first ``max_views`` frames (0: none); the tables list every frame.

    Returns:
        The written path.

    Raises:
        InputError: no frames, or ``max_views`` negative.
    """
    import plotly
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not frames:
        raise InputError("write_html_report: no frames to report; refine at least one sample")
    if isinstance(max_views, bool) or not isinstance(max_views, int) or max_views < 0:
        raise InputError(f"--report-frames: expected an integer >= 0, got {max_views!r}")
    threshold_note = (
        f"Contact target threshold {frames[0].target_threshold:g} (middle of the colour scale); achieved contact: hand "
        "vertices within 1 cm of, or inside, the object."
    )
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='note'>{html.escape(line)}</p>" for line in (*notes, threshold_note)]
    parts.append(_tables(frames))
    parts.append("<h2>Loss curves</h2>")
    parts.append(_loss_figure(go, frames).to_html(full_html=False, include_plotlyjs=False))
    shown = frames[:max_views]
    parts.append(f"<h2>3-D views ({len(shown)} of {len(frames)} frames)</h2>")
    for index, frame in enumerate(shown):
        m = frame.metrics
        parts.append(
            f"<div class='frame'><h3>{html.escape(m.sample_id)} — {html.escape(m.side)} hand, "
            f"{html.escape(m.object)}</h3><p class='note'>penetration {m.penetration_mm_input:.2f} → "
            f"{m.penetration_mm_refined:.2f} mm, contact F1 {_cell(m.contact_f1_input)} → "
            f"{_cell(m.contact_f1_refined)}, hand moved {m.hand_shift_mm:.2f} mm</p>"
        )
        figure = _frame_figure(go, make_subplots, frame, show_scale=True)
        parts.append(figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"frame-{index}") + "</div>")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head>"
        f"<body>{''.join(parts)}</body></html>"
    )
    return atomic_write_bytes(Path(path), page.encode("utf-8"))


def _write_csv(path: Path, frames: Sequence[RefinedFrame]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for frame in frames:
        row = frame.metrics.to_row()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return atomic_write_bytes(path, buffer.getvalue().encode())


def _safe_name(sample_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in sample_id)


def _export_meshes(folder: Path, frames: Sequence[RefinedFrame]) -> list[Path]:
    """Four PLY files per frame (module docstring); returns the paths."""
    import trimesh

    from haco_grasp.viz.colormap import OBJECT_PALETTE, contact_colors

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for frame in frames:
        stem = _safe_name(frame.metrics.sample_id)
        hands = {
            "input": (frame.before.hand_verts, frame.before.hand_contact),
            "refined": (frame.after.hand_verts, frame.after.hand_contact),
        }
        if frame.target_hand is not None:
            hands["target"] = (frame.after.hand_verts, frame.target_display())
        for name, (verts, contact) in hands.items():
            colours = (contact_colors(contact) * 255).round().astype(np.uint8)
            mesh = trimesh.Trimesh(verts, frame.after.hand_faces, vertex_colors=colours, process=False)
            written.append(folder / f"{stem}_{name}_hand.ply")
            atomic_write_bytes(written[-1], mesh.export(file_type="ply"))
        grey = (np.array(OBJECT_PALETTE[0]) * 255).astype(np.uint8)
        obj = trimesh.Trimesh(frame.after.obj_verts, frame.after.obj_faces, process=False,
                              vertex_colors=np.tile(grey, (len(frame.after.obj_verts), 1)))  # fmt: skip
        written.append(folder / f"{stem}_object.ply")
        atomic_write_bytes(written[-1], obj.export(file_type="ply"))
    return written


def _export_contactopt(path: Path, frames: Sequence[RefinedFrame], ground_truth: Sequence[Grasp] | None) -> Path:
    from contactopt_bridge.contactopt_io import hand_object_from_grasp, write_contactopt_results

    if ground_truth is not None and len(ground_truth) != len(frames):
        raise InputError(f"--export-contactopt: {len(ground_truth)} ground truths for {len(frames)} frames")
    if ground_truth is None:
        logger.info("--export-contactopt: no ground truth (--dexycb): gt_ho holds the input grasp")
    results = []
    for index, frame in enumerate(frames):
        target = None if frame.target_hand is None else np.clip(frame.target_hand, 0.0, 1.0)
        truth = frame.before if ground_truth is None else ground_truth[index]
        results.append({
            "gt_ho": hand_object_from_grasp(truth),
            "in_ho": hand_object_from_grasp(frame.before, hand_contact=target),
            "out_ho": hand_object_from_grasp(frame.after, hand_contact=target),
        })  # fmt: skip
    return write_contactopt_results(path, results)


def write_outputs(
    frames: Sequence[RefinedFrame],
    csv_path: str | os.PathLike,
    *,
    meshes_dir: str | os.PathLike | None = None,
    contactopt_path: str | os.PathLike | None = None,
    report_path: str | os.PathLike | None = None,
    report_frames: int = 12,
    title: str = "haco-grasp refine",
    notes: Sequence[str] = (),
    ground_truth: Sequence[Grasp] | None = None,
) -> dict[str, Path | list[Path]]:
    """Write the per-frame CSV and, when asked, the meshes, the ContactOpt export and the HTML report.

    Args:
        frames: from :func:`build_frames`.
        csv_path: the per-frame metrics CSV.
        meshes_dir: folder of the PLY files, or None.
        contactopt_path: ContactOpt result pickle, or None.
        report_path: the HTML report, or None.
        report_frames: how many frames (the first) get a 3-D view in the report; the table lists all.
        title: the report's title. notes: lines printed under it (provenance, settings).
        ground_truth: ground-truth grasps in frame order (``gt_ho`` of the ContactOpt export), or None.

    Returns:
        What was written: ``csv``, ``meshes`` (list), ``contactopt``, ``report``.
    """
    written: dict[str, Path | list[Path]] = {"csv": _write_csv(Path(csv_path), frames)}
    if meshes_dir is not None:
        written["meshes"] = _export_meshes(Path(meshes_dir).expanduser(), frames)
    if contactopt_path is not None:
        written["contactopt"] = _export_contactopt(Path(contactopt_path).expanduser(), frames, ground_truth)
    if report_path is not None:
        written["report"] = write_html_report(Path(report_path).expanduser(), frames, title=title, notes=notes,
                                              max_views=report_frames)  # fmt: skip
    return written
