"""The functional namespace, ``import minitx.functional as F``: what layers are made of.

Every function here either is an op of :mod:`minitx.ops` or composes a few of them (and then has
no backward of its own: autodiff derives it).
"""

from minitx import ops
from minitx.creation import arange
from minitx.ops import (
    cross_entropy,
    dropout,
    embedding,
    gelu,
    layer_norm,
    log_softmax,
    relu,
    rms_norm,
    sigmoid,
    softmax,
    tanh,
)
from minitx.ops import scaled_dot_product_attention as scaled_dot_product_attention
from minitx.ops.conv import check_batch_norm_inputs
from minitx.ops.conv import int_pair as int_pair  # for layers that take sizes (nn.Conv2d)
from minitx.ops.indexing import chunk, gather, split, take
from minitx.ops.masks import masked_fill, where
from minitx.ops.shape import (
    broadcast_to,
    concat,
    flatten,
    pad,
    reshape,
    roll,
    squeeze,
    stack,
    swapaxes,
    transpose,
    unsqueeze,
)

__all__ = [
    "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear", "log_softmax",
    "mse_loss", "one_hot", "relu", "rms_norm", "scaled_dot_product_attention", "sigmoid", "silu",
    "softmax", "tanh",
]


def linear(x, weight, bias=None):
    """y = x Wᵀ + b, with W of shape (out_features, in_features) as in PyTorch (fused op)."""
    return ops.linear(x, weight, bias)  # (..., in) -> (..., out)


def silu(x):
    """x · σ(x) (Elfwing et al. 2018), also called swish."""
    return x * sigmoid(x)


def mse_loss(prediction, target, reduction="mean"):
    """Mean (or summed, or per element: reduction "mean", "sum", "none") squared error of two
    tensors of one shape (a mismatch would broadcast, e.g. (N, 1) against (N,) into (N, N))."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if prediction.shape != target.shape:
        raise ValueError(f"mse_loss: prediction {prediction.shape} and target {target.shape} "
                         f"must have the same shape")
    squared = (prediction - target) ** 2
    if reduction == "none":
        return squared
    return ops.mean(squared) if reduction == "mean" else ops.sum(squared)


def one_hot(indices, num_classes, dtype="float32"):
    """(...) integer Tensor -> (..., num_classes) Tensor of 0/1 (not differentiable)."""
    if indices.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be an integer Tensor, got {indices.dtype}")
    if indices.size and (int(indices._data.min()) < 0 or int(indices._data.max()) >= num_classes):
        raise IndexError(f"one_hot: classes must lie in [0, {num_classes}), got values from "
                         f"{int(indices._data.min())} to {int(indices._data.max())}")
    hits = ops.compare(ops.reshape(indices, indices.shape + (1,)),
                       arange(num_classes, device=indices.device), "eq")
    return ops.astype(hits, dtype)


__all__ += ["avg_pool2d", "batch_norm", "conv2d", "max_pool2d"]


# ---- convolutions and batch statistics (minitx/ops/conv.py) ------------------------------

def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-d cross-correlation of x (B, C, H, W) with weight (O, C, kh, kw) -> (B, O, OH, OW)."""
    return ops.conv2d(x, weight, bias, stride, padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over kh × kw windows of x (B, C, H, W); stride defaults to the kernel size."""
    return ops.avg_pool2d(x, kernel_size, stride, padding)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Maximum over kh × kw windows of x (B, C, H, W); stride defaults to the kernel size."""
    return ops.max_pool2d(x, kernel_size, stride, padding)


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalization of x (B, C, ...) per channel (Ioffe & Szegedy 2015), with PyTorch's
    argument order and defaults: evaluation unless ``training=True``, as in
    ``torch.nn.functional.batch_norm``.

    Evaluation (the default): the running statistics, an affine map per channel,
    y = (x − r_μ) / √(r_σ² + ε) · γ + β; the running statistics are not changed.
    Training: the batch's statistics (fused op), updating the running ones (if given) in place.
    """
    if training:
        return ops.batch_norm(x, weight, bias, eps, running_mean, running_var, momentum)
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: evaluation (the default, training=False) needs "
                         "running_mean and running_var; pass training=True to normalize with "
                         "the batch's own statistics")
    check_batch_norm_inputs(x, weight=weight, bias=bias, running_mean=running_mean,
                            running_var=running_var)
    keep = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    scale = 1.0 / ops.sqrt(running_var + eps)  # (C,)
    if weight is not None:
        scale = scale * weight
    y = (x - ops.reshape(running_mean, keep)) * ops.reshape(scale, keep)
    return y if bias is None else y + ops.reshape(bias, keep)


# ---- shape ops: the ops of minitx.ops.shape and .indexing, and the patch cut of the vision models

__all__ += [
    "broadcast_to", "chunk", "concat", "flatten", "gather", "masked_fill", "pad", "patchify",
    "reshape", "roll", "split", "squeeze", "stack", "swapaxes", "take", "transpose", "unsqueeze",
    "where",
]


def patchify(images, patch_size):
    """Cut images into non-overlapping P×P patches and flatten each one.

    ViT's x_p (Dosovitskiy et al. 2021, Eq. 1) and Swin's "patch partition" (Liu et al. 2021,
    §3.1). Each patch is flattened in (C, P, P) order, the layout of a Conv2d(C, D, P, stride=P)
    kernel, so a Linear on the patches is that convolution and its weights load by a reshape.

    Args:
        images: Tensor (B, C, H, W), H and W multiples of P.
        patch_size: P.
    Returns:
        Tensor (B, H/P, W/P, C·P·P): the patch grid, channels last.

    >>> import numpy as np
    >>> from minitx import arange
    >>> patchify(arange(16, dtype=np.float32).reshape(1, 1, 4, 4), 2).numpy()[0, 0, 1]
    array([2., 3., 6., 7.], dtype=float32)
    """
    if images.ndim != 4:
        raise ValueError(f"patchify: expected images (B, C, H, W), got shape {images.shape}")
    B, C, H, W = images.shape
    P = patch_size
    if P < 1 or H % P or W % P:
        raise ValueError(f"patchify: image side {H}x{W} is not a multiple of the patch size {P}")
    x = images.reshape(B, C, H // P, P, W // P, P)  # (B, C, H/P, P, W/P, P)
    x = x.transpose(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P)
    return x.reshape(B, H // P, W // P, C * P * P)  # (B, H/P, W/P, C·P·P)
