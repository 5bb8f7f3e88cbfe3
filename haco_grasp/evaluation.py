"""Scoring grasps against ground truth: the figures every benchmark, ``refine`` and the demo report.

Per grasp (all from :mod:`haco_grasp.metrics`):
- ``intersection_cm3``: solid volume of hand ∩ object for the grasp as predicted (its own hand and object pose),
  object interior voxelised at ``pitch`` (2 mm), hand closed at the wrist.
- ``penetration_mm``: deepest hand vertex inside the object.
- ``mpjpe_mm`` (absolute, world/camera frame), ``mpjpe_rr_mm`` (root-relative: both wrists at the origin) and
  ``mpjpe_obj_mm`` (object-relative: each hand's joints in its own object's canonical frame — the grasp error,
  ContactOpt's "unaligned" error generalised to a predicted object pose).
- ``contact_*``: the grasp's own 1 cm contact labels (``hand_contact_labels``) against the ground truth's, HACO's
  per-frame precision/recall/F1; frames where a value is undefined (no predicted or no true contact) are skipped
  in that value's mean (the HACO paper's rule; ``empty="zero"`` gives HACO's test.py rule).

Physical plausibility (opt-in, :func:`plausibility_scores`, columns :data:`SIM_COLUMNS`): simulation displacement
(MuJoCo, :mod:`haco_grasp.simulation`), stable share and GraspTTA's contact ratio.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import InputError
from haco_grasp.geometry.labels import hand_contact_labels
from haco_grasp.metrics import (
    contact_prf,
    frames_in_contact,
    intersection_volume,
    max_penetration_depth,
    mpjpe,
    mpvpe,
    object_pose_error,
)
from haco_grasp.simulation import SimProtocol, SimResult, get_protocol, simulate_grasps, summarize_simulation

SUMMARY_COLUMNS = (
    ("intersection_cm3", "IV cm³"),
    ("penetration_mm", "pen. mm"),
    ("mpjpe_mm", "MPJPE mm"),
    ("mpjpe_rr_mm", "RR-MPJPE mm"),
    ("mpjpe_obj_mm", "OBJ-MPJPE mm"),
    ("contact_precision", "C-P"),
    ("contact_recall", "C-R"),
    ("contact_f1", "C-F1"),
    ("obj_add_mm", "obj ADD mm"),
    ("obj_rot_deg", "obj rot °"),
    ("obj_trans_mm", "obj trans mm"),
    ("seconds_per_grasp", "s/grasp"),
)
# Per-frame pose fields of GraspScores whose means enter the summary.
_POSE_FIELDS = ("mpvpe_mm", "mpvpe_rr_mm", "mpvpe_obj_mm", "obj_add_mm", "obj_adds_mm", "obj_rot_deg", "obj_trans_mm")
# Columns of :meth:`PlausibilityScores.summary`, for ``markdown_table(rows, columns=SUMMARY_COLUMNS + SIM_COLUMNS)``.
SIM_COLUMNS = (
    ("sim_displacement_cm", "SD cm"),
    ("sim_displacement_cm_median", "SD med. cm"),
    ("sim_stable_share", "stable"),
    ("contact_ratio", "contact ratio"),
)


@dataclass
class GraspScores:
    """Per-grasp figures (arrays of length N) and their means (:meth:`summary`)."""

    intersection_cm3: np.ndarray
    penetration_mm: np.ndarray
    mpjpe_mm: np.ndarray
    mpjpe_rr_mm: np.ndarray
    mpjpe_obj_mm: np.ndarray
    contact_precision: float
    contact_recall: float
    contact_f1: float
    contact_f1_per_frame: np.ndarray
    seconds_per_grasp: float = float("nan")
    extra: dict = field(default_factory=dict)
    mpvpe_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mpvpe_rr_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mpvpe_obj_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    obj_add_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    obj_adds_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    obj_rot_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    obj_trans_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def summary(self) -> dict[str, float]:
        """Means over grasps (NaN-free for the geometric figures)."""
        return {
            "n": int(len(self.mpjpe_mm)),
            "intersection_cm3": float(np.mean(self.intersection_cm3)),
            "intersection_cm3_median": float(np.median(self.intersection_cm3)),
            "penetration_mm": float(np.mean(self.penetration_mm)),
            "mpjpe_mm": float(np.mean(self.mpjpe_mm)),
            "mpjpe_rr_mm": float(np.mean(self.mpjpe_rr_mm)),
            "mpjpe_obj_mm": float(np.mean(self.mpjpe_obj_mm)),
            "contact_precision": float(self.contact_precision),
            "contact_recall": float(self.contact_recall),
            "contact_f1": float(self.contact_f1),
            "seconds_per_grasp": float(self.seconds_per_grasp),
            **{name: float(np.mean(getattr(self, name))) for name in _POSE_FIELDS if len(getattr(self, name))},
            **self.extra,
        }


def score_grasps(
    grasps: Sequence[Grasp],
    ground_truth: Sequence[Grasp],
    pitch: float = 0.002,
    contact_threshold: float = 0.01,
    empty: str = "skip",
    seconds_per_grasp: float = float("nan"),
) -> GraspScores:
    """Score predicted (or refined) grasps against their ground truth, pairwise.

    Args:
        grasps: N grasps to score (hand and object as predicted).
        ground_truth: N ground-truth grasps (joints and ``hand_contact`` labels are used).
        pitch: voxel size of the intersection volume, metres.
        contact_threshold: distance of the contact labels, metres.
        empty: "skip" or "zero" for undefined per-frame contact precision/recall/F1.
        seconds_per_grasp: carried into the summary.
    """
    if len(grasps) != len(ground_truth) or not grasps:
        raise InputError(f"score_grasps: need equally many grasps and ground truths (>0), got {len(grasps)} and "
                         f"{len(ground_truth)}")  # fmt: skip
    volumes, depths, contacts = [], [], []
    for grasp in grasps:
        obj_verts = grasp.obj_verts
        volumes.append(intersection_volume(grasp.hand_verts, grasp.hand_faces, obj_verts, grasp.obj_faces, pitch))
        depths.append(max_penetration_depth(grasp.hand_verts, obj_verts, grasp.obj_faces))
        contacts.append(hand_contact_labels(grasp.hand_verts, obj_verts, grasp.obj_faces, contact_threshold))
    pred_joints = np.stack([g.hand_joints for g in grasps])
    gt_joints = np.stack([g.hand_joints for g in ground_truth])
    prf = contact_prf(np.stack(contacts).astype(np.float64), np.stack([g.hand_contact for g in ground_truth]),
                      threshold=0.5, empty=empty)  # fmt: skip
    pred_verts = np.stack([g.hand_verts for g in grasps])
    gt_verts = np.stack([g.hand_verts for g in ground_truth])
    objects = object_pose_error(
        np.stack([g.obj_rotation for g in grasps]), np.stack([g.obj_translation for g in grasps]),
        np.stack([g.obj_rotation for g in ground_truth]), np.stack([g.obj_translation for g in ground_truth]),
        [g.obj_verts_canonical for g in ground_truth],
    )  # fmt: skip
    return GraspScores(
        mpvpe_mm=mpvpe(pred_verts, gt_verts, align="none"),
        mpvpe_rr_mm=mpvpe(pred_verts, gt_verts, align="root", root_pred=pred_joints[:, 0], root_gt=gt_joints[:, 0]),
        mpvpe_obj_mm=mpvpe(_in_object_frame(grasps, "hand_verts"), _in_object_frame(ground_truth, "hand_verts")),
        obj_add_mm=objects.add_mm,
        obj_adds_mm=objects.adds_mm,
        obj_rot_deg=objects.rotation_deg,
        obj_trans_mm=objects.translation_mm,
        intersection_cm3=np.asarray(volumes),
        penetration_mm=np.asarray(depths),
        mpjpe_mm=mpjpe(pred_joints, gt_joints, align="none"),
        mpjpe_rr_mm=mpjpe(pred_joints, gt_joints, align="root"),
        mpjpe_obj_mm=mpjpe(_in_object_frame(grasps), _in_object_frame(ground_truth), align="none"),
        contact_precision=prf.precision,
        contact_recall=prf.recall,
        contact_f1=prf.f1,
        contact_f1_per_frame=np.asarray(prf.f1_per_frame, dtype=np.float64),
        seconds_per_grasp=seconds_per_grasp,
    )


@dataclass
class PlausibilityScores:
    """Per-grasp simulation results and contact flags, and their summary (:meth:`summary`, :meth:`per_frame`).

    Attributes:
        results: N :class:`~haco_grasp.simulation.SimResult`.
        in_contact: (N,) bool, GraspTTA's rule (inside or within
            5 mm).
        protocol: the protocol's name.
    """

    results: list[SimResult]
    in_contact: np.ndarray
    protocol: str

    def summary(self) -> dict[str, float]:
        """Mean / median displacement (cm) and stable share over the simulated frames; contact ratio over all."""
        sim = summarize_simulation(self.results)
        return {
            "sim_protocol": self.protocol,
            "sim_displacement_cm": sim.mean_displacement_cm,
            "sim_displacement_cm_median": sim.median_displacement_cm,
            "sim_stable_share": sim.stable_share,
            "sim_n_simulated": sim.n_simulated,
            "contact_ratio": float(np.mean(self.in_contact)),
        }

    def per_frame(self) -> list[dict]:
        """JSON-ready values per grasp (one dict each).

        Keys: ``status`` ("simulated" or "not simulated: <reason>"), ``displacement_cm``, ``stayed``, ``contacts``
        (MuJoCo), ``in_contact`` (GraspTTA), and the rest of :meth:`SimResult.to_dict`.
        """
        return [{**r.to_dict(), "in_contact": bool(c)} for r, c in zip(self.results, self.in_contact, strict=True)]


def plausibility_scores(
    grasps: Sequence[Grasp],
    protocol: str | SimProtocol = "obman",
    workers: int | None = 1,
    seed: int = 0,
    mano_root: str | os.PathLike | None = None,
) -> PlausibilityScores:
    """Simulation displacement (:func:`haco_grasp.simulation.simulate_grasps`) and contact ratio of grasps.

    Args:
        grasps: N grasps (hand and object as predicted or refined).
        protocol: ``"obman"``, ``"hold"`` or a :class:`~haco_grasp.simulation.SimProtocol`.
        workers: simulation processes (see ``simulate_grasps``).
        seed: CoACD seed.
        mano_root: MANO folder for the hand's part map (None: ``grasp.meta["mano_root"]`` or the synthetic hand).
    """
    if not grasps:
        raise InputError("plausibility_scores: need at least one grasp, got 0")
    protocol = get_protocol(protocol)
    results = simulate_grasps(grasps, protocol=protocol, workers=workers, seed=seed, mano_root=mano_root)
    in_contact = np.array([frames_in_contact(g.hand_verts, g.obj_verts, g.obj_faces)[0] for g in grasps])
    return PlausibilityScores(results=results, in_contact=in_contact, protocol=protocol.name)


def _in_object_frame(grasps: Sequence[Grasp], attribute: str = "hand_joints") -> np.ndarray:
    """(N, J, 3) hand joints (or vertices) in each grasp's object canonical frame."""
    return np.stack([(getattr(g, attribute) - g.obj_translation) @ g.obj_rotation for g in grasps])


def frame_changes(refined: GraspScores, baseline: GraspScores) -> dict[str, float]:
    """How refinement changed each frame's accuracy relative to its input (same frames, same order).

    Returns:
        ``mpjpe_down_share`` (share of frames whose absolute MPJPE went down), ``mpjpe_change_median_mm`` (median
        per-frame change of absolute MPJPE), the same for root-relative MPJPE (``mpjpe_rr_*``) and object ADD
        (``obj_add_*``).
    """
    if len(refined.mpjpe_mm) != len(baseline.mpjpe_mm):
        raise InputError(f"frame_changes: {len(refined.mpjpe_mm)} refined frames vs {len(baseline.mpjpe_mm)} inputs")
    out = {}
    for name, key in (("mpjpe", "mpjpe_mm"), ("mpjpe_rr", "mpjpe_rr_mm"), ("obj_add", "obj_add_mm")):
        change = np.asarray(getattr(refined, key)) - np.asarray(getattr(baseline, key))
        if change.size:
            out[f"{name}_down_share"] = float(np.mean(change < 0))
            out[f"{name}_change_median_mm"] = float(np.median(change))
    return out


def markdown_table(
    rows: dict[str, dict[str, float]], title: str = "", columns: Sequence[tuple[str, str]] = SUMMARY_COLUMNS
) -> str:
    """A Markdown table of summaries: one row per name, the given columns (default :data:`SUMMARY_COLUMNS`)."""
    header = "| " + " | ".join(["row"] + [label for _, label in columns]) + " |"
    lines = ([f"**{title}**", ""] if title else []) + [header, "|" + "---|" * (len(columns) + 1)]
    for name, summary in rows.items():
        cells = []
        for key, _ in columns:
            value = summary.get(key, float("nan"))
            cells.append("—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}")
        lines.append("| " + " | ".join([name] + cells) + " |")
    return "\n".join(lines)
