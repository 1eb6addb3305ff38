"""Cases for the fused and neural-network ops (see cases.py)."""

import math

import numpy as np
from hypothesis import strategies as st

import minitx.functional as F
from minitx.testing import arrays, index_arrays, shapes
from tests.ops.cases import CASES, COMPOSITES, Case, case, refused

__all__ = ["CASES", "COMPOSITES"]


def np_softmax(a, axis):
    if a.ndim == 0 or a.size == 0:  # one value per row, or nothing to normalize
        return np.ones_like(a)
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _axis(draw, shape):
    """One axis of `shape`; a 0-d shape takes 0 or -1, as in PyTorch."""
    return draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))


@case("Softmax")
def _softmax(draw):
    shape = draw(shapes())
    axis = _axis(draw, shape)
    return Case([draw(arrays(shape, -3, 3))], lambda t: F.softmax(t, axis),
                lambda a: np_softmax(a, axis))


@case("LogSoftmax")
def _log_softmax(draw):
    shape = draw(shapes())
    axis = _axis(draw, shape)
    return Case([draw(arrays(shape, -3, 3))], lambda t: F.log_softmax(t, axis),
                lambda a: np.log(np_softmax(a, axis)))


def np_layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


@case("LayerNorm")
def _layer_norm(draw):
    if draw(st.integers(0, 7)) == 0:  # a 0-d tensor has no axis to normalize over
        return refused([draw(arrays(()))], F.layer_norm)
    shape = draw(shapes(min_dims=0, max_dims=3)) + (draw(st.integers(2, 6)),)
    x, D = draw(arrays(shape)), shape[-1]
    if draw(st.booleans()):
        return Case([x], F.layer_norm, lambda a: np_layer_norm(a, None, None))
    w, b = draw(arrays((D,), 0.5, 2.0)), draw(arrays((D,)))
    return Case([x, w, b], F.layer_norm, np_layer_norm)


def np_rms_norm(x, w, eps=1e-5):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * (1 if w is None else w)


@case("RMSNorm")
def _rms_norm(draw):
    if draw(st.integers(0, 7)) == 0:  # a 0-d tensor has no axis to normalize over
        return refused([draw(arrays(()))], F.rms_norm)
    shape = draw(shapes(min_dims=0, max_dims=3)) + (draw(st.integers(1, 6)),)
    x = draw(arrays(shape))
    if draw(st.booleans()):
        return Case([x], F.rms_norm, lambda a: np_rms_norm(a, None))
    return Case([x, draw(arrays(shape[-1:], 0.5, 2.0))], F.rms_norm, np_rms_norm)


def np_cross_entropy(z, t, ignore, eps, reduction):
    logp = np.log(np_softmax(z, -1))
    valid = t != ignore
    safe = np.where(valid, t, 0)
    nll = -np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    loss = ((1 - eps) * nll - eps * logp.mean(-1)) * valid
    if reduction == "none":
        return loss
    return loss.sum() / max(valid.sum(), 1) if reduction == "mean" else loss.sum()


@case("CrossEntropy")
def _cross_entropy(draw):
    if draw(st.integers(0, 7)) == 0:  # 0-d logits have no class axis
        return refused([draw(arrays(())), np.zeros((), np.int64)], F.cross_entropy)
    lead = draw(shapes(min_dims=0, max_dims=2))
    C = draw(st.integers(2, 6))
    z = draw(arrays(lead + (C,), -3, 3))
    t = draw(index_arrays(C, lead))
    if draw(st.booleans()):  # some rows ignored
        t = np.where(draw(index_arrays(2, lead)).astype(bool), -100, t)
    eps = draw(st.sampled_from([0.0, 0.1]))
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    return Case([z, t], lambda a, b: F.cross_entropy(a, b, label_smoothing=eps,
                                                     reduction=reduction),
                lambda a, b: np_cross_entropy(a, b, -100, eps, reduction))


@case("Dropout")
def _dropout(draw):
    shape = draw(shapes(min_dims=1))
    p, seed = draw(st.sampled_from([0.1, 0.5])), draw(st.integers(0, 1000))

    def ref(a):
        keep = np.random.default_rng(seed).random(a.shape, dtype=np.float32) >= p
        return a * keep / (1 - p)
    return Case([draw(arrays(shape))],
                lambda t: F.dropout(t, p, generator=np.random.default_rng(seed)), ref)


@case("Embedding")
def _embedding(draw):
    V, D = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    idx = draw(index_arrays(V, draw(shapes(max_dims=2))))
    return Case([draw(arrays((V, D))), idx], lambda w, i: F.embedding(i, w),
                lambda w, i: w[i])


def np_attention(q, k, v, bias=None, allowed=None):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if bias is not None:
        s = s + bias
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    m = s.max(-1, keepdims=True, initial=-np.inf)  # -inf when there is no key
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    total = e.sum(-1, keepdims=True)
    return e / np.where(total > 0, total, 1) @ v  # a row with no key left gives zeros


@case("ScaledDotProductAttention")
def _attention(draw):
    B, h, Tq, Tk = (draw(st.one_of(st.integers(1, 3), st.integers(1, 3), st.just(0)))
                    for _ in range(4))  # now and then an empty batch, or no query or key
    d = draw(st.integers(1, 3))
    q, k, v = (draw(arrays((B, h, T, d))) for T in (Tq, Tk, Tk))
    kind = draw(st.sampled_from(["plain", "causal", "bias", "mask"]))
    if kind == "plain":
        return Case([q, k, v], F.scaled_dot_product_attention, np_attention)
    if kind == "causal":
        allowed = np.arange(Tk)[None, :] <= np.arange(Tq)[:, None] + (Tk - Tq)
        return Case([q, k, v], lambda *t: F.scaled_dot_product_attention(*t, causal=True),
                    lambda q, k, v: np_attention(q, k, v, allowed=allowed))
    if kind == "bias":  # differentiable additive bias, broadcast over the batch
        bias = draw(arrays((h, Tq, Tk)))
        return Case([q, k, v, bias],
                    lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, mask=b),
                    lambda q, k, v, b: np_attention(q, k, v, bias=b))
    allowed = draw(index_arrays(2, (B, 1, 1, Tk))).astype(bool)  # key padding
    allowed[..., :1] = True  # every row keeps a key (fully masked rows are tested apart)
    return Case([q, k, v, allowed],
                lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, mask=m),
                lambda q, k, v, m: np_attention(q, k, v, allowed=m))
