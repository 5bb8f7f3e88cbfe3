"""The HACO contact predictor: a registered image backbone + HaMeR-style transformer decoder head.

``build_haco(backbone)`` returns a module whose ``state_dict()`` has exactly the key names, shapes and dtypes of
the official ``haco_final_<backbone>_checkpoint.ckpt`` (commit b2cc3c1 of dqj5182/HACO_RELEASE), so official
weights load strictly, and whose forward reproduces the official one (haco.md, "Forward-pass details"):

    crop (B, 3, 256, 256), already normalised for the backbone (the model never normalises)
      -> backbone -> context (B, N, C)
      -> decoder: token = zeros (B, 1, 1) -> Linear(1 -> 1024) + pos_embedding
                  6 x [pre-LN self-attention, pre-LN cross-attention to the context, pre-LN GELU feed-forward],
                  each with a residual, softmax(q k^T * dim_head^-0.5), no final norm
      -> contact_logits = deccontact(token) + init_contact                              (B, 778)
      -> coarse logits = contact_logits @ R.T for R = V_regressor_336 / V_regressor_84 / joint regressor

All outputs are logits; apply a sigmoid for probabilities. The coarse regressors are non-persistent buffers (not
in the state_dict, as in the official checkpoints); see :mod:`haco_grasp.contact.regressors`.

``init_contact`` (1, 778) is a learnable ``nn.Parameter`` (the paper's learned "contact initialisation"), so
``parameters()`` matches the parameter counts of the reference state_dict headers exactly. Quirk of the official
code: its head creates the ``nn.Parameter`` but registers it with ``register_buffer``, so there it is absent from
``parameters()`` and an optimizer built from them would not update it. The key, shape and dtype are the same
either way, so official checkpoints load unchanged; whether the released value was trained is unverified.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from haco_grasp.contact.backbones import BackboneSpec, create_backbone, get_backbone_spec
from haco_grasp.contact.regressors import HACO_TIP_VERTEX_IDS, ContactRegressors, build_contact_regressors
from haco_grasp.errors import InputError
from haco_grasp.hand.joints import NUM_JOINTS, NUM_VERTS

__all__ = [
    "HACO",
    "ContactTransformerDecoderHead",
    "HacoConfig",
    "HacoOutput",
    "build_haco",
    "build_haco_from_config",
]


# ----------------------------------------------------------------------------------------------------------------
# Decoder (module names follow the official checkpoint keys)
# ----------------------------------------------------------------------------------------------------------------


def _attend(q: Tensor, k: Tensor, v: Tensor, heads: int, scale: float) -> Tensor:
    """Multi-head softmax attention.

    Args:
        q: (B, Nq, heads * d), k and v: (B, Nk, heads * d) -> (B, Nq, heads * d)
    """
    batch, n_query, inner = q.shape
    d = inner // heads
    q = q.reshape(batch, n_query, heads, d).transpose(1, 2)  # (B, h, Nq, d)
    k = k.reshape(batch, k.shape[1], heads, d).transpose(1, 2)  # (B, h, Nk, d)
    v = v.reshape(batch, v.shape[1], heads, d).transpose(1, 2)  # (B, h, Nk, d)
    weights = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1)  # (B, h, Nq, Nk)
    return torch.matmul(weights, v).transpose(1, 2).reshape(batch, n_query, inner)  # (B, Nq, h * d)


def _output_projection(inner: int, dim: int, heads: int, dim_head: int) -> nn.Module:
    if heads == 1 and dim_head == dim:
        return nn.Identity()
    return nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = _output_projection(heads * dim_head, dim, heads, dim_head)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        return self.to_out(_attend(q, k, v, self.heads, self.scale))


class _CrossAttention(nn.Module):
    def __init__(self, dim: int, context_dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_kv = nn.Linear(context_dim, heads * dim_head * 2, bias=False)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_out = _output_projection(heads * dim_head, dim, heads, dim_head)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        k, v = self.to_kv(context).chunk(2, dim=-1)
        return self.to_out(_attend(self.to_q(x), k, v, self.heads, self.scale))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor, **kwargs: Tensor) -> Tensor:
        return self.fn(self.norm(x), **kwargs)


class _CrossAttentionStack(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, context_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    _PreNorm(dim, _SelfAttention(dim, heads, dim_head)),
                    _PreNorm(dim, _CrossAttention(dim, context_dim, heads, dim_head)),
                    _PreNorm(dim, _FeedForward(dim, mlp_dim)),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        for self_attention, cross_attention, feed_forward in self.layers:
            x = self_attention(x) + x
            x = cross_attention(x, context=context) + x
            x = feed_forward(x) + x
        return x


class _TokenDecoder(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, context_dim: int) -> None:
        super().__init__()
        self.to_token_embedding = nn.Linear(1, dim)
        self.pos_embedding = nn.Parameter(torch.randn(1, 1, dim))
        self.transformer = _CrossAttentionStack(dim, depth, heads, dim_head, mlp_dim, context_dim)

    def forward(self, token: Tensor, context: Tensor) -> Tensor:
        x = self.to_token_embedding(token) + self.pos_embedding  # (B, 1, dim)
        return self.transformer(x, context=context)


class ContactTransformerDecoderHead(nn.Module):
    """HACO's decoder: one zero token cross-attending to the image context, read out as 778 vertex logits.

    Args:
        context_dim: C, width of the context tokens (the backbone's ``context_dim``).
        dim, depth, heads, dim_head, mlp_dim: 1024 / 6 / 8 / 64 / 1024 in every official checkpoint.
        num_verts: 778 (MANO).
    """

    def __init__(
        self,
        context_dim: int,
        dim: int = 1024,
        depth: int = 6,
        heads: int = 8,
        dim_head: int = 64,
        mlp_dim: int = 1024,
        num_verts: int = NUM_VERTS,
    ) -> None:
        super().__init__()
        for name, value in (("context_dim", context_dim), ("dim", dim), ("depth", depth), ("heads", heads)):
            if not isinstance(value, int) or value < 1:
                raise InputError(f"ContactTransformerDecoderHead: {name} must be a positive int, got {value!r}")
        self.context_dim = context_dim
        self.transformer = _TokenDecoder(dim, depth, heads, dim_head, mlp_dim, context_dim)
        self.deccontact = nn.Linear(dim, num_verts)
        self.init_contact = nn.Parameter(torch.randn(1, num_verts))  # see the module docstring

    def forward(self, context: Tensor) -> Tensor:
        """context: (B, N, C) float -> contact_logits: (B, 778) float."""
        if context.ndim != 3 or context.shape[2] != self.context_dim:
            raise InputError(f"context: expected (B, N, {self.context_dim}), got {tuple(context.shape)}")
        token = torch.zeros(context.shape[0], 1, 1, device=context.device, dtype=context.dtype)
        token_out = self.transformer(token, context=context)[:, 0]  # (B, dim)
        return self.deccontact(token_out) + self.init_contact


# ----------------------------------------------------------------------------------------------------------------
# Full model
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class HacoOutput:
    """HACO's four outputs, all logits (apply a sigmoid for probabilities).

    Attributes:
        contact_logits: (B, 778) float, per MANO vertex.
        contact_336_logits: (B, 336) float, ``contact_logits @ V_regressor_336.T``.
        contact_84_logits: (B, 84) float, ``contact_logits @ V_regressor_84.T``.
        contact_joint_logits: (B, 21) float, ``contact_logits @ joint_regressor.T`` (toolkit joint order).
    """

    contact_logits: Tensor
    contact_336_logits: Tensor
    contact_84_logits: Tensor
    contact_joint_logits: Tensor


@dataclass
class HacoConfig:
    """Everything needed to rebuild a HACO model around a state_dict (saved as JSON beside checkpoints).

    Attributes:
        backbone: registry name (:func:`haco_grasp.contact.backbones.list_backbones`).
        decoder_dim, depth, heads, dim_head, mlp_dim: decoder sizes (official: 1024, 6, 8, 64, 1024).
        hand: topology of the coarse regressors: "synthetic" or "mano".
        tip_vertex_ids: fingertip vertices of the joint regressor (HACO 745/317/445/556/673).
        backbone_kwargs: extra keyword arguments of the backbone factory (e.g. a reduced ``depth`` for tests).
        threshold: probability threshold for binary contact; None uses the backbone's official eval threshold.
    """

    backbone: str = "hamer"
    decoder_dim: int = 1024
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    mlp_dim: int = 1024
    hand: str = "synthetic"
    tip_vertex_ids: tuple[int, ...] = HACO_TIP_VERTEX_IDS
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None

    def __post_init__(self) -> None:
        get_backbone_spec(self.backbone)  # raises InputError with candidates
        if self.hand not in ("synthetic", "mano"):
            raise InputError(f"HacoConfig.hand: expected 'synthetic' or 'mano', got {self.hand!r}")
        self.tip_vertex_ids = tuple(int(i) for i in self.tip_vertex_ids)
        if self.threshold is not None and not 0.0 < float(self.threshold) < 1.0:
            raise InputError(f"HacoConfig.threshold: expected a probability in (0, 1) or None, got {self.threshold}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        values = asdict(self)
        values["tip_vertex_ids"] = list(self.tip_vertex_ids)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HacoConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise InputError naming them."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"HACO config: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**values)


class HACO(nn.Module):
    """Backbone + contact decoder; ``forward(images) -> HacoOutput``. Build it with :func:`build_haco`.

    Args:
        backbone: a module from :func:`haco_grasp.contact.backbones.create_backbone` (images -> (B, N, C)).
        decoder: a :class:`ContactTransformerDecoderHead` whose ``context_dim`` is C.
        regressors: the coarse regressors (non-persistent buffers, float32, moved with the module).
    """

    def __init__(self, backbone: nn.Module, decoder: ContactTransformerDecoderHead, regressors: ContactRegressors):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.spec: BackboneSpec | None = getattr(backbone, "spec", None)
        self.config: HacoConfig | None = None  # set by build_haco / load_haco: what rebuilds this model
        self.regressor_source = regressors.source
        for name, matrix, rows in (
            ("regressor_336", regressors.vertex_336, 336),
            ("regressor_84", regressors.vertex_84, 84),
            ("regressor_joint", regressors.joint, NUM_JOINTS),
        ):
            array = np.asarray(matrix, dtype=np.float32)
            if array.shape != (rows, NUM_VERTS):
                raise InputError(f"{name}: expected ({rows}, {NUM_VERTS}), got {array.shape}")
            self.register_buffer(name, torch.tensor(array), persistent=False)

    def forward(self, images: Tensor) -> HacoOutput:
        """Contact logits for a batch of crops.

        Args:
            images: (B, 3, 256, 256) float, the RGB crop in [0, 1] after the backbone's normalisation
                (:func:`haco_grasp.contact.backbones.normalize_images`)

        Returns:
            HacoOutput of logits (B, 778), (B, 336), (B, 84), (B, 21)
        """
        return self.decode(self.backbone(images))

    def decode(self, context: Tensor) -> HacoOutput:
        """The decoder and the coarse levels on backbone context tokens: (B, N, C) float -> HacoOutput."""
        logits = self.decoder(context)  # (B, 778)
        return HacoOutput(
            contact_logits=logits,
            contact_336_logits=logits @ self.regressor_336.to(logits.dtype).T,
            contact_84_logits=logits @ self.regressor_84.to(logits.dtype).T,
            contact_joint_logits=logits @ self.regressor_joint.to(logits.dtype).T,
        )


def build_haco(
    backbone: str = "hamer",
    decoder_dim: int = 1024,
    depth: int = 6,
    heads: int = 8,
    dim_head: int = 64,
    mlp_dim: int = 1024,
    regressors: ContactRegressors | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
) -> HACO:
    """Build HACO with random weights; the defaults give the official layout of ``haco_<backbone>.tsv``.

    Args:
        backbone: registry name: hamer, vit-s-16, vit-b-16, vit-l-16, resnet-18/34/50/101/152, hrnet-w32/w48,
            handoccnet.
        decoder_dim, depth, heads, dim_head, mlp_dim: decoder sizes (change them only for small custom models).
        regressors: coarse regressors; None uses :func:`build_contact_regressors` for the synthetic hand (our
            geodesic coarsening, HACO's fingertips). Pass the official ones for official-checkpoint fidelity.
        backbone_kwargs: passed to the backbone factory (e.g. ``{"pretrained": True}`` for timm ImageNet weights,
            or ``{"depth": 2}`` for a small hamer-shaped test model).

    Build under ``with torch.device("meta"):`` to inspect the large models without allocating them.
    The returned model's ``.config`` (a :class:`HacoConfig`) is what :func:`save_haco_checkpoint` stores.
    """
    spec = get_backbone_spec(backbone)
    module = create_backbone(spec.name, **(backbone_kwargs or {}))
    context_dim = int(getattr(module, "context_dim", spec.context_dim))
    decoder = ContactTransformerDecoderHead(context_dim, decoder_dim, depth, heads, dim_head, mlp_dim)
    if regressors is None:
        regressors = build_contact_regressors("synthetic")
    model = HACO(module, decoder, regressors)
    model.config = HacoConfig(
        backbone=spec.name,
        decoder_dim=decoder_dim,
        depth=depth,
        heads=heads,
        dim_head=dim_head,
        mlp_dim=mlp_dim,
        hand="mano" if "mano" in regressors.source else "synthetic",
        tip_vertex_ids=regressors.tip_vertex_ids,
        backbone_kwargs=dict(backbone_kwargs or {}),
    )
    return model


def build_haco_from_config(config: HacoConfig, regressors: ContactRegressors | None = None) -> HACO:
    """Build the model a :class:`HacoConfig` describes (regressors from ``config.hand`` unless given)."""
    if regressors is None:
        regressors = build_contact_regressors(config.hand, tip_vertex_ids=config.tip_vertex_ids)  # type: ignore[arg-type]
    model = build_haco(
        config.backbone,
        config.decoder_dim,
        config.depth,
        config.heads,
        config.dim_head,
        config.mlp_dim,
        regressors=regressors,
        backbone_kwargs=config.backbone_kwargs,
    )
    model.config = config
    return model
