"""Simulation-displacement benchmark: cost per grasp and what the protocols say about synthetic grasps.

Ground-truth grasps from ``haco_grasp.data.synthetic.generate_grasps`` (SYNTHETIC data) and their perturbed copies
(``haco_grasp.data.perturb``, e.g. HFL-Net-like noise) are simulated with each protocol of
:mod:`haco_grasp.simulation`. Rows: ``<grasps> / <protocol>``; columns: mean and median simulation displacement
(cm), stable share (displacement under the protocol's threshold), share with MuJoCo contacts, GraspTTA contact
ratio (inside or within 5 mm), mean max penetration (mm), seconds per grasp per core.

Cost: the first decomposition of each object (CoACD, then cached on disk) is timed separately and excluded;
``s/grasp/core`` is the wall time of ``simulate_grasps`` (validation, hulls, MuJoCo) times the number of worker
processes, divided by the number of grasps. The ``diagnose`` protocol (``obman`` plus a 30 N grip and a 2 mm contact
margin) tells the protocol's lack of grip apart from a bad grasp: see README, "Simulation".

    python benchmarks/simulation.py --n 48 --seed 0 --noise hflnet-like --workers 1 --json sim.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

COLUMNS = (
    ("mean_displacement_cm", "mean SD cm"),
    ("median_displacement_cm", "median SD cm"),
    ("stable_share", "stable"),
    ("contact_share", "MuJoCo contact"),
    ("contact_ratio", "contact ratio"),
    ("max_penetration_mm", "max pen. mm"),
    ("seconds_per_grasp_per_core", "s/grasp/core"),
    ("n_simulated", "simulated"),
)


def _protocols(names: str):
    from haco_grasp.simulation import get_protocol, with_protocol

    protocols = {}
    for name in names.split(","):
        if name == "diagnose":
            protocols[name] = with_protocol("obman", name="diagnose", grip=30.0, hand_margin=0.002)
        else:
            protocols[name] = get_protocol(name)
    return protocols


def _table(rows: dict[str, dict], title: str) -> str:
    lines = [f"**{title}**", "", "| row | " + " | ".join(label for _, label in COLUMNS) + " |"]
    lines.append("|" + "---|" * (len(COLUMNS) + 1))
    for name, row in rows.items():
        cells = []
        for key, _ in COLUMNS:
            value = row.get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("—")
            else:
                cells.append(str(value) if isinstance(value, int) else f"{value:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    import torch

    from haco_grasp.data.perturb import perturb_grasps
    from haco_grasp.data.synthetic import generate_grasps
    from haco_grasp.info import environment_report, git_commit
    from haco_grasp.metrics import contact_ratio, max_penetration_depth
    from haco_grasp.simulation import decompose_object, simulate_grasps, summarize_simulation

    torch.set_num_threads(args.threads)
    truth = generate_grasps(args.n, seed=args.seed, progress=not args.quiet)
    inputs = perturb_grasps(truth, model=args.noise, seed=args.seed + 1)
    protocols = _protocols(args.protocols)

    decomposition = {}
    for grasp in truth:
        if grasp.object_name in decomposition:
            continue
        tick = time.perf_counter()
        pieces = decompose_object(grasp.obj_verts_canonical, grasp.obj_faces, "obman", seed=args.seed)
        decomposition[grasp.object_name] = {"seconds": time.perf_counter() - tick, "pieces": len(pieces)}

    rows: dict[str, dict] = {}
    per_frame: dict[str, list] = {}
    by_type: dict[str, dict] = {}
    for set_name, grasps in (("ground truth", truth), (f"perturbed ({args.noise})", inputs)):
        # one object mesh per frame: the ratio over frames is the mean of the per-frame ratios (0 or 1)
        ratio = float(np.mean([contact_ratio(g.hand_verts, g.obj_verts, g.obj_faces) for g in grasps]))
        penetration = float(np.mean([max_penetration_depth(g.hand_verts, g.obj_verts, g.obj_faces) for g in grasps]))
        for protocol_name, protocol in protocols.items():
            tick = time.perf_counter()
            results = simulate_grasps(grasps, protocol=protocol, workers=args.workers, seed=args.seed)
            wall = time.perf_counter() - tick
            summary = summarize_simulation(results)
            name = f"{set_name} / {protocol_name}"
            rows[name] = {
                **summary._asdict(),
                "contact_ratio": ratio,
                "max_penetration_mm": penetration,
                "seconds_per_grasp_per_core": wall * args.workers / len(grasps),
                "simulation_seconds_per_grasp": float(np.mean([r.seconds for r in results])),
            }
            per_frame[name] = [
                {"object": g.object_name, "type": g.grasp_type, **r.to_dict()}
                for g, r in zip(grasps, results, strict=True)
            ]
            types = sorted({g.grasp_type for g in grasps})
            by_type[name] = {
                t: float(np.mean([bool(r.stayed) for g, r in zip(grasps, results, strict=True) if g.grasp_type == t]))
                for t in types
            }
            if not args.quiet:
                print(f"{name}: {rows[name]}", file=sys.stderr)

    env = environment_report()
    import mujoco

    report = {
        "benchmark": "simulation",
        "data": "SYNTHETIC (synthetic hand, procedural objects, generated grasps)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "commit": git_commit(),
        "n": args.n,
        "seed": args.seed,
        "noise": args.noise,
        "workers": args.workers,
        "machine": args.machine or f"{os.cpu_count()}-core CPU",
        "mujoco": mujoco.__version__,
        "environment": env,
        "protocols": {name: p.to_dict() for name, p in protocols.items()},
        "decomposition": decomposition,
        "rows": rows,
        "stable_share_by_grasp_type": by_type,
        "per_frame": per_frame,
    }
    table = _table(rows, f"Simulation benchmark (SYNTHETIC data), n={args.n}, noise={args.noise}")
    type_lines = ["", "stable share by grasp type:"] + [
        f"- {name}: " + ", ".join(f"{t} {v:.2f}" for t, v in shares.items()) for name, shares in by_type.items()
    ]
    print(table + "\n" + "\n".join(type_lines))
    print(json.dumps({k: report[k] for k in ("date", "machine", "n", "workers", "decomposition", "rows")}, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=48, help="number of grasps (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", default="hflnet-like", choices=["hflnet-like", "contactopt-aug"])
    parser.add_argument("--protocols", default="obman,hold,diagnose", help="comma-separated: obman, hold, diagnose")
    parser.add_argument("--workers", type=int, default=1, help="simulation processes (default %(default)s)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--machine", default=None, help="machine description for the report")
    parser.add_argument("--json", default=None, help="write the report as JSON here")
    parser.add_argument("--quiet", action="store_true")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
