"""The fused ops written with primitive ops only: the definitions they are tested against.

Each function here computes the same thing as a fused op of :mod:`minitx.ops`, but as a chain of
primitive ops (exp, sum, matmul, ...), so autodiff derives its backward automatically. They are
slower and use more memory, and they are the reference: ``tests/ops/test_fused.py`` checks every
fused op against its composite, forward and backward.
"""

import math

import numpy as np

from minitx import backend, ops
from minitx.tensor import Tensor


def _shift(x, axis):
    """m = max(x) along `axis`, a constant for autodiff; 0 for an empty x (no maximum)."""
    return ops.max(x, axis, keepdims=True).detach() if x.size else 0.0


def softmax(x, axis=-1):
    """softmax(x)ᵢ = exp(xᵢ − m) / Σⱼ exp(xⱼ − m), with m = max(x) for stability."""
    e = ops.exp(x - _shift(x, axis))
    return e / ops.sum(e, axis, keepdims=True)


def logsumexp(x, axis=-1, keepdims=False):
    """log Σ exp(x) = m + log Σ exp(x − m)  (−∞ over an empty axis: the log of 0)."""
    m = _shift(x, axis)
    y = ops.log(ops.sum(ops.exp(x - m), axis, keepdims=True)) + m
    return y if keepdims else ops.squeeze(y, axis)


def log_softmax(x, axis=-1):
    """log softmax(x) = x − log Σ exp(x)."""
    return x - logsumexp(x, axis, keepdims=True)


def linear(x, weight, bias=None):
    """x Wᵀ + b: a matmul with the transposed weight, then a broadcast add."""
    y = ops.matmul(x, ops.transpose(weight, (1, 0)))
    return y if bias is None else y + bias


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """(x − μ) / √(σ² + ε) · w + b over the last axis, σ² the population variance."""
    mu = ops.mean(x, -1, keepdims=True)
    xc = x - mu
    y = xc / ops.sqrt(ops.mean(xc * xc, -1, keepdims=True) + eps)
    y = y if weight is None else y * weight
    return y if bias is None else y + bias


def rms_norm(x, weight=None, eps=1e-5):
    """x / √(mean(x²) + ε) · w over the last axis."""
    y = x / ops.sqrt(ops.mean(x * x, -1, keepdims=True) + eps)
    return y if weight is None else y * weight


def cross_entropy(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """−Σ_c q_c log softmax(z)_c, q = (1 − ε) onehot(t) + ε/C, ignored rows left out."""
    C = logits.shape[-1]
    logp = ops.reshape(log_softmax(logits), (-1, C))  # (N, C)
    t = target.numpy().reshape(-1)
    valid = t != ignore_index
    rows, cols = np.arange(len(t)), np.where(valid, t, 0)
    picked = ops.getitem(logp, (rows, cols))  # log p of each target
    loss = -(1 - label_smoothing) * picked - label_smoothing * ops.mean(logp, -1)
    keep = ops.astype(ops.reshape(target != ignore_index, (-1,)), logits.dtype)
    loss = loss * keep
    if reduction == "none":
        return ops.reshape(loss, target.shape)
    total = ops.sum(loss)
    return total / max(int(valid.sum()), 1) if reduction == "mean" else total


def scaled_dot_product_attention(q, k, v, mask=None, causal=False, scale=None):
    """softmax(q kᵀ · scale + bias, masked) v, from matmul, masked_fill and softmax."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = ops.matmul(q, ops.swapaxes(k, -1, -2)) * scale  # (..., Tq, Tk)
    if mask is not None and mask.dtype != bool:
        s = s + mask
    elif mask is not None:
        s = ops.masked_fill(s, ~mask, -math.inf)
    if causal:
        allowed = ops.causal_mask(q.shape[-2], k.shape[-2], backend.xp_of(q._data))
        s = ops.masked_fill(s, ~Tensor(allowed), -math.inf)
    return ops.matmul(softmax(s), v)


def batch_norm(x, weight=None, bias=None, eps=1e-5):
    """(x − μ) / √(σ² + ε) · γ + β per channel of x (B, C, ...), μ and σ² over all other axes."""
    axes = (0,) + tuple(range(2, x.ndim))
    keep = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    xc = x - ops.mean(x, axes, keepdims=True)
    y = xc / ops.sqrt(ops.mean(xc * xc, axes, keepdims=True) + eps)
    y = y if weight is None else y * ops.reshape(weight, keep)
    return y if bias is None else y + ops.reshape(bias, keep)


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """Σ_{c, i, j} W[o, c, i, j] · x[b, c, s·p + i, s·q + j] + bias[o], one kernel offset at a
    time: kh·kw strided slices of the padded input, each contracted with W[:, :, i, j]."""
    s, p = stride, padding
    O, C, kh, kw = weight.shape
    xpad = ops.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    OH, OW = (xpad.shape[2] - kh) // s + 1, (xpad.shape[3] - kw) // s + 1
    y = None
    for i in range(kh):
        for j in range(kw):
            window = xpad[:, :, i:i + s * (OH - 1) + 1:s, j:j + s * (OW - 1) + 1:s]  # (B,C,OH,OW)
            term = ops.matmul(ops.transpose(window, (0, 2, 3, 1)),  # (B, OH, OW, C) @ (C, O)
                              ops.transpose(weight[:, :, i, j], (1, 0)))
            y = term if y is None else y + term  # (B, OH, OW, O)
    y = ops.transpose(y, (0, 3, 1, 2))  # (B, O, OH, OW)
    return y if bias is None else y + ops.reshape(bias, (1, O, 1, 1))
