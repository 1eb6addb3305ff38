"""Gradients of the functions composed from ops (no backward of their own): autodiff must get
them right through the ops they are made of."""

from functools import partial

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitx as mt
import minitx.functional as F
from minitx import backend, ops
from minitx.testing import arrays, gradcheck, shapes


@given(data=st.data())
def test_shape_composites(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, empty=False))  # empty: test_scalar_and_empty
    x = data.draw(arrays(shape))
    a, b = data.draw(st.integers(0, len(shape) - 1)), data.draw(st.integers(0, len(shape) - 1))
    n = shape[a]
    cases = {
        "swapaxes": (lambda t: t.swapaxes(a, b), np.swapaxes(x, a, b)),
        "unsqueeze": (lambda t: t.unsqueeze(a), np.expand_dims(x, a)),
        "squeeze": (lambda t: t.unsqueeze(b).squeeze(b), x),
        "flatten": (lambda t: t.flatten(), x.reshape(-1)),
        "split": (lambda t: mt.concat(t.split(max(n // 2, 1), axis=a)[::-1], axis=a),
                  np.concatenate(np.array_split(x, range(max(n // 2, 1), n, max(n // 2, 1)),
                                                axis=a)[::-1], axis=a)),
        "chunk": (lambda t: t.chunk(2, axis=a)[0] * 2.0, np.array_split(
            x, range(-(-n // 2), n, -(-n // 2)), axis=a)[0] * 2.0),
        "take": (lambda t: ops.take(t, [0, n - 1, 0], axis=a), np.take(x, [0, n - 1, 0], a)),
    }
    for name, (fn, expected) in cases.items():
        np.testing.assert_allclose(fn(mt.tensor(x, device=device)).numpy(), expected,
                                   err_msg=name)
        gradcheck(fn, x, device=device)


def test_functional_composites(device):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    gradcheck(F.linear, x, w, b, device=device)
    np.testing.assert_allclose(F.linear(mt.tensor(x), mt.tensor(w), mt.tensor(b)).numpy(),
                               x @ w.T + b)
    gradcheck(F.silu, x, device=device)
    gradcheck(lambda p, q: F.mse_loss(p, q), x, rng.standard_normal((3, 4)), device=device)
    hot = F.one_hot(mt.tensor([2, 0], device=device), 3)
    np.testing.assert_array_equal(hot.numpy(), [[0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize("sections, sizes", [([1, 2], [1, 2]), (2, [2, 1]), (1, [1, 1, 1])])
def test_split_sizes(sections, sizes):
    pieces = mt.ones((3, 2)).split(sections)
    assert [p.shape for p in pieces] == [(n, 2) for n in sizes]
    with pytest.raises(ValueError, match="do not add up"):
        mt.ones((3, 2)).split([1, 1])


def test_unsqueeze_takes_a_tuple_of_axes_as_numpy_expand_dims(device):
    x = np.arange(24.0).reshape(2, 3, 4)
    for axes in [(0, 1), (0, 4), (-1, 1), (2,), ()]:
        t = mt.tensor(x, device=device)
        np.testing.assert_array_equal(t.unsqueeze(axes).numpy(), np.expand_dims(x, axes))
        gradcheck(partial(ops.unsqueeze, axis=axes), x, device=device)
    with pytest.raises(ValueError, match="unsqueeze: repeated axis"):
        mt.tensor(x, device=device).unsqueeze((1, 1))
    with pytest.raises(ValueError, match="unsqueeze: axis 5 is out of range"):
        mt.tensor(x, device=device).unsqueeze((0, 5))


def test_stack_refuses_a_tuple_axis(device):
    a = mt.tensor([1.0, 2.0], device=device)
    with pytest.raises(TypeError, match="stack: axis must be an int, got tuple"):
        mt.stack([a, a], axis=(1, 0))


@pytest.mark.parametrize("reduce", ["mean", "var"])
def test_float16_mean_and_var_of_more_elements_than_float16_can_count(device, reduce):
    """70000 > 65504, float16's largest number: the count, and the sum, need float32 (NumPy's
    float16 mean sums in float32 too)."""
    x = np.tile(np.array([0.5, 1.5], np.float16), 35_000)
    n, wide = x.size, x.astype(np.float64)
    t = mt.tensor(x, device=device, requires_grad=True)
    y = t.mean() if reduce == "mean" else t.var()
    assert y.dtype == np.float16
    expected = np.mean(x) if reduce == "mean" else np.float16(np.var(wide, ddof=1))
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-3)
    y.backward()
    slope = np.full(n, 1 / n) if reduce == "mean" else 2 * (wide - wide.mean()) / (n - 1)
    assert t.grad.dtype == np.float16
    np.testing.assert_allclose(backend.to_numpy(t.grad), slope.astype(np.float16), rtol=0,
                               atol=2.0 ** -24)  # float16's smallest step
