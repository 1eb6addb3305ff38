"""Ops at ±∞ and ±1e30 give their limits, not NaN from ∞ · 0.

Each case lists the inputs, the values and the gradients (for an upstream gradient of ones)
the op's definition gives there; PyTorch agrees except where the docstring of the op says so
(GELU at ±∞, where PyTorch gives NaN, and fully masked softmax rows, where it gives NaN).
"""

import math

import numpy as np
import pytest

import minitx as mt
import minitx.functional as F
from minitx import backend

INF, NAN = math.inf, math.nan
X = [-INF, -1e30, 1e30, INF]
MASK = np.array([True, False, True, False])

CASES = {  # name: (fn, input, expected value, expected gradient)
    "relu": (F.relu, X, [0, 0, 1e30, INF], [0, 0, 1, 1]),
    "gelu": (F.gelu, X, [0, 0, 1e30, INF], [0, 0, 1, 1]),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), X, [0, 0, 1e30, INF], [0, 0, 1, 1]),
    "gelu_sigmoid": (lambda t: F.gelu(t, approximate="sigmoid"), X, [0, 0, 1e30, INF],
                     [0, 0, 1, 1]),
    "sigmoid": (F.sigmoid, X, [0, 0, 1, 1], [0, 0, 0, 0]),
    "tanh": (F.tanh, X, [-1, -1, 1, 1], [0, 0, 0, 0]),
    "maximum": (lambda t: mt.maximum(t, 0.0), X, [0, 0, 1e30, INF], [0, 0, 1, 1]),
    "minimum": (lambda t: mt.minimum(t, 0.0), X, [-INF, -1e30, 0, 0], [1, 1, 0, 0]),
    "clip": (lambda t: t.clip(-1.0, 1.0), X, [-1, -1, 1, 1], [0, 0, 0, 0]),
    "masked_fill": (lambda t: t.masked_fill(mt.tensor(MASK, device=t.device), 0.0), X,
                    [0, -1e30, 0, INF], [0, 1, 0, 1]),
    "where": (lambda t: mt.where(mt.tensor(MASK, device=t.device), 0.0, t), X,
              [0, -1e30, 0, INF], [0, 1, 0, 1]),
    "softmax": (lambda t: F.softmax(t, -1), [-INF, 0.0, -INF, -1e30], [0, 1, 0, 0],
                [0, 0, 0, 0]),
    "softmax_all_masked": (lambda t: F.softmax(t, -1), [-INF] * 4, [0] * 4, [0] * 4),
    "softmax_plus_inf": (lambda t: F.softmax(t, -1), [100.0, INF, 1.0, -INF], [NAN] * 4,
                         [NAN] * 4),  # e^(∞ − ∞) = NaN in the sum: the whole row, as PyTorch
    "log_softmax_plus_inf": (lambda t: F.log_softmax(t, -1), [100.0, INF, 1.0, -INF],
                             [NAN] * 4, [NAN] * 4),
    "pow_0": (lambda t: t ** 0, [-INF, 0.0, 1e30, INF], [1, 1, 1, 1], [0, 0, 0, 0]),
    "log_softmax": (lambda t: F.log_softmax(t, -1), [-INF, 0.0, -INF, -1e30],
                    [-INF, 0, -INF, -1e30], [1, -3, 1, 1]),  # g − softmax · Σg
    "logsumexp": (lambda t: t.logsumexp(-1, keepdims=True), [-INF, 0.0, -1e30, -INF], [0],
                  [0, 1, 0, 0]),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_limits_at_infinity(name, dtype, device):
    fn, x, value, grad = CASES[name]
    if dtype == "float32" and name in ("relu", "gelu", "gelu_tanh", "gelu_sigmoid", "maximum",
                                       "minimum",
                                       "masked_fill", "where"):
        value = np.asarray(value, np.float32)  # 1e30 rounds in float32
    t = mt.tensor(np.array(x, dtype), requires_grad=True, device=device)
    y = fn(t)
    y.backward(mt.tensor(np.ones(y.shape, dtype), device=device))
    np.testing.assert_array_equal(y.numpy(), np.asarray(value, dtype), err_msg=name)
    np.testing.assert_array_equal(backend.to_numpy(t.grad), np.asarray(grad, dtype), err_msg=name)


def test_relu_and_gelu_agree_with_torch_where_it_is_finite():
    torch = pytest.importorskip("torch")
    x = np.array([-INF, -1e30, -40.5, -1.0, 0.5, 39.5, 1e30, INF])
    for ours, theirs in ((F.relu, torch.relu), (F.gelu, torch.nn.functional.gelu)):
        a, b = mt.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ya, yb = ours(a), theirs(b)
        ya.backward(np.ones(x.shape))
        yb.backward(torch.ones(x.shape, dtype=torch.float64))
        finite = np.isfinite(yb.detach().numpy()) | np.isinf(x)
        finite &= ~np.isnan(yb.detach().numpy())
        np.testing.assert_allclose(ya.numpy()[finite], yb.detach().numpy()[finite], rtol=1e-7)
        known = ~np.isnan(b.grad.numpy())
        np.testing.assert_allclose(a.grad[known], b.grad.numpy()[known], rtol=1e-7, atol=1e-7)
