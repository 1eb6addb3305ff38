"""Fused ops: one Function where composing primitives would be unstable or wasteful.

Each has a hand-derived backward (the derivation is in its docstring) and is tested against its
composite definition in :mod:`minitx.composites`, which is built from primitive ops only.
"""

import math

import numpy as np

from minitx import backend, kernels
from minitx.autograd import Function
from minitx.ops.common import check_float, normalize_axes, register, single_axis
from minitx.tensor import Tensor


@register
class Softmax(Function):
    """yᵢ = e^(xᵢ) / Σⱼ e^(xⱼ) along one axis.

    Backward: ∂yᵢ/∂xⱼ = yᵢ(δᵢⱼ − yⱼ), so dL/dxⱼ = Σᵢ gᵢ yᵢ (δᵢⱼ − yⱼ) = yⱼ (gⱼ − Σᵢ gᵢ yᵢ).
    Only y is needed, so y is saved.
    """

    def forward(self, x, *, axis):
        self.axis = axis
        self.y = kernels.softmax(x, axis)
        return self.y

    def backward(self, g):
        a = self.axis  # the kernel works along the last axis: swap `a` there and back (views)
        return kernels.softmax_backward(g.swapaxes(a, -1), self.y.swapaxes(a, -1)).swapaxes(a, -1)


@register
class LogSoftmax(Function):
    """yᵢ = xᵢ − log Σⱼ e^(xⱼ) along one axis.

    Backward: ∂yᵢ/∂xⱼ = δᵢⱼ − softmax(x)ⱼ, so dL/dxⱼ = gⱼ − softmax(x)ⱼ · Σᵢ gᵢ.
    """

    def forward(self, x, *, axis):
        xp = backend.xp_of(x)
        self.axis = axis
        if x.size == 0:  # nothing to normalize (an empty axis, or no rows)
            self.p = x.copy()
            return x.copy()
        m = x.max(axis=axis, keepdims=True)
        shifted = x - xp.where(m == -math.inf, 0, m)  # all −inf: by 0; +inf, NaN: all NaN
        e = xp.exp(shifted)
        s = e.sum(axis=axis, keepdims=True)
        self.p = e / xp.where(s == 0, 1, s)  # softmax(x), reused by backward
        with np.errstate(divide="ignore"):  # an all -inf row has log Σ = -inf
            return shifted - xp.log(s)

    def backward(self, g):
        return g - self.p * g.sum(axis=self.axis, keepdims=True)


@register
class LayerNorm(Function):
    """y = x̂ · w + b with x̂ = (x − μ) / √(σ² + ε), μ and σ² over the last axis (Ba et al. 2016).

    Backward, with N the size of the last axis and ĝ = g · w (the gradient reaching x̂):
      dL/dw = Σ_rows g · x̂,   dL/db = Σ_rows g,
      dL/dx = (1/√(σ² + ε)) · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)),
    because x̂ moves with x directly, through μ (the mean(ĝ) term) and through σ² (the last term).
    A constant row has σ² = 0 and stays finite thanks to ε.
    """

    def forward(self, x, w, b, *, eps):
        y, self.mean, self.rstd = kernels.layer_norm(x, w, b, eps)  # y, μ, 1/√(σ² + ε)
        self.x, self.w, self.has_b = x, w, b is not None  # x̂ = (x − μ) · rstd, rebuilt later
        return y

    def backward(self, g):
        return kernels.layer_norm_backward(g, self.x, self.mean, self.rstd, self.w, self.has_b)


@register
class RMSNorm(Function):
    """y = x̂ · w with x̂ = x / √(mean(x²) + ε) over the last axis: LayerNorm without the mean
    subtracted and without a bias (Zhang & Sennrich 2019), as in Image-GPT.

    Backward, with N the size of the last axis and ĝ = g · w:
      dL/dw = Σ_rows g · x̂,
      dL/dx = (1/√(mean(x²) + ε)) · (ĝ − x̂ · mean(ĝ · x̂)),
    LayerNorm's gradient without its mean(ĝ) term, because no mean moves with x.
    """

    def forward(self, x, w, *, eps):
        y, self.mean, self.rstd = kernels.layer_norm(x, w, None, eps, center=False)  # μ = 0
        self.x, self.w = x, w
        return y

    def backward(self, g):
        gx, gw, _ = kernels.layer_norm_backward(g, self.x, self.mean, self.rstd, self.w, False,
                                                center=False)
        return gx, gw


@register
class CrossEntropy(Function):
    """Cross-entropy of logits against class indices, with label smoothing (Szegedy et al. 2016).

    Per row: p = softmax(z), q = (1 − ε) · onehot(t) + ε / C, loss = −Σ_c q_c log p_c.
    Backward: dloss/dz = p − q (the classic "prediction minus target"), times the row's weight:
    1 for 'sum' and 'none', 1 / (number of counted rows) for 'mean'. Rows whose target is
    `ignore_index` count for nothing and get zero gradient.
    """

    def forward(self, z, *, target, ignore_index, label_smoothing, reduction):
        self.shape, C = z.shape, z.shape[-1]
        self.valid = (target != ignore_index).reshape(-1)  # (N,) over the rows of z
        self.target = backend.xp_of(z).where(self.valid, target.reshape(-1), 0)  # ignored: 0
        self.eps, self.reduction = label_smoothing, reduction
        # each row's −Σ_c q_c log p_c, and lse = log Σ_c e^(z_c), from which p = e^(z − lse)
        self.z = z.reshape(-1, C)  # (N, C): a copy if z was a transposed view
        loss, self.lse = kernels.cross_entropy(self.z, self.target, label_smoothing)
        loss = (loss * self.valid).reshape(self.shape[:-1])
        self.count = max(int(self.valid.sum()), 1)  # an all-ignored batch gives 0, not 0/0
        if reduction == "none":
            return loss
        return loss.sum() / self.count if reduction == "mean" else loss.sum()

    def backward(self, g):
        weight = g / self.count if self.reduction == "mean" else g
        weight = (self.valid * weight.reshape(-1)).astype(self.z.dtype)  # (N,), 0 if ignored
        # (p − q) · weight on the (N, C) rows, given z's shape only at the end
        gz = kernels.cross_entropy_backward(self.z, self.lse, self.target, weight, self.eps)
        return gz.reshape(self.shape)


def softmax(x, axis=-1):
    """softmax along `axis`; an all −inf row gives zeros. A 0-d x is one row of one value."""
    check_float("softmax", x)
    if x.ndim == 0:  # as in PyTorch: axis 0 or -1 of a scalar is a row of length 1
        normalize_axes(axis, 0, "softmax")
        return softmax(x.reshape((1,)), 0).reshape(())
    return Softmax.apply(x, axis=single_axis(axis, x.ndim, "softmax"))


def log_softmax(x, axis=-1):
    """log(softmax(x)) along `axis`, computed stably. A 0-d x is one row of one value."""
    check_float("log_softmax", x)
    if x.ndim == 0:
        normalize_axes(axis, 0, "log_softmax")
        return log_softmax(x.reshape((1,)), 0).reshape(())
    return LogSoftmax.apply(x, axis=single_axis(axis, x.ndim, "log_softmax"))


def check_norm_parameters(op_name, **parameters):
    """A TypeError unless each parameter is None or a Tensor. PyTorch's layer_norm takes a
    normalized_shape second, e.g. ``(D,)``; minitx's takes the weight there."""
    for name, p in parameters.items():
        if p is not None and not isinstance(p, Tensor):
            raise TypeError(f"{op_name}: {name} must be None or a Tensor (D,), got "
                            f"{type(p).__name__} {p!r:.40}; minitx's {op_name}(x, weight"
                            f"{', bias' if op_name == 'layer_norm' else ''}, eps) always "
                            f"normalizes over the last axis (PyTorch's normalized_shape "
                            f"argument has no counterpart here)")


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """Normalize over the last axis, then scale by `weight` and shift by `bias` (both (D,))."""
    check_norm_parameters("layer_norm", weight=weight, bias=bias)
    check_float("layer_norm", x, weight, bias)
    if x.ndim == 0:
        raise ValueError("layer_norm: normalizes over the last axis, and a 0-d tensor has none "
                         "(PyTorch refuses it too); give it shape (1,) or more")
    D = x.shape[-1]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != (D,):
            raise ValueError(f"layer_norm: {name} must have shape ({D},) for input of shape "
                             f"{x.shape}, got {p.shape}")
    return LayerNorm.apply(x, weight, bias, eps=eps)


def rms_norm(x, weight=None, eps=1e-5):
    """Divide by the root mean square over the last axis, then scale by `weight` ((D,)).

    DEVIATION: ε defaults to 1e-5, as layer_norm's does; PyTorch's rms_norm defaults to its
    dtype's machine epsilon (1.2e-7 for float32), which differs only for inputs whose mean
    square is near ε.
    """
    check_norm_parameters("rms_norm", weight=weight)
    check_float("rms_norm", x, weight)
    if x.ndim == 0:
        raise ValueError("rms_norm: normalizes over the last axis, and a 0-d tensor has none; "
                         "give it shape (1,) or more")
    if weight is not None and weight.shape != x.shape[-1:]:
        raise ValueError(f"rms_norm: weight must have shape ({x.shape[-1]},) for input of shape "
                         f"{x.shape}, got {weight.shape}")
    return RMSNorm.apply(x, weight, eps=eps)


def cross_entropy(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Cross-entropy of `logits` (..., C) against integer class indices `target` (...).

    Classes are on the last axis (for 2-d input this is PyTorch's layout; for sequences it saves
    a transpose). `ignore_index` rows (PyTorch's default, -100) are left out of loss and mean.
    With no row counted (all ignored, or an empty batch) the mean is 0 with zero gradient,
    where PyTorch gives 0/0 = NaN. There are no class weights: PyTorch's third argument,
    `weight`, is not this function's third, which is `ignore_index` (an int).
    """
    check_float("cross_entropy", logits)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"cross_entropy: ignore_index must be an int, got "
                        f"{type(ignore_index).__name__} {ignore_index!r:.40}; minitx's third "
                        f"argument is ignore_index (PyTorch's is the class weight, which "
                        f"minitx does not have)")
    if not isinstance(target, Tensor) or target.dtype.kind not in "iu":
        raise TypeError("cross_entropy: target must be an integer Tensor of class indices")
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"cross_entropy: logits need a class axis (..., C) with C ≥ 1, got "
                         f"shape {logits.shape}")
    if target.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape "
                         f"{logits.shape[:-1]}, got {target.shape}")
    if target.device != logits.device:
        raise RuntimeError(f"cross_entropy: target on {target.device}, logits on "
                           f"{logits.device}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], "
                         f"got {label_smoothing}")
    valid = target._data[target._data != ignore_index]
    if valid.size and (int(valid.min()) < 0 or int(valid.max()) >= logits.shape[-1]):
        raise ValueError(f"cross_entropy: targets must lie in [0, {logits.shape[-1]}) or equal "
                         f"ignore_index={ignore_index}; got values from {int(valid.min())} "
                         f"to {int(valid.max())}")
    return CrossEntropy.apply(logits, target=target._data, ignore_index=ignore_index,
                              label_smoothing=float(label_smoothing), reduction=reduction)
