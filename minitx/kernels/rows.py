"""Row-wise kernels over the last axis: softmax, layer norm, cross-entropy."""

import math

import numpy as np

from minitx import backend
from minitx.kernels.products import fold, sum_leading
from minitx.kernels.runtime import blockwise, loops_for


def row_dot(a, b):
    """Σ over the last axis of a · b (shape a.shape[:-1]), without materializing a · b."""
    return backend.xp_of(a).einsum("...i,...i->...", a, b)


def softmax(x, axis=-1):
    """softmax along `axis`: e^(x − m) / Σ e^(x − m), m the row maximum (so e^(·) ≤ 1).

    A row that is all −inf (every position masked) has no maximum to subtract: it is shifted by
    0 and gives all zeros, not NaN. A row with +inf or NaN is NaN throughout (as in PyTorch):
    e^(∞ − ∞) is NaN, and so is the sum that divides the row. Trick: along the last axis, one
    compiled pass per row (or rows split among threads, and e^(x − m) normalized in its own
    buffer).
    """
    if x.size == 0:  # nothing to normalize (an empty axis, or no rows)
        return x.copy()
    if axis not in (-1, x.ndim - 1):
        return _softmax_rows(x, axis)
    loops = loops_for(x)
    if loops:  # pieces of rows write into their rows of y
        x = np.ascontiguousarray(x)
        y = np.empty_like(x)
        blockwise(lambda x, y: loops.softmax(fold(x), fold(y)), x, y, row=x.shape[-1])
        return y
    return blockwise(_softmax_rows, x, row=x.shape[-1])


def _softmax_rows(x, axis=-1):
    xp = backend.xp_of(x)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(m == -math.inf, 0, m)  # an all −inf row: shift by 0 (+inf or NaN: all NaN)
    e = x - m
    xp.exp(e, out=e)
    s = e.sum(axis=axis, keepdims=True)
    e /= xp.where(s == 0, 1, s)  # an all −inf row: 0/1; NaN stays NaN
    return e


def softmax_backward(gy, y, overwrite=False):
    """dL/dx = y · (gy − Σⱼ gyⱼ yⱼ) for y = softmax(x) along the last axis.

    Trick: one compiled pass per row (or rows split among threads), written into a new array
    (``overwrite=True``: into gy).
    """
    loops = loops_for(gy, y)
    if loops and (gy.flags.c_contiguous or not overwrite):
        gy, y = np.ascontiguousarray(gy), np.ascontiguousarray(y)
        gx = gy if overwrite else np.empty_like(gy)
        blockwise(lambda gy, y, gx: loops.softmax_backward(fold(gy), fold(y), fold(gx)),
                  gy, y, gx, row=gy.shape[-1])
        return gx
    gx = gy if overwrite else gy.copy()
    blockwise(_softmax_backward_in_place, gx, y, row=gy.shape[-1])
    return gx


def _softmax_backward_in_place(gx, y):
    gx -= row_dot(gx, y)[..., None]  # gy − Σⱼ gyⱼ yⱼ, one number per row
    gx *= y


def layer_norm(x, w, b, eps, center=True):
    """y = x̂ · w + b with x̂ = (x − μ) · r, r = 1/√(σ² + ε), μ and σ² over the last axis;
    not `center` (RMSNorm): μ = 0, so r = 1/√(mean(x²) + ε).

    Returns (y, μ, r), μ and r of shape (..., 1); w and b may be None. :func:`layer_norm_backward`
    rebuilds x̂ from x, μ and r, so no array the size of x is kept besides y. Trick: one compiled
    pass per row for μ, one for σ², one for y. In NumPy: rows split among threads; σ² =
    mean((x − μ)²) as a row dot product, without an (x − μ)² temporary, and x̂ normalized in
    the buffer of x − μ.
    """
    loops = loops_for(x, w, b)
    if loops and x.size:
        x, w, b = (None if a is None else np.ascontiguousarray(a) for a in (x, w, b))

        y = np.empty_like(x)  # pieces of rows write into their rows of y, μ and r
        mean, rstd = (np.empty(x.shape[:-1] + (1,), x.dtype) for _ in range(2))
        blockwise(lambda x, y, mean, rstd: loops.layer_norm(
            fold(x), w, b, eps, center, fold(y), mean.reshape(-1), rstd.reshape(-1)),
            x, y, mean, rstd, row=x.shape[-1])
        return y, mean, rstd

    def rows(x):
        xp = backend.xp_of(x)
        mean = x.mean(axis=-1, keepdims=True) if center else xp.zeros_like(x[..., :1])
        y = x - mean  # x − μ, then x̂, then y, in this buffer
        rstd = 1 / xp.sqrt(row_dot(y, y)[..., None] / x.shape[-1] + eps)  # 1/√(σ² + ε)
        y *= rstd
        if w is not None:
            y *= w
        if b is not None:
            y += b
        return y, mean, rstd

    return blockwise(rows, x, row=x.shape[-1])


def layer_norm_backward(gy, x, mean, rstd, w, with_bias, center=True):
    """dL/dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)) with ĝ = gy · w (gy if w is None) and
    x̂ = (x − μ) · r, means over the last axis, for the μ and r of :func:`layer_norm` (not
    `center`: without the mean(ĝ) term, as μ = 0 did not move with x); and dL/dw =
    Σ_rows gy · x̂ (None if w is None), dL/db = Σ_rows gy (None unless `with_bias`).

    Trick: one compiled pass over the rows for the row sums and dL/dw, dL/db (summed in
    float64), one for dL/dx. In NumPy: x̂ rebuilt in the buffer that becomes dL/dx.
    """
    xp = backend.xp_of(gy)
    loops = loops_for(gy, x, mean, rstd, w)
    if loops and gy.size:
        gy, x, mean, rstd, w = (None if a is None else np.ascontiguousarray(a)
                                for a in (gy, x, mean, rstd, w))
        gx = np.empty_like(gy)
        gw = None if w is None else np.zeros(gy.shape[-1])
        gb = np.zeros(gy.shape[-1]) if with_bias else None
        loops.layer_norm_backward(fold(gy), fold(x), mean.reshape(-1), rstd.reshape(-1), w,
                                  center, fold(gx), gw, gb)
        return (gx, *(None if s is None else s.astype(gy.dtype) for s in (gw, gb)))

    xhat = x - mean  # x̂, in the buffer that becomes dL/dx
    xhat *= rstd
    ghat = gy * w if w is not None else gy  # ĝ
    gw = None if w is None else xp.einsum("ni,ni->i", fold(gy), fold(xhat))
    gb = sum_leading(gy, gy.ndim - 1) if with_bias else None
    n = gy.shape[-1]
    mean_gx = row_dot(ghat, xhat)[..., None] / n
    gx = xhat
    gx *= -mean_gx  # − x̂ · mean(ĝ · x̂)
    gx += ghat
    if center:
        gx -= ghat.mean(axis=-1, keepdims=True)
    gx *= rstd
    return gx, gw, gb


# --------------------------------------------------------------------------------------------
# Cross-entropy over rows of logits
# --------------------------------------------------------------------------------------------

def cross_entropy(z, target, smoothing):
    """The loss −Σ_c q_c log p_c per row of the logits z (N, C), p = softmax(z), q = (1 − ε)
    onehot(t) + ε/C: loss = (1 − ε)(lse − z_t) + ε(lse − mean(z)), lse = log Σ_c e^(z_c)
    computed as m + log Σ_c e^(z_c − m), m the row maximum. Returns (loss, lse), both (N,);
    :func:`cross_entropy_backward` rebuilds p = e^(z − lse) from them.

    Trick: one compiled pass per row for m, one for Σ e^(z − m) and Σ z (the mixing with ε
    in NumPy, where ∞ + ∞ stays ∞). In NumPy: e^(z − m) in the buffer of z − m.
    """
    loops = loops_for(z)
    if loops and z.size:
        z, target = np.ascontiguousarray(z), np.ascontiguousarray(target)
        nll, lse = np.empty(z.shape[0], z.dtype), np.empty(z.shape[0], z.dtype)
        mean_nll = np.empty_like(nll) if smoothing else None
        loops.cross_entropy(z, target, nll, mean_nll, lse)
        return (1 - smoothing) * nll + smoothing * mean_nll if smoothing else nll, lse
    xp = backend.xp_of(z)
    m = z.max(axis=-1)
    shifted = z - m[:, None]  # z − m
    picked = shifted[xp.arange(z.shape[0]), target]  # z_t − m
    mean_shifted = shifted.mean(axis=-1) if smoothing else None
    log_s = xp.log(xp.exp(shifted, out=shifted).sum(axis=-1))  # log Σ e^(z − m)
    loss = log_s - picked  # −log p_t = lse − z_t
    if smoothing:  # −mean_c log p_c = lse − mean_c z
        loss = (1 - smoothing) * loss + smoothing * (log_s - mean_shifted)
    return loss, m + log_s


def cross_entropy_backward(z, lse, target, weight, smoothing):
    """dloss/dz = (p − q) · weight per row of z (N, C), p = e^(z − lse), q as in
    :func:`cross_entropy`, weight of shape (N,). Trick: one compiled pass; in NumPy, p · weight
    in one fresh array."""
    loops = loops_for(z, weight)
    if loops and z.size:
        z, lse, target, weight = (np.ascontiguousarray(a) for a in (z, lse, target, weight))
        gz = np.empty_like(z)
        loops.cross_entropy_backward(z, lse, target, weight, smoothing, gz)
        return gz
    xp = backend.xp_of(z)
    gz = z - lse[:, None].astype(z.dtype)
    xp.exp(gz, out=gz)  # p
    gz *= weight[:, None]  # p · weight ...
    if smoothing:
        gz -= (smoothing / z.shape[-1]) * weight[:, None]  # ... − ε/C · weight ...
    gz[xp.arange(z.shape[0]), target] -= (1 - smoothing) * weight  # ... − (1 − ε) · weight
    return gz
