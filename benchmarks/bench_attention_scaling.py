"""How attention's cost grows with the token grid: ViT's global MSA against Swin's W-MSA.

    python -m benchmarks.bench_attention_scaling [--sides 8,16,24,32,40,48,56,64] [--dim 96]
        [--heads 3] [--window 8] [--repeat 5] [--warmup 1] [--quick] [--out DIR]

The lecture (Swin, Liu et al. 2021, Eq. 1-2) says, for an h×w grid of C-dimensional tokens:

    Ω(MSA)   = 4hwC² + 2(hw)²C      quadratic in the number of tokens hw
    Ω(W-MSA) = 4hwC² + 2M²hwC       linear in hw for a fixed window side M

This script times the forward pass (no gradients) of one attention layer of each kind on one
image of s×s tokens, for growing s: ``nn.MultiHeadAttention`` over all s² tokens (ViT's MSA)
and ``models.swin.WindowAttention`` over the (s/M)² windows, window partition included. It
prints a table, fits the slope of log(time) against log(tokens) (over all sides and over the
larger half, where the asymptotic term dominates), and saves a log-log plot with the formulas'
multiply-adds scaled onto the measurements, plus a CSV of the numbers.

Slope 1 is linear, slope 2 quadratic. Both start near 1: for hw small against C, the
projections (4hwC², linear for both) outweigh the attention term; MSA bends toward 2 once
(hw)² C dominates, at hw ≈ 2C and beyond.
"""

import argparse
import csv
import statistics

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minitx as mt  # noqa: E402
from benchmarks.common import (  # noqa: E402
    describe_environment,
    format_table,
    int_list,
    interleaved_samples,
    make_out_dir,
    non_negative_int,
    positive_int,
    relative_spread,
)
from minitx import nn  # noqa: E402
from models.swin import WindowAttention, window_partition  # noqa: E402

PROG = "python -m benchmarks.bench_attention_scaling"
FULL = {"sides": [8, 16, 24, 32, 40, 48, 56, 64], "repeat": 5}
QUICK = {"sides": [8, 16, 24], "repeat": 2}  # a smoke run; flags given explicitly win


def msa_macs(side, C):
    """Ω(MSA) for an s×s grid (Swin Eq. 1)."""
    hw = side * side
    return 4 * hw * C ** 2 + 2 * hw ** 2 * C


def wmsa_macs(side, C, M):
    """Ω(W-MSA) for an s×s grid and M×M windows (Swin Eq. 2)."""
    hw = side * side
    return 4 * hw * C ** 2 + 2 * M ** 2 * hw * C


def fit_slope(tokens, seconds):
    """Least-squares slope of log(seconds) against log(tokens)."""
    return float(np.polyfit(np.log(tokens), np.log(seconds), 1)[0])


def measure(sides, C, heads, M, repeat, warmup):
    """Time both layers on each grid side; return a list of row dicts."""
    rng = np.random.default_rng(0)
    msa = nn.MultiHeadAttention(C, heads, generator=rng)  # ViT's attention module
    wmsa = WindowAttention(C, M, heads, generator=rng)  # Swin's, inside M×M windows
    rows = []
    for side in sides:
        grid = mt.tensor(rng.standard_normal((1, side, side, C)).astype(np.float32))
        flat = grid.reshape(1, side * side, C)  # (1, hw, C)

        def global_attention(flat=flat):
            with mt.no_grad():
                msa(flat)  # (1, hw, C)

        def window_attention(grid=grid):
            with mt.no_grad():
                windows = window_partition(grid, M).reshape(-1, M * M, C)  # (nW, M², C)
                wmsa(windows)  # (nW, M², C)

        samples = interleaved_samples({"msa": global_attention, "wmsa": window_attention},
                                      repeat, warmup)
        rows.append({"side": side, "tokens": side * side,
                     "msa_s": statistics.median(samples["msa"]),
                     "wmsa_s": statistics.median(samples["wmsa"]),
                     "msa_spread": relative_spread(samples["msa"]),
                     "wmsa_spread": relative_spread(samples["wmsa"]),
                     "msa_macs": msa_macs(side, C), "wmsa_macs": wmsa_macs(side, C, M)})
    return rows


def slopes(rows):
    """Fitted slopes, over all sides and over the larger half of them."""
    tokens = [r["tokens"] for r in rows]
    half = len(rows) // 2
    out = {}
    for kind in ("msa", "wmsa"):
        seconds = [r[f"{kind}_s"] for r in rows]
        macs = [r[f"{kind}_macs"] for r in rows]
        out[kind] = {"all": fit_slope(tokens, seconds),
                     "large": fit_slope(tokens[half:], seconds[half:]),
                     "formula_large": fit_slope(tokens[half:], macs[half:])}
    return out


def plot(rows, fitted, C, heads, M, path):
    """Save the log-log plot: measured times, and the formulas scaled to the largest grid."""
    tokens = np.array([r["tokens"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for kind, label, color in (("msa", "global MSA (ViT)", "C3"),
                               ("wmsa", f"W-MSA, M = {M} (Swin)", "C0")):
        seconds = np.array([r[f"{kind}_s"] for r in rows])
        macs = np.array([r[f"{kind}_macs"] for r in rows], dtype=float)
        ax.loglog(tokens, seconds, "o-", color=color,
                  label=f"{label}: slope {fitted[kind]['large']:.2f} (large grids)")
        ax.loglog(tokens, macs * seconds[-1] / macs[-1], "--", color=color, alpha=0.6,
                  label=f"Ω({kind.upper().replace('WMSA', 'W-MSA')}), scaled")
    ax.set_xlabel("tokens hw (grid side s: s² tokens)")
    ax.set_ylabel("forward time (s)")
    ax.set_xticks(tokens)
    ax.set_xticklabels([f"{r['side']}²" for r in rows], fontsize=7)
    ax.set_title(f"attention cost vs tokens (C = {C}, {heads} heads, minitx, CPU)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    """The command line, checked: bad values end the program with a usage error (exit code 2)
    before anything is timed."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int_list, metavar="S,S,...",
                        help="grid sides s (tokens s²), multiples of --window, at least three "
                             "(default: 8,16,24,32,40,48,56,64; 8,16,24 with --quick)")
    parser.add_argument("--dim", type=positive_int, default=96,
                        help="C (Swin-T's stage-1 width) (default: %(default)s)")
    parser.add_argument("--heads", type=positive_int, default=3,
                        help="attention heads, a divisor of --dim (default: %(default)s)")
    parser.add_argument("--window", type=positive_int, default=8,
                        help="M, the window side (default: %(default)s)")
    parser.add_argument("--repeat", type=positive_int,
                        help="timed repeats per grid, of which the median (default: 5, or 2 "
                             "with --quick)")
    parser.add_argument("--warmup", type=non_negative_int, default=1,
                        help="untimed repeats first (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: sides 8,16,24 and 2 repeats (flags given explicitly "
                             "win)")
    parser.add_argument("--out",
                        help="the folder of scaling.png and scaling.csv (default: "
                             "runs/attention_scaling, or runs/attention_scaling-quick with "
                             "--quick, so a smoke run never replaces a real run's figure)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = "runs/attention_scaling" + ("-quick" if args.quick else "")
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:  # not given on the command line
            setattr(args, name, value)
    args.sides = sorted(set(args.sides))  # the "larger half" of the fit is the last sides
    bad = [s for s in args.sides if s % args.window]
    if bad:
        what = "not multiples" if len(bad) > 1 else "not a multiple"
        parser.error(f"--sides {','.join(map(str, bad))}: {what} of --window {args.window} "
                     f"(W-MSA tiles the grid with M×M windows)")
    if len(args.sides) < 3:
        parser.error(f"--sides needs at least three different sides to fit the slopes over the "
                     f"larger half, got {','.join(map(str, args.sides))}")
    if args.dim % args.heads:
        parser.error(f"--dim {args.dim} is not divisible by --heads {args.heads}")
    args.out = make_out_dir(args.out, parser)
    return args


def main(argv=None):
    args = parse_args(argv)
    environment = describe_environment(None)
    print("\n".join(line for line in environment if not line.startswith("torch")))
    rows = measure(args.sides, args.dim, args.heads, args.window, args.repeat,
                   args.warmup)
    fitted = slopes(rows)
    table = [[f"{r['side']}x{r['side']}", str(r["tokens"]), f"{1e3 * r['msa_s']:.2f}",
              f"{1e3 * r['wmsa_s']:.2f}", f"{r['msa_s'] / r['wmsa_s']:.1f}x",
              f"{r['msa_macs'] / 1e6:.1f}", f"{r['wmsa_macs'] / 1e6:.1f}"] for r in rows]
    print(format_table(["grid", "tokens", "MSA ms", "W-MSA ms", "ratio", "Ω(MSA) M",
                        "Ω(W-MSA) M"], table))
    for kind in ("msa", "wmsa"):
        f = fitted[kind]
        print(f"{kind:>5}: log-log slope {f['all']:.2f} over all grids, {f['large']:.2f} over "
              f"the larger half (the formula's own slope there: {f['formula_large']:.2f})")
    out = args.out
    with (out / "scaling.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, fitted, args.dim, args.heads, args.window, out / "scaling.png")
    print(f"wrote {out / 'scaling.png'} and {out / 'scaling.csv'}")
    return {"rows": rows, "slopes": fitted}


if __name__ == "__main__":
    main()
