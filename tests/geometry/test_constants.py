"""Cached constants: one tensor per (value, dtype, device), usable with autograd, and no per-call conversion."""

import torch
from torch.profiler import ProfilerActivity, profile

from haco_grasp.geometry.constants import constant, scalar


def _aten_ops(fn) -> list[str]:
    fn()  # warm
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return [e.name for e in prof.events() if e.name.startswith("aten::")]


def test_scalar_is_cached_per_value_dtype_and_device():
    x32, x64 = torch.zeros(2), torch.zeros(2, dtype=torch.float64)
    assert scalar(0.5, x32) is scalar(0.5, x32)
    assert scalar(0.5, x32) is not scalar(0.25, x32)
    assert scalar(0.5, x32).dtype == torch.float32 and scalar(0.5, x64).dtype == torch.float64
    assert scalar(0.5, x32).shape == () and float(scalar(0.5, x64)) == 0.5
    eye = constant(((1, 0), (0, 1)), x32)
    assert eye is constant(((1, 0), (0, 1)), x32)
    assert torch.equal(eye, torch.eye(2)) and constant((1, 2), x32, dtype=torch.long).dtype == torch.long


def test_a_constant_first_made_in_inference_mode_can_be_saved_for_backward():
    with torch.inference_mode():
        made = scalar(0.123456, torch.zeros(1))
    assert not made.is_inference()
    x = torch.ones(3, requires_grad=True)
    (x * made).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.123456))


def test_a_cached_constant_saves_the_per_call_number_conversion():
    x = torch.rand(4, 5)
    with_number = _aten_ops(lambda: x * 0.5)
    with_constant = _aten_ops(lambda: x * scalar(0.5, x))
    assert with_constant == ["aten::mul"]
    assert len(with_number) >= len(with_constant)  # this torch build converts the wrapped number (5 operations)
    torch.testing.assert_close(x * scalar(0.5, x), x * 0.5, rtol=0, atol=0)
