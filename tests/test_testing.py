"""minitx.testing.gradcheck catches wrong backwards, including the one a sum-only check misses."""

import numpy as np
import pytest

import minitx.functional as F
from minitx.autograd import Function
from minitx.ops.fused import stable_softmax
from minitx.testing import GradcheckError, gradcheck


class ZeroGradSoftmax(Function):
    """A softmax whose backward returns zeros: right for sum(softmax(x)), wrong otherwise."""

    def forward(self, x):
        return stable_softmax(x, -1)

    def backward(self, g):
        return g * 0


class DoubledTanh(Function):
    """tanh with a backward twice too large."""

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, g):
        return 2 * g * (1 - self.y ** 2)


def test_zero_backward_softmax_is_caught():
    x = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(ZeroGradSoftmax.apply, x)


def test_sum_only_check_would_miss_it():
    """The gradient of sum(softmax(x)) is exactly zero: why gradcheck uses a random v."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    t = __import__("minitx").tensor(x, requires_grad=True)
    F.softmax(t, -1).sum().backward()
    np.testing.assert_allclose(t.grad, 0, atol=1e-12)


def test_report_names_input_element_and_values():
    with pytest.raises(GradcheckError) as info:
        gradcheck(DoubledTanh.apply, np.array([0.1, 0.2, 0.3]))
    message = str(info.value)
    assert "input 0" in message and "element" in message and "analytic" in message


def test_large_inputs_use_random_directions():
    x = np.random.default_rng(1).standard_normal(600)  # above max_full
    assert gradcheck(F.tanh, x)
    with pytest.raises(GradcheckError, match="random direction"):
        gradcheck(DoubledTanh.apply, x)


def test_float32_inputs_are_refused():
    with pytest.raises(ValueError, match="float64"):
        gradcheck(F.tanh, np.ones(3, np.float32))
