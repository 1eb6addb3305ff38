"""Matrix products of a stack of rows with one matrix, as one GEMM; sums of rows (over leading
axes as a product, or grouped by an index)."""

import math

import numpy as np

from minitx import backend


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


def matmul_like(a, b, like):
    """a @ b (NumPy's rules), in an array whose memory layout is that of `like` when `like` has
    the product's shape (``empty_like`` keeps the order of its strides), else a @ b.

    Trick: attention's heads are strided views of (..., T, h, d), as the projections make them;
    a product laid out like its view transposes back to a contiguous (..., T, h, d), so the
    reshape to (..., T, h·d) that follows costs nothing instead of a copy.
    """
    if not all(isinstance(x, np.ndarray) for x in (a, b, like)):
        return a @ b  # CuPy, the strict stand-in
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    if like.shape != shape:
        return a @ b
    return np.matmul(a, b, out=np.empty_like(like, dtype=np.result_type(a, b)))


def matmul_summed(a, b):
    """Σ over the batch axes of aᵀ b, for a (..., n, k) and b (..., n, m): (k, m).

    Trick: the sum is inside one (k, N) @ (N, m) GEMM of the folds, never a stack of products.
    """
    return fold(a).T @ fold(b)


def sum_leading(x, n=1):
    """Σ of x over its first `n` axes: shape x.shape[n:]. For a 2-D x and n = 1, the column
    sums 1ᵀ x (a bias's gradient is that sum of dL/dy over every position).

    Trick: for a C-contiguous float NumPy array, the matrix-vector product 1ᵀ X of its
    (rows, rest) view X, which BLAS spreads over its threads, where NumPy's sum reads x on one
    core. Other arrays: NumPy's (or CuPy's) sum over those axes.
    """
    rest = x.shape[n:]
    if (isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64) and x.size
            and x.flags.c_contiguous):
        rows = x.reshape(-1, math.prod(rest))
        return (np.ones(rows.shape[0], x.dtype) @ rows).reshape(rest)
    return x.sum(axis=tuple(range(n)), keepdims=True).reshape(rest)  # an array, even 0-d


def sum_rows_by_index(index, values, n):
    """out[r] = Σ of the rows values[i] with index[i] = r, for r < n: (n, ...) from index (N,)
    and values (N, ...); a row that no index names is 0 (an embedding table's gradient).

    Trick: sorted by index (a stable sort, so each row's terms keep their order), the rows of
    one index are one run, and ``np.add.reduceat`` sums every run in one call, where
    ``np.add.at`` scatters element by element (2-3x slower for a (2048, 256) gradient).
    CuPy and the strict stand-in scatter-add.
    """
    out = backend.xp_of(values).zeros((n,) + values.shape[1:], values.dtype)
    if not isinstance(values, np.ndarray) or len(index) == 0:
        return backend.scatter_add(out, index, values)
    order = np.argsort(index, kind="stable")
    runs = index[order]
    starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])  # where each index's run begins
    out[runs[starts]] = np.add.reduceat(values[order], starts, axis=0)
    return out
