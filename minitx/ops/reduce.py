"""Reductions over axes. Their backward spreads g back over the reduced axes.

This module exports ``sum``, ``max`` and ``min`` (the names users expect), shadowing Python's
builtins here; it therefore never uses those builtins itself.
"""

import numpy as np

from minitx import backend
from minitx.autograd import Function
from minitx.ops.common import check_float, normalize_axes, register
from minitx.ops.elementwise import astype, div


def _kept_shape(shape, axes):
    """`shape` with the reduced axes kept as size 1 (what keepdims=True gives)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _count(shape, axes):
    n = 1
    for i in axes:
        n *= shape[i]
    return n


class _Reduction(Function):
    """Shared bookkeeping: remember the input shape, the axes and keepdims."""

    def _setup(self, x, axis, keepdims):
        self.shape, self.axes, self.keepdims = x.shape, axis, keepdims
        self.kept = _kept_shape(x.shape, axis)

    def _spread(self, g):
        """Give g back its reduced axes as size 1, ready to broadcast against the input."""
        return g if self.keepdims else g.reshape(self.kept)


@register
class Sum(_Reduction):
    """y = Σ_axes x.   ∂y/∂x_i = 1 for every summed element (g is copied back along the axes)."""

    def forward(self, x, *, axis, keepdims):
        self._setup(x, axis, keepdims)
        return x.sum(axis=axis, keepdims=keepdims)

    def backward(self, g):
        return backend.xp_of(g).broadcast_to(self._spread(g), self.shape)


class _Extremum(_Reduction):
    """max / min: the gradient goes to the elements equal to the result, split evenly on ties."""

    def _finish(self, x, y_kept):
        self.winners = x == y_kept
        self.count = self.winners.sum(axis=self.axes, keepdims=True)
        return y_kept if self.keepdims else y_kept.reshape(
            tuple(n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, g):
        return (self._spread(g) / self.count.astype(g.dtype)) * self.winners


@register
class Max(_Extremum):
    """y = max_axes x.   ∂y/∂x_i = [x_i = y] / (number of maxima)."""

    def forward(self, x, *, axis, keepdims):
        self._setup(x, axis, keepdims)
        return self._finish(x, x.max(axis=axis, keepdims=True))


@register
class Min(_Extremum):
    """y = min_axes x.   ∂y/∂x_i = [x_i = y] / (number of minima)."""

    def forward(self, x, *, axis, keepdims):
        self._setup(x, axis, keepdims)
        return self._finish(x, x.min(axis=axis, keepdims=True))


@register
class LogSumExp(_Reduction):
    """y = log Σ_axes eˣ, computed as m + log Σ e^(x − m) with m = max x (no overflow).

    ∂y/∂x_i = e^(x_i − y) = softmax(x)_i. A row of all −inf gives y = −inf and gradient 0.

    A class, not the composite of minitx.composites.logsumexp: through log Σ the composite's
    gradient on a row of all −inf (a fully masked row) is ∞ · 0 = NaN where this gives 0, and
    it takes 1.5-1.8x the time of forward + backward (56 vs 31 ms on (64, 197, 384) float32).
    """

    def forward(self, x, *, axis, keepdims):
        xp = backend.xp_of(x)
        self._setup(x, axis, keepdims)
        if x.size == 0:  # log of an empty sum is −∞ (there is no maximum to subtract)
            self.softmax = xp.zeros_like(x)
            y = xp.full(self.kept, -np.inf, dtype=x.dtype)
            return y if keepdims else y.reshape(tuple(n for i, n in enumerate(x.shape)
                                                      if i not in axis))
        m = x.max(axis=axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # rows of -inf: shift by 0, e becomes all zeros
        e = xp.exp(x - m)
        s = e.sum(axis=axis, keepdims=True)
        self.softmax = e / xp.where(s == 0, 1, s)
        with np.errstate(divide="ignore"):  # log(0) = -inf for an all -inf row is intended
            y = xp.log(s) + m
        return y if keepdims else y.reshape(tuple(n for i, n in enumerate(x.shape)
                                                  if i not in axis))

    def backward(self, g):
        return self._spread(g) * self.softmax


def _reduce(fn_class, x, axis, keepdims, name, **params):
    return fn_class.apply(x, axis=normalize_axes(axis, x.ndim, name), keepdims=keepdims,
                          **params)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    """Sum over `axis` (None: all axes)."""
    return _reduce(Sum, x, axis, keepdims, "sum")


def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (None: all axes): Σ x / n, so ∂y/∂x_i = 1/n comes from Sum and Div.

    The mean of nothing is 0/0 = NaN, as in NumPy and PyTorch. A float16 x is summed in
    float32, as NumPy does (see :func:`_in_float32`).
    """
    check_float("mean", x)
    axes = normalize_axes(axis, x.ndim, "mean")
    if x.dtype == np.float16:  # see _in_float32
        return _in_float32(mean, x, axes, keepdims)
    return div(sum(x, axes, keepdims), _count(x.shape, axes))


def _in_float32(reduction, x, *args):
    """reduction(x, *args) computed in float32 and rounded back to float16.

    float16 holds numbers only up to 65504: the count n of a mean over more elements becomes
    inf, and so may the sum. NumPy's float16 mean sums in float32 for this reason; so do mean
    and var here. The casts are differentiable, so the gradient (1/n for a mean) comes back
    in float16 too.
    """
    return astype(reduction(astype(x, np.float32), *args), np.float16)


def _check_not_empty(x, axis, name):
    """max and min of no values are undefined: refuse a reduction over an axis of size 0."""
    axes = normalize_axes(axis, x.ndim, name)
    if _count(x.shape, axes) == 0:
        raise ValueError(f"{name}: cannot reduce a tensor of shape {x.shape} over axes {axes}, "
                         f"which hold no elements (the {name} of nothing is undefined)")


def max(x, axis=None, keepdims=False):  # noqa: A001
    """Maximum over `axis`; ties share the gradient equally."""
    _check_not_empty(x, axis, "max")
    return _reduce(Max, x, axis, keepdims, "max")


def min(x, axis=None, keepdims=False):  # noqa: A001
    """Minimum over `axis`; ties share the gradient equally."""
    _check_not_empty(x, axis, "min")
    return _reduce(Min, x, axis, keepdims, "min")


def var(x, axis=None, keepdims=False, correction=1):
    """Variance over `axis`: Σ (x − x̄)² / (n − c), c the correction (1 by default, unbiased,
    as in PyTorch; 0 gives the population variance).

    Autodiff gives ∂y/∂x_i = 2(x_i − x̄) / (n − c): the terms through x̄ cancel, since
    Σ(x − x̄) = 0.
    """
    check_float("var", x)
    axes = normalize_axes(axis, x.ndim, "var")
    n = _count(x.shape, axes)
    if n - correction <= 0:
        raise ValueError(f"var: {n} elements with correction {correction} leave no degrees of "
                         f"freedom (shape {x.shape}, axes {axes})")
    if x.dtype == np.float16:  # see _in_float32
        return _in_float32(var, x, axes, keepdims, correction)
    centered = x - mean(x, axes, keepdims=True)
    return div(sum(centered * centered, axes, keepdims), n - correction)


def logsumexp(x, axis=-1, keepdims=False):
    """log Σ exp(x) over `axis`, stable for large and −inf inputs."""
    check_float("logsumexp", x)
    return _reduce(LogSumExp, x, axis, keepdims, "logsumexp")
