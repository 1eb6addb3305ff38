"""Every Tensor method and operator on 0-d and empty inputs, on every device.

NumPy turns the result of a reduction, comparison or index on a 0-d array into a NumPy scalar
(``np.float32``, ``np.bool_``), while CuPy and the strict stand-in give 0-d arrays. A Tensor must
hold an array on every device, so these cases run on ``cpu`` too, where the scalars appear; each
result is checked against NumPy's own answer.
"""

import numpy as np
import pytest

import minitx as mt
from minitx import backend

SCALAR = np.float32(2.5)  # a 0-d input
VECTOR = np.array([1.0, 5.0, 3.0], np.float32)
EMPTY = np.zeros((0,), np.float32)
EMPTY_2D = np.zeros((2, 0), np.float32)
INPUTS = {"0-d": SCALAR, "vector": VECTOR, "empty": EMPTY, "(2, 0)": EMPTY_2D}

# (name, minitx function of a Tensor, NumPy function of an array); run on every input above
ANY_SHAPE = [
    ("x + 1", lambda t: t + 1, lambda a: a + 1),
    ("1 - x", lambda t: 1 - t, lambda a: 1 - a),
    ("x * x", lambda t: t * t, lambda a: a * a),
    ("x / 2", lambda t: t / 2, lambda a: a / 2),
    ("-x", lambda t: -t, lambda a: -a),
    ("x ** 2", lambda t: t ** 2, lambda a: a ** 2),
    ("x < 3", lambda t: t < 3, lambda a: a < 3),
    ("x <= 3", lambda t: t <= 3, lambda a: a <= 3),
    ("x > 3", lambda t: t > 3, lambda a: a > 3),
    ("x >= 3", lambda t: t >= 3, lambda a: a >= 3),
    ("x == x", lambda t: t == t, lambda a: a == a),
    ("x != 3", lambda t: t != 3, lambda a: a != 3),
    ("~(x > 3)", lambda t: ~(t > 3), lambda a: ~(a > 3)),
    ("(x > 1) & (x < 4)", lambda t: (t > 1) & (t < 4), lambda a: (a > 1) & (a < 4)),
    ("(x > 4) | (x < 2)", lambda t: (t > 4) | (t < 2), lambda a: (a > 4) | (a < 2)),
    ("exp", lambda t: t.exp(), np.exp),
    ("log", lambda t: (t + 1).log(), lambda a: np.log(a + 1)),
    ("sqrt", lambda t: t.sqrt(), np.sqrt),
    ("tanh", lambda t: t.tanh(), np.tanh),
    ("sigmoid", lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    ("relu", lambda t: t.relu(), lambda a: np.maximum(a, 0)),
    ("clip", lambda t: t.clip(0.0, 2.0), lambda a: np.clip(a, 0.0, 2.0)),
    ("sum", lambda t: t.sum(), np.sum),
    ("mean of x + 0", lambda t: t.sum() + 0, lambda a: np.sum(a) + 0),
    ("any", lambda t: (t > 2).any(), lambda a: np.any(a > 2)),
    ("all", lambda t: (t > 2).all(), lambda a: np.all(a > 2)),
    ("astype", lambda t: t.astype(np.float64), lambda a: a.astype(np.float64)),
    ("detach", lambda t: t.detach(), lambda a: a),
    ("[...]", lambda t: t[...], lambda a: a[...]),
    ("[None]", lambda t: t[None], lambda a: a[None]),
    ("reshape(-1)", lambda t: t.reshape(-1), lambda a: a.reshape(-1)),
    ("flatten", lambda t: t.flatten(), lambda a: a.reshape(-1)),
    ("unsqueeze(0)", lambda t: t.unsqueeze(0), lambda a: a[None]),
    ("T", lambda t: t.T, lambda a: a.T),
    ("x * 0-d", lambda t: t * mt.tensor(2.0, device=t.device), lambda a: a * np.float32(2)),
]
# these need at least one element (NumPy refuses the empty case too)
NON_EMPTY = [
    ("max", lambda t: t.max(), np.max),
    ("min", lambda t: t.min(), np.min),
    ("mean", lambda t: t.mean(), np.mean),
    ("argmax", lambda t: t.argmax(), np.argmax),
    ("argmin", lambda t: t.argmin(), np.argmin),
    ("var(correction=0)", lambda t: t.var(correction=0), np.var),
]
VECTOR_ONLY = [
    ("x[1]", lambda t: t[1], lambda a: a[1]),
    ("x[-1]", lambda t: t[-1], lambda a: a[-1]),
    ("x @ x", lambda t: t @ t, lambda a: a @ a),
    ("argmax(axis=0)", lambda t: t.argmax(axis=0), lambda a: np.argmax(a, axis=0)),
    ("max(axis=0)", lambda t: t.max(axis=0), lambda a: np.max(a, axis=0)),
    ("sum(axis=0)", lambda t: t.sum(axis=0), lambda a: np.sum(a, axis=0)),
    ("x[1] < 3", lambda t: t[1] < 3, lambda a: a[1] < 3),
    ("x[0] * x[2]", lambda t: t[0] * t[2], lambda a: a[0] * a[2]),
    ("squeeze of (1,)", lambda t: t[:1].squeeze(), lambda a: a[:1].squeeze()),
]
CASES = ([(n, f, r, key) for n, f, r in ANY_SHAPE for key in INPUTS]
         + [(n, f, r, key) for n, f, r in NON_EMPTY for key in ("0-d", "vector")]
         + [(n, f, r, "vector") for n, f, r in VECTOR_ONLY]
         + [("empty @ empty", lambda t: t @ t, lambda a: a @ a, "empty")])


def check_like_numpy(result, expected, device):
    assert isinstance(result, mt.Tensor), type(result)
    assert backend.is_array(result.data) and result.device == device
    expected = np.asarray(expected)
    assert result.shape == expected.shape
    assert result.dtype == expected.dtype, (result.dtype, expected.dtype)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("name, fn, ref, key", CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_tensor_surface_matches_numpy(device, name, fn, ref, key):
    x = INPUTS[key]
    check_like_numpy(fn(mt.tensor(x, device=device)), ref(x), device)


def test_boolean_scalars(device):
    t = mt.tensor(True, device=device)
    check_like_numpy(~t, np.False_, device)
    check_like_numpy(t & mt.tensor(False, device=device), np.False_, device)
    check_like_numpy(t | mt.tensor(False, device=device), np.True_, device)
    assert bool(t) and not bool(~t)


def test_item_and_tolist_of_0d(device):
    t = mt.tensor(2.5, device=device)
    assert t.item() == 2.5 and isinstance(t.item(), float)
    assert t.tolist() == 2.5
    assert mt.tensor(VECTOR, device=device).argmax().item() == 1
    assert mt.tensor(VECTOR, device=device)[1].item() == 5.0


@pytest.mark.parametrize("fn, dfdx", [
    (lambda t: t * t, lambda a: 2 * a),
    (lambda t: t.exp(), np.exp),
    (lambda t: (t * 3).sum(), lambda a: np.full_like(a, 3)),
    (lambda t: t.max(), lambda a: np.ones_like(a)),
    (lambda t: t.tanh(), lambda a: 1 - np.tanh(a) ** 2),
])
def test_a_0d_tensor_backpropagates_into_a_0d_gradient(device, fn, dfdx):
    x = mt.tensor(np.float64(0.5), device=device, requires_grad=True)
    y = fn(x)
    assert y.shape == ()
    y.backward()
    assert backend.is_array(x.grad) and x.grad.shape == ()
    np.testing.assert_allclose(backend.to_numpy(x.grad), dfdx(np.float64(0.5)), rtol=1e-12)


def test_an_empty_tensor_backpropagates_into_an_empty_gradient(device):
    x = mt.tensor(EMPTY_2D.astype(np.float64), device=device, requires_grad=True)
    (x * 2).sum().backward()
    assert backend.is_array(x.grad) and x.grad.shape == (2, 0)
