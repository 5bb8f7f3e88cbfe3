"""Training and evaluation of the HACO contact estimator (haco.md §3–5, §9), single process or DDP.

``train(config)`` runs the official recipe: AdamW (lr 1e-5, betas (0.9, 0.95), weight decay 1e-4) on all
parameters, MultiStepLR (milestones 5 and 10, γ 0.9) stepped per epoch, the loss
``VCB_778 + VCB_336 + VCB_84 + VCB_joint + 0.1·reg + 1.0·smooth`` (:func:`haco_grasp.contact.losses.haco_loss`, or a
baseline by name), HACO's augmentations, and balanced contact sampling (on by default). After every epoch it
evaluates on the validation set (per-frame P/R/F1 with :func:`haco_grasp.metrics.contact_prf`, threshold on the
probability σ(z), from the backbone registry unless given; both averaging rules, "skip" and "zero", are reported,
plus a "predict the training mean contact map" baseline), and writes, in ``out_dir``:

- ``last.ckpt``: the official container ``{epoch, global_step, state_dict, optimizer, scheduler}`` with
  ``last.json`` beside it (the :class:`~haco_grasp.contact.haco_model.HacoConfig`, read by ``load_haco``);
- ``train_config.json`` (the resolved :class:`TrainConfig`), ``metrics.json`` (one entry per epoch), ``stats.npz``
  (the training labels' :class:`~haco_grasp.contact.stats.ContactStats`).

Keypoint term (``keypoint_weight > 0``, on in the "synthetic-small" preset): HACO starts its backbone from HaMeR, a
network trained to locate hand joints; HaMeR's weights cannot be downloaded here, so a from-scratch backbone learns
hand features slowly from contact labels alone. The keypoint term supplies that signal during training: a linear
head scores every context token for each of the 21 joints, and the loss is the cross-entropy of the token that
contains the joint (softmax over tokens, joints outside the backbone's view skipped), weighted by
``keypoint_weight``. The head is training-only (saved as ``keypoint_head.pt`` for resuming, never in the HACO
``state_dict``); backbones with a known token grid: :func:`token_grid`.

``resume=True`` continues from ``out_dir/last.ckpt`` (model, optimizer, scheduler, epoch, step). ``max_wall_s``
bounds the wall time: the running epoch stops early, is evaluated and saved (``"complete": false`` in its metrics);
resuming treats that epoch as done and continues with the next one.

DDP: launch with ``torchrun --nproc_per_node N -m haco_grasp.contact.train ...`` (backend gloo on CPU, nccl on
CUDA); the sampler is sharded per rank, rank 0 evaluates and writes files.

Presets (:data:`PRESETS`): ``"paper"`` (the official values: hamer ViT-H, decoder 1024/6/8/64/1024, VCB loss,
balanced sampling, batch 24, 10 epochs, 2 workers) and ``"synthetic-small"`` (the recipe of the shipped checkpoint:
a small hamer-shaped ViT trained from scratch on CPU on the toolkit's synthetic renders: embed 192, depth 4, 3
heads; decoder 256/2/4/64/512; lr 3e-4 since nothing is pretrained, MultiStepLR (12, 14, 46, 52) γ 0.5; batch 16;
56 epochs over 150 chunks; 2 objects held out for validation; the keypoint term, the mean-map initialisation and the
threshold calibration on; BCE without balanced sampling, chosen on the validation objects in pilot runs, where VCB
with balanced sampling predicted about twice too much contact at the registry threshold; the README has the
ablation). The shipped checkpoint is this preset (run in resumed legs whose rates equal its schedule) followed by
14 epochs on 250 chunks (``--resume --synthetic-chunks 250 --lr 7.5e-5 --milestones 66 68 --epochs 70``); its
provenance JSON records how.

A resumed run follows the config's schedule as if it had been used from the start (:func:`scheduled_lr`): giving
more epochs, later milestones or a new ``lr`` on ``--resume`` changes the rate of the remaining epochs accordingly.
Each epoch's ``lr`` in ``metrics.json`` is the rate used during that epoch.

Modules, by job (each imports only the ones before it): :mod:`~haco_grasp.contact.train.config`
(:class:`TrainConfig`, :data:`PRESETS`, results), :mod:`~haco_grasp.contact.train.model` (the trained model, the
keypoint token loss), :mod:`~haco_grasp.contact.train.data` (datasets, batching),
:mod:`~haco_grasp.contact.train.evaluation` (:func:`evaluate`), :mod:`~haco_grasp.contact.train.distributed`
(the torchrun group), :mod:`~haco_grasp.contact.train.checkpoint` (:func:`strip_checkpoint`),
:mod:`~haco_grasp.contact.train.loop` (:func:`train`) and :mod:`~haco_grasp.contact.train.cli` (the two commands).
"""

from haco_grasp.contact.train.checkpoint import strip_checkpoint
from haco_grasp.contact.train.cli import (
    add_arguments,
    add_eval_arguments,
    config_from_args,
    main,
    run_eval,
    run_training,
)
from haco_grasp.contact.train.config import PRESETS, EvalResult, TrainConfig, TrainResult, scheduled_lr
from haco_grasp.contact.train.evaluation import THRESHOLD_GRID, best_f1_threshold, evaluate
from haco_grasp.contact.train.loop import train
from haco_grasp.contact.train.model import hand_faces, init_contact_from_mean, keypoint_token_loss, token_grid

__all__ = [
    "PRESETS",
    "EvalResult",
    "TrainConfig",
    "TrainResult",
    "add_arguments",
    "THRESHOLD_GRID",
    "add_eval_arguments",
    "best_f1_threshold",
    "config_from_args",
    "evaluate",
    "hand_faces",
    "keypoint_token_loss",
    "token_grid",
    "init_contact_from_mean",
    "main",
    "run_eval",
    "run_training",
    "scheduled_lr",
    "strip_checkpoint",
    "train",
]
