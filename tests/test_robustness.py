"""Numerical robustness at the edges, and detect_anomaly."""

import math

import numpy as np
import pytest

import minitx as mt
import minitx.functional as F
from minitx import backend


def t(values, device, grad=True):
    return mt.tensor(np.asarray(values, np.float32), device=device, requires_grad=grad)


def finite(array):
    return bool(np.isfinite(backend.to_numpy(array)).all())


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_family_is_finite_at_huge_logits(device, fn):
    x = t([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], device)
    y = fn(x, -1)
    assert finite(y.numpy())  # not y.data: it counts as a write, and softmax saved y
    y.backward(backend.to_device(np.ones((2, 3), np.float32), device))
    assert finite(x.grad)


def test_softmax_with_minus_inf_masks(device):
    x = t([[0.0, -math.inf, 1.0], [-math.inf, 2.0, -math.inf]], device)
    y = F.softmax(x, -1)
    expected = np.array([[1 / (1 + math.e), 0, math.e / (1 + math.e)], [0, 1, 0]])
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    (y * t(np.ones((2, 3)), device, False)).sum().backward()
    assert finite(x.grad)
    lp = F.log_softmax(x, -1)  # −inf where masked, finite elsewhere
    assert np.isneginf(lp.numpy()[0, 1]) and np.isfinite(lp.numpy()[0, [0, 2]]).all()


def test_cross_entropy_is_finite_at_huge_and_masked_logits(device):
    z = t([[1e4, -1e4, 0.0], [0.0, -math.inf, 3.0]], device)
    loss = F.cross_entropy(z, mt.tensor([1, 2], device=device))
    assert math.isfinite(loss.item())
    loss.backward()
    assert finite(z.grad)
    np.testing.assert_allclose(loss.item(), (2e4 - math.log1p(math.exp(-1e4)) +
                                             math.log1p(math.exp(-3.0))) / 2, rtol=1e-5)


def test_layer_norm_of_a_constant_row_is_finite(device):
    x = t(np.full((2, 8), 3.0), device)
    y = F.layer_norm(x)
    np.testing.assert_allclose(y.numpy(), 0.0)
    y.backward(backend.to_device(np.ones((2, 8), np.float32), device))
    assert finite(x.grad)


def test_fully_masked_attention_row_gives_zeros_not_nan(device):
    """A query that may attend to nothing outputs zeros and passes zero gradient."""
    rng = np.random.default_rng(0)
    q, k, v = (t(rng.standard_normal((1, 1, 3, 4)), device) for _ in range(3))
    allowed = np.ones((1, 1, 3, 3), bool)
    allowed[0, 0, 1, :] = False  # query 1 sees no key
    out, weights = F.scaled_dot_product_attention(q, k, v, mask=mt.tensor(allowed,
                                                                          device=device),
                                                  return_weights=True)
    np.testing.assert_array_equal(out.numpy()[0, 0, 1], 0.0)
    np.testing.assert_array_equal(weights.numpy()[0, 0, 1], 0.0)
    out.backward(backend.to_device(np.ones(out.shape, np.float32), device))
    for x in (q, k, v):
        assert finite(x.grad)
    np.testing.assert_array_equal(backend.to_numpy(q.grad)[0, 0, 1], 0.0)


def test_detect_anomaly_names_the_op_that_made_a_nan_in_forward(device):
    x = t([-1.0, 4.0], device)
    with mt.detect_anomaly(), pytest.raises(FloatingPointError, match="Sqrt.forward"):
        with np.errstate(invalid="ignore"):
            x.sqrt()


def test_detect_anomaly_names_the_op_whose_backward_made_an_inf(device):
    x = t([0.0, 4.0], device)
    y = x.sqrt().sum()  # forward is finite; d√x/dx = 1/(2√x) is inf at 0
    with mt.detect_anomaly(), pytest.raises(FloatingPointError, match="Sqrt.backward"):
        with np.errstate(divide="ignore"):
            y.backward()


def test_detect_anomaly_accepts_deliberate_minus_inf_masks(device):
    x = t([[0.0, 1.0]], device)
    mask = mt.tensor([[False, True]], device=device)
    with mt.detect_anomaly():
        y = F.softmax(x.masked_fill(mask, -math.inf), -1).sum()
        y.backward()
    assert finite(x.grad)
