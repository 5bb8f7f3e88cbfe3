"""Optimizer throughput and cost per iteration, per preset, batch size and grasp order (SYNTHETIC grasps).

A set of distinct synthetic grasps (several objects) is perturbed and repeated to fill each batch, either in the
order generated (objects interleaved, as a dataset in frame order) or grouped by object. Object SDF grids are built
(and cached) before timing, so the figures measure the optimisation itself. Per cell: seconds, seconds per grasp,
grasps per second, seconds per iteration, aten operations per iteration (``torch.profiler``, the difference of a 4-
and a 2-iteration run, halved) and peak memory (CUDA: ``max_memory_allocated`` of the cell; CPU: the process's peak
resident set so far, a high-water mark over the cells run before). A cell whose estimate exceeds ``--max-seconds``
is not timed and reported as such (never extrapolated); its operations are still counted. On CUDA, ``--batches
auto`` fills the device.

    python benchmarks/optimizer_speed.py --batches 8,64 --presets fast,contactopt --order interleaved,grouped \
        --threads 1 --json speed.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _ops_per_iteration(run) -> float:
    """aten operations per iteration of ``run(n_iter)`` (difference of 4 and 2 iterations)."""
    from torch.profiler import ProfilerActivity, profile

    counts = []
    for iterations in (2, 4):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run(iterations)
        counts.append(sum(1 for event in prof.events() if event.name.startswith("aten::")))
    return (counts[1] - counts[0]) / 2


def _order(grasps: list, order: str) -> list[int]:
    indices = list(range(len(grasps)))
    if order == "grouped":
        return sorted(indices, key=lambda i: (grasps[i].object_name, i))
    return indices


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="fast,contactopt", help="comma-separated presets")
    parser.add_argument("--batches", default="8,64", help="comma-separated batch sizes, or 'auto' (fills a GPU)")
    parser.add_argument("--order", default="interleaved,grouped", help="interleaved and/or grouped (by object)")
    parser.add_argument("--distinct", type=int, default=16, help="distinct grasps repeated to fill a batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: per-core figures)")
    parser.add_argument("--no-ops", action="store_true", help="skip the operation count (profiler)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="do not time cells estimated longer")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)

    from haco_grasp.data.perturb import perturb_grasps
    from haco_grasp.data.synthetic import generate_grasps
    from haco_grasp.devices import auto_batch_size, resolve_device
    from haco_grasp.hand import load_mano, synthetic_mano_root
    from haco_grasp.info import environment_report, machine_description
    from haco_grasp.optimize import get_config, optimize_grasp

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "--device")
    layer = load_mano(root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True).to(device)
    truth = generate_grasps(args.distinct, seed=args.seed, progress=False)
    inputs = perturb_grasps(truth, model="hflnet-like", seed=args.seed + 1)
    targets = np.stack([g.hand_contact for g in truth])
    batches = [auto_batch_size(device) if b == "auto" else int(b) for b in args.batches.split(",")]

    rows = []
    for preset in args.presets.split(","):
        config = get_config(preset)
        # warm-up: builds the SDF grids of every object and imports; one iteration estimates the cost
        optimize_grasp(inputs, target_hand_contact=targets, config=config.replace(n_iter=1), layer=layer, device=device)
        for order in args.order.split(","):
            for batch in batches:
                picked = [i % len(inputs) for i in range(batch)]
                picked = [picked[i] for i in _order([inputs[i] for i in picked], order)]
                grasps, batch_targets = [inputs[i] for i in picked], targets[picked]

                def run(iterations: int, grasps=grasps, batch_targets=batch_targets, config=config):
                    return optimize_grasp(grasps, target_hand_contact=batch_targets, layer=layer, device=device,
                                          config=config.replace(n_iter=iterations))  # fmt: skip

                tick = time.perf_counter()
                run(1)
                estimate = (time.perf_counter() - tick) * config.n_iter
                row = {"preset": preset, "order": order, "batch": batch, "restarts": config.n_restarts}
                if estimate > args.max_seconds:  # not timed; the operation count needs only 6 iterations
                    ops = None if args.no_ops else _ops_per_iteration(run)
                    rows.append(row | {"skipped": f"estimated {estimate:.0f} s", "aten_ops_per_iteration": ops})
                    print(f"{preset:>10} {order:>11} batch {batch:>5}: not timed (estimated {estimate:.0f} s)"
                          + ("" if ops is None else f"  ops/it {ops:.0f}"))
                    continue
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                tick = time.perf_counter()
                result = run(config.n_iter)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds = time.perf_counter() - tick
                peak_mb = (
                    torch.cuda.max_memory_allocated(device) / 2**20
                    if device.type == "cuda"
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                )
                row |= {
                    "seconds": seconds,
                    "seconds_per_grasp": seconds / batch,
                    "grasps_per_second": batch / seconds,
                    "seconds_per_iteration": seconds / max(result.iterations, 1),
                    "iterations": result.iterations,
                    "peak_memory_mb": peak_mb,
                    "aten_ops_per_iteration": None if args.no_ops else _ops_per_iteration(run),
                }
                rows.append(row)
                ops = "—" if row["aten_ops_per_iteration"] is None else f"{row['aten_ops_per_iteration']:.0f}"
                print(f"{preset:>10} {order:>11} batch {batch:>5}: {seconds / batch:8.4f} s/grasp "
                      f"{batch / seconds:9.2f} grasps/s {row['seconds_per_iteration']:8.4f} s/it  ops/it {ops:>6}  "
                      f"peak {peak_mb:8.1f} MB")  # fmt: skip
    env = environment_report()
    report = {
        "benchmark": "optimizer_speed",
        "data": "SYNTHETIC grasps (hflnet-like noise)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "device": str(device) if device.type == "cpu" else env.get("cuda_device", str(device)),
        "machine": machine_description(args.threads),
        "environment": env,
        "rows": rows,
        "configs": {p: get_config(p).to_dict() for p in args.presets.split(",")},
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
