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
from haco_grasp.targets import ORACLE_SOURCES, ContactContext, contact_targets, synthetic_contact_sources

logger = logging.getLogger(__name__)

@dataclass
class DemoConfig:
    """Settings of the demo.

    out_dir: folder for the PNG renders and ``config.json``.
    n_grasps: number of synthetic grasps.
    seed: random seed (grasps, noise, optimizer restarts).
    noise: perturbation model ("hflnet-like" or "contactopt-aug").
    contact: contact source, a synthetic source of the registry :mod:`haco_grasp.targets` ("haco", "deepcontact",
        "oracle", "geometric"; "auto" = the best available, :func:`haco_grasp.targets.synthetic_contact_sources`).
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
    available = synthetic_contact_sources()
    source = available[0] if config.contact == "auto" else config.contact
    known = synthetic_contact_sources(available_only=False)
    if source not in known:
        raise InputError(f"--contact: unknown {source!r}; choose auto or one of {', '.join(known)}")
    if source not in available:
        raise InputError(f"--contact {source} is not available here (no shipped checkpoint found); "
                         f"available: {', '.join(available)}")  # fmt: skip
    oracle = source in ORACLE_SOURCES
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
    targets = contact_targets(source, inputs, context=ContactContext(seed=config.seed, truth=truth))
    preset = targets.optimizer_config(preset)  # contact values (DeepContact) are used as they are
    print(f"[synthetic] optimising {len(inputs)} grasps: preset {config.preset}, {preset.n_restarts} restarts x "
          f"{preset.n_iter} iterations ...", flush=True)  # fmt: skip
    result = optimize_grasp(inputs, config=preset, layer=layer, progress=config.progress, **targets.optimizer_kwargs())
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
        str(_render_pair(inputs[i], refined[i], truth[i], np.asarray(targets.hand[i]), source,
                         config.preset, out_dir / f"grasp_{i:02d}.png"))
        for i in range(len(truth))
    ]  # fmt: skip
    print(f"[synthetic] renders: {', '.join(renders)}")
    outcome = DemoResult(source, oracle, before, after, seconds, renders)
    if config.json_path:
        Path(config.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(config.json_path).write_text(json.dumps(asdict(outcome), indent=2))
    return outcome
