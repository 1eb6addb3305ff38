"""Two small experiments behind claims of the lecture: ``python -m examples.clip_experiments``.

1. ``norm``: BatchNorm against LayerNorm. The same small convolutional network classifies the
   mnist_5k digits with either normalization after each convolution, trained on the same
   number of examples (``--examples``) at batch sizes 2 to 128. Reported: test accuracy in
   evaluation mode, and the train/eval gap: the test accuracy when the network runs in training
   mode (BatchNorm then normalizes each test batch of that size with its own statistics)
   minus the one in evaluation mode (running statistics). LayerNorm normalizes each example
   alone, so it has no such gap and no dependence on the batch.
2. ``towers``: the ViT against the modified ResNet as the data grows. ``examples.clip`` trains
   on ``shapes`` with 1k, 4k and 16k training images (before the held-out pairs are removed),
   the same number of steps for both towers; reported: zero-shot accuracy on seen and
   held-out compositions. Each run's folder is ``runs/clip_experiments/towers/<size>-<tower>/``,
   so your own runs of ``examples.clip`` (in ``runs/clip/``) stay as they are.

``--quick`` runs a tiny version of both (for the tests): its values apply to the flags not
given on the command line. Results are printed as the Markdown tables of ``docs/clip.md`` and
written to ``runs/clip_experiments/results.json`` (``runs/clip_experiments-quick/`` with
``--quick``). A run of ``examples.clip`` that fails ends the program with its error (exit
code 1).

    python -m examples.clip_experiments --only norm
    python -m examples.clip_experiments --only towers --steps 1000 --sizes 1000 16000
"""

import argparse
import codecs
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import minitx as mt
import minitx.functional as F
from examples import clip
from examples.common import run_dir, standardize
from minitx import data, nn, optim

ROOT = Path(__file__).resolve().parents[1]  # the project, for the runs of examples.clip
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
DEFAULTS = {"examples": 12000, "steps": 300, "sizes": [1000, 4000, 16000]}
QUICK = {"examples": 256, "steps": 5, "sizes": [300]}  # flags given explicitly win


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel of (B, C, H, W): no batch statistics."""

    def __init__(self, C):
        super().__init__()
        self.norm = nn.LayerNorm(C)

    def forward(self, x):  # (B, C, H, W)
        return self.norm(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # (B, C, H, W)


class SmallConvNet(nn.Module):
    """conv 3x3 -> norm -> ReLU -> max pool, twice; global average pool; linear (10 classes)."""

    def __init__(self, norm, generator):
        super().__init__()
        make = nn.BatchNorm2d if norm == "batch" else ChannelLayerNorm
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, generator=generator)
        self.norm1 = make(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, generator=generator)
        self.norm2 = make(32)
        self.head = nn.Linear(32, 10, generator=generator)

    def forward(self, x):  # (B, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.norm1(self.conv1(x))), 2)  # (B, 16, 14, 14)
        x = F.max_pool2d(F.relu(self.norm2(self.conv2(x))), 2)  # (B, 32, 7, 7)
        return self.head(x.mean((2, 3)))  # (B, 10)


def accuracy(model, x, y, batch):
    with mt.no_grad():
        pred = np.concatenate([model(mt.tensor(x[i:i + batch])).numpy().argmax(1)
                               for i in range(0, len(x), batch)])
    return float((pred == y).mean())


def norm_experiment(batch_sizes, examples, seed=0):
    (x_train, y_train), (x_test, y_test) = (data.load_mnist_5k(s, seed=seed)
                                            for s in ("train", "test"))
    x_train, x_test = standardize(x_train[:, None], x_test[:, None])
    rows = []
    for norm in ("batch", "layer"):
        for B in batch_sizes:
            rng = np.random.default_rng(seed)
            model = SmallConvNet(norm, rng)
            opt = optim.Adam(model.parameters(), lr=2e-3)
            start = time.perf_counter()
            for _ in range(examples // B):
                idx = rng.integers(0, len(x_train), B)
                loss = F.cross_entropy(model(mt.tensor(x_train[idx])), mt.tensor(y_train[idx]))
                loss.backward()
                opt.step()
                opt.zero_grad()
            model.eval()
            eval_acc = accuracy(model, x_test, y_test, 250)
            model.train()  # batch statistics of test batches of size B (running stats move)
            train_mode_acc = accuracy(model, x_test, y_test, B)
            rows.append(dict(norm=norm, batch=B, steps=examples // B, test_accuracy=eval_acc,
                             train_mode_accuracy=train_mode_acc,
                             gap=train_mode_acc - eval_acc,
                             seconds=time.perf_counter() - start))
            print(rows[-1], flush=True)
    return rows


def towers_experiment(sizes, steps, quick, error):
    """Run ``python -m examples.clip`` per (size, tower) and read its final metrics."""
    rows = []
    for size in sizes:
        for tower in ("vit", "resnet"):
            folder = run_dir(f"clip_experiments/towers/{size}-{tower}", quick=quick,
                             error=error)
            args = ["--train-size", str(size), "--image-encoder", tower, "--steps", str(steps),
                    "--eval-every", str(steps), "--probe-draws", "1", "--probe-steps", "100",
                    "--run-dir", str(folder), *(["--quick"] if quick else [])]
            start = time.perf_counter()
            run_clip(args)
            metrics = [json.loads(line) for line in
                       (folder / "metrics.jsonl").read_text().splitlines()]
            final = [m for m in metrics if "recall1_i2t" in m][-1]
            rows.append(dict(train_size=size, tower=tower, steps=steps,
                             zero_shot_seen=final["zero_shot_seen"],
                             zero_shot_held_out=final["zero_shot_held_out"],
                             recall1_i2t=final["recall1_i2t"],
                             seconds=time.perf_counter() - start))
            print(rows[-1], flush=True)
    return rows


def run_clip(args):
    """Run ``python -m examples.clip *args``, its output shown as it comes. If it fails, end the
    program with one line: the run's flags and the last line of its stderr (exit code 1)."""
    decoder, tail = codecs.getincrementaldecoder("utf-8")("replace"), ""
    with subprocess.Popen([sys.executable, "-m", "examples.clip", *args], env=ENV,
                          stderr=subprocess.PIPE) as child:
        for chunk in iter(lambda: child.stderr.read1(4096), b""):  # progress bars stay live
            text = decoder.decode(chunk)
            sys.stderr.write(text)
            sys.stderr.flush()
            tail = (tail + text)[-2000:]
    if child.returncode != 0:
        last = tail.replace("\r", "\n").split("\n")
        last = [line for line in last if line.strip()][-1:] or ["(no message)"]
        print(f"clip_experiments: python -m examples.clip {' '.join(args)} failed with exit "
              f"code {child.returncode}: {last[0].strip()}", file=sys.stderr, flush=True)
        raise SystemExit(1)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m examples.clip_experiments",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["norm", "towers"], action="append",
                        help="run only this experiment (repeatable; default: both)")
    parser.add_argument("--examples", type=int,
                        help=f"training examples seen per run of the norm experiment "
                             f"(default: {DEFAULTS['examples']})")
    parser.add_argument("--steps", type=int,
                        help=f"steps per run of the towers (default: {DEFAULTS['steps']})")
    parser.add_argument("--sizes", type=int, nargs="+",
                        help=f"training-set sizes of the towers experiment (default: "
                             f"{' '.join(map(str, DEFAULTS['sizes']))})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a tiny version of both, written to runs/clip_experiments-quick/: "
                             f"{', '.join(f'{k}={v}' for k, v in QUICK.items())} (flags given "
                             f"explicitly win)")
    args = parser.parse_args(argv)
    args.error = parser.error
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.examples < 128:
        parser.error(f"--examples must be at least 128 (one batch of the largest size), got "
                     f"{args.examples}")
    if args.steps < 1 or min(args.sizes) < 1:
        parser.error(f"--steps and --sizes must be positive, got {args.steps} and {args.sizes}")
    towers = not args.only or "towers" in args.only
    child = clip.Config(**clip.QUICK) if args.quick else clip.Config()  # what a run of it uses
    if towers and args.steps <= child.warmup_steps:
        parser.error(f"--steps {args.steps} must be larger than the {child.warmup_steps} warm-up "
                     f"steps of examples.clip{' --quick' if args.quick else ''}")
    if towers and min(args.sizes) < child.batch_size:
        parser.error(f"--sizes {min(args.sizes)} is too small: a training set must hold a batch "
                     f"of examples.clip's {child.batch_size} pairs (after the held-out "
                     f"compositions are removed)")
    out = run_dir("clip_experiments", quick=args.quick, error=args.error)
    results = {}
    if not args.only or "norm" in args.only:
        results["norm"] = norm_experiment((2, 128) if args.quick else (2, 8, 32, 128),
                                          args.examples)
        print("\n| norm | batch | steps | test accuracy (eval) | in training mode | gap |\n"
              "|---|---|---|---|---|---|")
        for r in results["norm"]:
            print(f"| {r['norm']} | {r['batch']} | {r['steps']} | {r['test_accuracy']:.3f} | "
                  f"{r['train_mode_accuracy']:.3f} | {r['gap']:+.3f} |")
    if towers:
        results["towers"] = towers_experiment(args.sizes, args.steps, args.quick, args.error)
        print("\n| training images | tower | zero-shot seen | zero-shot held-out | R@1 i->t |\n"
              "|---|---|---|---|---|")
        for r in results["towers"]:
            print(f"| {r['train_size']} | {r['tower']} | {r['zero_shot_seen']:.3f} | "
                  f"{r['zero_shot_held_out']:.3f} | {r['recall1_i2t']:.3f} |")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
