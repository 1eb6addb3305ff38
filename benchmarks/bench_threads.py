"""Where a second thread could help a training step, and what it did: the measurements behind
the "Threads" section of docs/performance.md.

A PyTorch step runs its products and its element-wise kernels on one pool of threads. A minitx
step has two candidates: NumPy's BLAS (OpenBLAS keeps its own threads, which spin for a while
after each product, waiting for the next) and a pool for the compiled kernels. Each
configuration below runs in a fresh process (thread pools and BLAS limits are per process) and
times the minitx training step of each ``--model`` (median of ``--repeat`` steps), and the
share of it spent in the GELU and softmax kernels:

- ``blas``: the default. BLAS uses its threads for the products; the kernels run on the
  calling thread.
- ``pool``: the same with minitx's kernel pool on two threads (``set_thread_count(2)``): the
  compiled loops release Python's lock, so pieces of one pass run side by side.
- ``omp``: GELU, softmax and their backward compiled with numba's ``parallel=True`` (rows or
  element chunks spread over numba's OpenMP or TBB threads); BLAS as by default.
- ``one-pool``: BLAS on one thread (threadpoolctl), each product split in two halves on
  minitx's pool (x Wᵀ and g W by rows, gᵀx along the summed axis, whose two halves are then
  added), and the kernels on that same pool: one set of threads for everything, as PyTorch.
- ``callback``: one pool without splitting anything: OpenBLAS (0.3.27 and later) lets a
  program run the pieces of its parallel products on threads of its own
  (``openblas_set_threads_callback_function``); here they go to minitx's kernel pool, which
  also runs the kernels on two threads. OpenBLAS's own threads then never start.

``--softmax`` also times the softmax kernel alone, before any product has run (OpenBLAS's
threads asleep), where a second thread does pay.

Usage::

    python -m benchmarks.bench_threads                   # swin and vit, all configurations
    python -m benchmarks.bench_threads --model swin --config blas --config omp --softmax
"""

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import positive_int

CONFIGS = ("blas", "pool", "omp", "one-pool", "callback")
KERNELS = ("gelu", "gelu_backward", "softmax", "softmax_backward")


# ---------------------------------------------------------------------------------------------
# The experimental spellings (only here: none of them made a step faster)
# ---------------------------------------------------------------------------------------------

def parallel_loops():
    """GELU and softmax loops compiled with numba's parallel=True, from the helpers of
    minitx.kernels.compiled (same formulas): a namespace standing in for that module."""
    import types

    import numba

    from minitx.kernels import compiled as C

    parallel = numba.njit(nogil=True, fastmath=C.FAST, error_model="numpy", parallel=True)
    chunk = 4096  # elements per piece of a flat pass

    @parallel
    def gelu(x, form, y):
        for c in numba.prange((x.size + chunk - 1) // chunk):
            for i in range(c * chunk, min(x.size, (c + 1) * chunk)):
                y[i] = C._gelu_form(x[i], form)[0]

    @parallel
    def gelu_backward(x, gy, form, gx):
        for c in numba.prange((x.size + chunk - 1) // chunk):
            for i in range(c * chunk, min(x.size, (c + 1) * chunk)):
                gx[i] = gy[i] * C._gelu_form(x[i], form)[1]

    @parallel
    def softmax(x, y):  # rows without +inf (the benchmark's)
        for i in numba.prange(x.shape[0]):
            m = C._row_max(x, i)
            m = m if m > -np.inf else C._ZERO
            s = C._ZERO
            for j in range(x.shape[1]):
                e = C._exp(x[i, j] - m)
                y[i, j] = e
                s += e
            for j in range(x.shape[1]):
                y[i, j] *= C._ONE / s

    @parallel
    def softmax_backward(g, y, gx):
        for i in numba.prange(g.shape[0]):
            d = C._ZERO
            for j in range(g.shape[1]):
                d += g[i, j] * y[i, j]
            for j in range(g.shape[1]):
                gx[i, j] = y[i, j] * (g[i, j] - d)

    loops = types.SimpleNamespace(**{name: getattr(C, name) for name in dir(C)
                                     if not name.startswith("__")})
    loops.gelu, loops.gelu_backward = gelu, gelu_backward
    loops.softmax, loops.softmax_backward = softmax, softmax_backward
    return loops


def split_products():
    """Replace minitx.kernels.matmul / matmul_summed by products split in two halves run on
    minitx's kernel pool (BLAS itself on one thread)."""
    from threadpoolctl import threadpool_limits

    from minitx import kernels
    from minitx.kernels import products, runtime

    threadpool_limits(1, "blas")
    kernels.set_thread_count(2)
    plain_matmul, fold = products.matmul, products.fold

    def matmul(a, b):
        if b.ndim != 2 or a.ndim < 2 or a.size * b.shape[1] < 1 << 20:
            return plain_matmul(a, b)
        rows = fold(a)
        out = np.empty((rows.shape[0], b.shape[1]), np.result_type(a, b))
        h = rows.shape[0] // 2
        runtime._run_parallel([lambda: np.matmul(rows[:h], b, out=out[:h]),
                               lambda: np.matmul(rows[h:], b, out=out[h:])])
        return out.reshape(a.shape[:-1] + b.shape[-1:])

    def matmul_summed(a, b):
        at, b = fold(a).T, fold(b)
        h = b.shape[0] // 2
        if h < 256:
            return at @ b
        halves = [None, None]

        def half(i, part):
            halves[i] = at[:, part] @ b[part]

        runtime._run_parallel([lambda: half(0, slice(0, h)), lambda: half(1, slice(h, None))])
        return halves[0] + halves[1]

    kernels.matmul, kernels.matmul_summed = matmul, matmul_summed


def run_blas_on_kernel_pool():
    """Hand OpenBLAS's parallel work to minitx's kernel pool (two threads) through its threads
    callback: OpenBLAS cuts a product into jobs and calls back with them; each job runs on
    a pool thread (ctypes releases Python's lock while the job's C code runs)."""
    import ctypes

    from threadpoolctl import threadpool_info

    from minitx import kernels
    from minitx.kernels import runtime

    job_type = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
    callback_type = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                     ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int)

    def run_jobs(sync, do_job, jobs, job_size, job_data, job_arg):
        job = ctypes.cast(do_job, job_type)
        runtime._run_parallel([lambda i=i: job(i, job_data + i * job_size, job_arg)
                               for i in range(jobs)])

    libraries = [info for info in threadpool_info() if info["internal_api"] == "openblas"]
    names = ("scipy_openblas_set_threads_callback_function64_",
             "scipy_openblas_set_threads_callback_function",
             "openblas_set_threads_callback_function")
    library = ctypes.CDLL(libraries[0]["filepath"]) if libraries else None
    setter = next((getattr(library, n) for n in names if hasattr(library, n)), None)
    if setter is None:
        sys.exit("configuration callback: NumPy's BLAS has no threads callback "
                 "(OpenBLAS 0.3.27 or later)")
    kernels.set_thread_count(2)
    run_blas_on_kernel_pool.keep = callback_type(run_jobs)  # alive as long as OpenBLAS uses it
    setter(run_blas_on_kernel_pool.keep)


def configure(config):
    """Set this process up as `config` says."""
    from minitx import kernels
    from minitx.kernels import runtime

    if config == "pool":
        kernels.set_thread_count(2)
    elif config == "omp":
        runtime.compiled_enabled()
        runtime._compiled = parallel_loops()
    elif config == "one-pool":
        split_products()
    elif config == "callback":
        run_blas_on_kernel_pool()


# ---------------------------------------------------------------------------------------------
# One configuration, in this process
# ---------------------------------------------------------------------------------------------

def run_child(config, models, repeat, softmax):
    from minitx import kernels

    kernels.keep_host_memory()
    configure(config)
    spent = dict.fromkeys(KERNELS, 0.0)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    for name in KERNELS:
        setattr(kernels, name, timed(name, getattr(kernels, name)))
    result = {}
    if softmax:  # first: no products have run, so BLAS's threads are asleep
        x = np.random.default_rng(0).standard_normal((64 * 4 * 128, 128), dtype=np.float32)
        for _ in range(3):
            kernels.softmax(x)
        times = []
        for _ in range(50):
            start = time.perf_counter()
            kernels.softmax(x)
            times.append(time.perf_counter() - start)
        result["softmax alone"] = {"step": statistics.median(times)}
    for model in models:
        step, _ = importlib.import_module(f"benchmarks.step_{model}").build_minitx(0)
        for _ in range(3):
            step()
        spent.update(dict.fromkeys(KERNELS, 0.0))
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        result[model] = {"step": statistics.median(times),
                         "kernels": {k: v / repeat for k, v in spent.items()}}
    print(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# Main: each configuration in a fresh process
# ---------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_threads",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", choices=("vit", "swin", "transformer",
                                                             "image_gpt", "clip"),
                        help="a model's step (repeatable; default: swin and vit)")
    parser.add_argument("--config", action="append", choices=CONFIGS,
                        help="a configuration (repeatable; default: all)")
    parser.add_argument("--repeat", type=positive_int, default=15,
                        help="timed steps, of which the median (default: %(default)s)")
    parser.add_argument("--rounds", type=positive_int, default=2,
                        help="run the configurations in turn this many times (default: "
                             "%(default)s)")
    parser.add_argument("--softmax", action="store_true", help="also time softmax alone")
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    models, configs = args.model or ["swin", "vit"], args.config or list(CONFIGS)
    if args.child:
        return run_child(args.child, models, args.repeat, args.softmax)

    print(f"{', '.join(models)}: median of {args.repeat} minitx steps per process; "
          f"{args.rounds} rounds of {', '.join(configs)} in turn; ms")
    runs = {config: [] for config in configs}
    for round_ in range(args.rounds):
        for config in configs:
            command = [sys.executable, "-m", "benchmarks.bench_threads", "--child", config,
                       "--repeat", str(args.repeat)]
            command += [flag for m in models for flag in ("--model", m)]
            command += ["--softmax"] if args.softmax else []
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"configuration {config} failed:\n{done.stderr[-2000:]}")
            runs[config].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  round {round_ + 1}, {config}: done", flush=True)
    for config, results in runs.items():
        for what in results[0]:
            steps = ", ".join(f"{1e3 * r[what]['step']:.1f}" for r in results)
            line = f"{config:9s} {what:14s} {steps}"
            if "kernels" in results[0][what]:
                kernel = statistics.median(sum(r[what]["kernels"].values()) for r in results)
                line += f"   of which GELU and softmax, forward and backward: {1e3 * kernel:.1f}"
            print(line)


if __name__ == "__main__":
    main()
