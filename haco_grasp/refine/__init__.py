"""``haco-grasp refine``: refine HFL-Net predictions (``hflnet.pkl``) or your own hands and objects (a generic
``.npz``, :mod:`haco_grasp.data.generic`) with the contact-guided grasp optimizer.

The package, by job:

- :mod:`~haco_grasp.refine.config`: :class:`RefineConfig` (every option, with valid defaults), the command-line
  options (:func:`add_arguments`, :func:`config_from_args`), :data:`CONTACT_SOURCES` (``--contact``: the sources of
  the registry :mod:`haco_grasp.targets` that need no ground truth), :class:`RefineSummary`.
- :mod:`~haco_grasp.refine.plan`: validation of a config, loading the predictions, resolving preset, contact source
  (``auto``), device and torchrun rank; checks before the long work starts.
- :mod:`~haco_grasp.refine.run`: :func:`run_refine`, the batch loop (grasps -> contact targets -> ``optimize_grasp``
  -> partial batch files), the merge and the ground-truth metrics; the pipeline in its docstring.
- :mod:`~haco_grasp.refine.resume`: the partial folder, its manifest and the finished batches (resuming).
- :mod:`~haco_grasp.refine.output`: the ``refined.pkl`` format (:data:`REFINED_FORMAT`, :class:`RefinedSample`,
  :class:`RefinedFile`, :func:`load_refined`).
- :mod:`~haco_grasp.refine.frames`: the frames of a run (input and refined grasp, target, per-frame metrics).
- :mod:`~haco_grasp.refine.report`: what a run writes besides ``refined.pkl``: ``<out>.frames.csv``, meshes, the
  ContactOpt export and the HTML report.
- torchrun: :mod:`haco_grasp.distributed` (shared with HACO training).

Importing the package loads only the standard library, numpy and the package's light modules (the CLI builds its
parser from :func:`add_arguments`); torch and the rest of the toolkit are imported when a run starts.
:data:`PRESET_NAMES` (the optimizer's preset names, from :data:`haco_grasp.optimize.config.PRESETS`) imports the
optimizer's config when first read.
"""

from __future__ import annotations

from typing import Any

from haco_grasp.distributed import CONNECT_TIMEOUT_ENV
from haco_grasp.refine.config import CONTACT_SOURCES, RefineConfig, RefineSummary, add_arguments, config_from_args
from haco_grasp.refine.output import REFINED_FORMAT, RefinedFile, RefinedSample, load_refined
from haco_grasp.refine.resume import BATCH_FORMAT, PARTIAL_FORMAT
from haco_grasp.refine.run import run_refine
from haco_grasp.targets import (
    ContactSource,
    ContactTargets,
    ContactUnavailableError,
    auto_contact_source,
    deepcontact_contact,
    file_contact,
    geometric_contact,
    haco_contact,
    learned_contact_sources,
)

__all__ = [
    "BATCH_FORMAT",
    "CONNECT_TIMEOUT_ENV",
    "CONTACT_SOURCES",
    "PARTIAL_FORMAT",
    "PRESET_NAMES",
    "REFINED_FORMAT",
    "ContactSource",
    "ContactTargets",
    "ContactUnavailableError",
    "RefineConfig",
    "RefineSummary",
    "RefinedFile",
    "RefinedSample",
    "add_arguments",
    "auto_contact_source",
    "config_from_args",
    "deepcontact_contact",
    "file_contact",
    "geometric_contact",
    "haco_contact",
    "learned_contact_sources",
    "load_refined",
    "run_refine",
]


def __getattr__(name: str) -> Any:
    if name == "PRESET_NAMES":  # derived from the optimizer's one preset dict (imports torch: not at import time)
        from haco_grasp.optimize.config import preset_names

        return preset_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
