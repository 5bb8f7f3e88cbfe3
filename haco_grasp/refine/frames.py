"""The frames of a refine run: per frame the input and refined grasps, the contact target and the metrics below.
(Until the refine package existed this module, with :mod:`haco_grasp.refine.report`, was
``haco_grasp.refine_outputs``.)

Per frame (:class:`FrameMetrics`, no ground truth needed; the input is the prediction, the refined grasp the output):

- ``penetration_mm_*``: deepest hand vertex inside the object; ``intersection_cm3_*``: hand-object volume (object
  voxelised at ``pitch``); ``penetrating_verts_*``: hand vertices inside the (closed) object.
- ``contact_verts_*``: hand vertices within ``contact_threshold`` (1 cm) of, or inside, the object (the grasp's
  achieved contact); ``contact_verts_target``: vertices the contact target marks as in contact (probability sources:
  ``>= 0.5``; ``deepcontact``, whose targets are ContactOpt contact values, ``>= 0.1``, about 1 cm:
  :data:`TARGET_THRESHOLDS`, from :data:`haco_grasp.targets.VALUE_TARGET_THRESHOLDS`); ``contact_f1_*``: F1 of the
  achieved against the target contact (NaN when undefined).
- ``hand_shift_mm``: mean vertex displacement input -> refined; ``loss``, ``iterations``, ``seconds`` of the run.

The files are written by :mod:`haco_grasp.refine.report` (:func:`~haco_grasp.refine.report.write_outputs`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from haco_grasp.data.grasp import Grasp
from haco_grasp.targets import VALUE_TARGET_THRESHOLDS

__all__ = [
    "CSV_COLUMNS",
    "TARGET_THRESHOLDS",
    "FrameMetrics",
    "RefinedFrame",
    "build_frames",
    "penetrating_vertices",
    "refined_grasp",
    "target_contact_labels",
]

logger = logging.getLogger(__name__)

#: Contact sources whose hand targets are ContactOpt contact values, and the value meaning "in contact" (~1 cm).
TARGET_THRESHOLDS: dict[str, float] = VALUE_TARGET_THRESHOLDS
_PROBABILITY_THRESHOLD = 0.5


@dataclass
class FrameMetrics:
    """Per-frame figures of one refined sample (module docstring: definitions). NaN: undefined."""

    sample_id: str
    side: str
    object: str
    loss: float
    iterations: int
    seconds: float
    penetration_mm_input: float
    penetration_mm_refined: float
    intersection_cm3_input: float
    intersection_cm3_refined: float
    penetrating_verts_input: int
    penetrating_verts_refined: int
    contact_verts_input: int
    contact_verts_refined: int
    contact_verts_target: int
    contact_f1_input: float
    contact_f1_refined: float
    hand_shift_mm: float

    def to_row(self) -> dict[str, str | int | float]:
        """The metrics as a dict of builtins (CSV row, output-file entry)."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


#: Columns of ``<out>.frames.csv``, in order.
CSV_COLUMNS: tuple[str, ...] = tuple(item.name for item in fields(FrameMetrics))


@dataclass
class RefinedFrame:
    """One refined sample with everything the outputs need.

    before / after: the input and refined grasps (world frame, metres). target_hand: (778,) float target contact or
    None. target_threshold: the target value meaning "in contact". loss_history: term -> (T,) per-iteration values
    or None. penetrating_before / penetrating_after: (778,) bool hand vertices inside the object. metrics: the row.
    """

    before: Grasp
    after: Grasp
    target_hand: np.ndarray | None
    target_threshold: float
    loss_history: dict[str, np.ndarray] | None
    penetrating_before: np.ndarray
    penetrating_after: np.ndarray
    metrics: FrameMetrics

    def target_display(self) -> np.ndarray | None:
        """(778,) the target scaled to [0, 1] for colour maps, its contact threshold at 0.5 (None: no target)."""
        if self.target_hand is None:
            return None
        return np.clip(np.asarray(self.target_hand, np.float64) * (0.5 / self.target_threshold), 0.0, 1.0)


def refined_grasp(grasp: Grasp, record: Mapping) -> Grasp:
    """The input grasp with the refined hand and object pose of one ``refined.pkl`` sample record.

    Args:
        grasp: the input grasp.
        record: ``global_orient``, ``hand_pose``, ``betas``, ``transl``, ``hand_verts`` (778, 3), ``hand_joints``
            (21, 3), ``obj_pose`` (3, 4) [R | t].

    Returns:
        Grasp (float64 arrays, :meth:`~haco_grasp.data.grasp.Grasp.refined`); contact labels are those of the input.
    """
    pose = np.asarray(record["obj_pose"], np.float64)
    names = ("global_orient", "hand_pose", "betas", "transl", "hand_verts", "hand_joints")
    return grasp.refined(**{name: record[name] for name in names}, obj_rotation=pose[:, :3],
                         obj_translation=pose[:, 3])  # fmt: skip


def target_contact_labels(target: np.ndarray, contact_source: str) -> np.ndarray:
    """(778,) bool: the vertices a contact target marks as in contact (:data:`TARGET_THRESHOLDS`, else >= 0.5)."""
    return np.asarray(target, np.float64) >= TARGET_THRESHOLDS.get(contact_source, _PROBABILITY_THRESHOLD)


def penetrating_vertices(grasp: Grasp) -> np.ndarray:
    """(778,) bool: hand vertices inside the grasp's object (all False for an object mesh that is not closed)."""
    from haco_grasp.geometry.mesh import is_watertight
    from haco_grasp.geometry.sdf import inside_mesh

    if not is_watertight(grasp.obj_faces):
        return np.zeros(len(grasp.hand_verts), dtype=bool)
    return np.asarray(inside_mesh(np.asarray(grasp.hand_verts), grasp.obj_verts, grasp.obj_faces), dtype=bool)


def _f1(achieved: np.ndarray, target: np.ndarray | None) -> float:
    if target is None:
        return math.nan
    true_positive = float(np.sum(achieved & target))
    if not achieved.any() or not target.any():
        return math.nan
    precision, recall = true_positive / achieved.sum(), true_positive / target.sum()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def build_frames(
    samples: Sequence[tuple[Grasp, Mapping]],
    contact_source: str,
    pitch: float = 0.002,
    contact_threshold: float = 0.01,
    progress: bool = False,
) -> list[RefinedFrame]:
    """Per-frame metrics and views of refined samples.

    Args:
        samples: (input grasp, ``refined.pkl`` sample record) pairs, in output order.
        contact_source: the run's contact source (sets the target's contact threshold).
        pitch: voxel size of the intersection volume, metres.
        contact_threshold: distance of the achieved contact labels, metres.
        progress: show a progress bar.

    Returns:
        One :class:`RefinedFrame` per sample.
    """
    from haco_grasp.geometry.labels import hand_contact_labels
    from haco_grasp.metrics import intersection_volume, max_penetration_depth

    iterator = samples
    if progress and len(samples) > 1:
        from tqdm import tqdm

        iterator = tqdm(samples, desc="per-frame metrics", unit="frame")
    threshold = TARGET_THRESHOLDS.get(contact_source, _PROBABILITY_THRESHOLD)
    frames = []
    for before, record in iterator:
        after = refined_grasp(before, record)
        raw_target = record.get("target_hand_contact")
        target = None if raw_target is None else np.asarray(raw_target, np.float64)
        target_labels = None if target is None else target >= threshold
        achieved, penetrating, volume, depth = {}, {}, {}, {}
        for name, grasp in (("input", before), ("refined", after)):
            obj_verts = grasp.obj_verts
            achieved[name] = np.asarray(
                hand_contact_labels(grasp.hand_verts, obj_verts, grasp.obj_faces, contact_threshold), bool
            )
            penetrating[name] = penetrating_vertices(grasp)
            volume[name] = intersection_volume(grasp.hand_verts, grasp.hand_faces, obj_verts, grasp.obj_faces, pitch)
            depth[name] = max_penetration_depth(grasp.hand_verts, obj_verts, grasp.obj_faces)
        history = record.get("loss_history")
        metrics = FrameMetrics(
            sample_id=str(record["sample_id"]),
            side=str(before.side),
            object=str(before.meta.get("object", before.object_name)),
            loss=float(record["loss"]),
            iterations=int(record["iterations"]),
            seconds=float(record["seconds"]),
            penetration_mm_input=float(depth["input"]),
            penetration_mm_refined=float(depth["refined"]),
            intersection_cm3_input=float(volume["input"]),
            intersection_cm3_refined=float(volume["refined"]),
            penetrating_verts_input=int(penetrating["input"].sum()),
            penetrating_verts_refined=int(penetrating["refined"].sum()),
            contact_verts_input=int(achieved["input"].sum()),
            contact_verts_refined=int(achieved["refined"].sum()),
            contact_verts_target=-1 if target_labels is None else int(target_labels.sum()),
            contact_f1_input=_f1(achieved["input"], target_labels),
            contact_f1_refined=_f1(achieved["refined"], target_labels),
            hand_shift_mm=float(np.linalg.norm(after.hand_verts - before.hand_verts, axis=1).mean() * 1000.0),
        )
        frames.append(
            RefinedFrame(
                before=before.with_hand(hand_contact=achieved["input"].astype(np.float64)),
                after=after.with_hand(hand_contact=achieved["refined"].astype(np.float64)),
                target_hand=target,
                target_threshold=threshold,
                loss_history=None if history is None else {k: np.asarray(v, np.float64) for k, v in history.items()},
                penetrating_before=penetrating["input"],
                penetrating_after=penetrating["refined"],
                metrics=metrics,
            )
        )
    return frames
