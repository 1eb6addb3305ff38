"""Matrix products of a stack of rows with one matrix, as one GEMM."""

import math


def fold(x):
    """View (..., n, k) as (N, k), N the product of the leading sizes (-1 is ambiguous at k=0)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def matmul(a, b):
    """a @ b with NumPy's rules. Trick: a stack (..., n, k) times one matrix (k, m) is one
    (N, k) @ (k, m) GEMM of the fold (:func:`fold`). As a batched product NumPy would loop over
    small products (for a transposed b without BLAS at all: tens of times slower)."""
    if b.ndim == 2 and a.ndim > 2:
        return (fold(a) @ b).reshape(a.shape[:-1] + b.shape[-1:])
    return a @ b


def matmul_summed(a, b):
    """Σ over the batch axes of aᵀ b, for a (..., n, k) and b (..., n, m): (k, m).

    Trick: the sum is inside one (k, N) @ (N, m) GEMM of the folds, never a stack of products.
    """
    return fold(a).T @ fold(b)
