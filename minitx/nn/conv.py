"""Convolution and pooling layers over images (B, C, H, W) (LeCun et al. 1998; He et al. 2016).

Each is a thin Module over an op of :mod:`minitx.ops.conv`, with PyTorch's argument names, so
weights copied from ``torch.nn.Conv2d`` give the same outputs.
"""

import math

import numpy as np

from minitx import functional as F
from minitx.nn import init
from minitx.nn.linear import empty_parameter
from minitx.nn.module import Module


class Conv2d(Module):
    """y = W ⋆ x + b: each output channel o sums, over the C input channels, the
    cross-correlation of a kh × kw kernel W[o, c] with the image (computed as im2col + GEMM).

    Initialization is PyTorch's default for ``nn.Conv2d``: ``kaiming_uniform_(W, a=√5)`` with
    fan_in = C · kh · kw, i.e. W, b ~ U(−1/√fan_in, 1/√fan_in).

    Args:
        in_channels, out_channels: C and O.
        kernel_size: kh = kw (an int) or (kh, kw).
        stride, padding: an int or a pair (zero padding on every side).
        bias: learn b (O,).
        device, dtype, generator: as for :class:`~minitx.nn.Linear`.

    >>> import minitx as mt
    >>> Conv2d(3, 8, 3, padding=1)(mt.ones((2, 3, 16, 16))).shape
    (2, 8, 16, 16)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        kh, kw = F.int_pair(kernel_size, "kernel_size", "Conv2d")
        for name, value in (("stride", stride), ("padding", padding)):
            F.int_pair(value, name, "Conv2d")  # checked here, not only at the first forward
        if min(in_channels, out_channels, kh, kw) < 1:
            raise ValueError(f"Conv2d: channels and kernel sizes must be positive, got "
                             f"in_channels={in_channels}, out_channels={out_channels}, "
                             f"kernel_size={kernel_size}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        self.weight = empty_parameter((out_channels, in_channels, kh, kw), device, dtype)
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        self.bias = None
        if bias:
            self.bias = empty_parameter((out_channels,), device, dtype)
            bound = 1.0 / math.sqrt(in_channels * kh * kw)
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, x):  # (B, C, H, W)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)  # (B, O, OH, OW)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class AvgPool2d(Module):
    """The mean over each kh × kw window (stride defaults to the kernel size)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):  # (B, C, H, W)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)  # (B, C, OH, OW)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(Module):
    """The maximum over each kh × kw window (stride defaults to the kernel size)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):  # (B, C, H, W)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)  # (B, C, OH, OW)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
