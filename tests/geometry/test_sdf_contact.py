"""Signed-distance forms of ContactOpt's contact falloff and penetration hinge."""

import pytest
import torch

from haco_grasp.errors import InputError
from haco_grasp.geometry.contact import (
    CAPSULE_BOTTOM,
    CAPSULE_RADIUS,
    CAPSULE_TOP,
    capsule_contact,
    penetration_hinge,
    sdf_contact,
    sdf_penetration,
)


def test_sdf_contact_hand_computed():
    s = torch.tensor([[0.0, 0.0005, -0.001, 0.0025, -0.003, 0.0105]], dtype=torch.float64)
    c = sdf_contact(s)
    r = CAPSULE_RADIUS
    expected = [1.0, 1.0, 1.0, 1 / (0.002 / r + 1e-4), 1 / (0.002 / r + 1e-4), 1 / (0.01 / r + 1e-4)]
    torch.testing.assert_close(c[0], torch.tensor(expected, dtype=torch.float64))


def test_sdf_contact_equals_capsule_contact_on_a_plane_with_a_capsule_under_every_point():
    # plane z = 0, normal +z; a capsule directly below each query point == dense sampling
    gen = torch.Generator().manual_seed(0)
    heights = (torch.rand(1, 200, generator=gen, dtype=torch.float64) - 0.3) * 0.03
    query = torch.zeros(1, 200, 3, dtype=torch.float64)
    query[..., 2] = heights
    centres = query.clone()
    centres[..., 2] = 0.0
    normals = torch.zeros_like(centres)
    normals[..., 2] = 1.0
    idx = torch.arange(200)[None]
    expected = capsule_contact(query, centres, normals, idx, CAPSULE_TOP, CAPSULE_BOTTOM, CAPSULE_RADIUS)
    torch.testing.assert_close(sdf_contact(heights), expected)


def test_sdf_penetration_matches_hinge_on_a_plane_and_takes_per_sample_allowance():
    depth = torch.tensor([[0.003, 0.0, -0.01], [0.003, 0.001, 0.0]], dtype=torch.float64)  # sdf (negative inside)
    allowance = torch.tensor([0.002, 0.0], dtype=torch.float64)
    got = sdf_penetration(depth, allowance)
    torch.testing.assert_close(got, torch.tensor([(0.01 - 0.002) / 3, 0.0], dtype=torch.float64))
    hand = torch.zeros(2, 3, 3, dtype=torch.float64)
    hand[..., 2] = depth
    pts = torch.zeros(2, 1, 3, dtype=torch.float64)
    nrm = torch.zeros_like(pts)
    nrm[..., 2] = 1.0
    torch.testing.assert_close(penetration_hinge(hand, pts, nrm, allowance=allowance), got)
    with pytest.raises(InputError, match="allowance"):
        sdf_penetration(depth, torch.tensor([-1.0, 0.0], dtype=torch.float64))


def test_sdf_forms_gradcheck():
    s = (torch.randn(2, 5, dtype=torch.float64) * 0.004).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: sdf_contact(x), (s,))
    assert torch.autograd.gradcheck(lambda x: sdf_penetration(x, 0.001), (s,))
