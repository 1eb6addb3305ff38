"""Convolution, pooling and batch normalization over images (B, C, H, W).

A 2-d convolution is a matrix product in disguise. Write K = C·kh·kw and L = OH·OW. For each
kernel offset (i, j) the input pixels that offset touches form a strided slice of the (padded)
input; stacking the kh·kw slices gives the *columns* ("im2col", Chellapilla et al. 2006):

    cols[b, (c, i, j), (p, q)] = x[b, c, s·p + i, s·q + j]              (B, K, L)
    y[b, o, (p, q)]           = Σ_k W[o, k] · cols[b, k, (p, q)] + bias[o]   one GEMM per image

Building the columns costs kh·kw strided copies (a loop over the kernel, not over pixels), and
the whole convolution is then one batched matmul: the speed of the GEMM is the speed of the
convolution. Shapes: B batch, C in-channels, O out-channels, kh × kw kernel, s stride,
OH = (H + 2·ph − kh) // s + 1 and likewise OW.
"""

import numpy as np

from minitx import backend
from minitx.autograd import Function
from minitx.ops.common import register
from minitx.tensor import Tensor


def int_pair(value, name, op):
    """(a, b) from an int n (as (n, n)) or a pair of ints; a ValueError naming `op` and `name`
    for anything else (a float, None, a 1- or 3-tuple, a bool)."""
    try:
        pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    except TypeError:  # not a sequence: a float, None, ...
        pair = (value,)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 for v in pair):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _slices(i, j, stride, OH, OW):
    """The (rows, columns) an offset (i, j) of the kernel touches: i, i + s, ..., i + s·(OH−1)."""
    sh, sw = stride
    return (slice(None), slice(None), slice(i, i + sh * (OH - 1) + 1, sh),
            slice(j, j + sw * (OW - 1) + 1, sw))


def im2col(x, kernel, stride, out_hw):
    """cols[b, c, i, j, p, q] = x[b, c, s·p + i, s·q + j]: (B, C, H, W) -> (B, C, kh, kw, OH, OW).

    One strided copy per kernel offset (i, j), so kh·kw copies in all.
    """
    xp = backend.xp_of(x)
    (kh, kw), (OH, OW) = kernel, out_hw
    cols = xp.empty(x.shape[:2] + (kh, kw, OH, OW), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[_slices(i, j, stride, OH, OW)]
    return cols


def col2im(cols, x_shape, stride):
    """The adjoint of :func:`im2col`: add every column entry back onto the pixel it came from.

    gx[b, c, s·p + i, s·q + j] += gcols[b, c, i, j, p, q]; overlapping windows (s < k) add up.
    """
    xp = backend.xp_of(cols)
    kh, kw, OH, OW = cols.shape[2:]
    gx = xp.zeros(x_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            gx[_slices(i, j, stride, OH, OW)] += cols[:, :, i, j]
    return gx


def _pad(x, padding, value=0.0):
    ph, pw = padding
    if ph == pw == 0:
        return x
    widths = ((0, 0), (0, 0), (ph, ph), (pw, pw))
    return backend.xp_of(x).pad(x, widths, constant_values=value)


def _unpad(gx, padding):
    ph, pw = padding
    H, W = gx.shape[2] - 2 * ph, gx.shape[3] - 2 * pw
    return gx[:, :, ph:ph + H, pw:pw + W]


@register
class Conv2d(Function):
    """y = W ⋆ x + b, as the GEMM y[b] = W₂ · cols[b] + b with W₂ = W reshaped to (O, K).

    Forward:  cols = im2col(pad(x)) (B, K, L);   y[b] = W₂ cols[b] + b   (B, O, L) -> (B, O, OH, OW)
    Backward, from the matrix-product rule (∂(AB) = ∂A·B + A·∂B) for each image b:
        ∂L/∂W₂    = Σ_b gy[b] · cols[b]ᵀ            (O, L) @ (L, K), summed over the batch
        ∂L/∂bias  = Σ_{b, p, q} gy[b, :, p, q]
        ∂L/∂cols[b] = W₂ᵀ · gy[b]                   (K, O) @ (O, L)
        ∂L/∂x     = unpad(col2im(∂L/∂cols))         the adjoint of the copies: scatter-add
    """

    def forward(self, x, W, b, *, stride, padding):
        xp = backend.xp_of(x)
        B, O = x.shape[0], W.shape[0]
        kernel = W.shape[2:]
        xpad = _pad(x, padding)
        OH = (xpad.shape[2] - kernel[0]) // stride[0] + 1
        OW = (xpad.shape[3] - kernel[1]) // stride[1] + 1
        K = W.shape[1] * kernel[0] * kernel[1]  # sizes, not -1: a batch may be empty
        cols = im2col(xpad, kernel, stride, (OH, OW)).reshape(B, K, OH * OW)  # (B, K, L)
        W2 = W.reshape(O, K)  # (O, K)
        y = xp.matmul(W2, cols)  # (O, K) @ (B, K, L) -> (B, O, L)
        if b is not None:
            y += b.reshape(1, O, 1)
        self.cols, self.W, self.has_bias = cols, W, b is not None
        self.x_shape, self.pad_shape = x.shape, xpad.shape
        self.stride, self.padding, self.out_hw = stride, padding, (OH, OW)
        return y.reshape(B, O, OH, OW)

    def backward(self, gy):
        xp = backend.xp_of(gy)
        B, O = gy.shape[:2]
        C, kh, kw = self.W.shape[1:]
        gy2 = gy.reshape(B, O, gy.shape[2] * gy.shape[3])  # (B, O, L)
        gW = xp.tensordot(gy2, self.cols, axes=([0, 2], [0, 2]))  # Σ_b gy[b] cols[b]ᵀ (O, K)
        gcols = xp.matmul(self.W.reshape(O, C * kh * kw).T, gy2)  # (K, O) @ (B, O, L) -> (B, K, L)
        gcols = gcols.reshape((B, C, kh, kw) + self.out_hw)
        gx = _unpad(col2im(gcols, self.pad_shape, self.stride), self.padding)
        gb = gy.sum(axis=(0, 2, 3)) if self.has_bias else None
        return gx, gW.reshape(self.W.shape), gb


@register
class AvgPool2d(Function):
    """y[b, c, p, q] = 1/(kh·kw) · Σ_{i, j} x[b, c, s·p + i, s·q + j] (zero padding counted).

    Backward: each output spreads gy / (kh·kw) evenly over the kh·kw pixels of its window:
    ∂L/∂x[b, c, s·p + i, s·q + j] += gy[b, c, p, q] / (kh·kw).
    """

    def forward(self, x, *, kernel, stride, padding):
        xp = backend.xp_of(x)
        xpad = _pad(x, padding)
        OH = (xpad.shape[2] - kernel[0]) // stride[0] + 1
        OW = (xpad.shape[3] - kernel[1]) // stride[1] + 1
        y = xp.zeros(x.shape[:2] + (OH, OW), dtype=x.dtype)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                y += xpad[_slices(i, j, stride, OH, OW)]
        self.pad_shape, self.kernel = xpad.shape, kernel
        self.stride, self.padding = stride, padding
        return y / (kernel[0] * kernel[1])

    def backward(self, gy):
        xp = backend.xp_of(gy)
        kh, kw = self.kernel
        share = gy / (kh * kw)
        gx = xp.zeros(self.pad_shape, dtype=gy.dtype)
        for i in range(kh):
            for j in range(kw):
                gx[_slices(i, j, self.stride, *gy.shape[2:])] += share
        return _unpad(gx, self.padding)


@register
class MaxPool2d(Function):
    """y[b, c, p, q] = max_{i, j} x[b, c, s·p + i, s·q + j] over the pixels inside the image.

    Backward: the whole gradient goes to the window's maximum (the first one, on ties):
    ∂L/∂x[b, c, s·p + i*, s·q + j*] += gy[b, c, p, q], (i*, j*) = argmax of the window.
    The padding is −∞, so it never exceeds a pixel, but a pixel that is −∞ itself ties with it:
    the winner is therefore chosen among the pixels inside the image only (each window holds
    at least one, as the padding is at most half the kernel), as PyTorch does.
    """

    def forward(self, x, *, kernel, stride, padding):
        xp = backend.xp_of(x)
        xpad = _pad(x, padding, -np.inf)
        OH = (xpad.shape[2] - kernel[0]) // stride[0] + 1
        OW = (xpad.shape[3] - kernel[1]) // stride[1] + 1
        window = kernel[0] * kernel[1]
        cols = im2col(xpad, kernel, stride, (OH, OW))  # (B, C, kh, kw, OH, OW)
        cols = cols.reshape(x.shape[:2] + (window, OH, OW))  # (B, C, kh·kw, OH, OW)
        inside = _pad(xp.ones((1, 1) + x.shape[2:], dtype=bool), padding, False)
        inside = im2col(inside, kernel, stride, (OH, OW))  # (1, 1, kh, kw, OH, OW)
        inside = inside.reshape((1, 1, window, OH, OW))  # which cells are pixels, not padding
        y = cols.max(axis=2)  # (B, C, OH, OW); NaN if the window holds one
        # the first pixel equal to the maximum (or the first NaN, when the maximum is NaN)
        won = ((cols == y[:, :, None]) | xp.isnan(cols)) & inside  # (B, C, kh·kw, OH, OW)
        self.argmax = won.argmax(axis=2)  # (B, C, OH, OW): which offset won
        self.pad_shape, self.kernel = xpad.shape, kernel
        self.stride, self.padding = stride, padding
        return y

    def backward(self, gy):
        xp = backend.xp_of(gy)
        kh, kw = self.kernel
        gx = xp.zeros(self.pad_shape, dtype=gy.dtype)
        for i in range(kh):
            for j in range(kw):
                won = (self.argmax == i * kw + j).astype(gy.dtype)
                gx[_slices(i, j, self.stride, *gy.shape[2:])] += gy * won
        return _unpad(gx, self.padding)


@register
class BatchNorm(Function):
    """Batch normalization with the batch's statistics (Ioffe & Szegedy 2015, Algorithm 1).

    For x of shape (B, C, ...) the statistics are per channel c, over the N = B·(spatial size)
    values of that channel:
        μ = mean(x),   σ² = mean((x − μ)²),   x̂ = (x − μ) / √(σ² + ε),   y = γ x̂ + β.
    Backward (as for LayerNorm, with the sums over the batch and spatial axes):
        ∂L/∂β = Σ gy,   ∂L/∂γ = Σ gy · x̂,   ĝ = gy · γ,
        ∂L/∂x = (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)) / √(σ² + ε).
    When running statistics are given they are updated in place, as PyTorch does:
        r_μ ← (1 − m) r_μ + m μ,   r_σ² ← (1 − m) r_σ² + m σ² · N / (N − 1)   (unbiased).
    """

    def forward(self, x, gamma, beta, *, eps, running_mean, running_var, momentum):
        axes = (0,) + tuple(range(2, x.ndim))
        keep = (1, x.shape[1]) + (1,) * (x.ndim - 2)  # broadcast a (C,) vector over x
        mu = x.mean(axis=axes)  # (C,)
        xc = x - mu.reshape(keep)
        var = (xc * xc).mean(axis=axes)  # (C,) population variance
        inv_std = 1.0 / backend.xp_of(x).sqrt(var + eps)  # (C,)
        x_hat = xc * inv_std.reshape(keep)
        if running_mean is not None:
            n = x.size // x.shape[1]
            running_mean *= 1 - momentum
            running_mean += momentum * mu
            running_var *= 1 - momentum
            running_var += momentum * var * (n / max(n - 1, 1))
        self.x_hat, self.inv_std, self.gamma = x_hat, inv_std, gamma
        self.axes, self.keep = axes, keep
        self.has_beta = beta is not None
        y = x_hat if gamma is None else x_hat * gamma.reshape(keep)
        return y if beta is None else y + beta.reshape(keep)

    def backward(self, gy):
        axes, keep, x_hat = self.axes, self.keep, self.x_hat
        g_hat = gy if self.gamma is None else gy * self.gamma.reshape(keep)
        mean_g = g_hat.mean(axis=axes).reshape(keep)
        mean_gx = (g_hat * x_hat).mean(axis=axes).reshape(keep)
        gx = (g_hat - mean_g - x_hat * mean_gx) * self.inv_std.reshape(keep)
        ggamma = None if self.gamma is None else (gy * x_hat).sum(axis=axes)
        gbeta = gy.sum(axis=axes) if self.has_beta else None
        return gx, ggamma, gbeta


# ---- the public functions -------------------------------------------------------------------

def _check_image(op, x, channels=None):
    if not isinstance(x, Tensor) or x.ndim != 4 or x.dtype.kind != "f":
        raise ValueError(f"{op}: expected a float Tensor (B, C, H, W), got "
                         f"{getattr(x, 'shape', type(x).__name__)} "
                         f"{getattr(x, 'dtype', '')}".rstrip())
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{op}: input has {x.shape[1]} channels {x.shape}, the weight expects "
                         f"{channels}")


def _check_output(op, x, kernel, stride, padding):
    for name, pair in (("kernel_size", kernel), ("stride", stride)):
        if min(pair) < 1:
            raise ValueError(f"{op}: {name} must be positive, got {pair}")
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    H, W = x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]
    if H < kernel[0] or W < kernel[1]:
        raise ValueError(f"{op}: kernel {kernel} is larger than the padded input {(H, W)} "
                         f"(input {x.shape}, padding {padding})")


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-d convolution (cross-correlation, as in PyTorch) of x (B, C, H, W) with weight
    (O, C, kh, kw) and an optional bias (O,) -> (B, O, OH, OW)."""
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be a Tensor (O, C, kh, kw), got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    _check_image("conv2d", x, weight.shape[1])
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"conv2d: bias must be ({weight.shape[0]},), got {bias.shape}")
    stride = int_pair(stride, "stride", "conv2d")
    padding = int_pair(padding, "padding", "conv2d")
    _check_output("conv2d", x, weight.shape[2:], stride, padding)
    return Conv2d.apply(x, weight, bias, stride=stride, padding=padding)


def _pool(cls, op, x, kernel_size, stride, padding):
    _check_image(op, x)
    kernel = int_pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else int_pair(stride, "stride", op)
    padding = int_pair(padding, "padding", op)
    _check_output(op, x, kernel, stride, padding)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    return cls.apply(x, kernel=kernel, stride=stride, padding=padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Average over kh × kw windows (stride defaults to the kernel size): (B, C, OH, OW)."""
    return _pool(AvgPool2d, "avg_pool2d", x, kernel_size, stride, padding)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Maximum over kh × kw windows (stride defaults to the kernel size): (B, C, OH, OW)."""
    return _pool(MaxPool2d, "max_pool2d", x, kernel_size, stride, padding)


def check_batch_norm_inputs(x, **per_channel):
    """A clear error unless x is a float Tensor (B, C, ...) with C ≥ 1 and each of the
    per-channel Tensors given (None is skipped) is (C,), of x's dtype and on x's device."""
    if not isinstance(x, Tensor) or x.ndim < 2 or x.dtype.kind != "f":
        raise ValueError(f"batch_norm: expected a float Tensor (B, C, ...), got "
                         f"{getattr(x, 'shape', type(x).__name__)}"
                         f"{'' if not isinstance(x, Tensor) else f' of dtype {x.dtype}'}")
    C = x.shape[1]
    if C == 0:
        raise ValueError(f"batch_norm: input {x.shape} has no channels")
    for name, t in per_channel.items():
        if t is None:
            continue
        if not isinstance(t, Tensor) or t.shape != (C,):
            raise ValueError(f"batch_norm: {name} must be ({C},) (a Tensor) for input "
                             f"{x.shape}, got {getattr(t, 'shape', type(t).__name__)}")
        if t.dtype != x.dtype or t.device != x.device:
            raise TypeError(f"batch_norm: {name} is {t.dtype} on {t.device}, the input "
                            f"{x.dtype} on {x.device}; they must match")


def batch_norm(x, weight=None, bias=None, eps=1e-5, running_mean=None, running_var=None,
               momentum=0.1):
    """Normalize each channel of x (B, C, ...) with the batch's mean and variance.

    `running_mean`/`running_var` (Tensors (C,), or None) are updated in place with `momentum`,
    as by PyTorch's ``F.batch_norm(..., training=True)``.
    """
    check_batch_norm_inputs(x, weight=weight, bias=bias, running_mean=running_mean,
                            running_var=running_var)
    if x.size // x.shape[1] < 2:
        raise ValueError(f"batch_norm: need more than one value per channel, got input {x.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    rm = None if running_mean is None else running_mean._data
    rv = None if running_var is None else running_var._data
    return BatchNorm.apply(x, weight, bias, eps=eps, running_mean=rm, running_var=rv,
                           momentum=momentum)
