"""What every example shares, kept small: the command line built from a config dataclass, a run
folder, a progress bar, a metrics log and PNG figures. The training loop itself stays explicit
in each example.
"""

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window: examples run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402


def parse_config(config_cls, description, argv=None, **extra):
    """Build argparse flags from a frozen config dataclass (``--steps 200``, ``--no-flag``).

    Args:
        config_cls: the dataclass; each field becomes a flag of its type and default.
        description: the --help text.
        argv: the arguments (None: sys.argv).
        extra: additional flags as name=(type, default, help).
    Returns:
        (config instance, namespace of all arguments).
    """
    parser = argparse.ArgumentParser(description=description)
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float, "str": str}.get(f.type, f.type)
            parser.add_argument(flag, type=kind, default=f.default)
    for name, (kind, default, text) in extra.items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=text)
        else:
            parser.add_argument(flag, type=kind, default=default, help=text)
    args = parser.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)}
    return config_cls(**values), args


def run_dir(name, root="runs"):
    """The folder ``runs/<name>/`` for checkpoints, logs and figures (created)."""
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` and mirrors it to ``metrics.csv``."""

    def __init__(self, folder, resume=False):
        self.jsonl = Path(folder) / "metrics.jsonl"
        self.csv = Path(folder) / "metrics.csv"
        self.rows = []
        if resume and self.jsonl.exists():
            self.rows = [json.loads(line) for line in self.jsonl.read_text().splitlines()]
        else:
            self.jsonl.write_text("")

    def log(self, **values):
        self.rows.append(values)
        with self.jsonl.open("a") as f:
            f.write(json.dumps(values) + "\n")
        keys = sorted({k for row in self.rows for k in row})
        with self.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)

    def series(self, key):
        """(steps, values) of every row that has `key`."""
        rows = [r for r in self.rows if key in r]
        return [r["step"] for r in rows], [r[key] for r in rows]


def progress(total, description, initial=0):
    """A tqdm progress bar over training steps."""
    return tqdm(total=total, initial=initial, desc=description, dynamic_ncols=True,
                mininterval=0.5)


class Throughput:
    """Examples (or tokens) per second since the last call."""

    def __init__(self):
        self.last = time.perf_counter()

    def __call__(self, count):
        now = time.perf_counter()
        rate = count / max(now - self.last, 1e-9)
        self.last = now
        return rate


def plot_curves(log, keys, path, title, log_y=False):
    """Save a PNG of metric curves against the step."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in keys:
        steps, values = log.series(key)
        if steps:
            ax.plot(steps, values, label=key)
    ax.set_xlabel("step")
    ax.set_title(title)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
