"""HACO model: official state_dict layouts, registry, and the forward semantics against naive references."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from haco_grasp.contact.backbones import (
    HamerViT,
    create_backbone,
    get_backbone_spec,
    list_backbones,
    normalize_images,
)
from haco_grasp.contact.haco_model import ContactTransformerDecoderHead, build_haco
from haco_grasp.errors import InputError

REFERENCE = Path("/work/shared/reference/state_dicts")
TSV_FILES = sorted(REFERENCE.glob("haco_*.tsv"))
HEADER = re.compile(r"# HACO (\S+) from \S+, (\d+) tensors, (\d+) parameters")


def read_tsv(path: Path) -> tuple[str, int, int, dict[str, tuple[tuple[int, ...], str]]]:
    lines = path.read_text().splitlines()
    match = HEADER.match(lines[0])
    assert match, lines[0]
    entries = {}
    for line in lines[1:]:
        name, shape, dtype = line.split("\t")
        entries[name] = (tuple(int(v) for v in shape.split(",")) if shape else (), dtype)
    return match.group(1), int(match.group(2)), int(match.group(3)), entries


def test_reference_files_cover_every_backbone():
    if not TSV_FILES:
        pytest.skip("reference state_dict lists not available")
    names = {read_tsv(path)[0] for path in TSV_FILES}
    assert names == set(list_backbones())


@pytest.mark.parametrize("path", TSV_FILES, ids=[p.stem for p in TSV_FILES])
def test_state_dict_matches_official_layout(path):
    backbone, num_tensors, num_params, reference = read_tsv(path)
    with torch.device("meta"):
        model = build_haco(backbone)
    state = model.state_dict()
    mine = {key: (tuple(value.shape), str(value.dtype).removeprefix("torch.")) for key, value in state.items()}
    assert set(mine) - set(reference) == set()
    assert set(reference) - set(mine) == set()
    assert {k: v[0] for k, v in mine.items()} == {k: v[0] for k, v in reference.items()}
    assert {k: v[1] for k, v in mine.items()} == {k: v[1] for k, v in reference.items()}
    assert len(state) == num_tensors
    assert sum(p.numel() for p in model.parameters()) == num_params
    spec = get_backbone_spec(backbone)
    to_kv = reference["decoder.transformer.transformer.layers.0.1.fn.to_kv.weight"][0]
    assert to_kv == (1024, spec.context_dim)


def test_registry_facts_and_errors():
    expected = {  # haco.md "Backbone variants": context_dim, eval threshold
        "hamer": (1280, 0.5, 192),
        "vit-s-16": (384, 0.5, 196),
        "vit-b-16": (768, 0.5, 196),
        "vit-l-16": (1024, 0.55, 196),
        "resnet-18": (512, 0.5, 64),
        "resnet-34": (512, 0.5, 64),
        "resnet-50": (2048, 0.5, 64),
        "resnet-101": (2048, 0.5, 64),
        "resnet-152": (2048, 0.55, 64),
        "hrnet-w32": (2048, 0.5, 64),
        "hrnet-w48": (2048, 0.5, 64),
        "handoccnet": (256, 0.95, 1024),
    }
    assert set(list_backbones()) == set(expected)
    for name, (width, threshold, tokens) in expected.items():
        spec = get_backbone_spec(name)
        assert (spec.context_dim, spec.eval_threshold, spec.num_tokens) == (width, threshold, tokens)
        assert spec.normalization == ("none" if name.startswith(("resnet", "handoccnet")) else "imagenet")
    assert get_backbone_spec("vit_l").name == "vit-l-16"  # release-file spelling
    with pytest.raises(InputError, match="resnet-18"):
        create_backbone("resnet-17")


def test_normalize_images_per_backbone():
    images = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(normalize_images(images, get_backbone_spec("resnet-50")), images, rtol=0, atol=0)
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64)[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64)[:, None, None]
    expected = (images - mean) / std
    torch.testing.assert_close(normalize_images(images, get_backbone_spec("hamer")), expected, rtol=0, atol=1e-12)
    with pytest.raises(InputError):
        normalize_images(torch.rand(3, 4, 5), get_backbone_spec("hamer"))


@pytest.fixture(scope="module")
def small_models():
    torch.manual_seed(0)
    return {name: build_haco(name).eval() for name in ("resnet-18", "vit-s-16")}


@pytest.mark.parametrize("name", ["resnet-18", "vit-s-16"])
def test_forward_shapes_and_coarse_maps(small_models, name):
    model = small_models[name]
    images = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    captured = []
    hook = model.backbone.register_forward_hook(lambda module, args, output: captured.append(output))
    with torch.no_grad():
        out = model(images)
    hook.remove()
    context = captured[0]
    assert context.shape == (1, get_backbone_spec(name).num_tokens, get_backbone_spec(name).context_dim)
    assert out.contact_logits.shape == (1, 778)
    assert out.contact_336_logits.shape == (1, 336)
    assert out.contact_84_logits.shape == (1, 84)
    assert out.contact_joint_logits.shape == (1, 21)
    for value in vars(out).values():
        assert torch.isfinite(value).all()
    logits = out.contact_logits.double()
    torch.testing.assert_close(
        out.contact_336_logits.double(), logits @ model.regressor_336.double().T, rtol=0, atol=1e-4
    )
    torch.testing.assert_close(
        out.contact_joint_logits.double(), logits @ model.regressor_joint.double().T, rtol=0, atol=1e-4
    )
    with pytest.raises(InputError):
        model(torch.rand(1, 3, 224, 224))


def test_vit_context_is_plain_view_not_transpose():
    torch.manual_seed(6)
    backbone = create_backbone("vit-s-16", depth=2).eval()  # the same wrapper around a 2-block timm ViT-S
    images = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        context = backbone(images)
        resized = F.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False)
        patches = backbone.vit.forward_features(resized)[:, 1:]  # (B, 196, D)
        reference = patches.reshape(1, 384, 196).transpose(1, 2)
    torch.testing.assert_close(context, reference, rtol=0, atol=0)
    assert not torch.allclose(context, patches, atol=1e-3)  # a real transpose would give the patch tokens


def _layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def _gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _naive_attention(q, k, v, heads):
    # q: (B, Nq, h*d), k/v: (B, Nk, h*d)
    b, nq, inner = q.shape
    d = inner // heads
    q = q.reshape(b, nq, heads, d)
    k = k.reshape(b, k.shape[1], heads, d)
    v = v.reshape(b, v.shape[1], heads, d)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * d**-0.5
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    return torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, nq, inner)


def naive_decoder(state, context, depth, heads):
    """Float64 re-implementation of the official decoder from its state_dict names."""

    def linear(x, name, bias=True):
        out = torch.einsum("...i,oi->...o", x, state[f"{name}.weight"])
        return out + state[f"{name}.bias"] if bias else out

    b = context.shape[0]
    token = torch.zeros(b, 1, 1, dtype=torch.float64)
    x = linear(token, "transformer.to_token_embedding") + state["transformer.pos_embedding"]
    for i in range(depth):
        p = f"transformer.transformer.layers.{i}"
        h = _layer_norm(x, state[f"{p}.0.norm.weight"], state[f"{p}.0.norm.bias"], 1e-5)
        q, k, v = linear(h, f"{p}.0.fn.to_qkv", bias=False).chunk(3, dim=-1)
        x = linear(_naive_attention(q, k, v, heads), f"{p}.0.fn.to_out.0") + x
        h = _layer_norm(x, state[f"{p}.1.norm.weight"], state[f"{p}.1.norm.bias"], 1e-5)
        k, v = linear(context, f"{p}.1.fn.to_kv", bias=False).chunk(2, dim=-1)
        q = linear(h, f"{p}.1.fn.to_q", bias=False)
        x = linear(_naive_attention(q, k, v, heads), f"{p}.1.fn.to_out.0") + x
        h = _layer_norm(x, state[f"{p}.2.norm.weight"], state[f"{p}.2.norm.bias"], 1e-5)
        x = linear(_gelu(linear(h, f"{p}.2.fn.net.0")), f"{p}.2.fn.net.3") + x
    return linear(x[:, 0], "deccontact") + state["init_contact"]


@pytest.mark.parametrize("batch", [1, 3])
def test_decoder_matches_naive_float64(batch):
    torch.manual_seed(3)
    head = ContactTransformerDecoderHead(context_dim=12, dim=16, depth=2, heads=2, dim_head=4, mlp_dim=20).double()
    with torch.no_grad():
        for parameter in head.parameters():  # randomise everything, LayerNorm affine included
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    context = torch.randn(batch, 7, 12, dtype=torch.float64)
    state = {key: value.detach() for key, value in head.state_dict().items()}
    expected = naive_decoder(state, context, depth=2, heads=2)
    torch.testing.assert_close(head(context), expected, rtol=0, atol=1e-10)
    assert head(context).shape == (batch, 778)


def test_decoder_official_sizes_and_scale():
    head = ContactTransformerDecoderHead(context_dim=8)
    attention = head.transformer.transformer.layers[0][0].fn
    assert attention.scale == 64**-0.5
    assert sum(1 for _ in head.transformer.transformer.layers) == 6
    with pytest.raises(InputError):
        head(torch.zeros(1, 4, 9))


def test_hamer_patch_embedding_padding_and_forward_against_naive():
    torch.manual_seed(4)
    model = HamerViT(embed_dim=32, depth=1, num_heads=4, drop_path_rate=0.0).double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
    assert model.grid == (16, 12) and model.pos_embed.shape == (1, 193, 32)
    images = torch.randn(2, 3, 256, 256, dtype=torch.float64)
    state = {key: value.detach() for key, value in model.state_dict().items()}

    # Naive: slice columns 32:-32, zero-pad by 2, cut 16 x 16 patches row-major, project with einsum.
    sliced = images[:, :, :, 32:-32]
    padded = torch.zeros(2, 3, 260, 196, dtype=torch.float64)
    padded[:, :, 2:-2, 2:-2] = sliced
    patches = torch.stack(
        [padded[:, :, 16 * i : 16 * i + 16, 16 * j : 16 * j + 16] for i in range(16) for j in range(12)], dim=1
    )  # (B, 192, 3, 16, 16)
    tokens = torch.einsum("bncij,ocij->bno", patches, state["patch_embed.proj.weight"]) + state["patch_embed.proj.bias"]
    x = tokens + state["pos_embed"][:, 1:] + state["pos_embed"][:, :1]
    h = _layer_norm(x, state["blocks.0.norm1.weight"], state["blocks.0.norm1.bias"], 1e-6)
    qkv = torch.einsum("bni,oi->bno", h, state["blocks.0.attn.qkv.weight"]) + state["blocks.0.attn.qkv.bias"]
    q, k, v = qkv.chunk(3, dim=-1)
    attended = _naive_attention(q, k, v, heads=4)
    x = x + torch.einsum("bni,oi->bno", attended, state["blocks.0.attn.proj.weight"]) + state["blocks.0.attn.proj.bias"]
    h = _layer_norm(x, state["blocks.0.norm2.weight"], state["blocks.0.norm2.bias"], 1e-6)
    hidden = _gelu(torch.einsum("bni,oi->bno", h, state["blocks.0.mlp.fc1.weight"]) + state["blocks.0.mlp.fc1.bias"])
    x = x + torch.einsum("bni,oi->bno", hidden, state["blocks.0.mlp.fc2.weight"]) + state["blocks.0.mlp.fc2.bias"]
    expected = _layer_norm(x, state["last_norm.weight"], state["last_norm.bias"], 1e-6)

    context = model(images)
    assert context.shape == (2, 192, 32)
    torch.testing.assert_close(context, expected, rtol=0, atol=1e-10)

    unpadded = HamerViT(embed_dim=32, depth=1, num_heads=4, drop_path_rate=0.0, padding=0).double().eval()
    unpadded.load_state_dict(model.state_dict())
    assert not torch.allclose(unpadded(images), expected, atol=1e-3)  # padding 2 matters


def test_build_on_meta_and_custom_backbone_width():
    model = build_haco("hamer", decoder_dim=32, depth=1, heads=2, dim_head=8, mlp_dim=32,
                       backbone_kwargs={"embed_dim": 16, "depth": 1, "num_heads": 2})  # fmt: skip
    assert model.decoder.context_dim == 16
    out = model(torch.rand(1, 3, 256, 256))
    assert out.contact_logits.shape == (1, 778) and torch.isfinite(out.contact_logits).all()


@pytest.mark.cuda
def test_forward_on_cuda_matches_cpu(small_models):
    model = small_models["resnet-18"]
    images = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        cpu = model(images).contact_logits
        gpu_model = model.to("cuda")
        gpu = gpu_model(images.to("cuda")).contact_joint_logits
        gpu_vertices = gpu_model(images.to("cuda")).contact_logits
        model.to("cpu")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu_vertices.cpu(), cpu, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(gpu.shape, (2, 21))
