"""``haco-grasp refine``'s settings: :class:`RefineConfig` (every option, with valid defaults), the command-line
options that fill it (:func:`add_arguments`, :func:`config_from_args`) and :class:`RefineSummary`, what a run did.

This module imports only the standard library, numpy and the contact-source registry at import time (the CLI builds
its parser from :func:`add_arguments`); ``--preset``'s choices come from the optimizer's preset dict
(:data:`haco_grasp.optimize.config.PRESETS`, :func:`~haco_grasp.optimize.config.preset_names`) once the command runs.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haco_grasp.targets import ORACLE_SOURCES, SOURCES, ContactContext, ContactSource

if TYPE_CHECKING:
    from haco_grasp.optimize.config import OptimizeConfig

__all__ = ["CONTACT_SOURCES", "RefineConfig", "RefineSummary", "add_arguments", "config_from_args"]

#: The contact sources of ``--contact``, by name: those of the registry :data:`haco_grasp.targets.SOURCES` that need
#: no ground truth ("geometric", "file", "haco", "deepcontact"); the run looks its source up here.
CONTACT_SOURCES: dict[str, ContactSource] = {
    name: source for name, source in SOURCES.items() if name not in ORACLE_SOURCES
}


@dataclass
class RefineConfig:
    """Every setting of :func:`run_refine` (the ``haco-grasp refine`` options), with valid defaults.

    Inputs:
        pred: the ``hflnet.pkl`` to refine (:mod:`haco_grasp.data.hflnet`).
        out: the output pickle; ``<out>.config.json`` and, while running, ``<out>.partial/`` go beside it.
        objects: DexYCB ``models`` folder of the YCB meshes; None: ``<dexycb>/models`` when ``dexycb`` is given,
            else ``$DEX_YCB_DIR/models``.
        mano_root: folder with ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``, or "synthetic" (the shipped synthetic hand);
            None: ``$HACO_GRASP_MANO_ROOT``.
        dexycb: DexYCB root: ground truth for the before/after metrics (matched by ``sample_id``) and the images of
            the ``haco`` source; None: no metrics (``haco`` then reads images under ``$DEX_YCB_DIR``).
    Contact:
        contact: the contact source, a key of :data:`CONTACT_SOURCES` ("geometric", "file", "haco", "deepcontact"; the
            registry :mod:`haco_grasp.targets`), or "auto": the best one these inputs allow
            (:func:`haco_grasp.targets.auto_contact_source`).
        contact_file: ``.npz`` of the ``file`` source (``sample_id`` (N,) str, ``hand_contact`` (N, 778) float in
            [0, 1]); None: the predictions' own ``hand_contact``.
        contact_checkpoint: checkpoint of the ``haco`` / ``deepcontact`` model; None: the predictor's default.
        contact_threshold: metres; distance of the ``geometric`` labels and of the metrics' contact labels.
    Optimisation:
        preset: optimizer preset, a key of :data:`haco_grasp.optimize.config.PRESETS` ("fast", "contactopt", "haco").
        noise_profile: the predictions' noise profile (a shipped name such as "hflnet-dexycb" or a JSON path) for
            the MAP presets; None: the preset's own ("fast": hflnet-dexycb). Ignored by "contactopt" and "haco".
        optimize: a full :class:`~haco_grasp.optimize.OptimizeConfig` used instead of ``preset`` (API only, e.g.
            tiny settings in tests; recorded as preset "custom").
        optimize_overrides: optimizer settings applied on top of ``preset`` (or ``optimize``) before
            ``noise_profile``: field name -> value, from ``--config FILE`` and the ``--opt.*`` flags
            (:mod:`haco_grasp.config_flags`); None: none.
        device: torch device ("cpu", "cuda", "cuda:1"); under torchrun "cuda" means ``cuda:<LOCAL_RANK>``.
        dtype: "float32" or "float64", precision of the MANO layer during optimisation.
        batch_size: grasps per optimizer call and per partial file; None: 16 on the CPU, a batch that fills the GPU on
            CUDA (:func:`haco_grasp.devices.auto_batch_size`).
        limit: refine only the first ``limit`` samples of the file; None: all.
    Run:
        progress: show progress bars: over samples, and over the iterations of the batch being optimised.
        restart: discard earlier partial results instead of resuming.
        metrics_pitch: voxel size of the intersection-volume metric, metres.
        dist_timeout_s: timeout of the collective operations under torchrun, seconds.
        dist_connect_timeout_s: how long the ranks wait for each other at the start under torchrun, seconds
            (``$HACO_GRASP_DIST_CONNECT_TIMEOUT_S`` overrides it); a rank started without its peers stops after it.
    Outputs besides ``<out>`` (:mod:`haco_grasp.refine.frames`; ``<out>.frames.csv``, the per-frame metrics, always):
        report: write ``<out>.report.html``, the interactive report (3-D views, metric table, loss curves).
        report_frames: frames (the first) with a 3-D view in the report.
        export_meshes: folder for PLY meshes per frame (input / refined / target hand, object); None: none.
        export_contactopt: file for the ContactOpt-format results (``optimized_<split>.pkl``); None: none.
    """

    pred: str | os.PathLike = ""
    out: str | os.PathLike = ""
    objects: str | os.PathLike | None = None
    mano_root: str | os.PathLike | None = None
    dexycb: str | os.PathLike | None = None
    contact: str = "auto"
    contact_file: str | os.PathLike | None = None
    contact_checkpoint: str | os.PathLike | None = None
    contact_threshold: float = 0.01
    preset: str = "fast"
    noise_profile: str | None = None
    optimize: OptimizeConfig | None = None
    optimize_overrides: dict[str, Any] | None = None
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int | None = None
    limit: int | None = None
    progress: bool = True
    restart: bool = False
    metrics_pitch: float = 0.002
    dist_timeout_s: float = 6 * 3600.0
    dist_connect_timeout_s: float = 120.0
    report: bool = True
    report_frames: int = 12
    export_meshes: str | os.PathLike | None = None
    export_contactopt: str | os.PathLike | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (paths as text, ``optimize`` as its own dict)."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "optimize":
                value = None if value is None else value.to_dict()
            elif isinstance(value, os.PathLike):
                value = str(value)
            out[item.name] = value
        return out

    def contact_context(self, device: str | None = None) -> ContactContext:
        """What the contact sources need from these settings; ``device``: where the predictors run (default
        ``self.device``; refine passes the resolved one, so they run where the optimizer runs)."""
        return ContactContext(
            contact_threshold=self.contact_threshold,
            contact_file=self.contact_file,
            contact_checkpoint=self.contact_checkpoint,
            device=self.device if device is None else device,
            dexycb=self.dexycb,
        )


@dataclass
class RefineSummary:
    """What :func:`run_refine` did.

    out: the output pickle. written: whether this process wrote it (rank 0 of a distributed run).
    n_samples: samples selected (after ``limit``). n_refined: refined by this process now. n_resumed: found
    finished in the partial folder at start. n_batches: optimizer calls of this process. seconds: wall time.
    metrics: {"input": summary, "refined": summary} of :func:`haco_grasp.evaluation.score_grasps` (None without
    ground truth or on ranks > 0). table: the Markdown table of those metrics, or None.
    rank, world_size: this process's place in a torchrun job (0, 1 otherwise).
    """

    out: Path
    written: bool
    n_samples: int
    n_refined: int
    n_resumed: int
    n_batches: int
    seconds: float
    metrics: dict[str, dict[str, float]] | None = None
    table: str | None = None
    rank: int = 0
    world_size: int = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``haco-grasp refine`` options to ``parser`` (the fields of :class:`RefineConfig`)."""
    parser.add_argument("--pred", required=True, metavar="PATH",
                        help="HFL-Net predictions (hflnet.pkl) or your own data (a generic .npz: see "
                        "docs/own-data.md)")  # fmt: skip
    parser.add_argument("--out", required=True, metavar="PATH", help="output file (refined.pkl)")
    parser.add_argument("--contact", default="auto", choices=["auto", *CONTACT_SOURCES],
                        help="contact target source; auto = the best these inputs allow: file (predictions carry "
                        "hand_contact), else haco (checkpoint, images and crop boxes), else deepcontact, else "
                        "geometric (default: %(default)s)")  # fmt: skip
    parser.add_argument("--contact-file", metavar="PATH", default=None,
                        help="--contact file: .npz with sample_id (N,) and hand_contact (N, 778) probabilities "
                        "(default: the predictions' own hand_contact)")  # fmt: skip
    parser.add_argument("--contact-checkpoint", metavar="PATH", default=None,
                        help="checkpoint of the haco / deepcontact model (default: the predictor's own)")  # fmt: skip
    parser.add_argument("--preset", default="fast",
                        help="optimizer preset (default: %(default)s)")  # fmt: skip
    parser.add_argument("--noise-profile", metavar="NAME|PATH", default=None,
                        help="how far the predictions are from the truth, per parameter, for the MAP preset 'fast': "
                        "hflnet-dexycb, contactopt-aug or a JSON file (haco_grasp.optimize.fit_noise_profile makes "
                        "one from a validation split) (default: the preset's, hflnet-dexycb)")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N (default: %(default)s)")
    parser.add_argument("--objects", metavar="DIR", default=None,
                        help="DexYCB models folder, or the folder of the mesh files a generic .npz names "
                        "(default: DEXYCB/models, else $DEX_YCB_DIR/models)")  # fmt: skip
    parser.add_argument("--mano-root", metavar="DIR", default=None,
                        help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl, or 'synthetic' for the shipped synthetic "
                        "hand (default: $HACO_GRASP_MANO_ROOT)")  # fmt: skip
    parser.add_argument("--dexycb", metavar="DIR", default=None,
                        help="DexYCB root: ground truth for the metrics, images for --contact haco")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="grasps per optimizer call (default: 16 on the CPU, a batch that fills the GPU on "
                        "CUDA)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="refine only the first N samples")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (over samples, and over iterations within a batch)")  # fmt: skip
    parser.add_argument("--restart", action="store_true", help="discard partial results of an earlier run")
    parser.add_argument("--no-report", action="store_true",
                        help="do not write OUT.report.html, the interactive report (OUT.frames.csv is always "
                        "written)")  # fmt: skip
    parser.add_argument("--report-frames", type=int, default=12, metavar="N",
                        help="frames with a 3-D view in the report (default: %(default)s)")  # fmt: skip
    parser.add_argument("--export-meshes", metavar="DIR", default=None,
                        help="write PLY meshes per frame, contact as vertex colours: input / refined / target hand, "
                        "object (default: none)")  # fmt: skip
    parser.add_argument("--export-contactopt", metavar="PATH", default=None,
                        help="write the results in ContactOpt's optimized_<split>.pkl format (default: "
                        "none)")  # fmt: skip


def config_from_args(args: argparse.Namespace) -> RefineConfig:
    """The :class:`RefineConfig` of parsed ``haco-grasp refine`` arguments (with the optimizer flags of
    :func:`haco_grasp.config_flags.add_optimizer_flags` when the parser has them)."""
    from haco_grasp.config_flags import optimizer_overrides

    return RefineConfig(
        pred=args.pred,
        out=args.out,
        objects=args.objects,
        mano_root=args.mano_root,
        dexycb=args.dexycb,
        contact=args.contact,
        contact_file=args.contact_file,
        contact_checkpoint=args.contact_checkpoint,
        preset=args.preset,
        noise_profile=args.noise_profile,
        optimize_overrides=optimizer_overrides(args) or None,
        device=args.device,
        batch_size=args.batch_size,
        limit=args.limit,
        progress=not args.no_progress,
        restart=args.restart,
        report=not args.no_report,
        report_frames=args.report_frames,
        export_meshes=args.export_meshes,
        export_contactopt=args.export_contactopt,
    )
