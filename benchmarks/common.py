"""Timing helpers shared by the benchmarks: medians, interleaved runs, memory, tables.

Timings on a busy machine are noisy, and the noise drifts (another process starts, the CPU
clocks down). Two habits keep comparisons honest:

- report the **median** of many repeats after a warm-up, never the mean (one slow outlier,
  such as the first touch of freshly mapped memory, cannot move it);
- run the contenders **interleaved** (minitx, torch, minitx, torch, ...), so a slow stretch of
  the machine hits both alike instead of whichever happened to run then;
- let each timed call start on **quiet cores** (``settle``): after a matrix product, OpenBLAS's
  worker threads keep spinning on their cores for a while (about 2²⁸ clock ticks, 0.1 s here)
  waiting for the next one, and PyTorch's OpenMP threads do the same after a parallel region.
  Interleaved without a pause, each framework's step would share its cores with the other's
  spinning threads, which no user of one framework ever sees (it made PyTorch's ViT step 473
  instead of 419 ms here, and minitx's not measurably slower).

The flag types at the end (:func:`int_at_least`, :func:`int_list`) make a bad count or size end
a benchmark at once with argparse's one-line error (exit code 2), before any timing.
"""

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def training_step(loss_fn, opt):
    """The step function the model benchmarks time, the same for minitx and PyTorch: loss_fn()
    computes a batch's scalar loss (forward), then backward, the optimizer's update and the
    release of the gradients; it returns the loss as a float."""

    def step():
        loss = loss_fn()
        loss.backward()
        opt.step()
        opt.zero_grad()  # both frameworks drop the gradient arrays (set to None)
        return loss.item()

    return step


def time_once(fn):
    """Return the wall-clock seconds of one call of `fn()`.

    The garbage collector is paused during the call, as :mod:`timeit` does, so a collection
    triggered by someone else's garbage is not billed to `fn`.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def median_time(fn, repeat=20, warmup=2):
    """Return the median seconds of `repeat` calls of `fn()`, after `warmup` untimed calls.

    >>> median_time(lambda: None, repeat=3, warmup=0) < 1.0
    True
    """
    return interleaved_medians({"fn": fn}, repeat, warmup)["fn"]


SETTLE = 0.3  # seconds of quiet before a timed call: OpenBLAS's spin, 2²⁸ ticks, at ≥ 1 GHz


def interleaved_samples(fns, repeat=20, warmup=2, settle=0.0, rewarm=False):
    """Time several callables in turns and return every timed sample of each, in seconds.

    Round r calls every function once, starting with a different one each round (a rotation),
    so no contender always runs right after the same neighbour, e.g. on the caches it left.

    Args:
        fns: dict name -> zero-argument callable (one full measured step).
        repeat: timed rounds; each function is timed `repeat` times.
        warmup: untimed rounds first (allocator, BLAS thread pool, caches).
        settle: seconds to sleep before each timed call (outside the timing), so that the
            thread pools of the call before have stopped spinning (:data:`SETTLE`).
        rewarm: after the pause, call the function once untimed before its timed call, so
            that it starts as it would in a loop of calls: its own threads awake, the core's
            clock up. For calls of a few milliseconds (single ops), where waking a sleeping
            pool is a large part of one call; a training step wakes them once in hundreds of
            products.
    Returns:
        dict name -> list of `repeat` seconds, in the order of `fns`.

    >>> [len(v) for v in interleaved_samples({"a": lambda: None, "b": lambda: None}, 3, 1).values()]
    [3, 3]
    """
    names = list(fns)
    samples = {name: [] for name in names}
    for _ in range(warmup):
        for name in names:
            fns[name]()
    gc.collect()  # start clean; between timed calls gc runs as usual, outside the timing
    for r in range(repeat):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            time.sleep(settle)
            if rewarm:
                fns[name]()
            samples[name].append(time_once(fns[name]))
    return samples


def interleaved_medians(fns, repeat=20, warmup=2):
    """Like :func:`interleaved_samples`, but return dict name -> median seconds.

    >>> sorted(interleaved_medians({"a": lambda: None, "b": lambda: None}, 3, 1))
    ['a', 'b']
    """
    samples = interleaved_samples(fns, repeat, warmup)
    return {name: statistics.median(times) for name, times in samples.items()}


def relative_spread(times):
    """Return the interquartile range over the median: how far to trust that median.

    A few percent is a quiet machine; tens of percent means other work shared the cores and
    single rows should be rerun before anyone reads much into them.

    >>> relative_spread([1.0, 1.0, 1.0, 1.0])
    0.0
    """
    if len(times) < 4:
        return float("nan")  # quartiles of fewer samples say nothing
    q1, median, q3 = statistics.quantiles(times, n=4)
    return (q3 - q1) / median


def peak_traced_bytes(fn):
    """Return the peak bytes allocated through Python's tracemalloc during one call of `fn()`.

    NumPy reports its array buffers to tracemalloc, so for minitx this is the peak of NumPy
    arrays plus Python objects made during the call, above what was live before it (inputs
    not counted). PyTorch's CPU allocator does not report to tracemalloc: for torch the number
    is meaningless and callers should not show it.
    """
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def max_scaled_error(actual, expected):
    """Return max |actual − expected| / max |expected|: the worst error relative to the scale.

    Dividing by the largest magnitude (not element by element) keeps near-zero entries from
    turning float32 rounding into huge relative errors.

    >>> max_scaled_error(np.array([1.0, 4.5]), np.array([1.0, 4.0]))
    0.125
    """
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} vs {expected.shape}")
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    error = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    return error / scale if scale > 0 else error


def format_table(headers, rows):
    """Return rows of strings as a text table, numbers right-aligned, text left-aligned.

    >>> print(format_table(["op", "ms"], [["add", "1.5"]]))
    op   ms
    ---  ---
    add  1.5
    """
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]

    def line(cells):
        out = []
        for cell, width in zip(cells, widths, strict=True):
            cell = str(cell)
            numeric = cell.replace(".", "", 1).replace("x", "").strip().isdigit()
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule] + [line(row) for row in rows])


def describe_environment(torch=None):
    """Return lines describing what the timings depend on: versions, cores and thread pools.

    NumPy's element-wise ufuncs run on one thread; only its BLAS (matmul) is multi-threaded.
    PyTorch parallelizes element-wise kernels too, so on several cores some of its lead is
    threads, not algorithm. The lines make that visible next to the numbers.

    Args:
        torch: the imported torch module, or None when it is not installed.
    """
    lines = [
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} logical CPUs ({platform.processor() or platform.system()})",
        f"numpy {np.__version__}",
    ]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines.append("  thread pools: unknown (pip install threadpoolctl to list them)")
    else:
        for pool in threadpool_info():
            kernel = f", kernel {pool['architecture']}" if pool.get("architecture") else ""
            lines.append(f"  {pool['user_api']} {pool['internal_api']} {pool.get('version')}: "
                         f"{pool['num_threads']} threads{kernel} "
                         f"({os.path.basename(pool['filepath'])})")
    if torch is None:
        lines.append("torch: not installed (minitx timings only)")
    else:
        lines.append(f"torch {torch.__version__}: {torch.get_num_threads()} intra-op threads, "
                     f"{torch.get_num_interop_threads()} inter-op threads")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            lines.append(f"  {var}={os.environ[var]}")
    lines.append(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    return lines


# The product the peak is measured on: (tokens, width) @ (width, 4 · width), the shape of the
# MLP's first layer in the benchmark steps (a batch of 64 sequences of 64 tokens, width 256).
PEAK_GEMM = (4096, 256, 1024)


GEMM_REPEAT = 10  # products per timed call: the first one after a step wakes BLAS's threads


def gemm_contenders(torch=None, shape=PEAK_GEMM):
    """Zero-argument callables that run GEMM_REPEAT float32 (n, k) @ (k, m) products: NumPy's
    BLAS and, if given, torch. Timed beside the training steps (interleaved with them), they give
    the matmul peak under the same load (:func:`gemm_gflops`).

    >>> sorted(gemm_contenders(shape=(8, 8, 8)))
    ['gemm numpy']
    """
    n, k, m = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, k), dtype=np.float32)
    b = rng.standard_normal((k, m), dtype=np.float32)
    fns = {"gemm numpy": lambda: [a @ b for _ in range(GEMM_REPEAT)]}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fns["gemm torch"] = lambda: [ta @ tb for _ in range(GEMM_REPEAT)]
    return fns


def gemm_gflops(seconds, shape=PEAK_GEMM):
    """GFLOP/s of a call of :func:`gemm_contenders` that took `seconds`: 2·n·k·m operations
    per product."""
    n, k, m = shape
    return GEMM_REPEAT * 2 * n * k * m / seconds / 1e9


# torch.nn.TransformerEncoderLayer's feed-forward Linears, and where minitx's layers keep them
TORCH_FFN_NAMES = {".linear1.": ".ffn.linear1.", ".linear2.": ".ffn.linear2."}


def copy_into_torch(model, twin, renames=None, extra=None):
    """Load a minitx model's parameters into its PyTorch twin (in place); return the twin.

    Each of the twin's names is looked up among the minitx model's after the first matching
    substitution of `renames` ({torch's part: minitx's part}, tried in order); PyTorch's
    ``in_proj_weight``/``in_proj_bias`` ([W^Q; W^K; W^V] stacked) are built from minitx's
    separate ``q_proj``/``k_proj``/``v_proj``. `extra` adds arrays by minitx name (a tied
    weight that ``named_parameters`` lists once, say).
    """
    import torch

    ours = {name: p.numpy() for name, p in model.named_parameters()} | (extra or {})
    state = {}
    for name in twin.state_dict():
        mine = name
        for theirs, replacement in (renames or {}).items():
            if theirs in name:
                mine = name.replace(theirs, replacement)
                break
        prefix, _, leaf = mine.rpartition(".")
        if leaf in ("in_proj_weight", "in_proj_bias"):  # [W^Q; W^K; W^V] stacked
            kind = leaf.rpartition("_")[2]
            value = np.concatenate([ours[f"{prefix}.{q}_proj.{kind}"] for q in "qkv"])
        else:
            value = ours[mine]
        state[name] = torch.from_numpy(np.ascontiguousarray(value))
    twin.load_state_dict(state)
    return twin


# ---- the command line ---------------------------------------------------------------------------

def int_at_least(low):
    """An argparse ``type=`` for an integer >= `low`: ``--repeat 0`` ends the program with a
    usage error naming the flag, not with a statistics error after the warm-up.

    >>> int_at_least(1)("3")
    3
    """

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in its messages
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def seconds(text):
    """An argparse ``type=`` for a pause in seconds: a number from 0 to 60 (a pause before each
    of hundreds of timed calls; a typo such as 1e9 would never end).

    >>> seconds("0.3")
    0.3
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to 60, got {text}")
    return value


seconds.__name__ = "float"


def int_list(text):
    """An argparse ``type=`` for positive integers separated by commas, such as ``8,16,24``.

    >>> int_list("8, 16,24")
    [8, 16, 24]
    """
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, "
                                         f"such as 8,16,24; got {text!r}")
    return values


def make_out_dir(folder, parser):
    """Create the output folder now, so that one that cannot be written ends the program with a
    usage error before the timings rather than with a traceback after them."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        parser.error(f"--out {folder}: cannot write there ({error.strerror or error})")
    return Path(folder)
