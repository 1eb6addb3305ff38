"""Ops that run in cache-sized blocks on the CPU (``minitx.kernels.blockwise``) must not
depend on the block size: block by block equals one whole-array pass, forward and backward,
including a last block that is only partly filled and non-contiguous input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitx as mt
import minitx.functional as F
from minitx import kernels
from minitx.ops.activation import GELU
from minitx.testing import arrays, gradcheck, shapes


@pytest.fixture
def tiny_blocks(monkeypatch):
    monkeypatch.setattr(kernels.runtime, "BLOCK", 5)  # arrays of more than 5 elements: blocked


def value_and_grad(fn, x, g):
    t = mt.tensor(x, requires_grad=True)
    y = fn(t)
    y.backward(g)
    return y.numpy(), t.grad


@pytest.mark.parametrize("approximate", ["none", "tanh", "sigmoid"])
@given(data=st.data())
def test_blocked_gelu_equals_one_pass(approximate, data):
    x = data.draw(arrays(data.draw(shapes(min_dims=1)), -4, 4)).astype(np.float32)
    g = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    fn = lambda t: F.gelu(t, approximate=approximate)  # noqa: E731
    whole = value_and_grad(fn, x, g)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels.runtime, "BLOCK", 3)
        blocked = value_and_grad(fn, x, g)
        strided = value_and_grad(fn, np.asfortranarray(x), g)  # not C-contiguous
    for a, b, c in zip(whole, blocked, strided):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("approximate", ["none", "tanh", "sigmoid"])
def test_blocked_gelu_gradcheck(tiny_blocks, approximate):
    x = np.random.default_rng(1).uniform(-3, 3, (4, 6))  # 24 elements: blocks of 5, 5, ..., 4
    assert gradcheck(lambda t: F.gelu(t, approximate=approximate), x, atol=1e-6)


def test_blockwise_keeps_none_outputs_and_dtype(tiny_blocks):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y, nothing = kernels.blockwise(lambda b: (b * 2, None), x)
    assert nothing is None and y.dtype == np.float32 and y.shape == (3, 4)
    np.testing.assert_array_equal(y, 2 * x)


def test_forward_learns_whether_a_gradient_is_needed(monkeypatch):
    seen = []
    original = GELU.forward

    def spy(self, x, **params):
        seen.append(self.needs_grad)
        return original(self, x, **params)

    monkeypatch.setattr(GELU, "forward", spy)
    x, c = mt.randn(3, 4, requires_grad=True), mt.randn(3, 4)
    with_grad = F.gelu(x)
    with mt.no_grad():
        without = F.gelu(x)
    F.gelu(c)  # no input requires a gradient
    assert seen == [True, False, False]
    np.testing.assert_array_equal(with_grad.numpy(), without.numpy())
