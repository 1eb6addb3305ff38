"""Where speed lives: the element-wise and row-wise passes whose fast spelling hides the formula.

An op's ``forward`` and ``backward`` (in :mod:`minitx.ops`) read like the mathematics. Where
the plain NumPy spelling of a formula is slow (several passes over memory, temporaries the size
of the activations, one busy core), the op calls a kernel here by name, whose docstring gives
the formula and the trick. ``tests/test_kernels.py`` checks each kernel against the formula.

Three tricks, all invisible in the result:

- **blocks** (:func:`blockwise`): a long chain of element-wise passes (GELU) runs over one
  cache-sized block after another, so every pass after the first reads cache, not memory;
- **threads** (:func:`thread_count`, opt-in): NumPy's ufuncs release the GIL, so one large
  pass can be shared among threads. Each piece is computed exactly as it would be on one
  thread, so the result is bit for bit the same;
- **in place**: a fresh buffer is reused for the formula's next step, not a new temporary.

On a GPU (CuPy) and the strict stand-in, kernels make whole-array calls (one launch per pass).
"""

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minitx import backend

# --------------------------------------------------------------------------------------------
# Blocks and threads
# --------------------------------------------------------------------------------------------

# Elements per block: a few float32 buffers of this size (256 KiB each) stay in a typical L2
# cache, so a chain of element-wise passes over one block reads cache, not memory.
BLOCK = 1 << 16

PARALLEL_MIN = 1 << 18  # elements below which a pass stays on one thread (the pool's cost)

_threads = None  # the thread count in use; see thread_count()
_pool = None  # the ThreadPoolExecutor of that many workers, started on first use


def _blas_threads():
    """NumPy's BLAS threads: threadpoolctl's report, else OpenBLAS/OpenMP variables, else CPUs."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        counts = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        if counts:
            return max(1, min(counts))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def thread_count():
    """The threads the element-wise kernels use: one (no pool) unless :func:`set_thread_count`
    or MINITX_NUM_THREADS (a number, or "blas": as many as NumPy's BLAS) says otherwise; two
    made a ViT step slower on the shared 2-core machine measured (docs/performance.md)."""
    global _threads
    if _threads is None:
        chosen = os.environ.get("MINITX_NUM_THREADS", "1")
        _threads = _blas_threads() if chosen == "blas" else max(1, int(chosen))
    return _threads


def set_thread_count(n):
    """Use `n` threads for element-wise kernels from now on (None: the default again)."""
    global _threads, _pool
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"set_thread_count: n must be a positive int or None, got {n!r}")
    if _pool is not None:
        _pool.shutdown()
    _threads, _pool = n, None


def _run_parallel(tasks):
    """Run the zero-argument callables `tasks` on the pool and wait for all of them."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(thread_count(), thread_name_prefix="minitx-kernel")
    for future in [_pool.submit(task) for task in tasks]:
        future.result()  # re-raises a task's exception here


def blockwise(fn, x, *others, row=1, cache=False):
    """fn(x, *others) on large CPU arrays in pieces: one per thread, or (``cache=True``, for a
    long chain of passes) cache-sized blocks of about ``BLOCK`` elements shared among threads.

    `fn` must treat rows independently: element by element (``row=1``), or row by row over the
    last axis (``row`` = its length; the others then may have one number per row). fn returns
    an array or a tuple (None entries stay None) with the piece's rows first, put together in
    x's leading shape; or it writes into its pieces (views) and returns None. Every row is
    computed as in one call over the whole array, so the result does not depend on the block
    size or the thread count. Small arrays, non-NumPy arrays (CuPy, strict), non-contiguous
    ones, and one thread without ``cache`` get one call.
    """
    n = thread_count() if x.size >= PARALLEL_MIN else 1
    if (not isinstance(x, np.ndarray) or x.size <= BLOCK or (n == 1 and not cache)
            or not all(a.flags.c_contiguous for a in (x, *others))):
        return fn(x, *others)
    lead = x.shape if row == 1 else x.shape[:-1]
    rows = x.size // row
    flat = [a.reshape(-1) if row == 1 else a.reshape(rows, -1) for a in (x, *others)]
    step = max(1, BLOCK // row) if cache else -(-rows // n)
    starts = range(0, rows, step)
    probe = _as_tuple(fn(*(a[:0] for a in flat)))  # no rows: the outputs' dtypes and shapes
    outs = [None if p is None else np.empty((rows,) + p.shape[1:], p.dtype) for p in probe]

    def run(chunk):
        for start in chunk:
            parts = _as_tuple(fn(*(a[start:start + step] for a in flat)))
            for out, part in zip(outs, parts):
                if part is not None:
                    out[start:start + step] = part

    if n > 1:
        _run_parallel([lambda c=chunk: run(c) for chunk in np.array_split(starts, n)])
    else:
        run(starts)
    outs = tuple(None if o is None else o.reshape(lead + o.shape[1:]) for o in outs)
    return outs if len(outs) > 1 else outs[0]


def _as_tuple(parts):
    return parts if isinstance(parts, tuple) else (parts,)  # None -> (None,)


# --------------------------------------------------------------------------------------------
# GELU (Hendrycks & Gimpel 2016, arXiv:1606.08415)
# --------------------------------------------------------------------------------------------

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715  # the tanh approximation's cubic coefficient
GELU_SATURATED = 40.0  # |x| beyond which Φ(x) is 0 or 1, φ(x) and 1 − tanh²u are 0 in float64


def gelu_and_derivative(x, approximate="none", derivative=True):
    """y = x Φ(x) and ∂y/∂x = Φ(x) + x φ(x) (None unless `derivative`), Φ(x) = ½(1 + erf(x/√2)),
    φ(x) = e^(−x²/2)/√(2π); with ``approximate="tanh"``, y = ½x(1 + tanh u),
    u = √(2/π)(x + 0.044715x³), ∂y/∂x = ½(1 + tanh u) + ½x(1 − tanh²u) · √(2/π)(1 + 3·0.044715x²).

    The formulas run on x clipped to ±40 (saturated there), and y on max(x, −40): y(±∞) and the
    derivative at ±∞ are their limits, never ∞ · 0. Trick: block by block, both outputs are
    computed while the block is in cache, each in one buffer updated in place.
    """
    shape, x = x.shape, x.reshape(x.shape or (1,))  # a 0-d array would decay to a scalar
    block = _gelu_tanh_block if approximate == "tanh" else _gelu_erf_block
    y, dydx = blockwise(lambda b: block(b, derivative), x, cache=True)
    return y.reshape(shape), None if dydx is None else dydx.reshape(shape)


def _gelu_erf_block(x, derivative):
    from minitx.ops.special import erf  # imported here: minitx.ops imports this module

    xp = backend.xp_of(x)
    y = xp.maximum(x, -GELU_SATURATED)  # x, but never −∞
    x = xp.clip(x, -GELU_SATURATED, GELU_SATURATED)
    cdf = erf(x * (1 / _SQRT_2))  # erf(x/√2), then Φ(x) = ½(1 + erf) in place
    cdf += 1.0
    cdf *= 0.5
    y *= cdf
    if not derivative:
        return y, None
    dydx = x * x  # φ(x) = exp(−x²/2)/√(2π), then x φ(x) + Φ(x), all in this one buffer
    dydx *= -0.5
    xp.exp(dydx, out=dydx)
    dydx *= 1 / math.sqrt(2 * math.pi)
    dydx *= x
    dydx += cdf
    return y, dydx


def _gelu_tanh_block(x, derivative):
    xp = backend.xp_of(x)
    y = xp.maximum(x, -GELU_SATURATED)  # x, but never −∞
    x = xp.clip(x, -GELU_SATURATED, GELU_SATURATED)
    t = x * x  # x², then u = √(2/π)(x + 0.044715x³) in the same buffer, then tanh u
    t *= _GELU_CUBIC
    t += 1.0
    t *= x
    t *= _SQRT_2_OVER_PI
    xp.tanh(t, out=t)
    y *= t + 1.0
    y *= 0.5  # ½x(1 + tanh u)
    if not derivative:
        return y, None
    dydx = x * x  # du/dx = √(2/π)(1 + 3 · 0.044715x²)
    dydx *= 3 * _GELU_CUBIC * _SQRT_2_OVER_PI
    dydx += _SQRT_2_OVER_PI
    sech2 = t * t  # 1 − tanh²u
    xp.subtract(1.0, sech2, out=sech2)
    dydx *= sech2
    dydx *= x  # x(1 − tanh²u) du/dx
    dydx += t  # + tanh u
    dydx += 1.0  # + 1
    dydx *= 0.5  # all halved
    return y, dydx


# --------------------------------------------------------------------------------------------
# Row-wise normalisations: softmax and layer norm over the last axis
# --------------------------------------------------------------------------------------------

def row_dot(a, b):
    """Σ over the last axis of a · b (shape a.shape[:-1]), without materializing a · b."""
    return backend.xp_of(a).einsum("...i,...i->...", a, b)


def softmax(x, axis=-1):
    """softmax along `axis`: e^(x − m) / Σ e^(x − m), m the row maximum (so e^(·) ≤ 1).

    A row that is all −inf (every position masked) has no maximum to subtract: it is shifted by
    0 and gives all zeros, not NaN. Trick: along the last axis, rows split among threads, and
    e^(x − m) is normalized in its own buffer.
    """
    if x.size == 0:  # nothing to normalize (an empty axis, or no rows)
        return x.copy()
    if axis in (-1, x.ndim - 1):
        return blockwise(_softmax_rows, x, row=x.shape[-1])
    return _softmax_rows(x, axis)


def _softmax_rows(x, axis=-1):
    xp = backend.xp_of(x)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    e = x - m
    xp.exp(e, out=e)
    s = e.sum(axis=axis, keepdims=True)
    e /= xp.where(s > 0, s, 1)
    return e


def softmax_backward(gy, y, overwrite=False):
    """dL/dx = y · (gy − Σⱼ gyⱼ yⱼ) for y = softmax(x) along the last axis.

    Trick: rows split among threads, in place in a copy of gy (``overwrite=True``: in gy).
    """
    gx = gy if overwrite else gy.copy()
    blockwise(_softmax_backward_in_place, gx, y, row=gy.shape[-1])
    return gx


def _softmax_backward_in_place(gx, y):
    gx -= row_dot(gx, y)[..., None]  # gy − Σⱼ gyⱼ yⱼ, one number per row
    gx *= y


def layer_norm(x, w, b, eps):
    """x̂ = (x − μ) · r with r = 1/√(σ² + ε), μ and σ² over the last axis; y = x̂ · w + b.

    Returns (y, x̂, r), r of shape (..., 1); w and b may be None. Trick: rows split among
    threads; σ² = mean((x − μ)²) as a row dot product, without an (x − μ)² temporary, and x̂
    normalized in the buffer of x − μ.
    """
    def rows(x):
        xp = backend.xp_of(x)
        xc = x - x.mean(axis=-1, keepdims=True)  # x − μ
        var = row_dot(xc, xc)[..., None] / x.shape[-1]  # σ²
        rstd = 1 / xp.sqrt(var + eps)
        xc *= rstd  # x̂
        if w is None:
            return (xc if b is None else xc + b), xc, rstd
        y = xc * w
        if b is not None:
            y += b
        return y, xc, rstd

    return blockwise(rows, x, row=x.shape[-1])


def layer_norm_backward(gy, xhat, rstd, w):
    """dL/dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)) with ĝ = gy · w (gy if w is None), means
    over the last axis, for the x̂ and r = 1/√(σ² + ε) of :func:`layer_norm`.

    Trick: rows split among threads, ĝ turned into dL/dx in its own buffer.
    """
    def rows(gy, xhat, rstd):
        gx = gy * w if w is not None else gy.copy()  # ĝ
        dot = row_dot(gx, xhat)[..., None] / gx.shape[-1]  # mean(ĝ · x̂)
        gx -= gx.mean(axis=-1, keepdims=True)
        gx -= xhat * dot
        gx *= rstd
        return gx

    return blockwise(rows, gy, xhat, rstd, row=gy.shape[-1])


# --------------------------------------------------------------------------------------------
# Matrix products of a stack of rows with one matrix
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The host allocator
# --------------------------------------------------------------------------------------------

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # the largest value glibc accepts on 64-bit systems


def keep_host_memory():
    """Let the C allocator keep freed host memory for reuse instead of returning it to the OS.

    A training step allocates its activations in the forward pass and frees them during the
    backward pass: hundreds of MB each step. By default glibc hands blocks of 128 KiB and more
    back to the operating system at once, so the next step page-faults the same amount in again
    and the kernel zero-fills every page. Here arrays of up to 32 MiB come from the heap, which
    is only trimmed when 2 GiB lie free at its top: the process keeps its peak memory and
    reuses it (10-20% faster ViT steps; PyTorch, which allocates with malloc too, ~10%).

    It changes the allocator of the whole process, so minitx never calls it by itself: the
    examples and benchmarks do. True when it took effect (Linux with glibc), else False.
    """
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: macOS, Windows, musl
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                and mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))


# --------------------------------------------------------------------------------------------
# Dropout and the optimizer's update
# --------------------------------------------------------------------------------------------

def masked_scale(x, keep, scale):
    """x · keep · scale for a boolean `keep` (dropout's mask, Srivastava et al. 2014).

    Trick: the mask is booleans, a quarter of a float mask's bytes; pieces on threads.
    """
    def product(x, keep):
        y = x * keep
        y *= scale
        return y

    return blockwise(product, x, keep)


def adam_update(param, grad, m, v, *, beta1, beta2, step_size, bias2_sqrt, eps, v_max=None):
    """One Adam update in place (Kingma & Ba 2015, Algorithm 1):

        m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²,
        θ ← θ − step_size · m / (√v / bias2_sqrt + ε)

    with step_size = α/(1 − β1^t) and bias2_sqrt = √(1 − β2^t). With `v_max` (AMSGrad),
    v_max ← max(v_max, v) is used in place of v in the denominator.

    Trick: one scratch array per block holds (1 − β1)·g, (1 − β2)·g², the denominator and
    the step in turn; pieces on threads for large parameters.
    """
    def update(param, grad, m, v, *v_max):
        xp = backend.xp_of(param)
        work = xp.multiply(grad, 1.0 - beta1, out=xp.empty_like(grad))  # scratch (0-d too)
        m *= beta1
        m += work
        xp.multiply(grad, grad, out=work)
        work *= 1.0 - beta2
        v *= beta2
        v += work
        if v_max:
            v = xp.maximum(v_max[0], v, out=v_max[0])
        denom = xp.sqrt(v, out=work)
        denom /= bias2_sqrt
        denom += eps
        step = xp.divide(m, denom, out=work)
        step *= step_size
        param -= step

    blockwise(update, param, grad, m, v, *(() if v_max is None else (v_max,)))
