"""DeepContact (ContactOpt, Grady et al. CVPR 2021; contactopt.md §6) in pure torch, with the official key names.

:class:`DeepContactNet` holds a PointNet++ segmentation net under ``pointnet`` whose modules are named as in
ContactOpt's PyG model (``pointnet.sa1_module.conv.local_nn.0.0.weight`` ...), so an official
``deepcontact_checkpoint.pt`` (a flat state_dict) loads with ``load_state_dict(strict=True)`` and no mapping.

Input: 778 hand vertices + P object points (world frame) with their 25 features
(:mod:`contactopt_bridge.features`). The cloud is normalised inside :meth:`DeepContactNet.forward` (origin at the
object centroid, +x towards the hand); the roll about x is off by default, so inference is deterministic.
Output: log-probabilities over 10 contact bins per point; bin k covers contact values [k/10, (k+1)/10) and decodes
to its centre (k + 0.5)/10 (:func:`contact_to_bin`, :func:`bin_to_contact`).

Differences from the PyG original that do not change the weights: farthest point sampling starts at point 0
(torch_cluster: a random point), and a radius ball with more than 64 points keeps the 64 nearest.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contactopt_bridge.features import NUM_FEATURES, apply_transform, grasp_inputs, normalizing_transform
from contactopt_bridge.pointnet2 import FeaturePropagation, GlobalSetAbstraction, SetAbstraction, mlp
from haco_grasp.data.grasp import Grasp
from haco_grasp.errors import AssetError, InputError, UnsafePickleError, torch_load_reason

__all__ = [
    "CLASS_BIN_WEIGHTS",
    "DEFAULT_CHECKPOINT",
    "NUM_BINS",
    "DeepContactNet",
    "DeepContactOutput",
    "DeepContactPrediction",
    "PointNet2Segmentation",
    "bin_to_contact",
    "contact_to_bin",
    "load_deepcontact",
    "predict_contact",
]

#: Number of contact bins.
NUM_BINS = 10
#: ContactOpt's NLL class weights (``data/class_bin_weights.out``), bin 0 to bin 9.
CLASS_BIN_WEIGHTS: tuple[float, ...] = (
    0.17630,
    0.44779,
    1.90057,
    3.76550,
    5.34170,
    5.97018,
    6.18959,
    5.41086,
    3.74285,
    2.98829,
)
#: The checkpoint shipped with this package (trained on synthetic grasps only; see its .json).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "deepcontact_synthetic.pt"


def contact_to_bin(contact: Tensor) -> Tensor:
    """ContactOpt's ``val_to_class``: bin = clamp(floor(10 c), 0, 9).

    Args:
        contact: (...) float, contact values in [0, 1].

    Returns:
        bins: (...) long in 0..9.
    """
    if not isinstance(contact, Tensor) or not contact.is_floating_point():
        raise InputError(f"contact must be a float tensor, got {type(contact).__name__}")
    return torch.floor(contact * NUM_BINS).clamp(0, NUM_BINS - 1).long()


def bin_to_contact(bins: Tensor) -> Tensor:
    """ContactOpt's ``class_to_val``: the bin centre (k + 0.5) / 10.

    Args:
        bins: (...) integer bins in 0..9.

    Returns:
        contact: (...) float32 in [0.05, 0.95].
    """
    if not isinstance(bins, Tensor) or bins.is_floating_point():
        raise InputError(f"bins must be an integer tensor, got {type(bins).__name__}")
    return (bins.float() + 0.5) / NUM_BINS


class PointNet2Segmentation(nn.Module):
    """ContactOpt's PointNet++ (``contactopt/pointnet.py``): SA 0.2/0.1 m, SA 0.25/0.2 m, global SA, 3 FP, head."""

    def __init__(self, num_features: int = NUM_FEATURES, num_classes: int = NUM_BINS) -> None:
        super().__init__()
        self.sa1_module = SetAbstraction(0.2, 0.1, mlp([num_features + 3, 64, 64, 128]))
        self.sa2_module = SetAbstraction(0.25, 0.2, mlp([128 + 3, 128, 128, 256]))
        self.sa3_module = GlobalSetAbstraction(mlp([256 + 3, 256, 512, 1024]))
        self.fp3_module = FeaturePropagation(1, mlp([1024 + 256, 256, 256]))
        self.fp2_module = FeaturePropagation(3, mlp([256 + 128, 256, 128]))
        self.fp1_module = FeaturePropagation(3, mlp([128 + num_features, 128, 128, 128]))
        self.lin1 = nn.Linear(128, 128)
        self.lin2 = nn.Linear(128, 128)
        self.lin3 = nn.Linear(128, num_classes)

    def forward(self, features: Tensor, points: Tensor) -> Tensor:
        """Per-point class log-probabilities.

        Args:
            features: (B, N, 25) float.
            points: (B, N, 3) float, metres, normalised frame.

        Returns:
            log_probs: (B, N, 10) float.
        """
        x1, p1 = self.sa1_module(features, points)  # (B, M1, 128)
        x2, p2 = self.sa2_module(x1, p1)  # (B, M2, 256)
        x3, p3 = self.sa3_module(x2, p2)  # (B, 1, 1024)
        y2 = self.fp3_module(x3, p3, x2, p2)  # (B, M2, 256)
        y1 = self.fp2_module(y2, p2, x1, p1)  # (B, M1, 128)
        y0 = self.fp1_module(y1, p1, features, points)  # (B, N, 128)
        x = F.dropout(F.relu(self.lin1(y0)), p=0.5, training=self.training)
        x = F.dropout(self.lin2(x), p=0.5, training=self.training)
        return F.log_softmax(self.lin3(x), dim=-1)


class DeepContactOutput(NamedTuple):
    """Result of :meth:`DeepContactNet.forward`.

    Attributes:
        hand: (B, V, 10) float, log-probabilities of the hand vertices' bins.
        obj: (B, P, 10) float, log-probabilities of the object points' bins.
    """

    hand: Tensor
    obj: Tensor


class DeepContactNet(nn.Module):
    """DeepContact: normalise the hand+object cloud, run :class:`PointNet2Segmentation`, split the output."""

    def __init__(self) -> None:
        super().__init__()
        self.pointnet = PointNet2Segmentation()

    def forward(
        self,
        hand_verts: Tensor,
        hand_feats: Tensor,
        obj_points: Tensor,
        obj_feats: Tensor,
        roll: Tensor | None = None,
    ) -> DeepContactOutput:
        """Contact-bin log-probabilities of every hand vertex and object point.

        Args:
            hand_verts: (B, V, 3) float, metres, world frame.
            hand_feats: (B, V, 25) float.
            obj_points: (B, P, 3) float, metres, world frame.
            obj_feats: (B, P, 25) float.
            roll: (B,) float radians about the normalised x axis, or None (deterministic, the default).

        Returns:
            DeepContactOutput with hand (B, V, 10) and obj (B, P, 10) log-probabilities.
        """
        for name, x, last in (
            ("hand_verts", hand_verts, 3),
            ("hand_feats", hand_feats, NUM_FEATURES),
            ("obj_points", obj_points, 3),
            ("obj_feats", obj_feats, NUM_FEATURES),
        ):
            if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != last:
                raise InputError(f"{name} must be (B, N, {last}), got {getattr(x, 'shape', type(x).__name__)}")
        if hand_feats.shape[:2] != hand_verts.shape[:2] or obj_feats.shape[:2] != obj_points.shape[:2]:
            raise InputError("features must match their points one to one (same B and N)")
        if obj_points.shape[0] != hand_verts.shape[0]:
            raise InputError(f"batch sizes differ: hand {hand_verts.shape[0]}, object {obj_points.shape[0]}")
        transform = normalizing_transform(hand_verts, obj_points, roll)
        points = apply_transform(torch.cat([hand_verts, obj_points], dim=1), transform)  # (B, V + P, 3)
        features = torch.cat([hand_feats, obj_feats], dim=1)  # (B, V + P, 25)
        log_probs = self.pointnet(features, points)
        num_hand = hand_verts.shape[1]
        return DeepContactOutput(log_probs[:, :num_hand], log_probs[:, num_hand:])


def _resolve_checkpoint(path: str | os.PathLike | None) -> Path:
    resolved = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not resolved.is_file():
        raise AssetError(
            f"DeepContact checkpoint not found at {resolved}; pass the path of a state_dict .pt (the official "
            f"checkpoints/deepcontact_checkpoint.pt of ContactOpt, or one written by train-deepcontact)"
        )
    return resolved


def load_deepcontact(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> DeepContactNet:
    """Load DeepContact weights (strict) with ``torch.load(weights_only=True)``; returns the model in eval mode.

    Accepts the official flat state_dict (ContactOpt's ``deepcontact_checkpoint.pt``), the exported state_dict of
    :mod:`contactopt_bridge.train`, or one of its training checkpoints (a dict with a ``"model"`` entry).

    Args:
        path: checkpoint file; None loads :data:`DEFAULT_CHECKPOINT` (trained on synthetic data).
        device: torch device.

    Returns:
        DeepContactNet in eval mode on ``device``.
    """
    resolved = _resolve_checkpoint(path)
    try:
        state = torch.load(resolved, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(
            f"{resolved}: torch.load(weights_only=True) refused it ({torch_load_reason(exc)}); re-save only its "
            "state_dict"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise InputError(
            f"{resolved}: not a readable DeepContact checkpoint ({torch_load_reason(exc)}); the file is truncated or "
            "corrupt, download or train it again"
        ) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise InputError(f"{resolved}: expected a state_dict (dict of tensors), got {type(state).__name__}")
    floating = {k: v for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()}
    not_finite = [k for k, v in floating.items() if not bool(v.isfinite().all())]
    if not_finite:
        raise InputError(
            f"{resolved}: tensor {not_finite[0]!r} holds NaN or inf weights; the checkpoint is corrupt (or saved from "
            "a diverged run), use another one"
        )
    model = DeepContactNet()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{resolved}: not a DeepContact state_dict ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval()


@dataclass
class DeepContactPrediction:
    """DeepContact contact targets of a batch of grasps, world frame (inputs of ``optimize_grasp``).

    Attributes:
        hand: (B, 778) float, decoded hand contact: centre of the most probable bin (of the roll-averaged
            probabilities).
        obj: (B, P) float, decoded object contact.
        obj_points: (B, P, 3) float, metres, the sampled object points the contact refers to.
        obj_normals: (B, P, 3) float, their unit outward normals.
    """

    hand: Tensor
    obj: Tensor
    obj_points: Tensor
    obj_normals: Tensor


def _decode(probs: Tensor) -> Tensor:
    return bin_to_contact(probs.argmax(dim=-1)).to(probs.dtype)


@torch.no_grad()
def predict_contact(
    grasps: Sequence[Grasp],
    checkpoint: str | os.PathLike | DeepContactNet | None = None,
    device: str | torch.device = "cpu",
    n_obj_points: int = 2048,
    seed: int = 0,
    n_rolls: int = 0,
    batch_size: int = 8,
) -> DeepContactPrediction:
    """Predict DeepContact hand and object contact for grasps (the refinement targets).

    Deterministic by default (no roll). With ``n_rolls > 0`` the class probabilities are averaged over that many
    random rolls about the normalised x axis (drawn from ``seed``) before decoding (ContactOpt draws one roll).

    Args:
        grasps: grasps (their current, possibly perturbed, hand pose is the input); left hands are mirrored to right
            hands for the network (:func:`contactopt_bridge.features.mirror_grasp`, same vertex ids) and the object
            points and normals mapped back, so every output is in the grasp's own world frame.
        checkpoint: path, a loaded :class:`DeepContactNet`, or None for :data:`DEFAULT_CHECKPOINT`.
        device: torch device.
        n_obj_points: P, object surface points sampled per grasp (seeded by ``seed`` and the grasp index).
        seed: non-negative int.
        n_rolls: 0 for the deterministic unrolled prediction, else the number of rolls averaged.
        batch_size: grasps per forward pass.

    Returns:
        DeepContactPrediction with hand (B, 778), obj (B, P), obj_points (B, P, 3), obj_normals (B, P, 3) on
        ``device``, float32.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(n_rolls, bool) or not isinstance(n_rolls, int) or n_rolls < 0:
        raise InputError(f"n_rolls must be a non-negative int, got {n_rolls!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(checkpoint, DeepContactNet):
        model = checkpoint.to(device).eval()
    else:
        model = load_deepcontact(checkpoint, device)
    inputs = grasp_inputs(list(grasps), n_obj_points=n_obj_points, seed=seed)
    inputs = type(inputs)(*(x.to(device) for x in inputs))
    generator = torch.Generator().manual_seed(seed)
    hand_out, obj_out = [], []
    for start in range(0, inputs.hand_verts.shape[0], batch_size):
        part = slice(start, start + batch_size)
        args = (inputs.hand_verts[part], inputs.hand_feats[part], inputs.obj_points[part], inputs.obj_feats[part])
        if n_rolls == 0:
            out = model(*args)
            hand_probs, obj_probs = out.hand.exp(), out.obj.exp()
        else:
            hand_probs = obj_probs = 0.0
            for _ in range(n_rolls):
                roll = torch.rand(args[0].shape[0], generator=generator) * (2.0 * math.pi)
                out = model(*args, roll=roll.to(device=device, dtype=args[0].dtype))
                hand_probs = hand_probs + out.hand.exp() / n_rolls
                obj_probs = obj_probs + out.obj.exp() / n_rolls
        hand_out.append(_decode(hand_probs))
        obj_out.append(_decode(obj_probs))
    left = torch.tensor([grasp.side == "left" for grasp in grasps], device=inputs.obj_points.device)
    unmirror = torch.where(left[:, None, None], inputs.obj_points.new_tensor([-1.0, 1.0, 1.0]), 1.0)  # (B, 1, 3)
    return DeepContactPrediction(
        torch.cat(hand_out), torch.cat(obj_out), inputs.obj_points * unmirror, inputs.obj_normals * unmirror
    )
