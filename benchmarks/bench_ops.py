"""Forward + backward timings of minitx's fused ops, their composites, and PyTorch.

    python -m benchmarks.bench_ops [--repeat N] [--warmup N] [--quick] [--only NAME]
                                   [--profile NAME] [--threads N] [--no-torch]

Each measured step is what training does once per layer: reset the input gradients, run the
op forward (building a fresh graph), then backward from a fixed random upstream gradient. Three
contenders run the same step on copies of the same float32 inputs:

- **fused**: the op of :mod:`minitx.functional` (one Function with a hand-written backward);
- **composite**: its definition in :mod:`minitx.composites`, built from primitive ops, so the
  fused-vs-composite gain is visible;
- **torch**: ``torch.nn.functional`` on the CPU, when PyTorch is installed.

Before any timing, outputs and input gradients are checked against PyTorch (or, without it,
fused against composite); a mismatch stops the run. Timings are medians of interleaved repeats,
each after `--settle` seconds of quiet and one untimed call (see :mod:`benchmarks.common`).
Peak memory is tracemalloc's peak during one minitx step: NumPy reports its buffers there,
PyTorch does not, so torch has no memory column.
"""

import argparse
import cProfile
import gc
import io
import math
import pstats
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import minitx as mt
import minitx.functional as F
from benchmarks.common import (
    SETTLE,
    describe_environment,
    format_table,
    interleaved_samples,
    max_scaled_error,
    non_negative_int,
    peak_traced_bytes,
    positive_int,
    relative_spread,
    seconds,
)
from minitx import backend, composites

TOLERANCE = 1e-4  # worst error / largest magnitude; float32 rounding is ~1e-7 per operation


@dataclass(frozen=True)
class Case:
    """One benchmark row: inputs, which need gradients, and the op in each framework."""

    name: str
    shape: str  # shown in the table
    arrays: dict  # input name -> NumPy array, passed to the ops as keyword arguments
    grads: tuple  # names of the inputs that require grad
    fused: Callable
    composite: Callable
    torch: Callable  # (torch.nn.functional, **inputs) -> torch.Tensor


def make_cases(quick, rng):
    """Return the benchmark cases at transformer-like sizes (tiny ones when `quick`)."""
    B, h, T, d = (2, 2, 8, 4) if quick else (64, 4, 128, 64)  # batch, heads, tokens, head size
    D, D_wide = (8, 16) if quick else (256, 512)  # model widths
    C = 10 if quick else 1000  # classes (vocabulary)
    N = B * T  # rows of a flattened (B, T, ·) batch

    def normal(*shape, std=1.0):
        return (std * rng.standard_normal(shape)).astype(np.float32)

    cases = []
    for causal in (False, True):
        cases.append(Case(
            f"attention{' causal' if causal else ''}", f"q,k,v ({B},{h},{T},{d})",
            {"q": normal(B, h, T, d), "k": normal(B, h, T, d), "v": normal(B, h, T, d)},
            ("q", "k", "v"),
            lambda q, k, v, c=causal: F.scaled_dot_product_attention(q, k, v, causal=c),
            lambda q, k, v, c=causal: composites.scaled_dot_product_attention(q, k, v, causal=c),
            lambda tF, q, k, v, c=causal: tF.scaled_dot_product_attention(q, k, v, is_causal=c),
        ))
    for shape in ((N, D), (B, T, D_wide)):
        width = shape[-1]
        cases.append(Case(
            "layer_norm", str(shape).replace(" ", ""),
            {"x": normal(*shape), "w": 1 + normal(width, std=0.1), "b": normal(width, std=0.1)},
            ("x", "w", "b"),
            lambda x, w, b: F.layer_norm(x, w, b),
            lambda x, w, b: composites.layer_norm(x, w, b),
            lambda tF, x, w, b: tF.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5),
        ))
    for smoothing in (0.0, 0.1):
        cases.append(Case(
            f"cross_entropy{f' ls={smoothing}' if smoothing else ''}", f"({N},{C})",
            {"z": normal(N, C, std=2.0), "t": rng.integers(0, C, size=N, dtype=np.int64)},
            ("z",),
            lambda z, t, s=smoothing: F.cross_entropy(z, t, label_smoothing=s),
            lambda z, t, s=smoothing: composites.cross_entropy(z, t, label_smoothing=s),
            lambda tF, z, t, s=smoothing: tF.cross_entropy(z, t, label_smoothing=s),
        ))
    cases.append(Case(
        "softmax", f"({B},{h},{T},{T})", {"x": normal(B, h, T, T, std=3.0)}, ("x",),
        lambda x: F.softmax(x, -1),
        lambda x: composites.softmax(x, -1),
        lambda tF, x: tF.softmax(x, -1),
    ))
    return cases


# ---------------------------------------------------------------------------------------------
# One measured step per framework
# ---------------------------------------------------------------------------------------------

def minitx_step(op, arrays, grads, upstream):
    """Return step(): reset the grads, run `op` forward, backward(upstream); give (out, grads)."""
    leaves = {name: mt.tensor(a, requires_grad=name in grads) for name, a in arrays.items()}
    params = [leaves[name] for name in grads]

    def step():
        for t in params:
            t.grad = None  # backward adds into .grad: start each repeat from nothing
        out = op(**leaves)
        out.backward(upstream)
        return out.data, {name: t.grad for name, t in zip(grads, params, strict=True)}

    return step


def torch_step(torch, op, arrays, grads, upstream):
    """The same step in PyTorch, on its own copies of the inputs."""
    import torch.nn.functional as tF

    leaves = {name: torch.from_numpy(a.copy()).requires_grad_(name in grads)
              for name, a in arrays.items()}
    params = [leaves[name] for name in grads]
    upstream = torch.from_numpy(upstream.copy())

    def step():
        for t in params:
            t.grad = None
        out = op(tF, **leaves)
        out.backward(upstream)
        grads_out = {name: t.grad.numpy() for name, t in zip(grads, params, strict=True)}
        return out.detach().numpy(), grads_out

    return step


def build_steps(case, torch, rng):
    """Return dict contender -> step for one case, all sharing one upstream gradient."""
    with mt.no_grad():  # one throwaway forward, only to learn the output's shape
        shape = case.fused(**{k: mt.tensor(a) for k, a in case.arrays.items()}).shape
    upstream = np.asarray(rng.standard_normal(shape), dtype=np.float32)
    steps = {
        "fused": minitx_step(case.fused, case.arrays, case.grads, upstream),
        "composite": minitx_step(case.composite, case.arrays, case.grads, upstream),
    }
    if torch is not None:
        steps["torch"] = torch_step(torch, case.torch, case.arrays, case.grads, upstream)
    return steps


def check(case, steps):
    """Compare outputs and input gradients with the reference; return an error line or None.

    The reference is torch when installed, else the composite (then only fused is checked).
    """
    reference = "torch" if "torch" in steps else "composite"
    ref_out, ref_grads = steps[reference]()
    worst = {}
    for name in ("fused", "composite"):
        if name == reference:
            continue
        out, grads = steps[name]()
        errors = {"out": max_scaled_error(out, ref_out)}
        errors.update({f"d{k}": max_scaled_error(grads[k], ref_grads[k]) for k in case.grads})
        worst[name] = max(errors.items(), key=lambda item: item[1])
    detail = ", ".join(f"{name} {err:.1e} ({what})" for name, (what, err) in worst.items())
    ok = all(err <= TOLERANCE for _, err in worst.values())
    print(f"  {'✓' if ok else '✗'} {case.name:<20} {case.shape:<22} vs {reference}: {detail}")
    return None if ok else f"{case.name} {case.shape}: {detail} > {TOLERANCE:g}"


def profile(step, repeat, top=18):
    """Return cProfile's top functions by own time over `repeat` calls of `step`."""
    profiler = cProfile.Profile()
    step()  # warm-up, not profiled
    profiler.enable()
    for _ in range(repeat):
        step()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def parse_args(argv=None):
    """The command line, checked: bad values end the program with a usage error (exit code 2)
    before anything is timed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ops",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=positive_int, default=None,
                        help="timed repeats per contender (default: 20, or 3 with --quick)")
    parser.add_argument("--warmup", type=non_negative_int, default=None,
                        help="untimed repeats first (default: 2, or 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and 3 repeats: a smoke test that runs in seconds "
                             "(flags given explicitly win)")
    parser.add_argument("--only", default=None, metavar="TEXT",
                        help="run only the cases whose name contains TEXT (default: all)")
    parser.add_argument("--profile", default=None, metavar="NAME",
                        help="also print a cProfile of the fused step of the first case whose "
                             "name contains NAME (default: none)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="cap torch's threads and NumPy's BLAS threads at N (default: "
                             "leave both at one per core). 1 is steadier on a shared machine: "
                             "two busy-waiting pools (OpenBLAS, torch's OpenMP) in one process "
                             "otherwise fight over the cores")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--settle", type=seconds, default=None, metavar="SECONDS",
                        help=f"pause before each timed call, so that the other framework's "
                             f"spinning threads are asleep (default: {SETTLE}, or 0 with "
                             f"--quick)")
    parser.add_argument("--os-allocator", action="store_true",
                        help="leave glibc's allocator settings alone (default: freed memory is "
                             "kept for reuse, for both frameworks, as in bench_models)")
    args = parser.parse_args(argv)
    args.repeat = args.repeat if args.repeat is not None else (3 if args.quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.settle = args.settle if args.settle is not None else (0.0 if args.quick else SETTLE)
    names = [case.name for case in make_cases(True, np.random.default_rng(0))]  # tiny: cheap
    chosen = [name for name in names if args.only is None or args.only in name]
    if not chosen:
        parser.error(f"no case matches --only {args.only!r}; the cases: "
                     f"{', '.join(dict.fromkeys(names))}")
    if args.profile is not None and not any(args.profile in name for name in chosen):
        parser.error(f"no case run matches --profile {args.profile!r}; the cases run: "
                     f"{', '.join(dict.fromkeys(chosen))}")
    return args


def import_torch():
    """Return the torch module, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def limit_threads(n, torch):
    """Cap torch's intra-op threads, NumPy's BLAS pool and minitx's element-wise kernels
    (:func:`minitx.kernels.set_thread_count`) at `n`."""
    from minitx import kernels

    kernels.set_thread_count(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print(f"threadpoolctl is not installed: NumPy's BLAS keeps its default threads, "
              f"only torch is capped at {n}", file=sys.stderr)
        return
    threadpool_limits(limits=n, user_api="blas")  # applies at once and stays until exit


def main(argv=None):
    args = parse_args(argv)
    torch = None if args.no_torch else import_torch()
    if args.threads is not None:
        limit_threads(args.threads, torch)
    kept = False if args.os_allocator else backend.keep_host_memory()  # for both frameworks
    gc.freeze()  # torch's many long-lived objects would make every gc pass slow; skip them
    rng = np.random.default_rng(0)
    cases = [c for c in make_cases(args.quick, rng) if args.only is None or args.only in c.name]
    print("\n".join(describe_environment(torch)))
    print("host allocator: " + ("freed memory kept for reuse by both frameworks "
                                "(minitx.backend.keep_host_memory)" if kept else
                                "the C library's default settings"))

    print(f"\nCorrectness (worst |error| / max |reference| over output and input grads, "
          f"tolerance {TOLERANCE:g}):")
    all_steps = [build_steps(case, torch, rng) for case in cases]
    failures = [f for f in (check(c, s) for c, s in zip(cases, all_steps, strict=True)) if f]
    if failures:
        print("\nFAILED: minitx disagrees with the reference; timings would be meaningless.")
        print("\n".join(f"  {f}" for f in failures))
        raise SystemExit(1)

    pause = (f"each after {args.settle:g} s of quiet and an untimed call" if args.settle
             else "back to back")
    print(f"\nTiming: forward + backward, median of {args.repeat} interleaved repeats after "
          f"{args.warmup} warm-up, {pause}, in ms. Peak: tracemalloc peak of one minitx step "
          f"(MiB).")
    rows = []
    for case, steps in zip(cases, all_steps, strict=True):
        samples = interleaved_samples(steps, args.repeat, args.warmup, args.settle,
                                      rewarm=args.settle > 0)
        ms = {name: 1e3 * statistics.median(times) for name, times in samples.items()}
        noise = max(relative_spread(times) for times in samples.values())
        peak = {name: peak_traced_bytes(steps[name]) / 2**20 for name in ("fused", "composite")}
        torch_ms = ms.get("torch")
        rows.append([
            case.name, case.shape, f"{ms['fused']:.2f}", f"{ms['composite']:.2f}",
            "-" if torch_ms is None else f"{torch_ms:.2f}",
            "-" if torch_ms is None else f"{ms['fused'] / torch_ms:.2f}x",
            f"{ms['composite'] / ms['fused']:.2f}x",
            f"{peak['fused']:.1f}", f"{peak['composite']:.1f}",
            "-" if math.isnan(noise) else f"{100 * noise:.0f}%",
        ])
        print(f"  {case.name} {case.shape}: done", file=sys.stderr, flush=True)
    print(format_table(["op", "shape", "fused ms", "composite ms", "torch ms", "fused/torch",
                        "composite/fused", "fused MiB", "composite MiB", "spread"], rows))
    print("spread: the largest interquartile range / median of the three contenders; over ~10% "
          "means the machine was busy: rerun that row (--only NAME, perhaps --threads 1).")

    if args.profile is not None:
        first = next(i for i, c in enumerate(cases) if args.profile in c.name)  # parse_args
        case, steps = cases[first], all_steps[first]
        print(f"\ncProfile of the fused step, {case.name} {case.shape}, {args.repeat} calls "
              f"(ufuncs and array operators count as their caller's own time):")
        print(profile(steps["fused"], args.repeat))


if __name__ == "__main__":
    main()
