"""The differentiable ops: one Function class per op, and a lowercase function to call it.

``OPS`` maps every op's name to its Function class; the test suite walks it, so an op without a
gradient test fails CI.
"""

from minitx.ops.activation import gelu, relu, sigmoid
from minitx.ops.attention import causal_mask, scaled_dot_product_attention
from minitx.ops.common import OPS, register, unbroadcast
from minitx.ops.conv import avg_pool2d, batch_norm, conv2d, max_pool2d
from minitx.ops.elementwise import (
    abs,
    add,
    astype,
    clip,
    div,
    exp,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    sqrt,
    sub,
    tanh,
    to_device,
)
from minitx.ops.fused import cross_entropy, layer_norm, log_softmax, rms_norm, softmax
from minitx.ops.indexing import chunk, gather, getitem, split, take
from minitx.ops.linalg import count_macs, linear, matmul
from minitx.ops.masks import compare, logical_and, logical_not, logical_or, masked_fill, where
from minitx.ops.nn import dropout, embedding
from minitx.ops.reduce import logsumexp, max, mean, min, sum, var
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
    "OPS", "register", "unbroadcast", "abs", "add", "astype", "broadcast_to", "causal_mask",
    "chunk", "clip", "compare", "concat", "count_macs", "cross_entropy", "div", "dropout",
    "embedding", "exp", "flatten", "gather", "gelu", "getitem", "layer_norm", "linear", "log",
    "log_softmax", "logical_and", "logical_not", "logical_or", "logsumexp", "masked_fill",
    "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "neg", "pad", "pow", "relu",
    "reshape", "rms_norm", "roll", "scaled_dot_product_attention", "sigmoid", "softmax", "split",
    "sqrt", "squeeze", "stack", "sub", "sum", "swapaxes", "take", "tanh", "to_device", "transpose",
    "unsqueeze", "var", "where", "avg_pool2d", "batch_norm", "conv2d", "max_pool2d",
]
