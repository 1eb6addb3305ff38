"""Linear: the affine map y = x Wᵀ + b, the most common layer of a Transformer."""

import math

import numpy as np

from minitx import backend
from minitx import functional as F
from minitx.nn import init
from minitx.nn.module import Module, Parameter


def empty_parameter(shape, device, dtype):
    """Return a Parameter of `shape` on `device` whose values an init function fills in next."""
    return Parameter(backend.xp_for(device).zeros(shape, dtype=dtype))


class Linear(Module):
    """y = x Wᵀ + b with W of shape (out_features, in_features), as in PyTorch.

    Initialization is PyTorch's default for ``nn.Linear``: ``kaiming_uniform_(W, a=√5)``, which
    works out to W, b ~ U(−1/√in_features, 1/√in_features). Models that want another scheme
    (GPT-2's N(0, 0.02²), ViT's Xavier) re-initialize with :mod:`minitx.nn.init`.

    Args:
        in_features, out_features: the sizes of the last axis of input and output.
        bias: whether to add b (out_features,).
        device, dtype: where and how the parameters are stored.
        generator: an ``np.random.Generator`` for the initial values (default: minitx.random).

    >>> import minitx as mt
    >>> Linear(3, 2)(mt.ones((5, 3))).shape
    (5, 2)
    """

    def __init__(self, in_features, out_features, bias=True, *, device="cpu", dtype=np.float32,
                 generator=None):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear: sizes must be positive, got in_features={in_features}, "
                             f"out_features={out_features}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = empty_parameter((out_features, in_features), device, dtype)
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        self.bias = None
        if bias:
            self.bias = empty_parameter((out_features,), device, dtype)
            bound = 1.0 / math.sqrt(in_features)  # PyTorch's default bias init
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, x):  # (..., in_features)
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"Linear: expected input (..., {self.in_features}), got {x.shape}")
        return F.linear(x, self.weight, self.bias)  # (..., out_features)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
