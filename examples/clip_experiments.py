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
   held-out compositions.

``--quick`` runs a tiny version of both (for the tests). Results are printed as the Markdown
tables of ``docs/clip.md`` and written to ``runs/clip_experiments/results.json``
(``runs/clip_experiments-quick/`` with ``--quick``).

    python -m examples.clip_experiments --only norm
    python -m examples.clip_experiments --only towers --steps 1000 --sizes 1000 16000
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import minitx as mt
import minitx.functional as F
from examples.common import run_dir, standardize
from minitx import data, nn, optim

ROOT = Path(__file__).resolve().parents[1]  # the project, for the runs of examples.clip
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


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


def towers_experiment(sizes, steps, quick):
    """Run ``python -m examples.clip`` per (size, tower) and read its final metrics."""
    rows = []
    for size in sizes:
        for tower in ("vit", "resnet"):
            args = ["--train-size", str(size), "--image-encoder", tower, "--steps", str(steps),
                    "--eval-every", str(steps), "--probe-draws", "1", "--probe-steps", "100"]
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "examples.clip", *args,
                            *(["--quick"] if quick else [])], check=True, env=ENV)
            folder = run_dir(f"clip/shapes-{tower}", quick=quick)  # where examples.clip wrote
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m examples.clip_experiments",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["norm", "towers"], action="append",
                        help="run only this experiment (repeatable; default: both)")
    parser.add_argument("--examples", type=int, default=12000,
                        help="training examples seen per run of the norm experiment")
    parser.add_argument("--steps", type=int, default=300, help="steps per run of the towers")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000],
                        help="training-set sizes of the towers experiment")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny version of both, written to runs/clip_experiments-quick/")
    args = parser.parse_args(argv)
    if args.examples < 128:
        parser.error(f"--examples must be at least 128 (one batch of the largest size), got "
                     f"{args.examples}")
    if args.steps < 1 or min(args.sizes) < 1:
        parser.error(f"--steps and --sizes must be positive, got {args.steps} and {args.sizes}")
    out = run_dir("clip_experiments", quick=args.quick)
    results = {}
    if not args.only or "norm" in args.only:
        results["norm"] = norm_experiment((2, 128) if args.quick else (2, 8, 32, 128),
                                          256 if args.quick else args.examples)
        print("\n| norm | batch | steps | test accuracy (eval) | in training mode | gap |\n"
              "|---|---|---|---|---|---|")
        for r in results["norm"]:
            print(f"| {r['norm']} | {r['batch']} | {r['steps']} | {r['test_accuracy']:.3f} | "
                  f"{r['train_mode_accuracy']:.3f} | {r['gap']:+.3f} |")
    if not args.only or "towers" in args.only:
        results["towers"] = towers_experiment((300,) if args.quick else args.sizes,
                                              args.steps if not args.quick else 5, args.quick)
        print("\n| training images | tower | zero-shot seen | zero-shot held-out | R@1 i->t |\n"
              "|---|---|---|---|---|")
        for r in results["towers"]:
            print(f"| {r['train_size']} | {r['tower']} | {r['zero_shot_seen']:.3f} | "
                  f"{r['zero_shot_held_out']:.3f} | {r['recall1_i2t']:.3f} |")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
