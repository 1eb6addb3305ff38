"""Convolution, pooling and batch norm: against their composites (minitx.composites), against
PyTorch where it is installed, and their error messages."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitx as mt
import minitx.functional as F
from minitx import backend, composites, ops
from minitx.testing import arrays, separated_arrays
from tests.ops.test_fused import assert_same


@given(data=st.data())
def test_conv2d_matches_its_composite(device, data):
    k, s = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2))
    p = data.draw(st.integers(0, k // 2))
    B, C, O = (data.draw(st.integers(1, 3)) for _ in range(3))
    H, W = (data.draw(st.integers(max(k - 2 * p, 1), 6)) for _ in range(2))
    inputs = [data.draw(arrays((B, C, H, W))), data.draw(arrays((O, C, k, k)))]
    if data.draw(st.booleans()):
        inputs.append(data.draw(arrays((O,))))
    assert_same(lambda *t: F.conv2d(*t, stride=s, padding=p),
                lambda *t: composites.conv2d(*t, stride=s, padding=p), inputs, device)


@given(data=st.data())
def test_batch_norm_matches_its_composite(device, data):
    C = data.draw(st.integers(1, 3))
    shape = (data.draw(st.integers(2, 4)), C) + tuple(
        data.draw(st.lists(st.integers(1, 2), max_size=2)))
    x = data.draw(separated_arrays(shape, offset=0.03))
    w, b = data.draw(arrays((C,), 0.5, 2.0)), data.draw(arrays((C,)))
    assert_same(ops.batch_norm, composites.batch_norm, [x, w, b], device)


def test_running_statistics_update_in_place(device):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 2, 2)) * 2 + 1
    rm = mt.zeros(3, dtype="float64", device=device)
    rv = mt.ones(3, dtype="float64", device=device)
    ops.batch_norm(mt.tensor(x, device=device), None, None, 1e-5, rm, rv, 0.1)
    np.testing.assert_allclose(rm.numpy(), 0.1 * x.mean((0, 2, 3)))
    np.testing.assert_allclose(rv.numpy(), 0.9 + 0.1 * x.var((0, 2, 3), ddof=1))


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(mt.ones((2, 3, 5)), mt.ones((4, 3, 3, 3))), "conv2d: expected"),
    (lambda: F.conv2d(mt.ones((2, 3, 5, 5)), mt.ones((4, 2, 3, 3))), "3 channels"),
    (lambda: F.conv2d(mt.ones((1, 1, 2, 2)), mt.ones((1, 1, 3, 3))), "larger than"),
    (lambda: F.conv2d(mt.ones((1, 1, 4, 4)), mt.ones((1, 1, 3, 3)), stride=0), "positive"),
    (lambda: F.conv2d(mt.ones((1, 1, 4, 4)), mt.ones((1, 1, 3, 3)), mt.ones(2)), "bias"),
    (lambda: F.max_pool2d(mt.ones((1, 1, 4, 4)), 2, padding=2), "half the kernel"),
    (lambda: F.avg_pool2d(mt.ones((1, 1, 4, 4)), (2, 2, 2)), "pair of ints"),
    (lambda: ops.batch_norm(mt.ones((1, 3))), "more than one value"),
    (lambda: ops.batch_norm(mt.ones((4, 3)), mt.ones(2)), "weight must be (3,)"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_an_empty_batch_gives_empty_outputs_and_gradients(device):
    x = mt.zeros((0, 3, 5, 5), requires_grad=True, device=device)
    w = mt.ones((4, 3, 3, 3), requires_grad=True, device=device)
    b = mt.ones(4, requires_grad=True, device=device)
    y = F.conv2d(x, w, b, padding=1)
    pooled = F.max_pool2d(x, 2)
    assert y.shape == (0, 4, 5, 5) and pooled.shape == (0, 3, 2, 2)
    (y.sum() + pooled.sum()).backward()
    assert x.grad.shape == x.shape
    assert not backend.to_numpy(w.grad).any() and not backend.to_numpy(b.grad).any()  # none


def test_conv2d_refuses_mixed_dtypes():
    with pytest.raises((TypeError, ValueError), match="(?i)dtype"):
        F.conv2d(mt.ones((1, 1, 4, 4), dtype="float64"), mt.ones((1, 1, 3, 3)))


@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), (2, 1, 1), ((3, 2), 1, (1, 1))])
def test_max_pool_padding_never_takes_the_gradient_from_a_real_minus_infinity(device, kernel,
                                                                             stride, padding):
    """The padding must lose even to −∞: every window holds a real value, so each window's
    gradient (1 here) lands inside the image, and the gradients add up to the window count."""
    x = np.full((1, 2, 3, 4), -np.inf)
    x[0, 1, 2, 3] = 1.0  # the second channel: −∞ everywhere but one corner
    t = mt.tensor(x, requires_grad=True, device=device)
    y = F.max_pool2d(t, kernel, stride, padding)
    y.sum().backward()
    grad, windows = backend.to_numpy(t.grad), y.shape[2] * y.shape[3]
    np.testing.assert_array_equal(grad.sum(axis=(2, 3)), [[windows, windows]])
    assert grad[0, 1, 2, 3] == (y.numpy()[0, 1] == 1.0).sum()  # the 1 wins each of its windows


def test_max_pool_of_minus_infinity_equals_torch():
    """Ties (here of −∞) go to the window's first cell inside the image, as in PyTorch. (On
    NaNs the two differ: minitx's gradient goes to the first NaN of a window, PyTorch's to the
    last.)"""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    for x in (np.full((1, 1, 3, 3), -np.inf),  # PyTorch: gradient [[1, 1, 0], [1, 1, 0], 0]
              rng.choice([-np.inf, -1.0, 0.5], size=(2, 3, 7, 6), p=[0.6, 0.2, 0.2])):
        ours, theirs = mt.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, expected = F.max_pool2d(ours, 3, 2, 1), torch.nn.functional.max_pool2d(theirs, 3, 2, 1)
        np.testing.assert_array_equal(y.numpy(), expected.detach().numpy())
        y.sum().backward()
        expected.sum().backward()
        np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


# ---- PyTorch, an optional reference -------------------------------------------------------

@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (3, 2), ((2, 1), (0, 1))])
def test_conv2d_and_pooling_equal_torch(stride, padding):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 5, 5)), \
        rng.standard_normal(4)
    g = None
    ours_in = [mt.tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    pairs = [(F.conv2d(*ours_in, stride=stride, padding=padding),
              TF.conv2d(*theirs_in, stride=stride, padding=padding))]
    k = (5, 4)
    pairs.append((F.avg_pool2d(ours_in[0], k, stride, padding),
                  TF.avg_pool2d(theirs_in[0], k, stride, padding)))
    pairs.append((F.max_pool2d(ours_in[0], k, stride, padding),
                  TF.max_pool2d(theirs_in[0], k, stride, padding)))
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        g = rng.standard_normal(ours.shape)
        ours.backward(g)
        theirs.backward(torch.tensor(g))
    for a, t in zip(ours_in, theirs_in):
        np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-9, atol=1e-11)
