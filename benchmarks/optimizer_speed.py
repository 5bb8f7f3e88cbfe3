"""Optimizer throughput: seconds per grasp and grasps per second per preset and batch size (SYNTHETIC grasps).

A small set of distinct synthetic grasps is perturbed and repeated to fill each batch; object SDF grids are built
(and cached) before timing, so the figures measure the optimisation itself. Each (preset, batch) cell runs once
after a warm-up call; a cell whose estimate exceeds ``--max-seconds`` is skipped and reported as such (never
extrapolated).

    python benchmarks/optimizer_speed.py --batches 1,16,256 --presets fast,contactopt --json speed.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="fast,contactopt")
    parser.add_argument("--batches", default="1,16,256")
    parser.add_argument("--distinct", type=int, default=8, help="distinct grasps repeated to fill a batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--max-seconds", type=float, default=600.0, help="skip cells estimated to take longer")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from haco_grasp.data.perturb import perturb_grasps
    from haco_grasp.data.synthetic import generate_grasps
    from haco_grasp.hand import load_mano, synthetic_mano_root
    from haco_grasp.info import environment_report, machine_description
    from haco_grasp.optimize import get_config, optimize_grasp

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    layer = load_mano(root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True).to(device)
    truth = generate_grasps(args.distinct, seed=args.seed, progress=False)
    inputs = perturb_grasps(truth, model="hflnet-like", seed=args.seed + 1)
    import numpy as np

    targets = np.stack([g.hand_contact for g in truth])

    rows = []
    for preset in args.presets.split(","):
        config = get_config(preset)
        # warm-up: builds the SDF grids and imports, and measures one iteration for the estimate
        tick = time.perf_counter()
        optimize_grasp(inputs[:1], target_hand_contact=targets[:1], config=config.replace(n_iter=2), layer=layer,
                       device=device)  # fmt: skip
        tick = time.perf_counter()
        optimize_grasp(inputs[:1], target_hand_contact=targets[:1], config=config.replace(n_iter=4), layer=layer,
                       device=device)  # fmt: skip
        per_iteration_single = (time.perf_counter() - tick) / 4
        for batch in (int(b) for b in args.batches.split(",")):
            grasps = [inputs[i % len(inputs)] for i in range(batch)]
            batch_targets = targets[[i % len(inputs) for i in range(batch)]]
            estimate = per_iteration_single * config.n_iter * batch
            if estimate > args.max_seconds:
                rows.append({"preset": preset, "batch": batch, "skipped": f"estimated {estimate:.0f} s"})
                print(f"{preset:>10} batch {batch:>4}: skipped (estimated {estimate:.0f} s > --max-seconds)")
                continue
            tick = time.perf_counter()
            result = optimize_grasp(grasps, target_hand_contact=batch_targets, config=config, layer=layer,
                                    device=device)  # fmt: skip
            seconds = time.perf_counter() - tick
            row = {
                "preset": preset,
                "batch": batch,
                "seconds": seconds,
                "seconds_per_grasp": seconds / batch,
                "grasps_per_second": batch / seconds,
                "iterations": result.iterations,
                "restarts": config.n_restarts,
            }
            rows.append(row)
            print(f"{preset:>10} batch {batch:>4}: {seconds / batch:8.3f} s/grasp  {batch / seconds:8.3f} grasps/s  "
                  f"({result.iterations} iterations x {config.n_restarts} restarts)")  # fmt: skip
    env = environment_report()
    report = {
        "benchmark": "optimizer_speed",
        "data": "SYNTHETIC grasps",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "device": str(device) if device.type == "cpu" else env["cuda_device"],
        "machine": machine_description(args.threads),
        "environment": env,
        "rows": rows,
        "configs": {p: get_config(p).to_dict() for p in args.presets.split(",")},
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
