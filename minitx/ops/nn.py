"""Ops with a neural-network flavour: dropout and embedding lookup."""

from minitx import backend, kernels
from minitx import random as mt_random
from minitx.autograd import Function
from minitx.ops.common import check_float, own_copy, register
from minitx.tensor import Tensor


@register
class Dropout(Function):
    """y = x · m / (1 − p), m ~ Bernoulli(1 − p) per element (Srivastava et al. 2014).

    Scaling the kept units by 1/(1 − p) at training time ("inverted dropout") keeps E[y] = x, so
    evaluation uses the identity. ∂y/∂x = m / (1 − p), the same scaled mask; m is kept as
    booleans (`keep`) and the scale as one number.
    """

    def forward(self, x, *, keep, scale):
        self.keep, self.scale = keep, scale
        return kernels.masked_scale(x, keep, scale)

    def backward(self, g):
        return kernels.masked_scale(g, self.keep, self.scale)


def dropout(x, p=0.5, training=True, generator=None):
    """Zero each element with probability p and scale the rest by 1/(1 − p); identity when not
    training or p = 0. The mask is drawn on the host from `generator` (default: minitx.random).
    """
    check_float("dropout", x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    rng = mt_random.generator_or_default(generator, "dropout")
    keep = backend.to_device(kernels.dropout_keep(rng, x.shape, p), x.device)  # on the host
    return Dropout.apply(x, keep=keep, scale=0.0 if p == 1.0 else 1.0 / (1.0 - p))


@register
class Embedding(Function):
    """y[..., :] = W[i, :] for each index i: a table lookup, the same as onehot(i) @ W.

    dL/dW[r] = Σ of g over the positions whose index is r: rows never looked up get zero, and a
    token that appears several times collects every occurrence (scatter-add). The values are
    sparse (only the rows of tokens in the batch are non-zero) but the storage is dense: the
    gradient is a full (V, D) array of zeros with those rows filled in, so it costs V · D memory
    however few tokens the batch holds.
    """

    def forward(self, W, *, indices):
        self.W_shape = W.shape
        self.indices = own_copy(indices) if self.needs_grad else None  # the caller may change it
        return W[indices]  # (..., D)

    def backward(self, g):
        return kernels.sum_rows_by_index(self.indices.reshape(-1), g.reshape(-1, self.W_shape[1]),
                                         self.W_shape[0])


def embedding(indices, weight):
    """Look up rows of `weight` (V, D) at integer `indices` (...) -> (..., D)."""
    if not isinstance(indices, Tensor) or indices.dtype.kind not in "iu":
        raise TypeError("embedding: indices must be an integer Tensor")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (V, D), got shape {weight.shape}")
    if indices.device != weight.device:
        raise RuntimeError(f"embedding: indices on {indices.device}, weight on {weight.device}")
    if indices.size and (int(indices._data.min()) < 0 or int(indices._data.max()) >= len(weight)):
        raise IndexError(f"embedding: indices must lie in [0, {len(weight)}), got values from "
                         f"{int(indices._data.min())} to {int(indices._data.max())}")
    return Embedding.apply(weight, indices=indices._data)
