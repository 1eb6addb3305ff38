"""Training-step time and peak memory of each model family, minitx beside PyTorch.

    python -m benchmarks.bench_models [--model NAME ...] [--repeat N] [--warmup N] [--quick]
                                      [--profile] [--threads N] [--no-torch] [--no-memory]

Plug-in interface. Each model family has a module ``benchmarks/step_<name>.py`` (today
``step_transformer``, ``step_vit``, ``step_swin``, ``step_image_gpt``, ``step_clip``); every
such module that exists is imported and must expose:

- ``NAME``: the family's name, used by ``--model`` and as the table's row;
- ``build_minitx(seed)`` -> ``(step, info)``: ``step()`` runs ONE full training step of the
  family's reference configuration (forward, loss, backward, optimizer update, zero the
  gradients) on a fixed batch and returns the loss as a float; ``info`` is a dict with
  ``"description"`` (or ``"shape"``): the configuration in one line, and ``"parameters"``: the
  parameter count (``"model"`` optional);
- ``build_torch(seed)`` -> the same for the same network written in PyTorch, starting from the
  same weights, or None when PyTorch is not installed.

A new family needs nothing here: drop a ``step_<name>.py`` into ``benchmarks/``.

How it measures:

- **time**: the two contenders' steps are interleaved (minitx, torch, minitx, ...) after
  `--warmup` untimed rounds, each timed step after `--settle` seconds of quiet (so it does not
  share its cores with the other framework's spinning threads), and the table shows the median
  of `--repeat` (at least 20) steps and the interquartile spread (see :mod:`benchmarks.common`).
  The ratio is minitx / torch: below 1.0, minitx is faster;
- **peak memory**: each framework runs in a fresh subprocess, which builds the step, notes its
  resident set size (RSS), runs three steps and reports the peak RSS (VmHWM, reset after the
  build) minus that baseline: the memory the training steps added (activations, gradients,
  optimizer state, allocator slack), measured the same way for both. minitx's NumPy
  allocations are also traced with tracemalloc during one step (the "traced" column);
  PyTorch's CPU allocator does not report to tracemalloc, so there is no such column for it;
- **CPU time**: each step's process CPU time is recorded too. With ``--threads 1`` it is what
  the wall time would be on an idle core, so the "CPU" columns stay meaningful when the machine
  is shared (with several threads it sums them, and says little);
- **FLOPs and the peak**: the floating-point operations of a step are 6 × the multiply-adds
  of its forward matrix products (``minitx.count_macs``: 2 per multiply-add forward, twice as
  many backward); the machine's float32 matmul peak is the faster of NumPy and PyTorch on one
  GEMM of the steps' typical shape, timed interleaved with the steps (so under the same load;
  :func:`benchmarks.common.gemm_contenders`), and "% peak" is FLOPs / step time / peak: the
  share of the machine's matmul speed a framework reaches;
- ``--profile`` prints cProfile's top functions of five minitx steps, the wall and CPU
  time of each op and kernel in a step (:func:`profile_by_op`), and the step's limit: the
  time inside BLAS's products, and the step's time if everything else ran perfectly split
  over the cores (:func:`product_floor`);
- the C allocator keeps freed memory for reuse (``minitx.backend.keep_host_memory``, as the
  examples do; it speeds up both frameworks); ``--os-allocator`` leaves glibc's defaults.

The machine's thread pools, BLAS kernel and versions are printed first. minitx's element-wise
kernels run on one thread unless MINITX_NUM_THREADS says otherwise
(``minitx.kernels.thread_count``); ``--threads N`` sets BLAS's, the kernels' and torch's to N.

A machine may pin OpenBLAS to an older kernel (``OPENBLAS_CORETYPE``); NumPy on a user's
machine picks its own. To measure that, unset the pin for the benchmark only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.bench_models
"""

import argparse
import cProfile
import gc
import importlib
import io
import json
import os
import pkgutil
import pstats
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_ops import limit_threads
from benchmarks.common import (
    PEAK_GEMM,
    SETTLE,
    describe_environment,
    format_table,
    gemm_contenders,
    gemm_gflops,
    interleaved_samples,
    non_negative_int,
    peak_traced_bytes,
    positive_int,
    relative_spread,
    seconds,
)
from minitx import backend, count_macs, kernels

HERE = Path(__file__).resolve().parent
MB = 2 ** 20


def step_modules(names=None):
    """Import every ``benchmarks/step_*.py`` (those named in `names`, if given), by NAME."""
    modules = {}
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if info.name.startswith("step_"):
            module = importlib.import_module(f"benchmarks.{info.name}")
            modules[module.NAME] = module
    if names:
        unknown = sorted(set(names) - set(modules))
        if unknown:
            raise ValueError(f"unknown --model {', '.join(unknown)}; available: "
                             f"{', '.join(sorted(modules))}")
        modules = {name: modules[name] for name in names}
    return modules


def rss_bytes():
    """The current resident set size of this process (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize()


def memory_child(name, framework, threads=None, seed=0):
    """In a fresh process: build one step, run three, print the peak RSS growth as JSON."""
    if threads is not None:
        limit_threads(threads, importlib.import_module("torch") if framework == "torch" else None)
    module = step_modules([name])[name]
    built = (module.build_minitx if framework == "minitx" else module.build_torch)(seed)
    step = built[0]
    if framework == "minitx":  # compile (or load) the loops now, as torch loaded its kernels
        kernels.warm_up()      # when it was imported: the steps' memory is measured below
    baseline = rss_bytes()
    with open("/proc/self/clear_refs", "w") as f:  # "5": the peak RSS starts again from now
        f.write("5")
    for _ in range(3):
        step()
    print(json.dumps({"peak_rss_growth": max(peak_rss_bytes() - baseline, 0)}))


def peak_rss_bytes():
    """The peak resident set size of this process (VmHWM in /proc/self/status, Linux).

    Not ``getrusage``'s ``ru_maxrss``: Linux carries that over from the parent through fork and
    exec, so the child of a large benchmark process would report the parent's size as its own.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_rss_growth(name, framework, threads=None, os_allocator=False):
    """Run :func:`memory_child` in a subprocess; return bytes, or None if it failed."""
    extra = ([] if threads is None else ["--threads", str(threads)]) + (
        ["--os-allocator"] if os_allocator else [])
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_models", "--memory-child", name, framework,
         *extra], capture_output=True, text=True, cwd=HERE.parent, timeout=900)
    if result.returncode != 0:
        print(f"  memory of {name}/{framework} not measured: {result.stderr.strip()[-300:]}")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_rss_growth"]


def with_cpu_time(step, record):
    """Wrap `step` so that each call appends its process CPU seconds to `record`.

    With one thread per framework (--threads 1) the CPU time of a step is what its wall time
    would be on an idle core, so it stays meaningful on a machine shared with other work.
    """
    def timed_step():
        start = time.process_time()
        step()
        record.append(time.process_time() - start)

    return timed_step


def profile(step, count=5, top=15):
    """Return cProfile's table of `count` calls of `step`, sorted by time in each function."""
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [step() for _ in range(count)])
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


# The kernels that run BLAS's matrix products: Linear's forward and both its gradients, its
# bias gradient (a matrix-vector product), attention's output and its gradients. Attention's
# scores Q Kᵀ and dL/dP' are products too, written inline in the op (not counted here).
PRODUCT_KERNELS = ("matmul", "matmul_summed", "matmul_like", "sum_leading")


def product_floor(wall, per_wall, cores):
    """What the profile says about the step's limit: (products, rest, floor) in seconds a step,
    where products is the wall time inside :data:`PRODUCT_KERNELS`, rest everything else, and
    floor = products + rest / cores, the step's time if every other pass were split perfectly
    over `cores` while the products ran as fast as they do now."""
    products = sum(per_wall.get(f"kernels.{name}", 0.0) for name in PRODUCT_KERNELS)
    rest = wall - products
    return products, rest, products + rest / cores


def profile_by_op(step, count=5):
    """Seconds per step in each op's forward and backward (and in the optimizer), from `count`
    steps: every Function subclass's methods and each kernel are wrapped with a timer for the
    run. Kernels run inside ops, so their time is part of their op's too.

    Returns (wall, cpu): each a pair (seconds a step, {label: seconds a step}). Wall time is
    what a step waits for; CPU time (all threads) is what it costs on an idle machine with
    --threads 1. With more threads the two differ: a product on two threads costs twice its
    wall time, and single-threaded work after a product is also billed for OpenBLAS's threads,
    which keep spinning for a while on the other core."""
    import minitx.ops  # noqa: F401  (every op registered)
    from minitx.ops.common import OPS
    from minitx.optim import Adam

    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    totals = {clock: {} for clock in clocks}

    def timed(label, fn):
        def wrapper(*args, **kwargs):
            start = {clock: now() for clock, now in clocks.items()}
            try:
                return fn(*args, **kwargs)
            finally:
                for clock, now in clocks.items():
                    spent = totals[clock]
                    spent[label] = spent.get(label, 0.0) + now() - start[clock]
        return wrapper

    originals = [(cls, name, getattr(cls, name)) for cls in OPS.values()
                 for name in ("forward", "backward") if name in vars(cls)]
    originals += [(Adam, "step", Adam.step)]
    originals += [(kernels, name, getattr(kernels, name)) for name in (
        "softmax", "softmax_backward", "layer_norm", "layer_norm_backward", "cross_entropy",
        "cross_entropy_backward", "gelu", "gelu_backward", "masked_scale", "adam_update",
        *PRODUCT_KERNELS)]
    for owner, name, fn in originals:
        label = (f"kernels.{name}" if owner is kernels else f"{owner.__name__}.{name}")
        setattr(owner, name, timed(label, fn))
    try:
        start = {clock: now() for clock, now in clocks.items()}
        for _ in range(count):
            step()
        elapsed = {clock: now() - start[clock] for clock, now in clocks.items()}
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)
    return tuple((elapsed[clock] / count, {label: t / count for label, t in totals[clock].items()})
                 for clock in clocks)


def bench(module, args, torch):
    """Time one family; return its table row and a dict of the numbers."""
    mx_step, info = module.build_minitx(0)
    contenders = {"minitx": mx_step}
    torch_built = None if args.no_torch else module.build_torch(0)
    if torch_built is not None:
        contenders["torch"] = torch_built[0]
    with count_macs() as counter:  # the minitx step is also the first warm-up
        first = {"minitx": mx_step()}
    first.update({name: step() for name, step in contenders.items() if name != "minitx"})
    flops = 6 * counter.macs  # forward 2 per multiply-add, backward 4
    cpu = {name: [] for name in contenders}
    timed = {name: with_cpu_time(step, cpu[name]) for name, step in contenders.items()}
    gemms = gemm_contenders(torch)
    samples = interleaved_samples({**timed, **gemms}, args.repeat, max(args.warmup - 1, 0),
                                  args.settle)
    gflops = {name: gemm_gflops(statistics.median(samples.pop(name))) for name in gemms}
    peak = max(gflops.values())
    medians = {name: statistics.median(times) for name, times in samples.items()}
    result = {"first_loss": first, "median_s": medians, "flops": flops, "gemm_gflops": gflops,
              "peak_fraction": {name: flops / t / (peak * 1e9) for name, t in medians.items()},
              "cpu_median_s": {name: statistics.median(times[-args.repeat:])  # the timed ones
                               for name, times in cpu.items()},
              "spread": {name: relative_spread(t) for name, t in samples.items()}}
    if not args.no_memory:
        result["traced_bytes"] = peak_traced_bytes(mx_step)
        result["peak_rss_growth"] = {name: peak_rss_growth(module.NAME, name, args.threads,
                                                           args.os_allocator)
                                     for name in contenders}
    if args.profile:
        result["profile"] = profile(mx_step)
        result["op_profile"] = profile_by_op(mx_step)

    def ms(name):
        if name not in medians:
            return "-"
        spread = result["spread"][name]  # NaN with fewer than 4 samples
        return f"{1e3 * medians[name]:.1f}" + ("" if spread != spread else f" ±{100 * spread:.0f}%")

    def mem(name):
        value = result.get("peak_rss_growth", {}).get(name)
        return "-" if value is None else f"{value / MB:.0f}"

    def cpu_ms(name):
        return f"{1e3 * result['cpu_median_s'][name]:.1f}" if name in medians else "-"

    def of_peak(name):
        return f"{100 * result['peak_fraction'][name]:.0f}%" if name in medians else "-"

    ratio = medians["minitx"] / medians["torch"] if "torch" in medians else None
    cpu_ratio = (result["cpu_median_s"]["minitx"] / result["cpu_median_s"]["torch"]
                 if "torch" in medians else None)
    result["ratio"], result["cpu_ratio"] = ratio, cpu_ratio
    traced = result.get("traced_bytes")
    row = [module.NAME, info.get("description", info.get("shape", "")),
           f"{info.get('parameters', 0) / 1e6:.2f}M", ms("minitx"), ms("torch"),
           "-" if ratio is None else f"{ratio:.2f}x", cpu_ms("minitx"), cpu_ms("torch"),
           "-" if cpu_ratio is None else f"{cpu_ratio:.2f}x", mem("minitx"), mem("torch"),
           "-" if traced is None else f"{traced / MB:.0f}", f"{flops / 1e9:.1f}",
           "/".join(f"{v:.0f}" for v in gflops.values()), of_peak("minitx"), of_peak("torch")]
    return row, result


def parse_args(argv=None):
    """The command line, checked: bad values end the program with a usage error (exit code 2)
    before anything is timed. Returns (args, the step modules to time)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_models",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append",
                        help="only this family (repeatable; default: every step_*.py)")
    parser.add_argument("--repeat", type=positive_int,
                        help="timed steps, of which the median (default: 20, or 3 with --quick)")
    parser.add_argument("--warmup", type=non_negative_int,
                        help="untimed steps first (default: 3, or 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 3 timed steps, 1 warm-up, no memory (flags given "
                             "explicitly win)")
    parser.add_argument("--profile", action="store_true", help="cProfile the minitx step")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="cap torch's threads and NumPy's BLAS threads at N (a busy "
                             "machine: 1 avoids threads waiting for each other's cores; "
                             "default: leave them at one per core)")
    parser.add_argument("--no-torch", action="store_true", help="time minitx alone")
    parser.add_argument("--settle", type=seconds, default=None, metavar="SECONDS",
                        help=f"pause before each timed call, so that the other framework's "
                             f"spinning threads are asleep (default: {SETTLE}, or 0 with "
                             f"--quick)")
    parser.add_argument("--os-allocator", action="store_true",
                        help="leave glibc's malloc settings alone (by default freed memory is "
                             "kept for reuse: minitx.backend.keep_host_memory)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory columns")
    parser.add_argument("--memory-child", nargs=2, metavar=("NAME", "FRAMEWORK"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 20
    if args.warmup is None:
        args.warmup = 1 if args.quick else 3
    if args.settle is None:
        args.settle = 0.0 if args.quick else SETTLE
    args.no_memory = args.no_memory or args.quick
    if args.memory_child:  # a child of peak_rss_growth imports its one family itself
        return args, {}
    try:
        modules = step_modules(args.model)
    except ValueError as error:
        parser.error(str(error))
    return args, modules


def main(argv=None):
    args, modules = parse_args(argv)
    kept = False if args.os_allocator else backend.keep_host_memory()  # for both frameworks
    if args.memory_child:
        return memory_child(*args.memory_child, threads=args.threads)
    if args.repeat < 20 and not args.quick:
        print(f"note: --repeat {args.repeat} is below the 20 steps a reported median needs")
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            args.no_torch = True
    if args.threads is not None:
        limit_threads(args.threads, torch)
    gc.freeze()  # torch's many long-lived objects would make every gc pass slow; skip them
    print("\n".join(describe_environment(torch)))
    print("host allocator: " + ("freed memory kept for reuse by both frameworks "
                                "(minitx.backend.keep_host_memory)" if kept else
                                "the C library's default settings"))
    memory = "no memory" if args.no_memory else (
        "memory: peak RSS growth over 3 steps in a fresh process, and traced NumPy peak (MB)")
    n, k, m = PEAK_GEMM
    print(f"training steps: median of {args.repeat} interleaved steps after {args.warmup} "
          f"warm-up, each after {args.settle:g} s of quiet, wall and CPU time; {memory}; peak "
          f"GFLOP/s: float32 ({n}, {k}) @ ({k}, {m}) in NumPy/torch, timed among the steps; "
          f"% peak = step FLOPs / time / the faster\n")
    headers = ["model", "configuration", "params", "minitx ms", "torch ms", "ratio",
               "minitx CPU ms", "torch CPU ms", "CPU ratio", "minitx MB", "torch MB",
               "traced MB", "GFLOP/step", "peak GFLOP/s", "minitx % peak", "torch % peak"]
    rows, results = [], {}
    for name, module in modules.items():
        row, results[name] = bench(module, args, torch)
        rows.append(row)
        print(f"{name}: " + ", ".join(f"{h} {c}" for h, c in zip(headers[2:], row[2:])),
              flush=True)
    print("\n" + format_table(headers, rows))
    for name, result in results.items():
        losses = ", ".join(f"{k} {v:.4f}" for k, v in result["first_loss"].items())
        print(f"{name}: first-step loss {losses}")
        if "profile" in result:
            print(f"\ncProfile of 5 minitx steps of {name}:\n{result['profile']}")
            (wall, per_wall), (cpu, per_cpu) = result["op_profile"]
            print(f"Time per step by op of {name} ({1e3 * wall:.1f} ms wall, {1e3 * cpu:.1f} "
                  f"ms CPU a step; share of the wall time):")
            for label, t in sorted(per_wall.items(), key=lambda item: -item[1]):
                print(f"  {label:40s} {1e3 * t:8.1f} ms wall {1e3 * per_cpu[label]:8.1f} ms CPU"
                      f"  {100 * t / wall:5.1f}%")
            cores = args.threads or os.cpu_count() or 1
            products, rest, floor = product_floor(wall, per_wall, cores)
            torch_s = result["median_s"].get("torch")
            print(f"Matrix products ({', '.join(PRODUCT_KERNELS)}): {1e3 * products:.1f} ms a "
                  f"step, the rest {1e3 * rest:.1f} ms; with the rest split perfectly over "
                  f"{cores} cores the step would take {1e3 * floor:.1f} ms"
                  + ("" if torch_s is None else
                     f", {floor / torch_s:.2f} of PyTorch's step ({products / torch_s:.2f} "
                     f"for the products alone)"))
    return results


if __name__ == "__main__":
    main()
