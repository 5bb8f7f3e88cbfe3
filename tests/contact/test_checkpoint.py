"""HACO checkpoints (official container, prefixes, errors, HaMeR init) and the predictor (crop, mirroring, CLI)."""

from __future__ import annotations

import argparse
import json
from collections import deque

import numpy as np
import pytest
import torch
import trimesh

from haco_grasp.contact import predictor as predictor_module
from haco_grasp.contact.checkpoint import load_haco, load_hamer_backbone, save_haco_checkpoint
from haco_grasp.contact.haco_model import HacoConfig, build_haco_from_config
from haco_grasp.contact.predictor import (
    HacoPredictor,
    add_predict_arguments,
    crop_hands,
    predict_hand_contact,
    remove_small_components,
    run_predict,
)
from haco_grasp.errors import AssetError, HacoGraspError, InputError

TINY = HacoConfig(
    backbone="hamer",
    decoder_dim=32,
    depth=1,
    heads=2,
    dim_head=8,
    mlp_dim=32,
    backbone_kwargs={"embed_dim": 16, "depth": 1, "num_heads": 2, "drop_path_rate": 0.0},
)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_haco_from_config(TINY).eval()


@pytest.fixture(scope="module")
def images():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 256, 256, generator=generator)


def _official_container(model, steps: int = 1) -> dict:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[5, 10], gamma=0.9)
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            parameter.grad = torch.zeros_like(parameter)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    optimizer.step()  # zero gradients + weight decay: a real optimizer state, weights restored below
    scheduler.step()
    model.load_state_dict(state)
    return {
        "epoch": 9,
        "global_step": steps,
        "state_dict": state,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }


def test_official_container_loads_weights_only_and_reproduces_logits(tmp_path, tiny_model, images):
    path = tmp_path / "tiny.ckpt"
    torch.save(_official_container(tiny_model), path)
    loaded = load_haco(path, config=TINY)
    with torch.no_grad():
        expected = tiny_model(images)
        got = loaded(images)
    for name in ("contact_logits", "contact_336_logits", "contact_84_logits", "contact_joint_logits"):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=0, atol=0)
    assert not loaded.training
    assert all(not t.is_meta for t in list(loaded.parameters()) + list(loaded.buffers()))


def test_module_prefix_and_bare_state_dict(tmp_path, tiny_model, images):
    path = tmp_path / "prefixed.ckpt"
    torch.save({f"module.{k}": v for k, v in tiny_model.state_dict().items()}, path)
    loaded = load_haco(path, config=TINY)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images).contact_logits, tiny_model(images).contact_logits, rtol=0, atol=0)


def test_saved_checkpoint_json_roundtrip(tmp_path, tiny_model, images):
    path = save_haco_checkpoint(tmp_path / "run" / "haco_tiny.ckpt", tiny_model, epoch=3, global_step=7)
    assert json.loads(path.with_suffix(".json").read_text())["backbone"] == "hamer"
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"epoch", "global_step", "state_dict", "optimizer", "scheduler"}
    assert tiny_model.config == TINY
    loaded = load_haco(path)  # the config comes from the .json beside it
    assert loaded.config == TINY
    with torch.no_grad():
        torch.testing.assert_close(loaded(images).contact_logits, tiny_model(images).contact_logits, rtol=0, atol=0)
    with pytest.raises(InputError, match="contradicts"):
        load_haco(path, backbone="resnet-18")


def test_wrong_keys_are_listed(tmp_path, tiny_model):
    state = dict(tiny_model.state_dict())
    state["decoder.extra_head.weight"] = torch.zeros(3)
    del state["decoder.deccontact.bias"]
    path = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(InputError) as info:
        load_haco(path, config=TINY)
    assert "decoder.deccontact.bias" in str(info.value) and "decoder.extra_head.weight" in str(info.value)
    partial = load_haco(path, config=TINY, strict=False)  # the overlap loads
    torch.testing.assert_close(partial.decoder.deccontact.weight, tiny_model.decoder.deccontact.weight)

    state = dict(tiny_model.state_dict())
    state["decoder.deccontact.bias"] = torch.zeros(5)
    torch.save({"state_dict": state}, path)
    with pytest.raises(InputError, match="shapes"):
        load_haco(path, config=TINY)


def test_official_file_name_selects_backbone_and_reports_mismatch(tmp_path, tiny_model):
    path = tmp_path / "haco_final_hamer_checkpoint.ckpt"
    torch.save({"state_dict": tiny_model.state_dict()}, path)
    with pytest.raises(InputError, match=r"HACO\(backbone='hamer'\): missing keys 457"):
        load_haco(path)  # official-size hamer (built on the meta device) vs the tiny weights
    unnamed = tmp_path / "mystery.ckpt"
    torch.save({"state_dict": tiny_model.state_dict()}, unnamed)
    with pytest.raises(InputError, match="backbone=NAME"):
        load_haco(unnamed)
    with pytest.raises(AssetError):
        load_haco(tmp_path / "absent.ckpt", config=TINY)


def test_unsafe_pickle_is_refused(tmp_path, tiny_model):
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": tiny_model.state_dict(), "hyper_parameters": argparse.Namespace(a=1)}, path)
    with pytest.raises(HacoGraspError, match="weights_only"):
        load_haco(path, config=TINY)


def test_load_hamer_backbone(tmp_path, tiny_model):
    torch.manual_seed(5)
    donor = build_haco_from_config(TINY)
    hamer_state = {f"backbone.{k}": v for k, v in donor.backbone.state_dict().items()}
    hamer_state["mano_head.decpose.weight"] = torch.zeros(2, 2)  # HaMeR's other keys are ignored
    path = tmp_path / "hamer.ckpt"
    torch.save({"state_dict": hamer_state}, path)
    target = build_haco_from_config(TINY)
    load_hamer_backbone(target, path)
    for key, value in donor.backbone.state_dict().items():
        torch.testing.assert_close(target.backbone.state_dict()[key], value, rtol=0, atol=0)
    torch.save({"state_dict": {"head.weight": torch.zeros(1)}}, path)
    with pytest.raises(InputError, match="backbone"):
        load_hamer_backbone(target, path)


# ----------------------------------------------------------------------------------------------------------------
# Predictor
# ----------------------------------------------------------------------------------------------------------------


def _coordinate_image(height: int = 120, width: int = 200) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs, ys, np.full_like(xs, 7)], axis=-1).astype(np.uint8)  # R = x, G = y


def test_crop_maps_box_corners_to_crop_corners():
    image = _coordinate_image()
    box = np.array([[20.0, 30.0, 120.0, 90.0]])
    crop = crop_hands(image, box, "right", size=64)[0].double() * 255.0  # (3, 64, 64)
    u = np.arange(64)
    # output pixel (u, v) samples (x0 + u * w / S, y0 + v * h / S): linear images are reproduced exactly
    np.testing.assert_allclose(crop[0, 5].numpy(), 20.0 + u * 100.0 / 64, atol=1e-3)
    np.testing.assert_allclose(crop[1, :, 9].numpy(), 30.0 + u * 60.0 / 64, atol=1e-3)
    assert crop[0, 0, 0] == pytest.approx(20.0, abs=1e-3) and crop[1, 0, 0] == pytest.approx(30.0, abs=1e-3)
    # extrapolating one pixel past the last column/row reaches the opposite corner (x1, y1)
    assert 2 * crop[0, 0, 63] - crop[0, 0, 62] == pytest.approx(120.0, abs=1e-3)
    assert 2 * crop[1, 63, 0] - crop[1, 62, 0] == pytest.approx(90.0, abs=1e-3)
    # the box centre lands on the centre pixel (S/2, S/2), as cv2's warp in the official code
    assert crop[0, 32, 32] == pytest.approx(70.0, abs=1e-3) and crop[1, 32, 32] == pytest.approx(60.0, abs=1e-3)
    # scaling about the centre and zero outside the image
    wide = crop_hands(image, np.array([[150.0, 0.0, 250.0, 60.0]]), "right", size=64)[0]
    assert wide[2, 10, -1] == 0.0 and wide[2, 10, 0] > 0.0
    doubled = crop_hands(image, box, "right", box_scale=2.0, size=64)[0].double() * 255.0
    assert doubled[0, 32, 32] == pytest.approx(70.0, abs=1e-3)  # same centre
    assert doubled[0, 5, 16] == pytest.approx(-30.0 + 16 * 200.0 / 64, abs=1e-3)  # twice the width
    assert doubled[2, 5, 0] == 0.0  # x = -30 lies outside the image
    from_tensor = crop_hands(torch.from_numpy(image)[None], box, ["right"], size=64)[0].double() * 255.0
    torch.testing.assert_close(from_tensor, crop, rtol=0, atol=0)
    assert crop_hands(np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 4)), [], size=16).shape == (0, 3, 16, 16)
    with pytest.raises(InputError):
        crop_hands(image, np.array([[10.0, 10.0, 5.0, 20.0]]), "right")
    with pytest.raises(InputError):
        crop_hands(image, box, "both")


def test_inference_crop_is_the_training_crop_without_augmentation():
    from haco_grasp.contact.augment import augment_crop

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(90, 150, 3), dtype=np.uint8)
    box = np.array([12.5, 8.0, 101.0, 70.0])
    training = augment_crop(image, box, None, size=48).image
    torch.testing.assert_close(crop_hands(image, box[None], "right", size=48)[0], training, rtol=0, atol=1e-6)
    # a stored crop read back whole (box (0, 0, W, H)) is reproduced pixel for pixel
    whole = crop_hands(image[:64, :64], np.array([[0.0, 0.0, 64.0, 64.0]]), "right", size=64)[0]
    torch.testing.assert_close(
        whole.permute(1, 2, 0), torch.from_numpy(image[:64, :64] / 255.0).float(), atol=1e-6, rtol=0
    )


def test_left_crop_is_the_mirrored_right_crop():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(90, 150, 3), dtype=np.uint8)
    box = np.array([12.5, 8.0, 101.0, 70.0])
    width = image.shape[1]
    flipped_box = np.array([width - 1 - box[2], box[1], width - 1 - box[0], box[3]])  # x -> W - 1 - x
    left = crop_hands(image, box[None], "left", size=32)
    right_of_flipped = crop_hands(image[:, ::-1], flipped_box[None], "right", size=32)
    torch.testing.assert_close(left, right_of_flipped, rtol=0, atol=1e-6)
    assert not torch.allclose(left, crop_hands(image, box[None], "right", size=32), atol=1e-2)


def _naive_components(mask, faces, min_size):
    neighbours = {v: set() for v in range(len(mask))}
    for a, b, c in faces:
        for p, q in ((a, b), (b, c), (c, a)):
            neighbours[p].add(q)
            neighbours[q].add(p)
    keep = np.zeros_like(mask)
    seen = set()
    for start in np.flatnonzero(mask):
        if start in seen:
            continue
        component, queue = [], deque([start])
        seen.add(start)
        while queue:
            v = queue.popleft()
            component.append(v)
            for w in neighbours[v]:
                if mask[w] and w not in seen:
                    seen.add(w)
                    queue.append(w)
        if len(component) >= min_size:
            keep[component] = True
    return keep


def test_remove_small_components_against_bfs():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    rng = np.random.default_rng(3)
    masks = rng.random((3, len(sphere.vertices))) < 0.35
    masks[0] = False  # empty contact
    got = remove_small_components(masks, sphere.faces, min_size=5)
    for mask, row in zip(masks, got, strict=True):
        np.testing.assert_array_equal(row, _naive_components(mask, np.asarray(sphere.faces), 5))
    assert remove_small_components(masks[1], sphere.faces, min_size=1).shape == (len(sphere.vertices),)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("ckpt")
    return save_haco_checkpoint(folder / "haco_tiny.ckpt", tiny_model, TINY)


def test_predictor_mirrors_left_hands(tiny_checkpoint):
    predictor = HacoPredictor.from_checkpoint(tiny_checkpoint, threshold=0.5)
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(100, 140, 3), dtype=np.uint8)
    box = np.array([10.0, 5.0, 120.0, 95.0])
    flipped_box = np.array([139 - box[2], box[1], 139 - box[0], box[3]])
    result = predictor.predict([image, image[:, ::-1].copy()], [box, flipped_box], ["left", "right"])
    assert result.probabilities.shape == (2, 778) and result.contact.dtype == torch.bool
    assert ((result.probabilities >= 0) & (result.probabilities <= 1)).all()
    torch.testing.assert_close(result.probabilities[0], result.probabilities[1], rtol=0, atol=1e-6)
    probabilities = predict_hand_contact(image[None], box[None], "left", checkpoint=tiny_checkpoint)
    torch.testing.assert_close(probabilities[0], result.probabilities[0], rtol=0, atol=1e-6)


def test_default_checkpoint_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(predictor_module, "DEFAULT_CHECKPOINT", tmp_path / "haco_synthetic.ckpt")
    predictor_module._cached_predictor.cache_clear()
    with pytest.raises(HacoGraspError, match="haco_synthetic.ckpt"):
        predict_hand_contact(np.zeros((1, 8, 8, 3), np.uint8), np.array([[0.0, 0.0, 4.0, 4.0]]), "right")


def test_run_predict_writes_maps_and_renders(tmp_path, tiny_checkpoint):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)).save(folder / name)
    (tmp_path / "boxes.json").write_text(
        json.dumps({"a.png": [4, 4, 60, 50], "b": {"box": [10, 2, 70, 60], "side": "left"}})
    )
    parser = add_predict_arguments(argparse.ArgumentParser())
    out = tmp_path / "out"
    args = parser.parse_args(
        ["--images", str(folder), "--boxes", str(tmp_path / "boxes.json"), "--out", str(out),
         "--checkpoint", str(tiny_checkpoint), "--threshold", "0.5"]
    )  # fmt: skip
    assert run_predict(args) == 0
    data = np.load(out / "contact.npz")
    assert list(data["names"]) == ["a.png", "b.png"] and list(data["sides"]) == ["right", "left"]
    assert data["probabilities"].shape == (2, 778) and data["contact"].dtype == bool
    assert (out / "renders" / "a.png").is_file() and (out / "renders" / "b.png").is_file()
    with Image.open(out / "renders" / "b.png") as render:  # input crop, palm and back views, a colour bar under them
        assert render.width >= 3 * 256 and render.height > 256 + 40
    assert json.loads((out / "predict_config.json").read_text())["backbone"] == "hamer"


@pytest.mark.cuda
def test_load_on_cuda(tiny_checkpoint, images, tiny_model):
    model = load_haco(tiny_checkpoint, device="cuda")
    with torch.no_grad():
        got = model(images.to("cuda")).contact_logits.cpu()
        expected = tiny_model(images).contact_logits
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)
