"""``haco-grasp demo``: the embedded synthetic example, end to end.

Generates a few ground-truth grasps with the license-free synthetic hand and procedural objects, perturbs them with
the "hflnet-like" noise model (what an image-based pose estimator gets wrong), refines them with the contact-guided
optimizer, prints a before/after table (intersection volume, MPJPE, contact P/R/F1) and writes before/after renders
with contact heat maps. Everything here is SYNTHETIC data; an "oracle" contact target (the ground truth's own contact
labels) is labelled as such.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from haco_grasp.errors import InputError

logger = logging.getLogger(__name__)

#: Contact sources the demo knows, best first. "oracle" is the ground truth's own labels (an upper bound).
DEMO_CONTACT_SOURCES = ("haco", "deepcontact", "oracle", "geometric")


@dataclass
class DemoConfig:
    """Settings of the demo.

    out_dir: folder for the PNG renders and ``config.json``.
    n_grasps: number of synthetic grasps.
    seed: random seed (grasps, noise, optimizer restarts).
    noise: perturbation model ("hflnet-like" or "contactopt-aug").
    contact: contact source ("auto" = the best available of :data:`DEMO_CONTACT_SOURCES`).
    preset: optimizer preset.
    json_path: optional path of a JSON file with the before/after metrics.
    optimize_overrides: optimizer settings applied on top of ``preset`` (field name -> value; ``--config FILE`` and
        the ``--opt.*`` flags, :mod:`haco_grasp.config_flags`).
    progress: progress bars and progress lines while optimising and rendering.
    """

    out_dir: str = "haco_grasp_demo"
    n_grasps: int = 4
    seed: int = 0
    noise: str = "hflnet-like"
    contact: str = "auto"
    preset: str = "fast"
    json_path: str | None = None
    optimize_overrides: dict = field(default_factory=dict)
    progress: bool = True


@dataclass
class DemoResult:
    """What the demo measured (SYNTHETIC data): before/after summaries and where the renders are."""

    contact_source: str
    oracle: bool
    before: dict
    after: dict
    seconds_per_grasp: float
    renders: list[str] = field(default_factory=list)
    data: str = "synthetic"


def _available_sources() -> list[str]:
    """Contact sources usable right now (learned predictors need their shipped checkpoints)."""
    from haco_grasp.refine import learned_contact_sources

    return learned_contact_sources() + ["oracle", "geometric"]


def synthetic_contact_targets(source: str, inputs, truth, seed: int) -> dict:
    """Keyword arguments of ``optimize_grasp`` for a contact source on synthetic grasps (demo and benchmarks).

    source: "haco" (renders each ground-truth grasp, the synthetic stand-in for the photo an image model's
    prediction came from, and runs the shipped HACO checkpoint on it), "deepcontact" (shipped checkpoint;
    its hand targets are contact values: use ``target_mapping="value"``), "oracle" (the ground truth's 1 cm labels) or
    "geometric" (the input's own 1 cm labels).
    """
    from haco_grasp.geometry.labels import hand_contact_labels

    if source == "oracle":
        return {"target_hand_contact": np.stack([g.hand_contact for g in truth])}
    if source == "geometric":
        labels = [hand_contact_labels(g.hand_verts, g.obj_verts, g.obj_faces) for g in inputs]
        return {"target_hand_contact": np.stack(labels).astype(np.float64)}
    if source == "deepcontact":
        from contactopt_bridge.deepcontact import predict_contact

        pred = predict_contact(inputs, seed=seed)
        return {
            "target_hand_contact": pred.hand,
            "target_obj_contact": pred.obj,
            "target_obj_points": pred.obj_points,
            "target_obj_normals": pred.obj_normals,
        }
    if source == "haco":
        from haco_grasp.contact.predictor import predict_hand_contact
        from haco_grasp.data.images import render_grasp_images

        # the camera sees the real grasp, not the prediction: render the truth (the renders are hand crops already)
        images = render_grasp_images(truth, seed=seed, progress=False)
        crops = np.stack([im.image for im in images])
        size = crops.shape[1]
        boxes = np.tile(np.array([0.0, 0.0, size, size]), (len(images), 1))
        return {"target_hand_contact": predict_hand_contact(crops, boxes, [g.side for g in truth])}
    raise InputError(f"--contact: unknown source {source!r}; choose auto or one of {', '.join(DEMO_CONTACT_SOURCES)}")


def _render_pair(before, after, truth, target: np.ndarray, source: str, preset: str, path: Path) -> Path:
    from haco_grasp.viz.report import save_refinement_figure

    return save_refinement_figure(path, before, after, target, truth=truth, target_label=f"{source} target",
                                  refined_label=f"refined ({preset})")  # fmt: skip


def run_demo(config: DemoConfig) -> DemoResult:
    """Run the demo and write its outputs; returns the measured figures."""
    from haco_grasp.config_flags import apply_optimizer_overrides
    from haco_grasp.data.perturb import perturb_grasps
    from haco_grasp.data.synthetic import generate_grasps
    from haco_grasp.evaluation import markdown_table, score_grasps
    from haco_grasp.hand import load_mano, synthetic_mano_root
    from haco_grasp.optimize import get_config, optimize_grasp

    if config.n_grasps < 1:
        raise InputError(f"--n-grasps: expected at least 1 grasp, got {config.n_grasps}")
    available = _available_sources()
    source = available[0] if config.contact == "auto" else config.contact
    if source not in DEMO_CONTACT_SOURCES:
        raise InputError(f"--contact: unknown {source!r}; choose auto or one of {', '.join(DEMO_CONTACT_SOURCES)}")
    if source not in available:
        raise InputError(f"--contact {source} is not available here (no shipped checkpoint found); "
                         f"available: {', '.join(available)}")  # fmt: skip
    oracle = source == "oracle"
    preset = apply_optimizer_overrides(get_config(config.preset).replace(seed=config.seed), config.optimize_overrides)

    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps({**asdict(config), "optimizer": preset.to_dict()}, indent=2))

    layer = load_mano(root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True)
    print(f"[synthetic] generating {config.n_grasps} ground-truth grasps (synthetic hand, procedural objects) ...")
    truth = generate_grasps(config.n_grasps, seed=config.seed, progress=False)
    inputs = perturb_grasps(truth, model=config.noise, seed=config.seed + 1)
    print(
        f"[synthetic] contact source: {source}" + (" (ORACLE: the ground truth's own contact labels)" if oracle else "")
    )
    started = time.perf_counter()
    targets = synthetic_contact_targets(source, inputs, truth, config.seed)
    if source == "deepcontact":
        preset = preset.replace(target_mapping="value")  # DeepContact gives contact values, not probabilities
    print(f"[synthetic] optimising {len(inputs)} grasps: preset {config.preset}, {preset.n_restarts} restarts x "
          f"{preset.n_iter} iterations ...", flush=True)  # fmt: skip
    result = optimize_grasp(inputs, config=preset, layer=layer, progress=config.progress, **targets)
    seconds = (time.perf_counter() - started) / len(inputs)
    print(f"[synthetic] optimised in {time.perf_counter() - started:.1f} s; scoring against the ground truth ...",
          flush=True)  # fmt: skip
    refined = result.to_grasps(inputs)

    before = score_grasps(inputs, truth).summary()
    after = score_grasps(refined, truth, seconds_per_grasp=seconds).summary()
    name = f"refined ({config.preset}, {source}{', oracle' if oracle else ''})"
    print(markdown_table({"input": before, name: after}, title=f"SYNTHETIC demo, noise={config.noise}"))

    print(f"[synthetic] rendering {len(truth)} before/after figures ...", flush=True)
    renders = [
        str(_render_pair(inputs[i], refined[i], truth[i], np.asarray(targets["target_hand_contact"][i]), source,
                         config.preset, out_dir / f"grasp_{i:02d}.png"))
        for i in range(len(truth))
    ]  # fmt: skip
    print(f"[synthetic] renders: {', '.join(renders)}")
    outcome = DemoResult(source, oracle, before, after, seconds, renders)
    if config.json_path:
        Path(config.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(config.json_path).write_text(json.dumps(asdict(outcome), indent=2))
    return outcome
