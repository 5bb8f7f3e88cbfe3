"""The ``haco-grasp`` command line. Heavy libraries are imported inside each command, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from haco_grasp.errors import HacoGraspError


def _cmd_demo(args: argparse.Namespace) -> int:
    from haco_grasp.demo import DemoConfig, run_demo

    config = DemoConfig(
        out_dir=args.out,
        n_grasps=args.n,
        seed=args.seed,
        noise=args.noise,
        contact=args.contact,
        preset=args.preset,
        json_path=args.json,
    )
    run_demo(config)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from haco_grasp.info import environment_report

    for key, value in environment_report().items():
        print(f"{key:>14}: {value}")
    return 0


def _cmd_refine(args: argparse.Namespace) -> int:
    from haco_grasp.refine import config_from_args, run_refine

    summary = run_refine(config_from_args(args))
    if summary.table:
        print(summary.table)
    if summary.written:
        print(f"refined {summary.n_samples} samples ({summary.n_resumed} resumed) -> {summary.out}")
    return 0


#: Subcommands whose options live in heavy modules: name -> (help, "module:add_arguments", "module:run").
#: Only the selected command's module is imported, so ``haco-grasp --help`` stays instant.
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "predict": (
        "predict HACO hand contact from images + boxes (contact maps + heat-map renders)",
        "haco_grasp.contact.predictor:add_predict_arguments",
        "haco_grasp.contact.predictor:run_predict",
    ),
    "train-haco": (
        "train HACO (VCB loss, balanced sampling, smoothness + regularisation, multi-level supervision)",
        "haco_grasp.contact.train:add_arguments",
        "haco_grasp.contact.train:run_training",
    ),
    "eval": (
        "evaluate a HACO checkpoint on a contact dataset (per-frame P/R/F1, JSON)",
        "haco_grasp.contact.train:add_eval_arguments",
        "haco_grasp.contact.train:run_eval",
    ),
    "train-deepcontact": (
        "train DeepContact (PointNet++ contact bins) on synthetic grasps with contactopt-aug perturbations",
        "contactopt_bridge.train:add_arguments",
        "contactopt_bridge.train:run_from_args",
    ),
}


def _resolve(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _selected_command(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (what was wrong, and where the help is), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="haco-grasp",
        description="Contact-guided 3D grasp refinement (HACO contact, ContactOpt-style optimisation, benchmarks).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the embedded synthetic example: generate, perturb and refine grasps; print before/after metrics",
        description="Generate ground-truth grasps with the license-free synthetic hand and procedural objects, perturb "
        "them, refine them with the contact-guided optimizer, print a before/after table and write before/after PNG "
        "renders. All results are on SYNTHETIC data.",
    )
    demo.add_argument("--out", default="haco_grasp_demo", help="output folder (default: %(default)s)")
    demo.add_argument("--n", type=int, default=4, help="number of grasps (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--noise", default="hflnet-like", choices=["hflnet-like", "contactopt-aug"])
    demo.add_argument(
        "--contact",
        default="auto",
        choices=["auto", "haco", "deepcontact", "oracle", "geometric"],
        help="contact target source; auto = the best available (default: %(default)s)",
    )
    demo.add_argument("--preset", default="fast", choices=["fast", "contactopt", "haco"])
    demo.add_argument("--json", default=None, metavar="PATH", help="also write the metrics as JSON to PATH")
    demo.set_defaults(func=_cmd_demo)

    info = sub.add_parser("info", help="print versions, devices and optional accelerators")
    info.set_defaults(func=_cmd_info)

    from haco_grasp.refine import add_arguments as add_refine_arguments  # light: stdlib + numpy only

    refine = sub.add_parser(
        "refine",
        help="refine HFL-Net predictions (hflnet.pkl) with contact-guided grasp optimisation",
        description="Refine every grasp of an hflnet.pkl towards a contact target without penetration; resumable "
        "(partial results in OUT.partial/), scales out under torchrun, prints before/after metrics with --dexycb.",
    )
    add_refine_arguments(refine)
    refine.set_defaults(func=_cmd_refine)

    selected = _selected_command(sys.argv[1:] if argv is None else argv)
    for name, (summary, add_arguments, run) in LAZY_COMMANDS.items():
        command = sub.add_parser(name, help=summary, description=summary)
        if name == selected:
            _resolve(add_arguments)(command)
            command.set_defaults(func=_resolve(run))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
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
