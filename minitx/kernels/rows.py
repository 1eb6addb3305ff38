"""Row-wise kernels over the last axis: softmax, layer norm, cross-entropy."""

import numpy as np

from minitx import backend
from minitx.kernels.products import fold
from minitx.kernels.runtime import blockwise, loops_for


def row_dot(a, b):
    """Σ over the last axis of a · b (shape a.shape[:-1]), without materializing a · b."""
    return backend.xp_of(a).einsum("...i,...i->...", a, b)


def softmax(x, axis=-1):
    """softmax along `axis`: e^(x − m) / Σ e^(x − m), m the row maximum (so e^(·) ≤ 1).

    A row that is all −inf (every position masked) has no maximum to subtract: it is shifted by
    0 and gives all zeros, not NaN. Trick: along the last axis, one compiled pass per row (or
    rows split among threads, and e^(x − m) normalized in its own buffer).
    """
    if x.size == 0:  # nothing to normalize (an empty axis, or no rows)
        return x.copy()
    if axis not in (-1, x.ndim - 1):
        return _softmax_rows(x, axis)
    loops = loops_for(x)
    if loops:
        x = np.ascontiguousarray(x)

        def rows(x):
            y = np.empty_like(x)
            loops.softmax(fold(x), fold(y))
            return y
        return blockwise(rows, x, row=x.shape[-1])
    return blockwise(_softmax_rows, x, row=x.shape[-1])


def _softmax_rows(x, axis=-1):
    xp = backend.xp_of(x)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    e = x - m
    xp.exp(e, out=e)
    s = e.sum(axis=axis, keepdims=True)
    e /= xp.where(s > 0, s, 1)
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


def layer_norm(x, w, b, eps):
    """x̂ = (x − μ) · r with r = 1/√(σ² + ε), μ and σ² over the last axis; y = x̂ · w + b.

    Returns (y, x̂, r), r of shape (..., 1); w and b may be None. Trick: one compiled pass per
    row for μ, one for σ², one for x̂ and y. In NumPy: rows split among threads; σ² =
    mean((x − μ)²) as a row dot product, without an (x − μ)² temporary, and x̂ normalized in
    the buffer of x − μ.
    """
    loops = loops_for(x, w, b)
    if loops and x.size:
        x, w, b = (None if a is None else np.ascontiguousarray(a) for a in (x, w, b))

        def compiled_rows(x):
            xhat = np.empty_like(x)
            y = xhat if w is None and b is None else np.empty_like(x)
            rstd = np.empty(x.shape[:-1] + (1,), x.dtype)
            loops.layer_norm(fold(x), w, b, eps, None if y is xhat else fold(y), fold(xhat),
                             rstd.reshape(-1))
            return y, xhat, rstd
        return blockwise(compiled_rows, x, row=x.shape[-1])

    def rows(x):
        xp = backend.xp_of(x)
        xc = x - x.mean(axis=-1, keepdims=True)  # x − μ
        var = row_dot(xc, xc)[..., None] / x.shape[-1]  # σ²
        rstd = 1 / xp.sqrt(var + eps)
        xc *= rstd  # x̂
        if w is None:
            return (xc if b is None else xc + b), xc, rstd
        y = xc * w
        if b is not None:
            y += b
        return y, xc, rstd

    return blockwise(rows, x, row=x.shape[-1])


def layer_norm_backward(gy, xhat, rstd, w, with_bias):
    """dL/dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)) with ĝ = gy · w (gy if w is None), means
    over the last axis, for the x̂ and r = 1/√(σ² + ε) of :func:`layer_norm`; and dL/dw =
    Σ_rows gy · x̂ (None if w is None), dL/db = Σ_rows gy (None unless `with_bias`).

    Trick: one compiled pass over the rows for the row sums and dL/dw, dL/db (summed in
    float64), one for dL/dx. In NumPy: rows split among threads, ĝ turned into dL/dx in its own
    buffer.
    """
    xp = backend.xp_of(gy)
    loops = loops_for(gy, xhat, rstd, w)
    if loops and gy.size:
        gy, xhat, rstd, w = (None if a is None else np.ascontiguousarray(a)
                             for a in (gy, xhat, rstd, w))
        gx = np.empty_like(gy)
        gw = None if w is None else np.zeros(gy.shape[-1])
        gb = np.zeros(gy.shape[-1]) if with_bias else None
        loops.layer_norm_backward(fold(gy), fold(xhat), rstd.reshape(-1), w, fold(gx), gw, gb)
        return (gx, *(None if s is None else s.astype(gy.dtype) for s in (gw, gb)))

    def rows(gy, xhat, rstd):
        gx = gy * w if w is not None else gy.copy()  # ĝ
        dot = row_dot(gx, xhat)[..., None] / gx.shape[-1]  # mean(ĝ · x̂)
        gx -= gx.mean(axis=-1, keepdims=True)
        gx -= xhat * dot
        gx *= rstd
        return gx

    gw = None if w is None else xp.einsum("ni,ni->i", fold(gy), fold(xhat))
    gb = fold(gy).sum(axis=0) if with_bias else None
    return blockwise(rows, gy, xhat, rstd, row=gy.shape[-1]), gw, gb


# --------------------------------------------------------------------------------------------
# Cross-entropy over rows of logits
# --------------------------------------------------------------------------------------------

def cross_entropy(z, target, smoothing):
    """p = softmax(z) and the loss −Σ_c q_c log p_c per row of the logits z (N, C), with
    q = (1 − ε) onehot(t) + ε/C: loss = (1 − ε)(log Σ − (z_t − m)) + ε(log Σ − mean(z − m)),
    Σ = Σ_c e^(z_c − m), m the row maximum. Returns (p, loss), loss of shape (N,).

    Trick: one compiled pass per row for m, one for e^(z − m), Σ and mean(z − m), one to
    normalize p. In NumPy: e^(z − m) and then p in the buffer of z − m.
    """
    loops = loops_for(z)
    if loops and z.size:
        z, target = np.ascontiguousarray(z), np.ascontiguousarray(target)
        p, loss = np.empty_like(z), np.empty(z.shape[0], z.dtype)
        loops.cross_entropy(z, target, smoothing, p, loss)
        return p, loss
    xp = backend.xp_of(z)
    shifted = z - z.max(axis=-1, keepdims=True)  # z − m: log p = shifted − log Σ e^shifted
    picked = shifted[xp.arange(z.shape[0]), target]  # shifted at each target
    mean_shifted = shifted.mean(axis=-1) if smoothing else None
    xp.exp(shifted, out=shifted)  # the same buffer now holds e^(z − m) ...
    s = shifted.sum(axis=-1, keepdims=True)
    log_s = xp.log(s)[:, 0]
    shifted /= s  # ... and now p = softmax(z)
    loss = log_s - picked  # −log p_t
    if smoothing:  # −mean_c log p_c = log Σ − mean_c(z − m)
        loss = (1 - smoothing) * loss + smoothing * (log_s - mean_shifted)
    return shifted, loss


def cross_entropy_backward(p, target, weight, smoothing):
    """dloss/dz = (p − q) · weight per row of p (N, C), q as in :func:`cross_entropy`, weight
    of shape (N,). Trick: one compiled pass; in NumPy, three passes over a fresh array."""
    loops = loops_for(p, weight)
    if loops and p.size:
        p, target, weight = (np.ascontiguousarray(a) for a in (p, target, weight))
        gz = np.empty_like(p)
        loops.cross_entropy_backward(p, target, weight, smoothing, gz)
        return gz
    gz = p * weight[:, None]  # p · weight ...
    if smoothing:
        gz -= (smoothing / p.shape[-1]) * weight[:, None]  # ... − ε/C · weight ...
    gz[backend.xp_of(p).arange(p.shape[0]), target] -= (1 - smoothing) * weight  # − (1 − ε) w
    return gz
