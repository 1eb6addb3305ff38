"""What every example shares, kept small: the command line built from a config dataclass, a run
folder, resuming from a checkpoint, stopping cleanly, a progress bar and a metrics log, batched
prediction and accuracy, image preprocessing and PNG figures. The training loop itself (forward,
loss, backward, clip, step, zero_grad, schedule) is written out in each example.

Conventions every example follows:

* **Flags** come from the fields of a frozen config dataclass (:func:`parse_config`); each
  field's comment is its ``--help`` text, and its type says what values are allowed
  (:data:`PositiveInt`, :data:`Fraction`, :func:`OneOf`, ...). A bad value ends the program at
  once with an argparse error (exit code 2) that names the flag.
* **--quick** applies the example's ``QUICK`` dict (a smoke run of a few seconds) to every field
  not given on the command line, and writes to ``runs/<name>-quick/`` so that a smoke run never
  replaces a real one.
* **Checkpoints** store the *model's* config (the model can be rebuilt from the file alone with
  :func:`minitx.serialization.load_config` and the model class), the optimizer, the schedule's
  step, the random generators, and in ``extra`` the data loader's position
  (``extra["loader"]``) and the example's own config (``extra["example"]``). One is written
  every ``checkpoint_every`` steps, at the end, and when the run is stopped.
* **Stopping**: Ctrl-C (once) or ``--stop-after N`` finishes the current step, writes the
  checkpoint and exits; ``--resume`` continues from it. Resuming is bit-exact: N steps, stop,
  resume in a new process and finish give the same weights as the run without a stop.
* **A resumed run is the run its command line describes**: the learning-rate schedule is built
  from the config (its ``steps``, warm-up and lr) and only moved to the checkpoint's step. So
  ``--steps 300 --resume`` after a finished 100-step run continues on the 300-step schedule
  (the lr rises again from where that schedule is at step 100); the program says so. Settings
  that decide the data (:data:`DATA_FIELDS`: the seed that draws the split, the dataset, its
  sizes) must stay as they were: a resumed run would otherwise train on part of its test set.
* **A diverging run stops** at the first NaN or infinite loss, keeping its last checkpoint.
"""

import argparse
import ast
import contextlib
import csv
import dataclasses
import inspect
import io
import json
import math
import signal
import textwrap
import tokenize
import typing
from pathlib import Path
from typing import Annotated

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no window: examples run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

import minitx as mt  # noqa: E402
from minitx import serialization  # noqa: E402

# ---- what a config field may hold ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Check:
    """A condition on a flag's value, attached to a field's type with ``typing.Annotated``."""

    text: str  # what the value must be, for the error message
    ok: typing.Callable


def _finite(v):
    return math.isfinite(v)


PositiveInt = Annotated[int, Check("a positive integer", lambda v: v > 0)]
NonNegativeInt = Annotated[int, Check("an integer >= 0", lambda v: v >= 0)]
PositiveFloat = Annotated[float, Check("a positive number", lambda v: _finite(v) and v > 0)]
NonNegativeFloat = Annotated[float, Check("a number >= 0", lambda v: _finite(v) and v >= 0)]
Fraction = Annotated[float, Check("a number in [0, 1)", lambda v: 0 <= v < 1)]


def OneOf(*choices):  # noqa: N802  (used as a type: `dataset: OneOf("a", "b") = "a"`)
    """A string field that must be one of `choices` (the flag gets argparse's ``choices``)."""
    return Annotated[str, tuple(choices)]


# Fields whose meaning is the same in every example: their values are checked even when the
# config declares them as a plain int or float.
SHARED_CHECKS = {"steps": PositiveInt, "batch_size": PositiveInt, "lr": PositiveFloat,
                 "warmup_steps": NonNegativeInt, "eval_every": PositiveInt,
                 "checkpoint_every": PositiveInt, "log_every": PositiveInt,
                 "seed": NonNegativeInt}


# ---- the command line ---------------------------------------------------------------------------

def parse_config(config_cls, description, argv=None, *, prog=None, quick_config=None,
                 resumable=False, **extra):
    """Build argparse flags from a frozen config dataclass (``--steps 200``, ``--no-flag``).

    Each field becomes a flag of its type; its help is the field's comment in the source (and
    that of the field in a base class) with the default. Values are checked as the field's type
    says (:data:`PositiveInt`, :func:`OneOf`, ...; :data:`SHARED_CHECKS` for the fields all
    examples share), and ``warmup_steps`` must be smaller than ``steps``.

    Args:
        config_cls: the dataclass; each field becomes a flag of its type and default.
        description: the --help text (the example's docstring; its line breaks are kept).
        argv: the arguments (None: sys.argv).
        prog: the program name of the usage line, e.g. ``"python -m examples.mlp_digits"``.
        quick_config: ``{field: value}`` of a smoke run: adds ``--quick``, which applies them
            to every field not given on the command line.
        resumable: add ``--resume`` and ``--stop-after N`` (see the module docstring).
        extra: additional flags as name=(type, default, help); a bool is a switch.
    Returns:
        (config instance, namespace of all arguments). ``args.error(message)`` ends the
        program as argparse does (exit code 2), for checks that need the data first;
        ``args.given`` is the set of fields given on the command line.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    helps = field_help(config_cls)
    fields = dataclasses.fields(config_cls)
    for f in fields:
        flag = "--" + f.name.replace("_", "-")
        text = f"{helps.get(f.name, f.name.replace('_', ' '))} (default: {f.default})"
        text = text.replace("%", "%%")  # argparse formats help with %
        kind, check = _kind_and_check(config_cls, f)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=text)
        elif isinstance(check, tuple):
            parser.add_argument(flag, choices=check, default=argparse.SUPPRESS, help=text)
        else:
            parser.add_argument(flag, type=_value_parser(kind, check),
                                default=argparse.SUPPRESS, help=text, metavar=kind.__name__)
    if quick_config is not None and "quick" not in extra:
        shown = ", ".join(f"{k}={v}" for k, v in quick_config.items())
        parser.add_argument("--quick", action="store_true",
                            help=f"a smoke run of a few seconds, written to runs/<name>-quick/: "
                                 f"{shown} (flags given explicitly win)")
    if resumable:
        parser.add_argument("--resume", action="store_true",
                            help="continue from the run's checkpoint (its step, weights, "
                                 "optimizer, data order); the config decides the schedule")
        parser.add_argument("--stop-after", type=_value_parser(int, PositiveInt), metavar="N",
                            help="stop after optimizer step N, writing the checkpoint, as "
                                 "Ctrl-C does (continue with --resume)")
    for name, (kind, default, text) in extra.items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=text)
        else:
            parser.add_argument(flag, type=kind, default=default, metavar=kind.__name__,
                                help=f"{text} (default: {default})")
    args = parser.parse_args(argv)
    given = {f.name for f in fields if hasattr(args, f.name)}
    values = {f.name: f.default for f in fields}
    if quick_config is not None and getattr(args, "quick", False):
        values.update({k: v for k, v in quick_config.items() if k not in given})
    values.update({name: getattr(args, name) for name in given})
    for name, value in values.items():
        setattr(args, name, value)
    for name, absent in (("quick", False), ("resume", False), ("stop_after", None)):
        if not hasattr(args, name):  # flags this example does not offer
            setattr(args, name, absent)
    args.error = parser.error
    args.given = given  # the fields set on the command line (not by --quick or a default)
    if "device" in values:  # an unknown name, or "cuda" without CuPy or a GPU: say so now
        try:
            mt.backend.xp_for(values["device"])
        except (ValueError, RuntimeError, ImportError) as error:
            parser.error(f"--device {values['device']}: {one_line(error)}")
    if resumable and args.stop_after is not None and args.stop_after >= values["steps"]:
        parser.error(f"--stop-after {args.stop_after} must be smaller than --steps "
                     f"{values['steps']}")
    if "steps" in values and values.get("warmup_steps", 0) >= values["steps"]:
        parser.error(f"--warmup-steps ({values['warmup_steps']}) must be smaller than --steps "
                     f"({values['steps']}): the warm-up is part of the run")
    return config_cls(**values), args


def parse_dataset_config(configs, default, description, argv=None, **kwargs):
    """:func:`parse_config` with per-dataset defaults: ``--dataset NAME`` picks the config class
    ``configs[NAME]`` (``default`` without the flag), whose defaults the other flags override."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--dataset", default=default)
    dataset = peek.parse_known_args(argv)[0].dataset
    # an unknown name: the full parser refuses it, with the choices and the usage line
    return parse_config(configs.get(dataset, configs[default]), description, argv, **kwargs)


def field_help(config_cls):
    """Return ``{field: help text}`` read from the comments of the config's source: the comment
    at the end of the field's line and the comment lines right above it. A subclass's comment
    on a field it overrides is added to its base's in parentheses."""
    helps = {}
    for cls in reversed(config_cls.__mro__):  # bases first
        if not dataclasses.is_dataclass(cls):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):  # defined where the source is not available
            continue
        comments = {tok.start[0]: tok.string.lstrip("#").strip()
                    for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                    if tok.type == tokenize.COMMENT}
        lines = source.splitlines()
        for node in ast.parse(source).body[0].body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            above, row = [], node.lineno - 1
            while row in comments and lines[row - 1].lstrip().startswith("#"):
                above.insert(0, comments[row])
                row -= 1
            own = [comments[r] for r in range(node.lineno, node.end_lineno + 1) if r in comments]
            text = " ".join(above + own)
            if text:
                name = node.target.id
                helps[name] = f"{helps[name]} ({text})" if name in helps else text
    return helps


def _kind_and_check(config_cls, f):
    """The Python type of a field and its Check (or tuple of choices, or None). A subclass
    that overrides a default with a plain ``int`` keeps the check of its base's annotation."""
    kind, check = f.type, SHARED_CHECKS.get(f.name)
    for cls in config_cls.__mro__:
        hint = vars(cls).get("__annotations__", {}).get(f.name)
        if typing.get_origin(hint) is Annotated:
            kind = hint
            break
    if typing.get_origin(kind) is Annotated:
        kind, check = typing.get_args(kind)[0], typing.get_args(kind)[1]
    elif check is not None:
        check = typing.get_args(check)[1]
    kind = {"int": int, "float": float, "str": str, "bool": bool}.get(kind, kind)
    return kind, check


def _value_parser(kind, check):
    """An argparse ``type=`` that converts the text and applies the check."""
    if typing.get_origin(check) is Annotated:
        check = typing.get_args(check)[1]

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if check is not None and not check.ok(value):
            raise argparse.ArgumentTypeError(f"must be {check.text}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


@contextlib.contextmanager
def downloading(args, dataset):
    """Around loading `dataset`: a download that no mirror answered (no network) ends the
    program with one line, a usage error naming ``--dataset`` and where to copy the files,
    instead of a traceback."""
    try:
        yield
    except ConnectionError as failure:  # minitx.data.download.fetch's: report, then the hint
        lines = str(failure).splitlines()
        args.error(f"--dataset {dataset}: {lines[0].rstrip(':')}: no mirror answered. "
                   f"{lines[-1]}")


def check_loaded(args, cfg, x_train, x_test, shift=None):
    """Usage errors (exit code 2) for sizes that the loaded images cannot honour:
    ``--train-size``/``--test-size`` above what the dataset holds (the images would be cut to
    what there is without a word) and a random shift of `shift` pixels (the flag's name) that
    is not smaller than the images (almost every crop would be padding)."""
    for flag, asked, have in (("--train-size", cfg.train_size, len(x_train)),
                              ("--test-size", cfg.test_size, len(x_test))):
        if asked and asked > have:
            args.error(f"{flag} {asked}: the {cfg.dataset} {flag[2:-5]} set holds {have:,} images")
    if shift is not None:
        side = min(x_train.shape[-2:])
        value = getattr(cfg, shift.lstrip("-").replace("-", "_"))
        if value >= side:
            args.error(f"{shift} {value} is not smaller than the {side}x{side} images: almost "
                       f"every shifted crop would be padding")


def run_dir(name, root="runs", quick=False, *, error, flag=None):
    """The folder ``runs/<name>/`` (``runs/<name>-quick/`` for a smoke run) for checkpoints,
    logs and figures (created). A `name` with a slash puts ``-quick`` on its first part. A
    folder that cannot be made (a read-only place, a file named ``runs``) ends the program
    before any training through `error` (``args.error``: a usage error, exit code 2), naming
    `flag` when the folder came from one."""
    first, _, rest = str(name).partition("/")
    path = Path(root) / (first + "-quick" if quick else first) / rest
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        error(f"{flag + ': ' if flag else ''}cannot create the run folder {path.resolve()}: "
              f"{failure.strerror or failure}")
    return path


# ---- resuming and stopping ----------------------------------------------------------------------

def resume_step(checkpoint, args, cfg, *, model, optimizer, schedule, loader, rngs):
    """The step to start training from: 0, or with ``--resume`` the checkpoint's step, having
    restored the model, the optimizer, the generators and the loader's position from it.

    The optimizer's moments come from the checkpoint, but its settings (lr, weight decay, ...)
    stay those this run was built with from `cfg`, and the schedule is only moved to the
    checkpoint's step: a resumed run follows the schedule of the run its command line
    describes. When `cfg` differs from the checkpoint's (e.g. more ``--steps``), a note names
    what changed. A checkpoint past ``cfg.steps`` or a ``--stop-after`` that lies behind it is
    refused (exit code 2).
    """
    args.resumed_at = 0
    if not args.resume:
        return 0
    if not Path(checkpoint).exists():
        args.error(f"--resume: there is no checkpoint at {checkpoint}")
    own = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    try:
        saved = serialization.load_checkpoint(checkpoint, model=model, optimizer=optimizer,
                                              rngs=rngs)
    except ValueError as error:  # a truncated file, another model's, other sizes
        args.error(f"--resume: {checkpoint} does not fit this run: {one_line(error)}")
    for group, settings in zip(optimizer.param_groups, own):  # this run's lr, weight decay, ...
        group.update(settings)
    step, extra = saved["step"], saved["extra"] or {}
    if step > cfg.steps:
        args.error(f"--resume: {checkpoint} is at step {step}, past --steps {cfg.steps}")
    if args.stop_after is not None and args.stop_after <= step:
        args.error(f"--stop-after {args.stop_after}: the checkpoint is at step {step} already")
    if "loader" not in extra:
        args.error(f"--resume: {checkpoint} does not hold the data loader's position (written "
                   f"by an older version); start afresh without --resume")
    args.resumed_at = step
    schedule.load_state_dict({**schedule.state_dict(), "last_step": step})  # this run's schedule
    loader.load_state_dict(extra["loader"])
    before, now = extra.get("example", {}), dataclasses.asdict(cfg)
    changed = [f"{k} {before[k]} -> {now[k]}" for k in now if k in before and before[k] != now[k]]
    data = [f"--{k.replace('_', '-')} {before[k]} -> {now[k]}" for k in DATA_FIELDS
            if k in now and k in before and before[k] != now[k]]
    if data:
        args.error(f"--resume: {', '.join(data)} would change the data the checkpoint was "
                   f"trained on (which examples are for training and which for testing); "
                   f"resume with the checkpoint's values, or start afresh without --resume")
    print(f"resuming {checkpoint} at step {step}"
          + (f"; changed: {', '.join(changed)} (this run's settings and schedule apply from "
             f"step {step} on; learning rate now {optimizer.param_groups[0]['lr']:.3g})"
             if changed else ""), flush=True)
    return step


# Settings that decide the data: which examples are trained on and which are held out (the seed
# draws the split), and what an example is. A resumed run that changed one would go on training
# on another split, part of it the held-out set it then reports on, so --resume refuses.
DATA_FIELDS = ("seed", "dataset", "count", "train_size", "test_size", "train_images",
               "test_images", "image_size", "colors")


def one_line(error, limit=300):
    """An exception's message on one line, cut to `limit` characters (a state dict's key list
    can run to thousands)."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def steps_run(step, args):
    """'N steps' that this process ran, up to `step`; for a resumed run with the step it
    resumed at (its time is that of these steps only)."""
    first = getattr(args, "resumed_at", 0)
    return f"{step - first} steps" + (f" (resumed at step {first})" if first else "")


class StopRequest:
    """Ask a training loop to stop cleanly after a step: on Ctrl-C, or after step `stop_after`.

    Use it as ``with StopRequest(args.stop_after) as stop:`` around the loop and test
    ``stop(step)`` after each step: the loop then writes its checkpoint and leaves. A first
    Ctrl-C only sets the request (the step in progress finishes); a second one interrupts at
    once, as usual.
    """

    def __init__(self, stop_after=None):
        self.stop_after = stop_after
        self.interrupted = False
        self._previous = None

    def __call__(self, step):
        return self.interrupted or (self.stop_after is not None and step >= self.stop_after)

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._on_interrupt)
        except ValueError:  # not the main thread: Ctrl-C stays Python's KeyboardInterrupt
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False

    def _on_interrupt(self, signum, frame):
        self.interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the next Ctrl-C: at once
        print("\nCtrl-C: finishing this step, then saving a checkpoint (again to quit now)",
              flush=True)


# ---- progress and metrics -----------------------------------------------------------------------

def log_progress(bar, log, step, loss, opt, every, total):
    """After optimizer step number `step`: advance the progress bar and show the loss on it;
    every `every` steps and at the last (`total`) also log the loss and the learning rate.

    The loss is put on the bar without redrawing it (``refresh=False``): the bar redraws at
    most every ``mininterval`` seconds, not at every step. Returns the loss as a Python float.
    A loss that is NaN or infinite ends the program (its weights are then NaN too, and every
    step after it wasted); the last checkpoint written stays as it was.
    """
    value = loss.item()
    if not math.isfinite(value):
        bar.close()
        raise SystemExit(f"error: the loss is {value} at step {step}: training diverged (a "
                         f"learning rate too large?); the last checkpoint is kept")
    bar.set_postfix(loss=f"{value:.3f}", refresh=False)
    bar.update(1)
    if step % every == 0 or step == total:
        log.log(step=step, loss=value, lr=opt.param_groups[0]["lr"])
    return value


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` and mirrors it to ``metrics.csv``.

    Args:
        folder: where the two files go.
        resume: keep the rows already in the file (a resumed run), else start empty.
        step: when resuming, the checkpoint's step: rows of later steps (logged by a run that
            went on past its last checkpoint) are dropped, as that run's steps are redone.
    """

    def __init__(self, folder, resume=False, step=None):
        self.jsonl = Path(folder) / "metrics.jsonl"
        self.csv = Path(folder) / "metrics.csv"
        self.rows = []
        if resume and self.jsonl.exists():
            lines = self.jsonl.read_text().splitlines()
            if lines and not lines[-1].endswith("}"):
                lines.pop()  # half a line, from a process killed while writing it
            self.rows = [json.loads(line) for line in lines]
            if step is not None:
                self.rows = [row for row in self.rows if row.get("step", 0) <= step]
        self.jsonl.write_text("".join(json.dumps(row) + "\n" for row in self.rows))

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


def progress(total, description, initial=0, mininterval=0.5, file=None):
    """A tqdm progress bar over training steps, redrawn at most every `mininterval` seconds."""
    return tqdm(total=total, initial=initial, desc=description, dynamic_ncols=True,
                mininterval=mininterval, file=file)


# ---- evaluation ---------------------------------------------------------------------------------

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


# ---- images -------------------------------------------------------------------------------------

def channel_stats(images):
    """Per-channel mean and standard deviation (+ ε) of images (N, C, H, W), each (1, C, 1, 1)."""
    mean = images.mean(axis=(0, 2, 3), keepdims=True)  # (1, C, 1, 1)
    std = images.std(axis=(0, 2, 3), keepdims=True) + 1e-6  # + ε: a constant channel stays finite
    return mean, std


def standardize(train, test):
    """Per-channel standardization of images (N, C, H, W) with the training set's statistics
    (the test set must not contribute to them); returns (train, test) standardized."""
    mean, std = channel_stats(train)
    return (train - mean) / std, (test - mean) / std


def load_images_32(name, seed=0, shapes_n=(4000, 1000)):
    """Return (x_train, y_train, x_test, y_test, num_classes): images (N, Cin, 32, 32) float32.

    Grey datasets get one channel; 28x28 images are zero-padded to 32x32 (as LeNet-5 did) and
    8x8 digits repeated 4x along both axes. The shapes dataset is classified by its shape
    attribute (`shapes_n` images for training and testing); its test set comes from another
    seed. mnist_5k and digits are split with `seed`; the downloads have their own test sets.
    """
    from minitx import data

    if name == "shapes":
        train = data.load_shapes(shapes_n[0], seed=seed)
        test = data.load_shapes(shapes_n[1], seed=seed + 1)
        return train["images"], train["shape"], test["images"], test["shape"], 5
    if name in ("mnist_5k", "digits"):
        load = data.load_mnist_5k if name == "mnist_5k" else data.load_digits
        (xa, ya), (xb, yb) = load("train", seed=seed), load("test", seed=seed)
    elif name in ("mnist", "fashion_mnist", "cifar10"):
        load = getattr(data, f"load_{name}")
        (xa, ya), (xb, yb) = load("train"), load("test")
    else:
        raise ValueError(f"load_images_32: unknown dataset {name!r}")
    return _to_32(xa), ya, _to_32(xb), yb, 10


def _to_32(images):
    """(N, 28, 28), (N, 8, 8) or (N, 3, 32, 32) in [0, 1] -> (N, Cin, 32, 32)."""
    if images.ndim == 4:
        return images
    if images.shape[1:] == (8, 8):
        images = images.repeat(4, axis=1).repeat(4, axis=2)  # nearest-neighbour, 4x
    pad = (32 - images.shape[1]) // 2
    return np.pad(images, ((0, 0), (pad, pad), (pad, pad)))[:, None]  # (N, 1, 32, 32)


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
    plotted = False
    for key in keys:
        steps, values = log.series(key)
        if steps:
            ax.plot(steps, values, label=key)
            plotted = True
    ax.set_xlabel("step")
    ax.set_title(title)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if plotted:  # a run stopped early may have logged nothing yet
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
