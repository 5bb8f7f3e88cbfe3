"""Rotation conversions (torch, batched, differentiable). Points are row vectors: ``x_rotated = x @ R.T``."""

from __future__ import annotations

import torch
from torch import Tensor

from haco_grasp.geometry.constants import constant, scalar

# skew(v) = (v @ _SKEW).unflatten(-1, (3, 3)): the constant linear map from a vector to its cross-product matrix
_SKEW = ((0, 0, 0, 0, 0, -1, 0, 1, 0), (0, 0, 1, 0, 0, 0, -1, 0, 0), (0, -1, 0, 1, 0, 0, 0, 0, 0))
_EYE = ((1, 0, 0), (0, 1, 0), (0, 0, 1))


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula, without branches and smooth at zero angle.

    With v = θ a: R = cos θ I + (sin θ / θ) [v]x + ((1 - cos θ) / θ²) v vᵀ, written with the half angle h = θ / 2
    and s = sin h / h: sin θ / θ = s cos h and (1 - cos θ) / θ² = ½ s² (no cancellation at small angles);
    θ = sqrt(|v|² + 1e-12) keeps the gradient finite at v = 0 and changes θ by less than 1e-12 rad above 1e-6 rad.
    A fixed, small number of torch operations whatever the batch, constants cached (the MANO forward runs it on
    every joint of every sample, in the optimizer's loop).

    Args:
        axis_angle: (..., 3) float, radians times the unit axis.

    Returns:
        (..., 3, 3) float rotation matrices.
    """
    theta_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    half = (theta_sq + scalar(1e-12, axis_angle)).sqrt() * scalar(0.5, axis_angle)  # h = θ / 2
    sin_half_over_half = half.sin() / half  # s
    sin_term = sin_half_over_half * half.cos()  # sin θ / θ
    cos_term = sin_half_over_half.square() * scalar(0.5, axis_angle)  # (1 - cos θ) / θ²
    skew = (axis_angle @ constant(_SKEW, axis_angle)).unflatten(-1, (3, 3))  # [v]x: (..., 3, 3)
    outer = axis_angle[..., :, None] * axis_angle[..., None, :]  # v vᵀ: (..., 3, 3)
    eye = constant(_EYE, axis_angle)
    # cos θ as 1 - ((1 - cos θ) / θ²) θ²: exactly 1 at v = 0, so a zero offset is exactly the identity
    cos_angle = scalar(1.0, axis_angle) - cos_term * theta_sq
    return cos_angle * eye + sin_term * skew + cos_term * outer


def matrix_to_axis_angle(matrix: Tensor) -> Tensor:
    """Inverse of :func:`axis_angle_to_matrix`, angle in [0, π], through a unit quaternion.

    Args:
        matrix: (..., 3, 3) float rotation matrices.

    Returns:
        (..., 3) float axis-angle vectors, radians times the unit axis.
    """
    m = matrix
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    candidates = torch.stack(
        [
            1.0 + trace,
            1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
            1.0 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
            1.0 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
        ],
        dim=-1,
    )  # (..., 4): 4 q_i² for (w, x, y, z)
    best = candidates.argmax(-1, keepdim=True)
    denom = (2.0 * candidates.clamp_min(1e-12).sqrt()).gather(-1, best)  # 4 q_best
    rows = torch.stack(
        [
            torch.stack(
                [
                    candidates[..., 0],
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    candidates[..., 1],
                    m[..., 1, 0] + m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] + m[..., 0, 1],
                    candidates[..., 2],
                    m[..., 2, 1] + m[..., 1, 2],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 2, 1] + m[..., 1, 2],
                    candidates[..., 3],
                ],
                -1,
            ),
        ],
        dim=-2,
    )  # (..., 4, 4): row i = 4 q_i q
    quat = rows.gather(-2, best[..., None].expand(*best.shape[:-1], 1, 4))[..., 0, :] / denom  # (..., 4)
    quat = torch.where(quat[..., :1] < 0, -quat, quat)  # w >= 0: angle in [0, π]
    w, vec = quat[..., 0], quat[..., 1:]
    sin_half = vec.norm(dim=-1)
    angle = 2.0 * torch.atan2(sin_half, w)
    scale = torch.where(sin_half > 1e-8, angle / sin_half.clamp_min(1e-12), 2.0 / w.clamp_min(1e-12))
    return vec * scale[..., None]


def euler_zyx_to_matrix(angles: Tensor) -> Tensor:
    """R = Rz(a) · Ry(b) · Rx(c) from angles (..., 3) = (a, b, c), radians (ContactOpt's restart jitter)."""
    a, b, c = angles.unbind(-1)
    unit = torch.eye(3, dtype=angles.dtype, device=angles.device)
    rz = axis_angle_to_matrix(a[..., None] * unit[2])
    ry = axis_angle_to_matrix(b[..., None] * unit[1])
    rx = axis_angle_to_matrix(c[..., None] * unit[0])
    return rz @ ry @ rx
