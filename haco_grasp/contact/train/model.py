"""The model as trained: HACO config from a :class:`TrainConfig`, contact-head init, the keypoint token loss."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from haco_grasp.contact.train.config import TrainConfig
from haco_grasp.errors import InputError

# --------------------------------------------------------------------------------------------------------------
# building blocks


def hand_faces(hand: str = "synthetic") -> np.ndarray:
    """(F, 3) int64 right-hand faces (open wrist) of the synthetic hand or official MANO, for the smoothness term."""
    from haco_grasp.hand.mano import read_mano_pickle, resolve_mano_path

    if hand == "synthetic":
        from haco_grasp.hand.assets import synthetic_mano_root

        return read_mano_pickle(resolve_mano_path("right", synthetic_mano_root())).faces
    return read_mano_pickle(resolve_mano_path("right", None)).faces


def _haco_config(config: TrainConfig) -> Any:
    from haco_grasp.contact.haco_model import HacoConfig

    return HacoConfig(
        backbone=config.backbone,
        decoder_dim=config.decoder_dim,
        depth=config.depth,
        heads=config.heads,
        dim_head=config.dim_head,
        mlp_dim=config.mlp_dim,
        hand=config.hand,
        backbone_kwargs=dict(config.backbone_kwargs),
    )


def init_contact_from_mean(model: torch.nn.Module, means: np.ndarray, clip: float = 0.02) -> None:
    """Set ``model.decoder.init_contact`` to logit(clip(means, clip, 1 - clip)) in place.

    Args:
        model: a HACO model
        means: (778,) per-vertex contact frequency of the training labels
    """
    probs = np.clip(np.asarray(means, dtype=np.float64), clip, 1.0 - clip)
    if probs.shape != tuple(model.decoder.init_contact.shape[1:]):
        raise InputError(f"means: expected shape {tuple(model.decoder.init_contact.shape[1:])}, got {probs.shape}")
    logits = torch.as_tensor(np.log(probs / (1.0 - probs)), dtype=model.decoder.init_contact.dtype)
    with torch.no_grad():
        model.decoder.init_contact.copy_(logits.reshape(model.decoder.init_contact.shape))


def token_grid(backbone: str) -> tuple[int, int, float, float, float, float]:
    """Where a backbone's context tokens sit in the 256×256 crop, for the keypoint term.

    Args:
        backbone: registry name

    Returns:
        (rows, cols, x0, y0, cell_w, cell_h): token ``r * cols + c`` covers crop pixels
        ``x0 + c·cell_w .. x0 + (c+1)·cell_w`` × ``y0 + r·cell_h .. y0 + (r+1)·cell_h``
        (hamer: 16×12 patches of 16 px over columns 32–224, shifted 2 px by the patch conv's padding;
        ResNet/HRNet: 8×8 cells of 32 px)
    """
    from haco_grasp.contact.backbones import CROP_SIZE, get_backbone_spec

    name = get_backbone_spec(backbone).name
    if name == "hamer":
        return 16, 12, 30.0, -2.0, 16.0, 16.0  # the patch conv pads 2 px
    if name.startswith(("resnet-", "hrnet-")):
        return 8, 8, 0.0, 0.0, CROP_SIZE / 8, CROP_SIZE / 8
    raise InputError(
        f"keypoint_weight > 0 needs a backbone whose tokens form a known pixel grid (hamer, resnet-*, hrnet-*), "
        f"not {name!r}; set keypoint_weight to 0"
    )


def keypoint_token_loss(logits: torch.Tensor, joints_2d: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Cross-entropy of the token containing each 2D joint (softmax over the tokens).

    Args:
        logits: (B, N, J) float, per-token joint scores (N = rows · cols)
        joints_2d: (B, J, 2) float, crop pixels (NaN: unknown)
        grid: :func:`token_grid` of the backbone

    Returns:
        () mean over the joints inside the grid (0 when there are none, still differentiable)
    """
    rows, cols, x0, y0, cell_w, cell_h = grid
    if logits.ndim != 3 or logits.shape[1] != rows * cols or joints_2d.shape != (logits.shape[0], logits.shape[2], 2):
        raise InputError(
            f"keypoint_token_loss: logits {tuple(logits.shape)} and joints {tuple(joints_2d.shape)} do not match a "
            f"{rows}x{cols} grid"
        )
    # pixel centres at integers: the cell of pixel u is floor((u + 0.5 - x0) / cell_w)
    col = torch.floor((joints_2d[..., 0] + 0.5 - x0) / cell_w)
    row = torch.floor((joints_2d[..., 1] + 0.5 - y0) / cell_h)
    valid = torch.isfinite(col) & torch.isfinite(row) & (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
    target = torch.where(valid, row * cols + col, torch.zeros_like(col)).long()  # (B, J)
    log_probs = torch.log_softmax(logits.float(), dim=1)  # over tokens
    picked = log_probs.gather(1, target[:, None, :])[:, 0]  # (B, J)
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return -(picked[valid]).mean()


class _TrainModule(torch.nn.Module):
    """HACO plus the training-only keypoint head: forward -> (HacoOutput, (B, N, 21) keypoint logits or None)."""

    def __init__(self, model: torch.nn.Module, keypoint_head: torch.nn.Module | None) -> None:
        super().__init__()
        self.model = model
        self.keypoint_head = keypoint_head

    def forward(self, images: torch.Tensor) -> tuple[Any, torch.Tensor | None]:
        if self.keypoint_head is None:
            return self.model(images), None
        context = self.model.backbone(images)
        output = self.model.decode(context)
        return output, self.keypoint_head(context)
