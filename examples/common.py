"""What every example shares, kept small: the command line built from a config dataclass, a run
folder, resuming from a checkpoint, one optimizer step, a progress bar and a metrics log,
batched prediction and accuracy, image augmentation and PNG figures. The training loop itself
stays explicit in each example.
"""

import argparse
import csv
import dataclasses
import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no window: examples run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

import minitx as mt  # noqa: E402
from minitx import optim, serialization  # noqa: E402


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


def parse_dataset_config(configs, default, description, argv=None, **extra):
    """:func:`parse_config` with per-dataset defaults: ``--dataset NAME`` picks the config class
    ``configs[NAME]`` (``default`` without the flag), whose defaults the other flags override."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--dataset", default=default, choices=list(configs))
    dataset = peek.parse_known_args(argv)[0].dataset
    return parse_config(configs[dataset], description, argv, **extra)


def run_dir(name, root="runs"):
    """The folder ``runs/<name>/`` for checkpoints, logs and figures (created)."""
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def resume_step(checkpoint, resume, **state):
    """The step to start training from: 0, or the checkpoint's step when resuming.

    Args:
        checkpoint: the path of a :func:`minitx.serialization.save_checkpoint` file.
        resume: whether to continue from it (it is ignored when the file does not exist).
        state: what it restores, as :func:`minitx.serialization.load_checkpoint` takes it
            (model=, optimizer=, schedule=, rngs=).
    """
    if resume and Path(checkpoint).exists():
        return serialization.load_checkpoint(checkpoint, **state)["step"]
    return 0


def optimizer_step(loss, model, opt, sched=None, clip_norm=None):
    """One update from the scalar `loss`: backward, clip, step, clear the gradients, schedule.

    Args:
        loss: the scalar loss of a batch, its graph still attached.
        model: whose parameters' gradients are clipped.
        opt: the optimizer; its gradients are zeroed after the step.
        sched: a learning-rate schedule advanced once per step, or None.
        clip_norm: the largest global gradient norm (Pascanu et al. 2013), or None: no clipping.
    Returns:
        The global gradient norm before clipping (None without clipping).
    """
    loss.backward()
    norm = None
    if clip_norm is not None:
        norm = optim.clip_grad_norm_(model.parameters(), clip_norm)
    opt.step()
    opt.zero_grad()
    if sched is not None:
        sched.step()
    return norm


def log_progress(bar, log, step, loss, opt, every, total):
    """After optimizer step number `step`: advance the progress bar and show the loss on it;
    every `every` steps and at the last (`total`) also log the loss and the learning rate.

    Returns the loss as a Python float.
    """
    value = loss.item()
    bar.update(1)
    bar.set_postfix(loss=f"{value:.3f}")
    if step % every == 0 or step == total:
        log.log(step=step, loss=value, lr=opt.param_groups[0]["lr"])
    return value


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


def predict(model, inputs, device, batch_size=None):
    """The argmax over the last axis of the model's output, in eval mode and without a graph.

    Args:
        model: put in eval mode for the passes (dropout off), back in train mode after.
        inputs: a NumPy array of N examples, e.g. images (N, C, H, W).
        device: where the batches go.
        batch_size: examples per forward pass (None: all N in one).
    Returns:
        A NumPy int array: (N,) classes of a classifier, (N, H, W) of a per-pixel one.
    """
    batch_size = batch_size or len(inputs)
    model.eval()
    out = []
    with mt.no_grad():
        for i in range(0, len(inputs), batch_size):
            logits = model(mt.tensor(inputs[i:i + batch_size], device=device))  # (b, ..., K)
            out.append(logits.argmax(-1).numpy())
    model.train()
    return np.concatenate(out)


def accuracy(model, inputs, labels, device, batch_size=None):
    """Top-1 accuracy of :func:`predict` against `labels` (N,), as a Python float."""
    return float((predict(model, inputs, device, batch_size) == labels).mean())


def standardize(train, test):
    """Per-channel standardization of images (N, C, H, W) with the training set's statistics
    (the test set must not contribute to them); returns (train, test) standardized."""
    mean = train.mean(axis=(0, 2, 3), keepdims=True)  # (1, C, 1, 1)
    std = train.std(axis=(0, 2, 3), keepdims=True) + 1e-6  # + ε: a constant channel stays finite
    return (train - mean) / std, (test - mean) / std


def random_shift(images, max_shift, rng, mode="constant"):
    """Translate each image by a random offset of up to ±max_shift pixels along each axis.

    An augmentation for small image datasets: pad by `max_shift` on every side, then crop a
    random window of the original size.

    Args:
        images: (B, C, H, W).
        max_shift: s, in pixels (0: `images` itself comes back).
        rng: the np.random.Generator that draws the offsets, two integers per image.
        mode: how np.pad fills the border: "constant" with zeros, "edge" with the edge pixels.
    Returns:
        A new (B, C, H, W) array.
    """
    if max_shift == 0:
        return images
    B, _, H, W = images.shape
    s = max_shift
    padded = np.pad(images, ((0, 0), (0, 0), (s, s), (s, s)), mode=mode)  # (B, C, H+2s, W+2s)
    dy, dx = rng.integers(0, 2 * s + 1, size=(2, B))
    return np.stack([padded[i, :, dy[i]:dy[i] + H, dx[i]:dx[i] + W] for i in range(B)])


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
