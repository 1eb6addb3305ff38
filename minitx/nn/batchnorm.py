"""Batch normalization (Ioffe & Szegedy 2015): normalize each channel with batch statistics.

While training, each channel is normalized with the mean and variance of the current batch
(Algorithm 1), and exponential moving averages of them are kept. In evaluation the layer uses
those running averages instead (§3.1: "the normalization ... using the population, rather than
mini-batch, statistics"), so an example's output no longer depends on the rest of its batch.
The difference between the two modes, and the noise of statistics from a small batch, are what
LayerNorm (one example at a time) avoids.
"""

import numpy as np

from minitx import functional as F
from minitx.nn import init
from minitx.nn.linear import empty_parameter
from minitx.nn.module import Module, Statistic


class _BatchNorm(Module):
    """The layer behind :class:`BatchNorm1d` and :class:`BatchNorm2d`.

    Running statistics follow PyTorch: r_μ ← (1 − m) r_μ + m μ_batch and
    r_σ² ← (1 − m) r_σ² + m σ²_batch · N/(N − 1) (the unbiased variance), m = ``momentum``;
    they start at 0 and 1.

    Args:
        num_features: C, the channel axis (axis 1) of the input.
        eps: ε, added to the variance; momentum: m.
        affine: learn γ (``weight``, starts at 1) and β (``bias``, starts at 0).
        track_running_stats: keep running statistics and use them in evaluation; if False the
            batch's statistics are used in both modes.
        device, dtype: where and how the parameters are stored.
    """

    expected_dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, *, device="cpu", dtype=np.float32):
        super().__init__()
        if momentum is None:  # PyTorch's cumulative average, which needs a batch counter
            raise ValueError(f"{type(self).__name__}: momentum=None (a cumulative average) is "
                             f"not supported; give a number in [0, 1]")
        if num_features < 1 or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: need num_features ≥ 1 and momentum in "
                             f"[0, 1], got {num_features} and {momentum}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = self.bias = None
        if affine:
            self.weight = init.ones_(empty_parameter((num_features,), device, dtype))
            self.bias = init.zeros_(empty_parameter((num_features,), device, dtype))
        self.running_mean = self.running_var = None
        if track_running_stats:
            # DEVIATION: PyTorch keeps these as buffers (and an integer num_batches_tracked for
            # momentum=None). minitx's state dict holds parameters only, so they are
            # Statistics: parameters that never require grad (no gradient, no optimizer
            # update, not even after requires_grad_(True)), saved and loaded with the weights
            # under PyTorch's names; momentum=None is not supported. Count trained values with
            # `p.requires_grad` to match PyTorch's parameters().
            self.running_mean = Statistic(empty_parameter((num_features,), device, dtype))
            self.running_var = Statistic(init.ones_(empty_parameter((num_features,), device,
                                                                    dtype)))

    def forward(self, x):  # (B, C, ...)
        if x.ndim not in self.expected_dims or x.shape[1] != self.num_features:
            dims = " or ".join(f"{d}-d" for d in self.expected_dims)
            raise ValueError(f"{type(self).__name__}: expected {dims} input with "
                             f"{self.num_features} channels on axis 1, got {x.shape}")
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=use_batch, momentum=self.momentum, eps=self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.weight is not None}, "
                f"track_running_stats={self.running_mean is not None}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of (B, C) features or (B, C, L) sequences, statistics per channel C.

    >>> import minitx as mt
    >>> BatchNorm1d(4)(mt.ones((8, 4))).shape
    (8, 4)
    """

    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of images (B, C, H, W), statistics per channel over B, H and W.

    >>> import minitx as mt
    >>> BatchNorm2d(3)(mt.ones((2, 3, 4, 4))).shape
    (2, 3, 4, 4)
    """

    expected_dims = (4,)
