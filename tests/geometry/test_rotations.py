import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from haco_grasp.geometry.rotations import axis_angle_to_matrix, euler_zyx_to_matrix, matrix_to_axis_angle
from tests.helpers import assert_close


def _samples():
    aa = torch.randn(500, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1.5
    special = torch.tensor(
        [[0, 0, 0], [1e-7, 0, 0], [np.pi, 0, 0], [0, np.pi - 1e-9, 0], [1e-3, -2e-3, 5e-4]], dtype=torch.float64
    )
    return torch.cat([aa, special])


def test_axis_angle_to_matrix_matches_scipy():
    aa = _samples()
    expected = Rotation.from_rotvec(aa.numpy()).as_matrix()
    assert_close(axis_angle_to_matrix(aa), expected, atol=1e-12, rtol=1e-7)


def test_matrix_to_axis_angle_round_trip():
    aa = _samples()
    back = matrix_to_axis_angle(axis_angle_to_matrix(aa))
    assert_close(
        Rotation.from_rotvec(back.numpy()).as_matrix(),
        Rotation.from_rotvec(aa.numpy()).as_matrix(),
        atol=1e-10,
        rtol=1e-7,
    )
    assert (back.norm(dim=-1) <= np.pi + 1e-9).all()
    small = aa.norm(dim=-1) < 3.0
    assert_close(back[small], aa[small], atol=1e-8, rtol=1e-7)


def test_euler_zyx_matches_scipy_intrinsic():
    angles = torch.randn(50, 3, dtype=torch.float64)
    expected = Rotation.from_euler("ZYX", angles.numpy()).as_matrix()
    assert_close(euler_zyx_to_matrix(angles), expected, atol=1e-12, rtol=1e-7)


@pytest.mark.parametrize("scale", [1e-6, 0.5])
def test_axis_angle_gradcheck(scale):
    aa = (torch.randn(4, 3, dtype=torch.float64) * scale).requires_grad_()
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))
