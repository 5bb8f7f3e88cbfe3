"""Crop warp and augmentations: exact identity, box corners, point mapping, noise mean, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from haco_grasp.contact.augment import (
    AugmentConfig,
    AugmentParams,
    augment_crop,
    crop_transform,
    motion_blur,
    sample_augment_params,
    transform_points,
    warp_image,
)
from haco_grasp.errors import InputError


def random_image(seed: int = 0, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_identity_crop_of_full_image_is_exact() -> None:
    image = random_image(h=32, w=32)
    crop = augment_crop(image, (0.0, 0.0, 32.0, 32.0), None, size=32).image
    np.testing.assert_allclose(crop.permute(1, 2, 0).numpy(), image / 255.0, atol=1e-6)


def test_box_corner_maps_to_first_pixel_and_centre_to_centre_anisotropically() -> None:
    box = (10.0, 20.0, 50.0, 30.0)  # 40 x 10: stretched differently along x and y
    affine = crop_transform(box, 256, (64, 48))
    corners = transform_points(np.array([[10.0, 20.0], [50.0, 30.0], [30.0, 25.0]]), affine)
    # HACO's cv2 convention: (x0, y0) -> crop pixel (0, 0), (x1, y1) -> (S, S), the centre -> (S/2, S/2)
    np.testing.assert_allclose(corners, [[0.0, 0.0], [256.0, 256.0], [128.0, 128.0]], atol=1e-9)
    assert affine[0, 0] == pytest.approx(256 / 40) and affine[1, 1] == pytest.approx(256 / 10)


def test_warp_moves_a_pixel_where_transform_points_says() -> None:
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[12, 25] = 255  # (x=25, y=12)
    params = AugmentParams(scale=1.2, rotation_deg=35.0, translation=(0.05, -0.03))
    affine = crop_transform((5.0, 5.0, 35.0, 35.0), 64, (40, 40), params)
    crop = warp_image(image, affine, 64)[0].numpy()
    target = transform_points(np.array([[25.0, 12.0]]), affine)[0]
    peak = np.unravel_index(np.argmax(crop), crop.shape)  # (row, col)
    assert abs(peak[1] - target[0]) <= 1.0 and abs(peak[0] - target[1]) <= 1.0


def test_rotation_direction_counter_clockwise() -> None:
    # a point right of the centre moves to above the centre (image y points down) after +90 degrees
    affine = crop_transform((0.0, 0.0, 64.0, 64.0), 64, (64, 64), AugmentParams(rotation_deg=90.0))
    moved = transform_points(np.array([[50.0, 32.0]]), affine)[0]
    np.testing.assert_allclose(moved, [32.0, 32.0 - 18.0], atol=1e-9)


def test_noise_keeps_the_mean_no_clipping_bug() -> None:
    image = np.full((64, 64, 3), 128, dtype=np.uint8)
    params = AugmentParams(noise_seed=3, noise_sigma=0.02)
    noisy = augment_crop(image, (0.0, 0.0, 64.0, 64.0), params, size=64).image
    assert float(noisy.mean()) == pytest.approx(128 / 255, abs=0.005)  # the reference bug gives ~1/255
    assert 0.015 < float((noisy - 128 / 255).std()) < 0.025


def test_color_scales_channels() -> None:
    image = np.full((16, 16, 3), 100, dtype=np.uint8)
    crop = augment_crop(image, (0.0, 0.0, 16.0, 16.0), AugmentParams(color=(0.8, 1.0, 1.2)), size=16).image
    np.testing.assert_allclose(crop[:, 8, 8].numpy(), [80 / 255, 100 / 255, 120 / 255], atol=1e-6)


def test_motion_blur_preserves_constant_and_blurs_along_direction() -> None:
    flat = torch.full((3, 20, 20), 0.4)
    torch.testing.assert_close(motion_blur(flat, 5, 30.0), flat)
    dot = torch.zeros(3, 21, 21)
    dot[:, 10, 10] = 1.0
    blurred = motion_blur(dot, 7, 0.0)[0]
    assert blurred[10].sum() == pytest.approx(1.0, abs=1e-6)  # horizontal motion stays in the row
    assert blurred[10, 7] > 0 and blurred[10, 13] > 0 and blurred[9].abs().sum() == 0
    with pytest.raises(InputError):
        motion_blur(dot, 4, 0.0)


def test_params_ranges_and_probabilities() -> None:
    rng = np.random.default_rng(0)
    draws = [sample_augment_params(rng) for _ in range(2000)]
    scales = np.array([d.scale for d in draws])
    rotations = np.array([d.rotation_deg for d in draws])
    assert scales.min() >= 0.75 - 1e-12 and scales.max() <= 1.25 + 1e-12
    assert np.abs(rotations).max() <= 60.0 + 1e-12
    assert np.mean(rotations != 0) == pytest.approx(0.6, abs=0.04)
    assert np.mean([d.noise_seed is not None for d in draws]) == pytest.approx(0.3, abs=0.04)
    assert np.mean([d.blur_kernel > 0 for d in draws]) == pytest.approx(0.15, abs=0.03)
    assert np.mean([d.crop_fraction != (1.0, 1.0) for d in draws]) == pytest.approx(0.1, abs=0.03)
    assert np.mean([d.lowres_scale is not None for d in draws]) == pytest.approx(0.05, abs=0.02)
    colors = np.array([d.color for d in draws])
    assert colors.min() >= 0.8 and colors.max() <= 1.2
    translations = np.array([d.translation for d in draws])
    assert np.abs(translations).max() <= 0.1 + 1e-12


def test_seeded_augmentation_is_deterministic() -> None:
    image = random_image(1)
    box = (5.0, 4.0, 50.0, 40.0)
    config = AugmentConfig(noise_prob=1.0, blur_prob=1.0, lowres_prob=1.0, extreme_crop_prob=1.0)
    a = augment_crop(image, box, sample_augment_params(np.random.default_rng(7), config), 32).image
    b = augment_crop(image, box, sample_augment_params(np.random.default_rng(7), config), 32).image
    c = augment_crop(image, box, sample_augment_params(np.random.default_rng(8), config), 32).image
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == (3, 32, 32) and float(a.min()) >= 0 and float(a.max()) <= 1


def test_extreme_crop_is_a_sub_box() -> None:
    params = AugmentParams(crop_fraction=(0.5, 0.4), crop_offset=(0.0, 1.0))
    affine = crop_transform((0.0, 0.0, 100.0, 100.0), 100, (100, 100), params)
    np.testing.assert_allclose(transform_points(np.array([[0.0, 60.0], [50.0, 100.0]]), affine),
                               [[0.0, 0.0], [100.0, 100.0]], atol=1e-9)  # fmt: skip


def test_invalid_boxes_and_images() -> None:
    with pytest.raises(InputError):
        crop_transform((5.0, 5.0, 5.0, 10.0), 32, (64, 64))
    with pytest.raises(InputError):
        crop_transform((0.0, 0.0, math.nan, 1.0), 32, (64, 64))
    with pytest.raises(InputError):
        augment_crop(np.zeros((8, 8)), (0, 0, 4, 4))
