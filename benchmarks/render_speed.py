"""Training-image throughput of the three renderers of ``haco_grasp.data.images`` (SYNTHETIC grasps).

Plans ``--grasps`` synthetic grasps (procedural objects, synthetic hand), then times ``render_grasp_image`` over
them (one image per grasp in turn, seeds 0, 1, ...) with each renderer: ``raycast`` (open3d, the default),
``raster`` (the numpy reference) and ``torch`` (the torch ray caster, no open3d; on CUDA when available). Each
renderer first renders one warm-up image (imports, caches). With ``--workers N`` > 1 the ray-cast images are
also timed spread over N processes (one grasp list each), which is how a dataset is written. Wall time and CPU
time (of the rendering processes, all their threads) are both reported: on a shared machine the wall time depends
on the other jobs, the CPU time per image much less (2 cores can at best make ``2000 / cpu ms per image``
images/s). Prints a table and, with ``--json``, a report with the date, command, commit, machine, the load average
before and after (read the wall figures with it) and the image config.

    python benchmarks/render_speed.py --images 60 --raster-images 10 --json render_speed.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path


def _time_renderer(grasps: list, config, count: int, first_seed: int = 0) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its threads) to render ``count`` images after a warm-up.

    CPU seconds hardly depend on what else runs on the machine; wall seconds do.
    """
    from haco_grasp.data.images import render_grasp_image

    render_grasp_image(grasps[0], 10_000, config)  # warm-up: imports, crease-split cache, open3d start-up
    start, start_cpu = time.perf_counter(), time.process_time()
    for index in range(count):
        render_grasp_image(grasps[index % len(grasps)], first_seed + index, config)
    return time.perf_counter() - start, time.process_time() - start_cpu


def _worker(payload: tuple) -> tuple[float, float]:
    grasps, config, count, first_seed = payload
    return _time_renderer(grasps, config, count, first_seed)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grasps", type=int, default=6, help="distinct synthetic grasps to render (cycled)")
    parser.add_argument("--images", type=int, default=40, help="images timed with the ray-cast renderer")
    parser.add_argument("--raster-images", type=int, default=8, help="images timed with the rasteriser (0: skip)")
    parser.add_argument("--torch-images", type=int, default=4, help="images timed with the torch ray caster (0: skip)")
    parser.add_argument("--size", type=int, default=256, help="crop side, pixels")
    parser.add_argument("--supersample", type=int, default=2, help="anti-aliasing samples per pixel and axis")
    parser.add_argument("--workers", type=int, default=1, help="also time ray casting over this many processes")
    parser.add_argument("--seed", type=int, default=0, help="grasp planning seed")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)

    from haco_grasp.data.images import ImageConfig
    from haco_grasp.data.synthetic.generate import generate_grasps
    from haco_grasp.info import environment_report, git_commit, machine_description

    load_before = os.getloadavg()
    grasps = generate_grasps(args.grasps, seed=args.seed, progress=False)
    rows = []
    for renderer, count in (("raycast", args.images), ("raster", args.raster_images), ("torch", args.torch_images)):
        if count <= 0:
            continue
        config = ImageConfig(size=args.size, supersample=args.supersample, renderer=renderer)
        seconds, cpu_seconds = _time_renderer(grasps, config, count)
        rows.append({"renderer": renderer, "processes": 1, "images": count, "seconds": seconds,
                     "cpu_seconds": cpu_seconds})  # fmt: skip
    if args.workers > 1 and args.images > 0:
        from concurrent.futures import ProcessPoolExecutor

        config = ImageConfig(size=args.size, supersample=args.supersample, renderer="raycast")
        share = -(-args.images // args.workers)
        payloads = [(grasps, config, share, worker * share) for worker in range(args.workers)]
        with ProcessPoolExecutor(args.workers) as pool:
            start = time.perf_counter()
            timings = list(pool.map(_worker, payloads))
            seconds = time.perf_counter() - start  # includes each worker's warm-up image
        rows.append({"renderer": "raycast", "processes": args.workers, "images": share * args.workers,
                     "seconds": seconds, "cpu_seconds": sum(cpu for _, cpu in timings)})  # fmt: skip
    for row in rows:
        row["images_per_second"] = row["images"] / row["seconds"]
        row["ms_per_image"] = 1000.0 * row["seconds"] / row["images"]
        row["cpu_ms_per_image"] = 1000.0 * row["cpu_seconds"] / row["images"]
    load_after = os.getloadavg()

    print(f"{'renderer':>9} {'procs':>5} {'images':>6} {'seconds':>8} {'img/s':>7} {'ms/img':>7} {'cpu ms/img':>10}")
    for row in rows:
        speed = f"{row['images_per_second']:7.1f} {row['ms_per_image']:7.1f} {row['cpu_ms_per_image']:10.1f}"
        print(f"{row['renderer']:>9} {row['processes']:>5} {row['images']:>6} {row['seconds']:8.2f} {speed}")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} cores")
    report = {
        "benchmark": "render_speed",
        "data": f"SYNTHETIC grasps ({args.grasps}, seed {args.seed}, procedural objects, synthetic hand)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else list(argv))),
        "commit": git_commit(),
        "machine": machine_description(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "environment": environment_report(),
        "image_config": ImageConfig(size=args.size, supersample=args.supersample).to_dict(),
        "rows": rows,
    }
    print(json.dumps({"rows": rows}, default=float))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
