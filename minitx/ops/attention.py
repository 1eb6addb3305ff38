"""Scaled dot-product attention as one fused op (Vaswani et al. 2017, Eq. 1).

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + B) V

with an optional additive bias B (differentiable: Swin's relative position bias is one), an
optional boolean mask and a causal flag. The composite version, built from matmul, masked_fill
and softmax, is :func:`minitx.composites.scaled_dot_product_attention`; the tests check this op
against it. Fusing saves the intermediate score tensors of the composite (each as large as the
attention matrix).
"""

import math

import numpy as np

from minitx import backend, kernels
from minitx import random as mt_random
from minitx.autograd import Function
from minitx.ops.common import broadcast_shapes, check_float, register, unbroadcast
from minitx.ops.linalg import count_macs
from minitx.tensor import Tensor


@register
class ScaledDotProductAttention(Function):
    """O = P' V with P = softmax(S), S = Q Kᵀ · s + B (masked to −inf), P' = P · dropout mask.

    Shapes: Q (..., Tq, d), K (..., Tk, d), V (..., Tk, dv), B broadcastable to (..., Tq, Tk).
    Backward (g = dL/dO), every step the adjoint of one line of forward:
      dL/dV  = P'ᵀ g                         (..., Tk, Tq) @ (..., Tq, dv)
      dL/dP' = g Vᵀ,   dL/dP = dL/dP' · mask  (dropout)
      dL/dS  = P · (dL/dP − Σⱼ dL/dPⱼ · Pⱼ)   (softmax backward, row by row)
      dL/dB  = dL/dS summed over B's broadcast axes
      dL/dQ  = dL/dS K · s,   dL/dK = (dL/dS)ᵀ Q · s
    Masked positions have P = 0, so they get zero gradient; a row with every key masked gives
    P = 0, an output of zeros and zero gradients (no NaN).
    """

    def forward(self, q, k, v, bias, *, allowed, scale, keep, keep_scale, weights=None):
        # weights: P, when the caller has computed it already (to hand it out as well)
        p = attention_weights(q, k, bias, allowed, scale) if weights is None else weights
        self.q, self.k, self.v, self.p, self.scale = q, k, v, p, scale
        self.keep, self.keep_scale = keep, keep_scale  # dropout: mask = keep · keep_scale
        self.bias_shape = None if bias is None else bias.shape
        p_dropped = p if keep is None else kernels.masked_scale(p, keep, keep_scale)
        # (..., Tq, Tk) @ (..., Tk, dv) -> (..., Tq, dv), in q's layout (as the heads are laid out)
        return kernels.matmul_like(p_dropped, v, like=q)

    def backward(self, g):
        q, k, v, p = self.q, self.k, self.v, self.p
        p_dropped = p if self.keep is None else kernels.masked_scale(p, self.keep,
                                                                      self.keep_scale)
        # each gradient in its input's layout: (..., Tk, Tq) @ (..., Tq, dv) -> (..., Tk, dv)
        gv = kernels.matmul_like(p_dropped.swapaxes(-1, -2), g, like=v)
        gs = g @ v.swapaxes(-1, -2)  # dL/dP': (..., Tq, dv) @ (..., dv, Tk) -> (..., Tq, Tk)
        if self.keep is not None:
            gs = kernels.masked_scale(gs, self.keep, self.keep_scale)  # dL/dP
        gs = kernels.softmax_backward(gs, p, overwrite=True)  # dL/dS, in the buffer of dL/dP'
        gb = unbroadcast(gs, self.bias_shape) if self.needs_input_grad[3] else None  # bias
        gq = kernels.matmul_like(gs, k, like=q)  # (..., Tq, Tk) @ (..., Tk, d) -> (..., Tq, d)
        gq *= self.scale
        gk = kernels.matmul_like(gs.swapaxes(-1, -2), q, like=k)  # (..., Tk, Tq) @ (..., Tq, d)
        gk *= self.scale
        return (unbroadcast(gq, q.shape), unbroadcast(gk, k.shape),
                unbroadcast(gv, v.shape), gb)


def attention_weights(q, k, bias, allowed, scale):
    """P = softmax(Q Kᵀ · s + B) on raw arrays, −inf where `allowed` is False: (..., Tq, Tk).

    A row whose keys are all masked is all zeros (see :func:`minitx.kernels.softmax`).
    """
    xp = backend.xp_of(q)
    s = q @ k.swapaxes(-1, -2)  # (..., Tq, d) @ (..., d, Tk) -> (..., Tq, Tk)
    s *= scale
    if bias is not None and np.broadcast_shapes(s.shape, bias.shape) == s.shape:
        s += bias  # B broadcasts over the batch axes of s
    elif bias is not None:
        s = s + bias  # B has batch axes that q and k do not: s grows to them
    if allowed is not None and np.broadcast_shapes(s.shape, allowed.shape) == s.shape:
        s = kernels.fill_where_not(s, allowed, -math.inf)  # in s's own buffer
    elif allowed is not None:
        s = xp.where(allowed, s, -math.inf)  # the mask has batch axes that s does not: s grows
    return kernels.softmax(s, axis=-1)


def causal_mask(Tq, Tk, xp):
    """allowed[i, j] = key j may be seen by query i: j ≤ i + (Tk − Tq).

    With Tq = Tk this is the lower triangle; with fewer queries than keys (decoding with a
    key/value cache, the queries being the newest positions) each query sees every earlier key.
    That is, the mask is aligned at the bottom right; PyTorch's ``is_causal`` aligns it at the
    top left (j ≤ i), so for Tq ≠ Tk the two differ.
    """
    return xp.arange(Tk)[None, :] <= xp.arange(Tq)[:, None] + (Tk - Tq)


def check_mask(mask, q):
    """A clear error unless `mask` is a Tensor beside q that is bool or floating.

    The two kinds mean different things, so no other dtype is guessed at: an integer 0/1 mask
    cast to float would be added to the scores (0 or 1) and mask nothing.
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"scaled_dot_product_attention: mask must be None or a Tensor, got "
                        f"{type(mask).__name__}; wrap arrays with minitx.tensor(..., device=...)")
    if mask.dtype != bool and mask.dtype.kind != "f":
        raise TypeError(f"scaled_dot_product_attention: mask must be bool (True = may attend) "
                        f"or floating (an additive bias on the scores, −inf masks), got "
                        f"{mask.dtype}; for a 0/1 mask with 1 = may attend, pass "
                        f"mask.astype(bool)")
    if mask.device != q.device:
        raise RuntimeError(f"scaled_dot_product_attention: mask on {mask.device}, q on "
                           f"{q.device}")


def scaled_dot_product_attention(q, k, v, mask=None, causal=False, dropout_p=0.0,
                                 training=True, scale=None, return_weights=False,
                                 generator=None):
    """softmax(q kᵀ / √d + bias) v, fused.

    Args:
        q: (..., Tq, d) queries; k: (..., Tk, d) keys; v: (..., Tk, dv) values.
        mask: None, a boolean Tensor (True = may attend, as in PyTorch) or a float Tensor added
            to the scores (an additive bias, differentiable; −inf entries mask).
        causal: True or False: also forbid query i to see keys after it (see
            :func:`causal_mask`). PyTorch's fifth argument is dropout_p and its sixth is_causal;
            minitx's fifth is this flag, so a number here is refused rather than read as True.
        dropout_p: dropout on the attention weights while `training` (pass it by name).
        scale: the factor on the scores; 1/√d by default (Eq. 1).
        return_weights: also return the attention weights P (before dropout), a
            non-differentiable Tensor (..., Tq, Tk), e.g. for plotting.
    Returns:
        (..., Tq, dv), and the weights when `return_weights`.
    """
    check_float("scaled_dot_product_attention", q, k, v)
    if not isinstance(causal, (bool, np.bool_)):  # e.g. PyTorch's dropout_p, given fifth
        raise TypeError(f"scaled_dot_product_attention: causal must be True or False, got "
                        f"{causal!r} ({type(causal).__name__}); minitx's fifth argument is "
                        f"causal (PyTorch's is dropout_p): pass dropout as dropout_p=...")
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"scaled_dot_product_attention: q, k, v need at least 2 axes, got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: q {q.shape}, k {k.shape} and v "
                         f"{v.shape} must be (..., Tq, d), (..., Tk, d), (..., Tk, dv)")
    Tq, Tk = q.shape[-2], k.shape[-2]
    scores = broadcast_shapes("scaled_dot_product_attention", q.shape[:-2], k.shape[:-2],
                              v.shape[:-2]) + (Tq, Tk)
    xp = backend.xp_of(q._data)
    allowed, bias = None, None
    if mask is not None:
        check_mask(mask, q)
        broadcast_shapes("scaled_dot_product_attention (mask)", mask.shape, scores)
        if mask.dtype == bool:
            allowed = mask._data
        else:
            bias = mask
    if causal:
        tri = causal_mask(Tq, Tk, xp)
        allowed = tri if allowed is None else allowed & tri
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), "
                         f"got {dropout_p}")
    keep = None
    if training and dropout_p > 0.0:
        rng = mt_random.generator_or_default(generator, "scaled_dot_product_attention")
        keep = backend.to_device(kernels.dropout_keep(rng, scores, dropout_p), q.device)
    if count_macs.active:  # the two products inside: Q Kᵀ and P V
        batch = 1
        for size in scores[:-2]:
            batch *= size
        count_macs.record(batch * Tq * Tk * (q.shape[-1] + v.shape[-1]))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    weights = None  # computed here when asked for, and handed to the op (which then reuses it)
    if return_weights:
        weights = attention_weights(q._data, k._data, None if bias is None else bias._data,
                                    allowed, scale)
    out = ScaledDotProductAttention.apply(q, k, v, bias, allowed=allowed, scale=scale,
                                          keep=keep, keep_scale=1.0 / (1.0 - dropout_p),
                                          weights=weights)
    return (out, Tensor(weights)) if return_weights else out
