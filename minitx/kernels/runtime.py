"""How a kernel runs: compiled or in NumPy, on one thread or several, in cache-sized blocks."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

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
    or MINITX_NUM_THREADS (a number, or "blas": as many as NumPy's BLAS) says otherwise: two
    did not make a ViT or Swin step faster on the 2-core machine measured, where BLAS's
    threads hold both cores between products (docs/performance.md)."""
    global _threads
    if _threads is None:
        chosen = os.environ.get("MINITX_NUM_THREADS", "").strip() or "1"
        if chosen == "blas":
            _threads = _blas_threads()
        elif chosen.isdigit() and int(chosen) > 0:
            _threads = int(chosen)
        else:
            raise ValueError(f"MINITX_NUM_THREADS must be a positive integer or 'blas', got "
                             f"{chosen!r}")
    return _threads


def set_thread_count(n):
    """Use `n` threads for element-wise kernels from now on (None: the default again)."""
    global _threads, _pool
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"set_thread_count: n must be a positive int or None, got {n!r}")
    with _pool_lock:  # no kernel submits to the pool while it is replaced
        if _pool is not None:
            _pool.shutdown()  # the tasks already submitted still run
        _threads, _pool = None if n is None else int(n), None


_pool_lock = threading.Lock()


def _run_parallel(tasks):
    """Run the zero-argument callables `tasks`: the first on the calling thread, the others on
    the pool; return when all of them are done."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, thread_count() - 1),
                                       thread_name_prefix="minitx-kernel")
        futures = [_pool.submit(task) for task in tasks[1:]]
    try:
        tasks[0]()
    finally:
        for future in futures:
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
# The compiled loops: when they run
# --------------------------------------------------------------------------------------------

_compiled = None  # minitx.kernels.compiled once loaded; False when off or numba is missing


def set_compiled(enabled):
    """Use the compiled loops where they apply (True), never (False), or as by default (None:
    when numba is installed and the environment variable MINITX_COMPILED is not "0")."""
    global _compiled
    if enabled not in (True, False, None):
        raise ValueError(f"set_compiled: enabled must be True, False or None, got {enabled!r}")
    _compiled = None if enabled is None else (_load_compiled(required=True) if enabled
                                               else False)


def compiled_enabled():
    """True when the compiled loops are in use (for C-contiguous float32 NumPy arrays)."""
    global _compiled
    if _compiled is None:
        _compiled = _compiled_wanted() and _load_compiled()
    return bool(_compiled)


def _compiled_wanted():
    """MINITX_COMPILED as a switch: 0/false/off/no turn the loops off, 1/true/on/yes or unset
    leave them on; anything else is an error rather than silently "on"."""
    value = os.environ.get("MINITX_COMPILED", "").strip().lower()
    if value in ("0", "false", "off", "no"):
        return False
    if value in ("", "1", "true", "on", "yes"):
        return True
    raise ValueError(f"MINITX_COMPILED must be 0 or 1 (or false/true, off/on, no/yes), got "
                     f"{os.environ['MINITX_COMPILED']!r}")


def _load_compiled(required=False):
    try:
        from minitx.kernels import compiled
    except ImportError as error:  # numba is an optional dependency
        if required:
            raise ImportError("set_compiled(True): the compiled loops need numba "
                              "(pip install minitx[fast])") from error
        return False
    return compiled


def loops_for(*arrays):
    """The compiled loops when they can run on `arrays` (each a float32 NumPy array, or None),
    else None: the caller then takes the NumPy spelling. The loops read C-contiguous arrays
    (a caller copies a strided input with ``np.ascontiguousarray``, so that a result does not
    depend on the layout) and write only into C-contiguous ones."""
    if not compiled_enabled():
        return None
    if all(a is None or (isinstance(a, np.ndarray) and a.dtype == np.float32) for a in arrays):
        return _compiled
    return None
