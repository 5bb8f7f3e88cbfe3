"""HACO's training augmentations (haco.md §5) and the anisotropic box → S×S crop warp, numpy/torch only.

This is the toolkit's one crop: training (:mod:`~haco_grasp.contact.datasets`) and inference
(:func:`haco_grasp.contact.predictor.crop_hands`) both warp with :func:`crop_transform` + :func:`warp_image`.

Pixel convention: pixel centres at integer coordinates. A box ``(x0, y0, x1, y1)`` follows HACO's
``generate_patch_image`` (``cv2.warpAffine`` mapping the box centre onto the output centre): crop pixel (u, v)
samples the source at ``(x0 + u·(x1 − x0)/S, y0 + v·(y1 − y0)/S)``, so the corner (x0, y0) lands on the centre of
crop pixel (0, 0), the box centre on (S/2, S/2), and a W×H image is reproduced exactly by the box (0, 0, W, H)
at S = W = H.

Crop warp (:func:`crop_transform`): the box, scaled by ``scale`` about its centre, shifted by ``translation`` and
rotated by ``rotation_deg``, is mapped onto the output square **anisotropically** (its width and height are
stretched independently to ``size``), as HACO does for ``bbox_ho``. A positive rotation turns the image content
counter-clockwise in the output (the sampling window turns clockwise). Pixels outside the source image are black
(zero), as in HACO's ``cv2.warpAffine`` with a zero border; sampling is bilinear.

Augmentations (:class:`AugmentConfig`, defaults = HACO's ``get_aug_config_contact``), drawn per sample by
:func:`sample_augment_params` from a seeded numpy Generator:

| augmentation | setting |
|---|---|
| scale | 1 + 0.25·clip(N(0, 1), ±1) |
| rotation | 30°·clip(N(0, 1), ±2), with probability 0.6 (else 0) |
| colour | per-channel factor U[0.8, 1.2], then clipped to [0, 1] |
| translation | 0.1·clip(N(0, 1), ±1) of the full image width / height, per axis |
| extreme crop | probability 0.1, level 0.3 (see below) |
| Gaussian noise | probability 0.3, σ 0.02 **in [0, 1] units**, then clipped to [0, 1] |
| motion blur | probability 0.15, line kernel of length 3 / 5 / 7 at a random angle |
| low resolution | probability 0.05, down-scale by U[0.15, 0.5] then back up (bilinear) |
| horizontal flip | none (every HACO loader passes ``enforce_flip=False``) |

Decisions:

- **Noise without the reference's bug** (haco.md §11.2): HACO adds the noise to a 0–255 float image and clips it
  to [0, 1], blackening ~30 % of its crops. Here every photometric step works on the [0, 1] image, so noise keeps
  the mean intensity (tested).
- **Extreme crop** (HaMeR's version needs keypoints to pick a body part): the box is shrunk to a random sub-box
  whose width and height are each U[1 − 2·level, 1 − level] (0.4–0.7 for level 0.3) of the original, placed
  uniformly inside it: the network sees only part of the hand and object.
- Order: geometry (scale, rotation, translation, extreme crop) in one warp, then colour, motion blur, low
  resolution, noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from haco_grasp.errors import InputError

__all__ = [
    "AugmentConfig",
    "AugmentParams",
    "AugmentedCrop",
    "augment_crop",
    "crop_transform",
    "motion_blur",
    "sample_augment_params",
    "transform_points",
    "warp_image",
]


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings (defaults: HACO's training values; haco.md §5).

    Attributes:
        size: output side in pixels (256).
        scale_factor: scale = 1 + scale_factor·clip(N(0, 1), ±1).
        rotation_factor_deg: rotation = rotation_factor_deg·clip(N(0, 1), ±2) with probability ``rotation_prob``.
        rotation_prob: probability of a rotation.
        color_factor: per-channel factor U[1 − color_factor, 1 + color_factor].
        translation_factor: shift = translation_factor·clip(N(0, 1), ±1) of the full image width / height.
        extreme_crop_prob, extreme_crop_level: probability and level of the extreme crop.
        noise_prob, noise_sigma: probability and σ ([0, 1] units) of the Gaussian noise.
        blur_prob, blur_kernels: probability and kernel lengths of the motion blur.
        lowres_prob, lowres_range: probability and down-scale range of the low-resolution step.
    """

    size: int = 256
    scale_factor: float = 0.25
    rotation_factor_deg: float = 30.0
    rotation_prob: float = 0.6
    color_factor: float = 0.2
    translation_factor: float = 0.1
    extreme_crop_prob: float = 0.1
    extreme_crop_level: float = 0.3
    noise_prob: float = 0.3
    noise_sigma: float = 0.02
    blur_prob: float = 0.15
    blur_kernels: tuple[int, ...] = (3, 5, 7)
    lowres_prob: float = 0.05
    lowres_range: tuple[float, float] = (0.15, 0.5)


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation parameters (identity: :meth:`identity`).

    Attributes:
        scale: box scale factor
        rotation_deg: content rotation, degrees (counter-clockwise positive)
        translation: (2,) shift of the box centre as fractions of the full image width / height
        crop_fraction: (2,) relative width / height of the extreme-crop sub-box (1, 1 = no crop)
        crop_offset: (2,) position of the sub-box inside the box, each in [0, 1]
        color: (3,) per-channel factors
        noise_seed: seed of the Gaussian noise, or None for no noise
        noise_sigma: σ of that noise, [0, 1] units
        blur_kernel: motion-blur length (0 = none)
        blur_angle_deg: direction of the motion blur, degrees
        lowres_scale: down-scale factor of the low-resolution step, or None
    """

    scale: float = 1.0
    rotation_deg: float = 0.0
    translation: tuple[float, float] = (0.0, 0.0)
    crop_fraction: tuple[float, float] = (1.0, 1.0)
    crop_offset: tuple[float, float] = (0.5, 0.5)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise_seed: int | None = None
    noise_sigma: float = 0.0
    blur_kernel: int = 0
    blur_angle_deg: float = 0.0
    lowres_scale: float | None = None

    @classmethod
    def identity(cls) -> AugmentParams:
        """No augmentation (the test-time crop)."""
        return cls()


class AugmentedCrop(NamedTuple):
    """image: (3, S, S) float in [0, 1]; affine: (2, 3) float64 map from source pixels to crop pixels."""

    image: Tensor
    affine: np.ndarray


def sample_augment_params(rng: np.random.Generator, config: AugmentConfig | None = None) -> AugmentParams:
    """Draw one set of augmentation parameters.

    Args:
        rng: numpy Generator (seeded by the caller)
        config: AugmentConfig; None for HACO's values

    Returns:
        AugmentParams
    """
    cfg = config or AugmentConfig()
    scale = 1.0 + cfg.scale_factor * float(np.clip(rng.standard_normal(), -1.0, 1.0))
    rotation = cfg.rotation_factor_deg * float(np.clip(rng.standard_normal(), -2.0, 2.0))
    if rng.random() >= cfg.rotation_prob:
        rotation = 0.0
    color = tuple(float(c) for c in rng.uniform(1.0 - cfg.color_factor, 1.0 + cfg.color_factor, size=3))
    translation = tuple(float(t) for t in cfg.translation_factor * np.clip(rng.standard_normal(2), -1.0, 1.0))
    crop_fraction: tuple[float, float] = (1.0, 1.0)
    crop_offset: tuple[float, float] = (0.5, 0.5)
    if rng.random() < cfg.extreme_crop_prob:
        level = cfg.extreme_crop_level
        crop_fraction = tuple(float(f) for f in rng.uniform(1.0 - 2.0 * level, 1.0 - level, size=2))
        crop_offset = tuple(float(o) for o in rng.uniform(0.0, 1.0, size=2))
    noise_seed = int(rng.integers(0, 2**31 - 1)) if rng.random() < cfg.noise_prob else None
    blur_kernel, blur_angle = 0, 0.0
    if rng.random() < cfg.blur_prob:
        blur_kernel = int(rng.choice(np.asarray(cfg.blur_kernels)))
        blur_angle = float(rng.uniform(0.0, 180.0))
    lowres = float(rng.uniform(*cfg.lowres_range)) if rng.random() < cfg.lowres_prob else None
    return AugmentParams(
        scale=scale,
        rotation_deg=rotation,
        translation=translation,  # type: ignore[arg-type]
        crop_fraction=crop_fraction,  # type: ignore[arg-type]
        crop_offset=crop_offset,  # type: ignore[arg-type]
        color=color,  # type: ignore[arg-type]
        noise_seed=noise_seed,
        noise_sigma=cfg.noise_sigma if noise_seed is not None else 0.0,
        blur_kernel=blur_kernel,
        blur_angle_deg=blur_angle,
        lowres_scale=lowres,
    )


def _check_box(box: Any) -> np.ndarray:
    array = np.asarray(box, dtype=np.float64)
    if array.shape != (4,) or not np.all(np.isfinite(array)):
        raise InputError(f"box must be 4 finite numbers (x0, y0, x1, y1), got {np.asarray(box).shape}")
    if array[2] <= array[0] or array[3] <= array[1]:
        raise InputError(f"box must have x1 > x0 and y1 > y0, got {array.tolist()}")
    return array


def crop_transform(box: Any, size: int, image_size: tuple[int, int], params: AugmentParams | None = None) -> np.ndarray:
    """Affine map from source pixels to crop pixels for a box and augmentation parameters.

    Args:
        box: (4,) (x0, y0, x1, y1) box, source pixels (module docstring: (x0, y0) is sampled by crop pixel (0, 0))
        size: S, the output side in pixels
        image_size: (width, height) of the source image (the translation is a fraction of it)
        params: AugmentParams (None: identity, the plain anisotropic warp of the box onto S×S)

    Returns:
        (2, 3) float64 A with crop = A @ [x, y, 1]
    """
    x0, y0, x1, y1 = _check_box(box)
    p = params or AugmentParams.identity()
    width, height = x1 - x0, y1 - y0
    # extreme crop: a sub-box of the box
    sub_w, sub_h = width * p.crop_fraction[0], height * p.crop_fraction[1]
    sx0 = x0 + (width - sub_w) * p.crop_offset[0]
    sy0 = y0 + (height - sub_h) * p.crop_offset[1]
    center = np.array([sx0 + sub_w / 2.0, sy0 + sub_h / 2.0])
    center = center + np.array([p.translation[0] * image_size[0], p.translation[1] * image_size[1]])
    src_w, src_h = sub_w * p.scale, sub_h * p.scale
    theta = math.radians(p.rotation_deg)
    # crop -> source: src = center + R diag(src_w/S, src_h/S) (u - S/2), R the (y-down) rotation that makes
    # the content turn counter-clockwise on screen in the crop (u = S/2 is the centre, as in cv2's warp of HACO)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inverse_linear = rot @ np.diag([src_w / size, src_h / size])
    inverse_offset = center - inverse_linear @ np.array([size / 2.0, size / 2.0])
    linear = np.linalg.inv(inverse_linear)
    return np.concatenate([linear, (-linear @ inverse_offset)[:, None]], axis=1)


def transform_points(points: Any, affine: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine map to 2D points (row vectors).

    Args:
        points: (P, 2) float, source pixels
        affine: (2, 3) map

    Returns:
        (P, 2) float64, crop pixels
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputError(f"points must have shape (P, 2), got {pts.shape}")
    return pts @ affine[:, :2].T + affine[:, 2]


def _image_tensor(image: Any) -> Tensor:
    """(H, W, 3) uint8 / float array or (3, H, W) tensor -> (3, H, W) float32 in [0, 1]."""
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise InputError(f"image tensor must have shape (3, H, W), got {tuple(image.shape)}")
        return image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"image must have shape (H, W, 3), got {array.shape}")
    tensor = torch.from_numpy(np.array(array, copy=True)).permute(2, 0, 1)
    return tensor.float() / 255.0 if array.dtype == np.uint8 else tensor.float()


def warp_image(image: Any, affine: np.ndarray, size: int) -> Tensor:
    """Bilinear warp of an image into an S×S crop (zero outside the source).

    Args:
        image: (H, W, 3) uint8 (0–255) or float ([0, 1]) array, or (3, H, W) tensor
        affine: (2, 3) map from source pixels to crop pixels (:func:`crop_transform`)
        size: S

    Returns:
        (3, S, S) float32 in [0, 1]
    """
    source = _image_tensor(image)
    height, width = source.shape[1:]
    inverse = np.linalg.inv(np.vstack([affine, [0.0, 0.0, 1.0]]))[:2]  # crop -> source
    u = torch.arange(size, dtype=torch.float64)
    grid_v, grid_u = torch.meshgrid(u, u, indexing="ij")
    crop = torch.stack([grid_u, grid_v, torch.ones_like(grid_u)], dim=-1)  # (S, S, 3)
    src = crop @ torch.as_tensor(inverse).T  # (S, S, 2) source pixels
    # grid_sample with align_corners=False: normalised -1 / 1 are the outer edges -0.5 / W - 0.5
    norm_x = (src[..., 0] + 0.5) / width * 2.0 - 1.0
    norm_y = (src[..., 1] + 0.5) / height * 2.0 - 1.0
    grid = torch.stack([norm_x, norm_y], dim=-1).to(source.dtype)[None]  # (1, S, S, 2)
    out = F.grid_sample(source[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0]


def motion_blur(image: Tensor, length: int, angle_deg: float) -> Tensor:
    """Blur along a line of ``length`` pixels at ``angle_deg`` (a normalised line kernel, replicate padding).

    Args:
        image: (3, H, W) float
        length: odd kernel size >= 1
        angle_deg: direction of the motion, degrees

    Returns:
        (3, H, W) float
    """
    if length <= 1:
        return image
    if length % 2 == 0:
        raise InputError(f"motion blur length must be odd, got {length}")
    half = length // 2
    kernel = np.zeros((length, length))
    direction = np.array([math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))])
    for t in np.linspace(-half, half, 4 * length):
        x, y = np.rint(half + t * direction).astype(int)
        kernel[y, x] = 1.0
    kernel /= kernel.sum()
    weight = torch.as_tensor(kernel, dtype=image.dtype, device=image.device)[None, None].repeat(3, 1, 1, 1)
    padded = F.pad(image[None], (half, half, half, half), mode="replicate")
    return F.conv2d(padded, weight, groups=3)[0]


def augment_crop(
    image: Any,
    box: Any,
    params: AugmentParams | None = None,
    size: int = 256,
) -> AugmentedCrop:
    """Crop a box out of an image with HACO's augmentations (test time: ``params=None``).

    Args:
        image: (H, W, 3) uint8 (0–255) or float ([0, 1]) array, or (3, H, W) tensor
        box: (4,) (x0, y0, x1, y1) box, source pixels (module docstring convention)
        params: AugmentParams from :func:`sample_augment_params`; None for the plain crop
        size: S

    Returns:
        AugmentedCrop(image (3, S, S) float in [0, 1], affine (2, 3))
    """
    p = params or AugmentParams.identity()
    source = _image_tensor(image)
    affine = crop_transform(box, size, (source.shape[2], source.shape[1]), p)
    crop = warp_image(source, affine, size)
    crop = (crop * torch.tensor(p.color, dtype=crop.dtype)[:, None, None]).clamp(0.0, 1.0)
    if p.blur_kernel:
        crop = motion_blur(crop, p.blur_kernel, p.blur_angle_deg)
    if p.lowres_scale is not None:
        small = max(1, int(round(size * p.lowres_scale)))
        crop = F.interpolate(crop[None], size=(small, small), mode="bilinear", align_corners=False)
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0]
    if p.noise_seed is not None:
        generator = torch.Generator().manual_seed(p.noise_seed)
        noise = torch.randn(crop.shape, generator=generator, dtype=crop.dtype)
        crop = (crop + p.noise_sigma * noise).clamp(0.0, 1.0)
    return AugmentedCrop(image=crop.contiguous(), affine=affine)
