"""haco_grasp.arrays.to_numpy: the one tensor-or-array-like to numpy conversion."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from haco_grasp.arrays import to_numpy


def test_tensor_with_grad_is_detached_and_keeps_its_dtype() -> None:
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_()
    out = to_numpy(x * 2)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, np.arange(6).reshape(2, 3) * 2)


def test_dtype_conversion_matches_torch_side_conversion() -> None:
    x = torch.tensor([0.1, 1.0 / 3.0, 7.0], dtype=torch.float32)
    np.testing.assert_array_equal(to_numpy(x, np.float64), x.to(torch.float64).numpy())
    half = torch.tensor([0.1, 2.5], dtype=torch.bfloat16)
    np.testing.assert_array_equal(to_numpy(half, np.float64), half.to(torch.float64).numpy())
    faces = torch.tensor([[0, 1, 2]])
    assert to_numpy(faces).dtype == np.int64


def test_array_likes_go_through_asarray() -> None:
    array = np.ones((2, 2), dtype=np.float32)
    assert to_numpy(array) is array  # no copy when none is needed
    assert to_numpy([[1, 2, 3]], np.float64).dtype == np.float64
    assert to_numpy(3.0).shape == ()


def test_cpu_float64_tensor_shares_memory_like_tensor_numpy() -> None:
    x = torch.zeros(3, dtype=torch.float64)
    out = to_numpy(x, np.float64)
    x[0] = 1.0
    assert out[0] == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensor() -> None:
    x = torch.arange(4.0, device="cuda").requires_grad_()
    np.testing.assert_array_equal(to_numpy(x), [0.0, 1.0, 2.0, 3.0])


def test_importing_it_does_not_import_torch() -> None:
    code = "import sys, haco_grasp.arrays; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_name_turns_a_conversion_failure_into_an_input_error() -> None:
    from haco_grasp.errors import InputError

    with pytest.raises(InputError, match=r"obj_verts must be a numeric array or tensor, got list"):
        to_numpy([[0.0, 1.0], [2.0]], np.float64, name="obj_verts")
    with pytest.raises(ValueError):
        to_numpy([[0.0, 1.0], [2.0]], np.float64)  # without a name numpy's own error comes through
