"""Every fused op against its composite definition (minitx.composites): same value, same
gradients. The composite is built from primitive ops, so autodiff derives its backward; a fused
backward that disagrees with it is wrong."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitx.functional as F
from minitx import backend, composites
from minitx.tensor import Tensor
from minitx.testing import arrays, index_arrays, shapes


def run(fn, arrays_, device, upstream):
    """Value and input gradients of fn under a given upstream gradient."""
    ts = [Tensor(backend.to_device(a, device), requires_grad=a.dtype.kind == "f")
          for a in arrays_]
    out = fn(*ts)
    out.backward(backend.to_device(upstream(out.shape), device))
    return out.numpy(), [None if t.grad is None else backend.to_numpy(t.grad) for t in ts]


def assert_same(fused, composite, arrays_, device, seed=0):
    rng = np.random.default_rng(seed)
    shape_seen = {}

    def upstream(shape):  # the same random upstream gradient for both
        if shape not in shape_seen:
            shape_seen[shape] = rng.standard_normal(shape)
        return shape_seen[shape]

    y1, g1 = run(fused, arrays_, device, upstream)
    y2, g2 = run(composite, arrays_, device, upstream)
    np.testing.assert_allclose(y1, y2, rtol=1e-10, atol=1e-12)
    for a, b in zip(g1, g2):
        if a is not None or b is not None:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@given(data=st.data())
def test_softmax_and_log_softmax(device, data):
    shape = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape, -5, 5))
    assert_same(lambda t: F.softmax(t, axis), lambda t: composites.softmax(t, axis), [x], device)
    assert_same(lambda t: F.log_softmax(t, axis), lambda t: composites.log_softmax(t, axis),
                [x], device)


@given(data=st.data())
def test_logsumexp(device, data):
    shape = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    keep = data.draw(st.booleans())
    assert_same(lambda t: t.logsumexp(axis, keep), lambda t: composites.logsumexp(t, axis, keep),
                [data.draw(arrays(shape, -5, 5))], device)


@given(data=st.data())
def test_linear(device, data):
    lead = data.draw(shapes(min_dims=0, max_dims=3))
    k, m = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    inputs = [data.draw(arrays(lead + (k,))), data.draw(arrays((m, k)))]
    if data.draw(st.booleans()):
        inputs.append(data.draw(arrays((m,))))
    assert_same(F.linear, composites.linear, inputs, device)


@given(data=st.data())
def test_layer_norm(device, data):
    shape = data.draw(shapes(min_dims=0, max_dims=2)) + (data.draw(st.integers(2, 8)),)
    x, w, b = data.draw(arrays(shape)), data.draw(arrays(shape[-1:])), data.draw(
        arrays(shape[-1:]))
    assert_same(F.layer_norm, composites.layer_norm, [x, w, b], device)


@given(data=st.data())
def test_rms_norm(device, data):
    shape = data.draw(shapes(min_dims=0, max_dims=2)) + (data.draw(st.integers(1, 8)),)
    x, w = data.draw(arrays(shape)), data.draw(arrays(shape[-1:]))
    assert_same(F.rms_norm, composites.rms_norm, [x, w], device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(data=st.data())
def test_cross_entropy(device, reduction, data):
    lead = data.draw(shapes(min_dims=1, max_dims=2))
    C = data.draw(st.integers(2, 7))
    z = data.draw(arrays(lead + (C,), -4, 4))
    t = data.draw(index_arrays(C, lead))
    t = np.where(data.draw(index_arrays(4, lead)) == 0, -100, t)  # about a quarter ignored
    eps = data.draw(st.sampled_from([0.0, 0.1, 0.3]))
    assert_same(lambda z, t: F.cross_entropy(z, t, label_smoothing=eps, reduction=reduction),
                lambda z, t: composites.cross_entropy(z, t, label_smoothing=eps,
                                                      reduction=reduction), [z, t], device)


@given(data=st.data())
def test_scaled_dot_product_attention(device, data):
    B, h, Tq, Tk, d, dv = (data.draw(st.integers(1, 4)) for _ in range(6))
    q, k, v = (data.draw(arrays(s)) for s in ((B, h, Tq, d), (B, h, Tk, d), (B, h, Tk, dv)))
    causal = data.draw(st.booleans()) and Tq <= Tk  # every query keeps at least one key
    kind = data.draw(st.sampled_from(["none", "bias", "bool"]))
    extra = []
    if kind == "bias":
        extra = [data.draw(arrays((1, h, Tq, Tk)))]
    elif kind == "bool":
        allowed = data.draw(index_arrays(2, (B, 1, Tq, Tk))).astype(bool)
        allowed[..., 0] = True  # fully masked rows differ on purpose (zeros vs NaN)
        extra = [allowed]
    assert_same(lambda *t: F.scaled_dot_product_attention(*t[:3], mask=t[3] if extra else None,
                                                          causal=causal),
                lambda *t: composites.scaled_dot_product_attention(
                    *t[:3], mask=t[3] if extra else None, causal=causal),
                [q, k, v] + extra, device)
