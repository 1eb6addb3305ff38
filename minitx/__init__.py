"""minitx: a small reverse-mode autodiff framework on NumPy (CPU) or CuPy (GPU).

>>> import minitx as mt
>>> x = mt.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
array([2., 4., 6.], dtype=float32)
"""

from minitx.tensor import Tensor  # first: ops and autograd import it  # isort: skip
from minitx import backend, ops, random
from minitx.autograd import detect_anomaly, is_grad_enabled, no_grad
from minitx.creation import (
    arange,
    empty,
    empty_like,
    full,
    full_like,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from minitx.ops import (
    abs,
    concat,
    count_macs,
    exp,
    log,
    matmul,
    maximum,
    minimum,
    sigmoid,
    sqrt,
    stack,
    tanh,
    where,
)

__all__ = [
    "Tensor", "abs", "arange", "backend", "concat", "count_macs", "detect_anomaly", "empty",
    "empty_like", "exp", "full", "full_like",
    "is_grad_enabled", "log", "matmul", "maximum", "minimum", "no_grad", "ones", "ones_like",
    "ops", "rand", "randn", "random", "sigmoid", "sqrt", "stack", "tanh", "tensor", "where",
    "zeros", "zeros_like",
]
__version__ = "0.1.0"
