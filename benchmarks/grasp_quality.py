"""Quality of the synthetic ground-truth grasps (``haco_grasp.data.synthetic.generate_grasps``).

Every figure is recomputed from the returned grasps, independently of the planner's own bookkeeping:

- intersection volume, cm³ (``haco_grasp.geometry.volume.intersection_volume``, 2 mm voxels, wrist capped);
- maximum penetration depth, mm (``max_penetration_depth``, open3d signed distance);
- touching parts: digits and palm with a vertex within 2 mm of the object or inside it;
- 1 cm contact-vertex counts (``Grasp.hand_contact``) and NaN checks;
- per-object and per-type breakdowns, seconds per grasp, device, torch version and git commit.

Acceptance: volume < 0.5 cm³ for >= 95 % of grasps, >= 3 digits (or 2 digits + palm) touching for >= 90 %, no NaN.

    python benchmarks/grasp_quality.py --n 200 --seed 0 --json /tmp/grasp_quality.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

VOLUME_LIMIT_CM3 = 0.5
VOLUME_SHARE = 0.95
CONTACT_SHARE = 0.90


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "max": float("nan")}
    return {"mean": float(array.mean()), "median": float(np.median(array)), "max": float(array.max())}


def _group(rows: list[dict], key: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in sorted({row[key] for row in rows}):
        subset = [row for row in rows if row[key] == name]
        out[name] = {
            "n": len(subset),
            "volume_ok": float(np.mean([row["volume_ok"] for row in subset])),
            "contact_ok": float(np.mean([row["contact_ok"] for row in subset])),
            "volume_cm3_mean": float(np.mean([row["volume_cm3"] for row in subset])),
            "depth_mm_mean": float(np.mean([row["depth_mm"] for row in subset])),
            "contact_vertices_mean": float(np.mean([row["contact_vertices"] for row in subset])),
            "digits_mean": float(np.mean([row["digits"] for row in subset])),
            "palm_share": float(np.mean([row["palm"] for row in subset])),
        }
    return out


def run(args: argparse.Namespace) -> dict:
    import torch

    from haco_grasp.data.synthetic import GraspWorldConfig, generate_grasps, hand_parts, touching_parts
    from haco_grasp.geometry.volume import intersection_volume
    from haco_grasp.info import git_commit
    from haco_grasp.metrics import max_penetration_depth

    config = GraspWorldConfig()
    objects = args.objects.split(",") if args.objects else None
    types = tuple(args.types.split(","))
    started = time.perf_counter()
    grasps = generate_grasps(
        args.n,
        seed=args.seed,
        objects=objects,
        grasp_types=types,
        progress=not args.quiet,
        config=config,
        device=args.device,
    )
    generation_s = time.perf_counter() - started

    parts = hand_parts()
    rows = []
    for grasp in grasps:
        arrays = (grasp.hand_verts, grasp.hand_joints, grasp.hand_pose, grasp.global_orient, grasp.transl)
        finite = all(np.all(np.isfinite(a)) for a in (*arrays, grasp.betas, grasp.hand_contact))
        volume = intersection_volume(grasp.hand_verts, grasp.hand_faces, grasp.obj_verts, grasp.obj_faces, pitch=0.002)
        depth_mm = max_penetration_depth(grasp.hand_verts, grasp.obj_verts, grasp.obj_faces)
        touching = touching_parts(grasp.hand_verts, grasp.obj_verts, grasp.obj_faces, parts, distance=0.002)
        digits = int(touching.digits.sum())
        rows.append(
            {
                "object": grasp.object_name,
                "type": grasp.grasp_type,
                "requested_type": grasp.meta.get("requested_type", grasp.grasp_type),
                "volume_cm3": float(volume),
                "volume_ok": bool(volume < VOLUME_LIMIT_CM3),
                "depth_mm": float(depth_mm),
                "digits": digits,
                "palm": bool(touching.palm),
                "contact_ok": bool(digits >= 3 or (digits >= 2 and touching.palm)),
                "contact_vertices": int(grasp.hand_contact.sum()),
                "finite": bool(finite),
                "planner_passed": bool(grasp.meta.get("quality_passed", False)),
            }
        )
    volume_share = float(np.mean([row["volume_ok"] for row in rows])) if rows else float("nan")
    contact_share = float(np.mean([row["contact_ok"] for row in rows])) if rows else float("nan")
    no_nan = all(row["finite"] for row in rows)
    accepted = bool(volume_share >= VOLUME_SHARE and contact_share >= CONTACT_SHARE and no_nan and rows)
    return {
        "benchmark": "grasp_quality",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "n": len(grasps),
        "seed": args.seed,
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "device": args.device if args.device == "cpu" else f"{args.device} ({torch.cuda.get_device_name(0)})",
        "torch_threads": config.num_threads,
        "torch": torch.__version__,
        "commit": git_commit(),
        "generation_s": generation_s,
        "seconds_per_grasp": generation_s / max(len(grasps), 1),
        "acceptance": {
            "volume_below_0.5cm3_share": volume_share,
            "contact_rule_share": contact_share,
            "no_nan": no_nan,
            "passed": accepted,
            "required": {"volume_share": VOLUME_SHARE, "contact_share": CONTACT_SHARE},
        },
        "volume_cm3": _summary([row["volume_cm3"] for row in rows]),
        "penetration_mm": _summary([row["depth_mm"] for row in rows]),
        "contact_vertices": _summary([row["contact_vertices"] for row in rows]),
        "digits_touching": _summary([row["digits"] for row in rows]),
        "palm_share": float(np.mean([row["palm"] for row in rows])) if rows else float("nan"),
        "planner_passed_share": float(np.mean([row["planner_passed"] for row in rows])) if rows else float("nan"),
        "type_fallbacks": int(sum(row["type"] != row["requested_type"] for row in rows)),
        "per_object": _group(rows, "object"),
        "per_type": _group(rows, "type"),
    }


def _print_table(result: dict) -> None:
    acc = result["acceptance"]
    print(f"grasp_quality  n={result['n']} seed={result['seed']}  device={result['device']}  torch={result['torch']}")
    print(f"commit={result['commit']}  {result['seconds_per_grasp']:.3f} s/grasp ({result['generation_s']:.1f} s)")
    print(
        f"volume < 0.5 cm3: {100 * acc['volume_below_0.5cm3_share']:.1f} % (need >= 95)   "
        f">=3 digits or 2 + palm: {100 * acc['contact_rule_share']:.1f} % (need >= 90)   "
        f"no NaN: {acc['no_nan']}   ACCEPTED: {acc['passed']}"
    )
    for name in ("volume_cm3", "penetration_mm", "contact_vertices", "digits_touching"):
        stats = result[name]
        print(f"  {name:18s} mean {stats['mean']:8.3f}  median {stats['median']:8.3f}  max {stats['max']:8.3f}")
    palm, passed = 100 * result["palm_share"], 100 * result["planner_passed_share"]
    print(f"  palm touching {palm:.1f} %   planner-passed {passed:.1f} %   type fallbacks {result['type_fallbacks']}")
    header = f"{'group':14s} {'n':>4s} {'vol ok':>7s} {'cont ok':>8s} {'vol cm3':>8s} {'depth mm':>9s}"
    header += f" {'#contact':>9s} {'digits':>7s} {'palm':>6s}"
    for key in ("per_object", "per_type"):
        print(f"\n{key}\n{header}")
        for name, g in result[key].items():
            print(
                f"{name:14s} {g['n']:4d} {100 * g['volume_ok']:6.1f}% {100 * g['contact_ok']:7.1f}% "
                f"{g['volume_cm3_mean']:8.3f} {g['depth_mm_mean']:9.3f} {g['contact_vertices_mean']:9.1f} "
                f"{g['digits_mean']:7.2f} {100 * g['palm_share']:5.1f}%"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of grasps")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--objects", default="", help="comma-separated procedural objects (default: all)")
    parser.add_argument("--types", default="power,precision,pinch", help="comma-separated grasp types")
    parser.add_argument("--device", default="cpu", help="torch device of the planner's batched simulation")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    result = run(args)
    _print_table(result)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")
    return 0 if result["acceptance"]["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
