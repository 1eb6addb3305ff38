"""LayerNorm (Ba, Kiros & Hinton 2016): normalize each token's features, then scale and shift."""

import numpy as np

from minitx import functional as F
from minitx.nn import init
from minitx.nn.linear import empty_parameter
from minitx.nn.module import Module


class LayerNorm(Module):
    """y = (x − μ) / √(σ² + ε) · γ + β, with μ and σ² over the last axis of each token.

    γ (``weight``) starts at 1 and β (``bias``) at 0, so the layer starts as a plain
    normalization. σ² is the population variance (divide by D), as in PyTorch.

    Args:
        normalized_shape: D, the size of the last axis (an int, or a 1-tuple as in PyTorch;
            minitx normalizes over the last axis only).
        eps: ε, added to σ² so that a constant token does not divide by zero.
        elementwise_affine: learn γ and β; bias: learn β (False: as GPT-style "no bias" models).
        device, dtype: where and how the parameters are stored.

    >>> import minitx as mt
    >>> LayerNorm(4)(mt.ones((2, 4))).shape
    (2, 4)
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *,
                 device="cpu", dtype=np.float32):
        super().__init__()
        shape = ((normalized_shape,) if isinstance(normalized_shape, (int, np.integer))
                 else normalized_shape)
        if len(tuple(shape)) != 1 or tuple(shape)[0] < 1:
            raise ValueError(f"LayerNorm: normalized_shape must be one positive size (the last "
                             f"axis), got {normalized_shape!r}")
        self.normalized_shape, self.eps = (int(tuple(shape)[0]),), eps
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = init.ones_(empty_parameter(self.normalized_shape, device, dtype))
            if bias:
                self.bias = init.zeros_(empty_parameter(self.normalized_shape, device, dtype))

    def forward(self, x):  # (..., D)
        if x.shape[-1:] != self.normalized_shape:
            raise ValueError(f"LayerNorm: expected input (..., {self.normalized_shape[0]}), got "
                             f"{x.shape}")
        return F.layer_norm(x, self.weight, self.bias, self.eps)  # (..., D)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.weight is not None}")
