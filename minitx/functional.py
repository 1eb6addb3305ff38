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
    sigmoid,
    softmax,
    tanh,
)
from minitx.ops import scaled_dot_product_attention as scaled_dot_product_attention

__all__ = [
    "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear", "log_softmax",
    "mse_loss", "one_hot", "relu", "scaled_dot_product_attention", "sigmoid", "silu", "softmax",
    "tanh",
]


def linear(x, weight, bias=None):
    """y = x Wᵀ + b, with W of shape (out_features, in_features) as in PyTorch (fused op)."""
    return ops.linear(x, weight, bias)  # (..., in) -> (..., out)


def silu(x):
    """x · σ(x) (Elfwing et al. 2018), also called swish."""
    return x * sigmoid(x)


def mse_loss(prediction, target, reduction="mean"):
    """Mean (or summed) squared error."""
    squared = (prediction - target) ** 2
    if reduction == "none":
        return squared
    return ops.mean(squared) if reduction == "mean" else ops.sum(squared)


def one_hot(indices, num_classes, dtype="float32"):
    """(...) integer Tensor -> (..., num_classes) Tensor of 0/1 (not differentiable)."""
    hits = ops.compare(ops.reshape(indices, indices.shape + (1,)),
                       arange(num_classes, device=indices.device), "eq")
    return ops.astype(hits, dtype)
