"""The ``haco-grasp`` command line. Heavy libraries are imported inside each command, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from haco_grasp.config_flags import add_optimizer_flags, explain_unknown_flags, field_docs, optimizer_overrides
from haco_grasp.errors import HacoGraspError
from haco_grasp.targets import synthetic_contact_sources


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
        optimize_overrides=optimizer_overrides(args),
        progress=not args.no_progress,
    )
    run_demo(config)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from haco_grasp.info import asset_report, environment_report

    for key, value in environment_report().items():
        print(f"{key:>16}: {value}")
    print("assets:")
    for key, value in asset_report().items():
        print(f"{key:>16}: {value}")
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
    "eval-deepcontact": (
        "evaluate a DeepContact checkpoint on a prepared root's held-out split (argmax and calibrated decodes beside "
        "'all contact' and the mean map, JSON)",
        "contactopt_bridge.evaluation:add_arguments",
        "contactopt_bridge.evaluation:run_from_args",
    ),
    "prepare-data": (
        "write sharded training data once (HACO crops, DeepContact samples; split by object, resumable)",
        "haco_grasp.prepare_data:add_arguments",
        "haco_grasp.prepare_data:run_from_args",
    ),
}


#: Where a lazy command's flags are documented: ``"module:ConfigClass"`` whose docstring's ``field: text`` lines give
#: the help of flags without one, and optionally ``"module:PRESETS:option"``: the preset dict and the option naming
#: the preset whose values are the defaults of flags that default to None (they override the preset).
HELP_SOURCES: dict[str, tuple[str, str | None]] = {
    "train-haco": ("haco_grasp.contact.train:TrainConfig", "haco_grasp.contact.train:PRESETS:preset"),
    "train-deepcontact": ("contactopt_bridge.train:TrainConfig", None),
}


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "none"
    return "none" if value is None else str(value).replace("%", "%%")


def complete_help(
    parser: argparse.ArgumentParser, docs: Mapping[str, str] | None = None, preset: tuple[str, Any] | None = None
) -> None:
    """Give every option of ``parser`` a help text and its default.

    A missing help text comes from ``docs`` (by ``dest``); a help text that does not mention its default gets
    ``(default: ...)``; switches (``store_true`` / ``store_false``) are off unless given and get none. An option that
    defaults to None shows the value of ``preset = (preset name, preset config)`` for its ``dest`` when there is one.
    """
    docs = docs or {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        if not action.help:
            action.help = docs.get(action.dest, action.dest.replace("_", " ")).replace("%", "%%")
            if isinstance(action, argparse._StoreFalseAction):  # "--no-augment" documented by the "augment" field
                action.help = f"switch off: {action.help}"
        switch = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
        if "default" in action.help or not action.option_strings or switch or action.required:
            continue
        default = action.default
        if default is None and preset is not None and hasattr(preset[1], action.dest):
            action.help += f" (default: {_shown(getattr(preset[1], action.dest))}, from the {preset[0]} preset)"
        else:
            action.help += f" (default: {_shown(default)})"


def _complete_lazy_help(name: str, parser: argparse.ArgumentParser) -> None:
    docs_target, preset_target = HELP_SOURCES.get(name, (None, None))
    docs = field_docs(_resolve(docs_target)) if docs_target else {}
    preset = None
    if preset_target:
        module, attribute, option = preset_target.split(":")
        presets = getattr(importlib.import_module(module), attribute)
        chosen = parser.get_default(option)
        preset = (chosen, presets[chosen]) if chosen in presets else None
    complete_help(parser, docs, preset)


def _resolve(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _selected_command(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _choose_preset(parser: argparse.ArgumentParser) -> None:
    """``--preset`` chooses among the optimizer's presets (:func:`haco_grasp.optimize.config.preset_names`; imported
    with the optimizer flags, so only for the command that runs)."""
    from haco_grasp.optimize.config import preset_names

    for action in parser._actions:
        if action.dest == "preset":
            action.choices = list(preset_names())


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (what was wrong, and where the help is), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {explain_unknown_flags(message)}; see {self.prog} --help\n")


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
    demo.add_argument("--n-grasps", dest="n", type=int, default=4, help="number of grasps (default: %(default)s)")
    demo.add_argument("--n", dest="n", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # old spelling
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--noise", default="hflnet-like", choices=["hflnet-like", "contactopt-aug"],
                      help="perturbation model of the inputs: what an image-based estimator gets wrong, or "
                      "ContactOpt's augmentation (default: %(default)s)")  # fmt: skip
    demo.add_argument(
        "--contact",
        default="auto",
        choices=["auto", *synthetic_contact_sources(available_only=False)],
        help="contact target source; auto = the best available (default: %(default)s)",
    )
    demo.add_argument("--preset", default="fast", help="optimizer preset (default: %(default)s)")
    demo.add_argument("--json", default=None, metavar="PATH", help="also write the metrics as JSON to PATH")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")
    selected = _selected_command(sys.argv[1:] if argv is None else argv)
    if selected == "demo":  # the generated optimizer flags import torch: only for the command that runs
        add_optimizer_flags(demo)
        _choose_preset(demo)
    complete_help(demo)
    demo.set_defaults(func=_cmd_demo)

    info = sub.add_parser(
        "info",
        help="print versions, devices, optional accelerators and the assets found (MANO "
        "files, checkpoints, datasets, caches) with their paths",
    )
    info.set_defaults(func=_cmd_info)

    from haco_grasp.refine import add_arguments as add_refine_arguments  # light: stdlib + numpy only

    refine = sub.add_parser(
        "refine",
        help="refine HFL-Net predictions (hflnet.pkl) or your own data (generic .npz) with contact-guided grasp "
        "optimisation",
        description="Refine every grasp of an hflnet.pkl or a generic .npz (docs/own-data.md) towards a contact target "
        "without penetration; writes per-frame metrics (OUT.frames.csv), an interactive report (OUT.report.html) "
        "and optionally meshes and a ContactOpt export; resumable (partial results in OUT.partial/), scales out under "
        "torchrun, prints before/after metrics with --dexycb.",
    )
    add_refine_arguments(refine)
    if selected == "refine":
        add_optimizer_flags(refine, exclude=("noise_profile",))  # refine's --noise-profile sets it
        _choose_preset(refine)
    complete_help(refine)
    refine.set_defaults(func=_cmd_refine)

    for name, (summary, add_arguments, run) in LAZY_COMMANDS.items():
        command = sub.add_parser(name, help=summary, description=summary)
        if name == selected:
            _resolve(add_arguments)(command)
            _complete_lazy_help(name, command)
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
