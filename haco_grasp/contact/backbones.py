"""Image backbones of the HACO contact predictor: a decorator registry and one factory (timm style).

Every registered backbone maps an already-normalised 256 x 256 RGB crop to the decoder's context tokens::

    images (B, 3, 256, 256) float  ->  backbone  ->  context (B, N, C)

and its ``state_dict()`` keys are exactly those under ``backbone.`` in the official HACO checkpoints (see
``/work/shared/reference/state_dicts``). Each registry entry records how the official model feeds and reads it
(haco.md, "Backbone variants" and "Forward-pass details"):

==========  ==========================  =====  ======  =============  =========
name        input to the network        C      N       normalisation  threshold
==========  ==========================  =====  ======  =============  =========
hamer       columns 32:-32 (256 x 192)  1280   192     imagenet       0.50
vit-s-16    bilinear resize to 224      384    196     imagenet       0.50
vit-b-16    bilinear resize to 224      768    196     imagenet       0.50
vit-l-16    bilinear resize to 224      1024   196     imagenet       0.55
resnet-18   256 x 256                   512    64      none           0.50
resnet-34   256 x 256                   512    64      none           0.50
resnet-50   256 x 256                   2048   64      none           0.50
resnet-101  256 x 256                   2048   64      none           0.50
resnet-152  256 x 256                   2048   64      none           0.55
hrnet-w32   256 x 256                   2048   64      imagenet       0.50
hrnet-w48   256 x 256                   2048   64      imagenet       0.50
handoccnet  256 x 256                   256    1024    none           0.95
==========  ==========================  =====  ======  =============  =========

"normalisation" is what the official *test loaders* apply before the model (the model itself never normalises):
``imagenet`` = (x - mean) / std with the ImageNet mean/std, ``none`` = the [0, 1] crop as is.

The ResNet, HRNet and ViT networks are timm's (imported through :func:`haco_grasp._compat.import_timm`); HaMeR's
ViT-H/16 and HandOccNet's FPN are not in timm and are written here with the official parameter names. The timm
CNNs keep their own class (so their keys carry no extra prefix) with a small mixin added in front that makes
``forward`` return context tokens; save such models through ``state_dict()``, not by pickling the module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from haco_grasp.errors import InputError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneSpec",
    "HamerViT",
    "HandOccNetFPN",
    "create_backbone",
    "get_backbone_spec",
    "list_backbones",
    "normalize_images",
    "register_backbone",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_SIZE = 256

Normalization = Literal["imagenet", "none"]


@dataclass(frozen=True)
class BackboneSpec:
    """What the official HACO pipeline does around one backbone.

    Attributes:
        name: registry name (the official ``--backbone`` value, e.g. "resnet-50").
        context_dim: C, the width of the context tokens (the decoder's cross-attention ``to_kv`` input width).
        num_tokens: N, the number of context tokens for a 256 x 256 crop.
        input_handling: how the 256 x 256 crop reaches the network, in words.
        normalization: "imagenet" or "none", as applied by the official test loaders.
        eval_threshold: the official ``get_contact_thres`` value for this backbone.
        release_name: the ``<name>`` part of ``haco_final_<name>_checkpoint.ckpt``.
        factory: builds the module; called with the keyword arguments given to :func:`create_backbone`.
    """

    name: str
    context_dim: int
    num_tokens: int
    input_handling: str
    normalization: Normalization
    eval_threshold: float
    release_name: str
    factory: Callable[..., nn.Module]

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel mean subtracted from [0, 1] RGB (zeros when the loader does not normalise)."""
        return IMAGENET_MEAN if self.normalization == "imagenet" else (0.0, 0.0, 0.0)

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel divisor applied after the mean (ones when the loader does not normalise)."""
        return IMAGENET_STD if self.normalization == "imagenet" else (1.0, 1.0, 1.0)


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(
    name: str,
    *,
    context_dim: int,
    num_tokens: int,
    input_handling: str,
    normalization: Normalization,
    eval_threshold: float,
    release_name: str,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a backbone factory under ``name`` (unique), with the facts of its official use."""
    if normalization not in ("imagenet", "none"):
        raise InputError(f"normalization: expected 'imagenet' or 'none', got {normalization!r}")

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise InputError(f"backbone {name!r} is registered twice; pick a new name")
        _REGISTRY[name] = BackboneSpec(
            name, context_dim, num_tokens, input_handling, normalization, eval_threshold, release_name, factory
        )
        return factory

    return decorate


def list_backbones() -> list[str]:
    """Names of every registered backbone, in registration order."""
    return list(_REGISTRY)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` of ``name``; an unknown name raises InputError listing the candidates.

    Release-file spellings ("vit_l", "resnet_18", "hrnet_w32") are accepted as aliases.
    """
    if not isinstance(name, str):
        raise InputError(f"backbone: expected a name (str), got {type(name).__name__}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    for spec in _REGISTRY.values():
        if name == spec.release_name:
            return spec
    raise InputError(f"unknown backbone {name!r}; choose one of {', '.join(_REGISTRY)}")


def create_backbone(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered backbone ``name``; keyword arguments go to its factory.

    The returned module maps images (B, 3, 256, 256) float, already normalised, to context (B, N, C) float and
    carries its :class:`BackboneSpec` as ``.spec``. Random initialisation (no pretrained download).
    """
    spec = get_backbone_spec(name)
    module = spec.factory(**kwargs)
    module.spec = spec
    return module


def normalize_images(images: Tensor, spec: BackboneSpec) -> Tensor:
    """Apply the official test-loader normalisation of ``spec`` to [0, 1] RGB images.

    Args:
        images: (B, 3, H, W) float RGB in [0, 1]

    Returns:
        (B, 3, H, W) float, (images - mean) / std with the spec's mean/std (unchanged for "none")
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"images: expected (B, 3, H, W), got {tuple(images.shape)}")
    if spec.normalization == "none":
        return images
    mean = torch.tensor(spec.mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


def _check_crop(images: Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (CROP_SIZE, CROP_SIZE):
        raise InputError(
            f"images: expected a (B, 3, {CROP_SIZE}, {CROP_SIZE}) crop batch, got {tuple(images.shape)}; "
            "crop with haco_grasp.contact.predictor.crop_hands"
        )


def _timm() -> Any:
    from haco_grasp._compat import import_timm

    return import_timm()


# ----------------------------------------------------------------------------------------------------------------
# timm CNNs (ResNet, HRNet): flat keys, forward -> row-major flattened last feature map
# ----------------------------------------------------------------------------------------------------------------


class _FeatureMapTokens:
    """Mixin placed in front of a timm CNN class: ``forward(images)`` returns its final map as tokens."""

    def forward(self, images: Tensor) -> Tensor:  # type: ignore[override]
        """images: (B, 3, 256, 256) float -> context: (B, h * w, C) float, the (B, C, h, w) map row-major."""
        _check_crop(images)
        feature_map = self.forward_features(images)  # type: ignore[attr-defined]  # (B, C, h, w)
        return feature_map.flatten(2).transpose(1, 2)  # (B, h * w, C)


_MIXED_CLASSES: dict[type, type] = {}


def _with_token_forward(model: nn.Module) -> nn.Module:
    base = type(model)
    if base not in _MIXED_CLASSES:
        _MIXED_CLASSES[base] = type(f"{base.__name__}Tokens", (_FeatureMapTokens, base), {})
    model.__class__ = _MIXED_CLASSES[base]
    return model


def _timm_cnn(variant: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    if isinstance(kwargs.get("channels"), list):  # JSON configs carry lists; timm wants a tuple
        kwargs["channels"] = tuple(kwargs["channels"])
    model = _timm().create_model(variant, pretrained=pretrained, num_classes=0, **kwargs)
    # the registry's width unless timm arguments (e.g. ``channels``) made a narrower custom network
    model.context_dim = int(model.num_features)
    return _with_token_forward(model)


def _timm_hrnet(variant: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    # num_classes=1000 keeps the unused ``classifier`` Linear(2048 -> 1000) that the official state_dict holds.
    model = _timm().create_model(variant, pretrained=pretrained, num_classes=1000, **kwargs)
    return _with_token_forward(model)


for _depth, _width, _threshold in (
    (18, 512, 0.5),
    (34, 512, 0.5),
    (50, 2048, 0.5),
    (101, 2048, 0.5),
    (152, 2048, 0.55),
):
    register_backbone(
        f"resnet-{_depth}",
        context_dim=_width,
        num_tokens=64,
        input_handling="256x256 as is; conv1..layer4 (B, C, 8, 8) flattened row-major",
        normalization="none",
        eval_threshold=_threshold,
        release_name=f"resnet_{_depth}",
    )(lambda pretrained=False, _variant=f"resnet{_depth}", **kw: _timm_cnn(_variant, pretrained, **kw))

for _width in (32, 48):
    register_backbone(
        f"hrnet-w{_width}",
        context_dim=2048,
        num_tokens=64,
        input_handling="256x256 as is; classification HRNet up to final_layer (B, 2048, 8, 8) flattened row-major",
        normalization="imagenet",
        eval_threshold=0.5,
        release_name=f"hrnet_w{_width}",
    )(lambda pretrained=False, _variant=f"hrnet_w{_width}", **kw: _timm_hrnet(_variant, pretrained, **kw))
del _depth, _width, _threshold


# ----------------------------------------------------------------------------------------------------------------
# timm ViTs: resize to 224, drop cls, plain-view reinterpretation (official quirk)
# ----------------------------------------------------------------------------------------------------------------


class TimmViTBackbone(nn.Module):
    """timm ViT under ``.vit`` as the official wrapper holds it (keys ``vit.*``).

    Forward, exactly as the official pipeline: bilinear resize to 224 x 224 (align_corners False, no antialias);
    timm ``forward_features`` (B, 197, D) after the final LayerNorm; the cls token dropped, P (B, 196, D); P's
    memory reinterpreted as a (B, D, 14, 14) map by a plain view -- NOT a transpose -- and flattened back
    ``b c h w -> b (h w) c``, so ``context = P.reshape(B, D, 196).transpose(1, 2)``. The result mixes patch and
    channel axes; it is what the released checkpoints were trained with.
    """

    def __init__(self, variant: str, pretrained: bool = False, **kwargs: Any) -> None:
        super().__init__()
        self.vit = _timm().create_model(variant, pretrained=pretrained, num_classes=0, **kwargs)

    def forward(self, images: Tensor) -> Tensor:
        """images: (B, 3, 256, 256) float, normalised -> context: (B, 196, D) float."""
        _check_crop(images)
        resized = F.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False)
        tokens = self.vit.forward_features(resized)[:, 1:]  # (B, 196, D), cls dropped
        batch, count, width = tokens.shape
        feature_map = tokens.reshape(batch, width, count)  # the official plain view (B, D, 14 * 14)
        return feature_map.transpose(1, 2)  # (B, 196, D)


for _size, _width, _threshold in (("small", 384, 0.5), ("base", 768, 0.5), ("large", 1024, 0.55)):
    register_backbone(
        f"vit-{_size[0]}-16",
        context_dim=_width,
        num_tokens=196,
        input_handling="bilinear resize to 224x224; cls dropped; plain-view (B, 196, D) -> (B, D, 14, 14)",
        normalization="imagenet",
        eval_threshold=_threshold,
        release_name=f"vit_{_size[0]}",
    )(lambda pretrained=False, _variant=f"vit_{_size}_patch16_224", **kw: TimmViTBackbone(_variant, pretrained, **kw))
del _size, _width, _threshold


# ----------------------------------------------------------------------------------------------------------------
# HaMeR's ViT-H/16 (ViTPose style), official names: pos_embed, patch_embed.proj, blocks.*, last_norm
# ----------------------------------------------------------------------------------------------------------------


class _DropPath(nn.Module):
    """Stochastic depth per sample (training only); identity at eval or rate 0."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep


class _PatchEmbed(nn.Module):
    def __init__(self, embed_dim: int, patch_size: int, padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size, padding=padding)

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)  # (B, h * w, C), row-major patches


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, count, dim = x.shape
        qkv = self.qkv(x).reshape(batch, count, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, N, d)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, heads, N, N)
        out = attn.softmax(dim=-1) @ v  # (B, heads, N, d)
        return self.proj(out.transpose(1, 2).reshape(batch, count, dim))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _SelfAttention(dim, num_heads, qkv_bias)
        self.drop_path = _DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class HamerViT(nn.Module):
    """HaMeR's ViT-H/16 backbone (official HACO ``hamer``), keys as in ``haco_hamer.tsv`` under ``backbone.``.

    Forward: columns 32:-32 of the 256 x 256 crop (256 x 192); patch conv kernel 16, stride 16, **padding 2**
    (16 x 12 = 192 tokens, no cls token); tokens + ``pos_embed[:, 1:] + pos_embed[:, :1]``; ``depth`` pre-LN
    blocks (LayerNorm eps 1e-6, exact GELU); ``last_norm``. The official output map (B, C, 16, 12) is a real
    transpose of the tokens, so the context is the tokens in row-major patch order.

    Args:
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: ViT-H defaults 1280 / 32 / 16 / 4 / True; smaller
            values build a test-size model with the same structure.
        drop_path_rate: stochastic depth at the last block (linear from 0), 0.55 as in HaMeR; training only.
        patch_size, padding: 16 and 2 as in HaMeR.
    """

    def __init__(
        self,
        embed_dim: int = 1280,
        depth: int = 32,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.55,
        patch_size: int = 16,
        padding: int = 2,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise InputError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.grid = (
            (256 + 2 * padding - patch_size) // patch_size + 1,
            (192 + 2 * padding - patch_size) // patch_size + 1,
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1] + 1, embed_dim))
        self.patch_embed = _PatchEmbed(embed_dim, patch_size, padding)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(_Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rate) for rate in rates)
        self.last_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.context_dim = embed_dim
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, images: Tensor) -> Tensor:
        """images: (B, 3, 256, 256) float, normalised -> context: (B, 192, embed_dim) float."""
        _check_crop(images)
        tokens = self.patch_embed(images[:, :, :, 32:-32])  # (B, 192, C)
        tokens = tokens + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for block in self.blocks:
            tokens = block(tokens)
        return self.last_norm(tokens)


@register_backbone(
    "hamer",
    context_dim=1280,
    num_tokens=192,
    input_handling="columns 32:-32 (256x192); patch conv padding 2; 16x12 tokens",
    normalization="imagenet",
    eval_threshold=0.5,
    release_name="hamer",
)
def _hamer(**kwargs: Any) -> nn.Module:
    return HamerViT(**kwargs)


# ----------------------------------------------------------------------------------------------------------------
# HandOccNet's FPN on ResNet-50, official names: toplayer, layer0..4, smooth2/3, latlayer1..3, attention_module
# ----------------------------------------------------------------------------------------------------------------


class _Bottleneck(nn.Module):
    """ResNet bottleneck with LeakyReLU (slope 0.01), as HandOccNet's ResNet-50 ("leakyrelu") has it."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.act = nn.LeakyReLU()
        self.downsample = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(out + shortcut)


class _SpatialConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class _SpatialGate(nn.Module):
    """CBAM spatial gate: sigmoid(BN(conv7x7([max_c x, mean_c x]))) scales the map."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = _SpatialConv()

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)  # (B, 2, h, w)
        return x * torch.sigmoid(self.spatial(pooled))


class HandOccNetFPN(nn.Module):
    """HandOccNet's FPN on a ResNet-50 (official HACO ``handoccnet``), keys as in ``haco_handoccnet.tsv``.

    Forward: ResNet-50 c2..c5; top-down p5 = toplayer(c5), p4/p3/p2 by bilinear upsampling (align_corners False)
    plus the lateral 1x1 convs; p2 = smooth3(p2); 2x2 average pool (B, 256, 32, 32); CBAM spatial gate; the
    gated ("primary") map flattened row-major gives 1024 tokens of width 256.

    Not verified against the official code (``lib/models/backbone/fpn.py`` was not available): the key names and
    shapes match exactly, but the activation (LeakyReLU, slope 0.01, as HandOccNet's ResNet names it) and the
    choice of the gated primary map ``x * scale`` as HACO's single output follow HandOccNet and are assumptions.
    """

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.toplayer = nn.Conv2d(2048, 256, 1)
        self.layer0 = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        in_planes = 64
        for index, (planes, blocks, stride) in enumerate(
            zip((64, 128, 256, 512), layers, (1, 2, 2, 2), strict=True), start=1
        ):
            stage = []
            for block in range(blocks):
                stage.append(_Bottleneck(in_planes, planes, stride if block == 0 else 1))
                in_planes = planes * _Bottleneck.expansion
            # official nesting: layerK = Sequential(resnet.layerK) -> keys layerK.0.<block>.*
            setattr(self, f"layer{index}", nn.Sequential(nn.Sequential(*stage)))
        self.smooth2 = nn.Conv2d(256, 256, 3, padding=1)
        self.smooth3 = nn.Conv2d(256, 256, 3, padding=1)
        self.latlayer1 = nn.Conv2d(1024, 256, 1)
        self.latlayer2 = nn.Conv2d(512, 256, 1)
        self.latlayer3 = nn.Conv2d(256, 256, 1)
        self.attention_module = _SpatialGate()

    @staticmethod
    def _upsample_add(coarse: Tensor, lateral: Tensor) -> Tensor:
        return F.interpolate(coarse, size=lateral.shape[-2:], mode="bilinear", align_corners=False) + lateral

    def forward(self, images: Tensor) -> Tensor:
        """images: (B, 3, 256, 256) float in [0, 1] -> context: (B, 1024, 256) float."""
        _check_crop(images)
        c2 = self.layer1(self.layer0(images))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        p5 = self.toplayer(c5)
        p4 = self._upsample_add(p5, self.latlayer1(c4))
        p3 = self._upsample_add(p4, self.latlayer2(c3))
        p2 = self._upsample_add(p3, self.latlayer3(c2))
        p2 = self.smooth3(p2)  # smooth2(p3) feeds only HandOccNet's secondary branch, unused here
        gated = self.attention_module(F.avg_pool2d(p2, 2, stride=2))  # (B, 256, 32, 32)
        return gated.flatten(2).transpose(1, 2)  # (B, 1024, 256)


@register_backbone(
    "handoccnet",
    context_dim=256,
    num_tokens=1024,
    input_handling="256x256 as is; FPN p2 pooled to 32x32, spatial-gated, flattened row-major",
    normalization="none",
    eval_threshold=0.95,
    release_name="handoccnet",
)
def _handoccnet(**kwargs: Any) -> nn.Module:
    return HandOccNetFPN(**kwargs)
