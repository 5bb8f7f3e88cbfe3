"""The ``haco-grasp`` command line. Heavy libraries are imported inside each command, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from haco_grasp.errors import HacoGraspError


def _cmd_demo(args: argparse.Namespace) -> int:
    from haco_grasp.demo import DemoConfig, run_demo

    config = DemoConfig(out_dir=args.out, object_name=args.object, seed=args.seed, json_path=args.json)
    run_demo(config)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from haco_grasp.info import environment_report

    for key, value in environment_report().items():
        print(f"{key:>14}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haco-grasp",
        description="Contact-guided 3D grasp refinement (HACO contact, ContactOpt-style optimisation, benchmarks).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the embedded synthetic example (synthetic hand + procedural object) and write renders",
        description="Build the license-free synthetic hand and a procedural object, pose a grasp, print metrics "
        "and write a PNG render. All results are on SYNTHETIC data.",
    )
    demo.add_argument("--out", default="haco_grasp_demo", help="output folder (default: %(default)s)")
    demo.add_argument("--object", default="mug", help="procedural object name (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--json", default=None, metavar="PATH", help="also write the metrics as JSON to PATH")
    demo.set_defaults(func=_cmd_demo)

    info = sub.add_parser("info", help="print versions, devices and optional accelerators")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HacoGraspError as exc:
        print(f"haco-grasp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"haco-grasp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
