"""tests.helpers.assert_close: numpy or torch on either side, explicit tolerances, a message that locates the error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import assert_close


def test_mixed_numpy_and_torch_within_tolerance() -> None:
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float32, requires_grad=True)
    assert_close(x * 1, np.array([1.0, 2.0, 3.0 + 1e-7]), atol=1e-6, rtol=0.0)
    assert_close(np.ones((2, 3)), 1.0, atol=0.0, rtol=0.0)  # a scalar reference broadcasts
    assert_close([100.0], [100.5], atol=0.0, rtol=0.01)


def test_failure_names_the_worst_element_and_the_tolerances() -> None:
    actual = np.zeros((2, 3))
    actual[1, 2] = 0.5
    actual[0, 0] = 0.1
    with pytest.raises(
        AssertionError, match=r"normals: 2 of 6 elements .*atol=0\.01.* index \(1, 2\): actual 0\.5, expected 0\.0"
    ):
        assert_close(actual, np.zeros((2, 3)), atol=0.01, rtol=0.0, msg="normals")


def test_shape_mismatch_and_nan_fail() -> None:
    with pytest.raises(AssertionError, match="shape mismatch"):
        assert_close(np.zeros(3), np.zeros(4), atol=1.0, rtol=1.0)
    with pytest.raises(AssertionError, match="1 of 2"):
        assert_close([np.nan, 0.0], [np.nan, 0.0], atol=1.0, rtol=1.0)
    with pytest.raises(ValueError):
        assert_close(0.0, 0.0, atol=-1.0, rtol=0.0)
