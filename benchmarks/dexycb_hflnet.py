"""The HACO paper's grasp-optimisation experiment: DeepContact vs HACO contact on DexYCB with HFL-Net inputs.

For users with the data: point ``--pred`` at an ``hflnet.pkl`` (format in ``haco_grasp/data/hflnet.py``), ``--dexycb``
at the DexYCB root (ground truth and ``models/``) and ``--mano-root`` at the official MANO files. Each contact source
refines the same predictions with ``haco-grasp refine``'s pipeline; rows are the unrefined input and one row per
source; columns are intersection volume (cm³), MPJPE (absolute, root-relative, object-relative; mm), contact P/R/F1
against the 1 cm labels of the ground truth, seconds per grasp.

Without the data, ``--mini`` writes a miniature DexYCB directory and a matching ``hflnet.pkl`` from the synthetic
world into a temporary folder and runs the same experiment there (SYNTHETIC data; small, for checking the pipeline).
A source that is not available (no checkpoint, no images) is reported as unavailable with the reason, never faked.

    python benchmarks/dexycb_hflnet.py --mini --sources geometric,deepcontact,haco --json out.json
    python benchmarks/dexycb_hflnet.py --pred hflnet.pkl --dexycb $DEX_YCB_DIR --mano-root mano/models --limit 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pred", default=None, help="hflnet.pkl")
    parser.add_argument("--dexycb", default=None, help="DexYCB root (ground truth, models/)")
    parser.add_argument("--mano-root", default=None)
    parser.add_argument("--mini", action="store_true", help="run on a generated miniature DexYCB (SYNTHETIC)")
    parser.add_argument("--sources", default="deepcontact,haco,geometric", help="comma-separated contact sources")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="grasps per optimizer call (default: 16 on the CPU, a batch that fills the GPU on CUDA)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None, help="where refined files go (default: a temporary folder)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from haco_grasp.errors import HacoGraspError
    from haco_grasp.evaluation import markdown_table
    from haco_grasp.info import environment_report
    from haco_grasp.refine import RefineConfig, run_refine

    work = Path(args.out_dir or tempfile.mkdtemp(prefix="haco_dexycb_"))
    work.mkdir(parents=True, exist_ok=True)
    data_label = "DexYCB with HFL-Net predictions"
    if args.mini:
        from haco_grasp.data.mini_dexycb import write_mini_dexycb, write_mini_hflnet
        from haco_grasp.hand import synthetic_mano_root

        mini = write_mini_dexycb(work / "mini_dexycb", seed=args.seed)
        pred = work / "hflnet_mini.pkl"
        write_mini_hflnet(mini, pred, noise="hflnet-like", seed=args.seed, subset="gsdf")
        args.pred, args.dexycb, args.mano_root = str(pred), str(mini.root), str(synthetic_mano_root())
        data_label = "SYNTHETIC miniature DexYCB (synthetic hand, procedural stand-ins for YCB objects)"
    if not args.pred or not args.dexycb:
        parser.error("give --pred and --dexycb, or --mini")

    rows: dict[str, dict] = {}
    unavailable: dict[str, str] = {}
    for source in args.sources.split(","):
        config = RefineConfig(
            pred=args.pred,
            out=str(work / f"refined_{source}.pkl"),
            objects=str(Path(args.dexycb) / "models"),
            mano_root=args.mano_root,
            dexycb=args.dexycb,
            contact=source,
            preset=args.preset,
            device=args.device,
            batch_size=args.batch_size,
            limit=args.limit,
            progress=False,
            restart=True,
        )
        try:
            summary = run_refine(config)
        except HacoGraspError as exc:
            unavailable[source] = str(exc)
            print(f"{source}: unavailable: {exc}", file=sys.stderr)
            continue
        metrics = summary.metrics or {}
        rows.setdefault("input (HFL-Net)", metrics.get("input", {}))
        rows[f"{args.preset} + {source}"] = metrics.get("refined", {})
    table = markdown_table(rows, title=f"{data_label}, preset={args.preset}")
    print(table)
    for source, why in unavailable.items():
        print(f"- {source}: not run ({why})")
    report = {
        "benchmark": "dexycb_hflnet",
        "data": data_label,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "environment": environment_report(),
        "cpu_count": os.cpu_count(),
        "rows": rows,
        "unavailable": unavailable,
        "pred": args.pred,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
