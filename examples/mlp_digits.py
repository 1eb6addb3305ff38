"""A multi-layer perceptron on the 8x8 handwritten digits: ``python -m examples.mlp_digits``.

The smallest complete training of minitx: data from ``minitx.data`` (the 1,797 digits that ship
with scikit-learn, split 80/20 per class), a model of a few lines, AdamW with a warm-up and
cosine schedule, a progress bar, a metrics log, a loss-curve PNG and a checkpoint. Outputs go to
``runs/mlp_digits/`` (``runs/mlp_digits-quick/`` for ``--quick``).

    python -m examples.mlp_digits                      # 1,500 steps, a few seconds
    python -m examples.mlp_digits --quick              # a smoke run of a few seconds
    python -m examples.mlp_digits --stop-after 400     # or Ctrl-C: checkpoint and exit
    python -m examples.mlp_digits --resume             # continue, bit for bit

A resumed run follows the schedule of the run its flags describe: ``--steps 3000 --resume``
after a finished 1,500-step run continues on the cosine of a 3,000-step run from step 1,500.
"""

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

import minitx as mt
import minitx.functional as F
from examples.common import (
    Fraction,
    MetricsLog,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    StopRequest,
    accuracy,
    log_progress,
    parse_config,
    plot_curves,
    progress,
    resume_step,
    run_dir,
    steps_run,
)
from minitx import nn, optim, serialization
from minitx.data import ArrayDataset, DataLoader, load_digits


@dataclass(frozen=True)
class Config:
    hidden: PositiveInt = 128  # width of the two hidden layers
    dropout: Fraction = 0.1  # probability of dropping a hidden unit in training
    steps: PositiveInt = 1500  # optimizer steps (about 107 epochs of 1,438 images)
    batch_size: PositiveInt = 96  # images per step
    lr: PositiveFloat = 3e-3  # peak learning rate of AdamW
    warmup_steps: NonNegativeInt = 50  # linear warm-up, then cosine decay to 0
    weight_decay: NonNegativeFloat = 1e-4  # AdamW's decoupled weight decay
    log_every: PositiveInt = 50  # steps between loss entries in the metrics log
    eval_every: PositiveInt = 500  # steps between test-accuracy evaluations
    checkpoint_every: PositiveInt = 500  # steps between checkpoints
    seed: NonNegativeInt = 0  # the data split, the initial weights, dropout and the batches
    device: str = "cpu"  # where the model trains: cpu, cuda, cuda:1, ...


# a smoke run: a few steps of a smaller model
QUICK = {"hidden": 32, "steps": 20, "warmup_steps": 5, "eval_every": 10, "checkpoint_every": 10}


@dataclass(frozen=True)
class MLPConfig:
    """The model's own config, stored in the checkpoint: enough to rebuild the model."""

    inputs: int = 64  # 8x8 pixels
    hidden: int = 128
    classes: int = 10
    dropout: float = 0.1


def build_model(config, device="cpu"):
    """inputs -> hidden -> hidden -> classes, ReLU and dropout after each hidden layer."""
    c = config
    return nn.Sequential(
        nn.Linear(c.inputs, c.hidden), nn.ReLU(), nn.Dropout(c.dropout),
        nn.Linear(c.hidden, c.hidden), nn.ReLU(), nn.Dropout(c.dropout),
        nn.Linear(c.hidden, c.classes),
    ).to(device)


def main(argv=None):
    mt.backend.keep_host_memory()  # reuse freed memory step after step (see its docstring)
    cfg, args = parse_config(Config, __doc__, argv, prog="python -m examples.mlp_digits",
                             quick_config=QUICK, resumable=True)
    out = run_dir("mlp_digits", quick=args.quick, error=args.error)
    mt.random.seed(cfg.seed)
    x_train, y_train = load_digits("train", seed=cfg.seed)
    x_test, y_test = load_digits("test", seed=cfg.seed)
    x_train, x_test = (x.reshape(len(x), -1) for x in (x_train, x_test))  # (N, 8, 8) -> (N, 64)
    if cfg.batch_size > len(x_train):
        args.error(f"the training set has {len(x_train)} images, fewer than --batch-size "
                   f"{cfg.batch_size}: an epoch would have no batch")
    loader_rng = np.random.default_rng(cfg.seed)
    loader = DataLoader(ArrayDataset(x_train, y_train), cfg.batch_size, shuffle=True,
                        drop_last=True, rng=loader_rng)  # batches of (B, 64), (B,)

    model_cfg = MLPConfig(hidden=cfg.hidden, dropout=cfg.dropout)
    try:
        model = build_model(model_cfg, cfg.device)
    except ValueError as error:  # e.g. an unknown --device
        args.error(str(error))
    opt = optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = optim.WarmupCosineSchedule(opt, warmup_steps=cfg.warmup_steps,
                                       total_steps=cfg.steps)
    rngs, checkpoint = {"loader": loader_rng}, out / "checkpoint.npz"
    step = resume_step(checkpoint, args, cfg, model=model, optimizer=opt, schedule=sched,
                       loader=loader, rngs=rngs)
    log = MetricsLog(out, resume=args.resume, step=step)

    batches = loader.forever()
    bar, start = progress(cfg.steps, "mlp_digits", initial=step), time.perf_counter()
    with StopRequest(args.stop_after) as stop:  # Ctrl-C or --stop-after: save, then exit
        while step < cfg.steps:
            xb, yb = next(batches)
            logits = model(mt.tensor(xb, device=cfg.device))  # (B, 10)
            loss = F.cross_entropy(logits, mt.tensor(yb, device=cfg.device))
            loss.backward()
            opt.step()  # no gradient clipping: a small MLP does not need it
            opt.zero_grad()
            sched.step()
            step += 1
            log_progress(bar, log, step, loss, opt, cfg.log_every, cfg.steps)
            if step % cfg.eval_every == 0 and step < cfg.steps:
                log.log(step=step, test_accuracy=accuracy(model, x_test, y_test, cfg.device))
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop(step):
                serialization.save_checkpoint(
                    checkpoint, model=model, optimizer=opt, schedule=sched, step=step,
                    config=model_cfg, rngs=rngs,
                    extra={"loader": loader.state_dict(), "example": dataclasses.asdict(cfg)})
            if stop(step):
                break
    bar.close()
    seconds = time.perf_counter() - start
    if step < cfg.steps:
        print(f"mlp_digits: stopped after step {step} of {cfg.steps}; wrote {checkpoint} "
              f"(continue with --resume)")
        return {"stopped_at": step, "model": model}

    train_acc = accuracy(model, x_train, y_train, cfg.device)  # all images in one pass
    test_acc = accuracy(model, x_test, y_test, cfg.device)
    log.log(step=step, train_accuracy=train_acc, test_accuracy=test_acc)
    plot_curves(log, ["loss"], out / "loss.png", "MLP on digits: training loss", log_y=True)
    print(f"mlp_digits: {steps_run(step, args)} in {seconds:.1f} s; train accuracy "
          f"{train_acc:.4f}, test accuracy {test_acc:.4f} ({len(y_test)} held-out digits)")
    print(f"wrote {checkpoint}, {out / 'metrics.csv'} and {out / 'loss.png'}")
    return {"test_accuracy": test_acc, "train_accuracy": train_acc, "seconds": seconds,
            "model": model}


if __name__ == "__main__":
    main()
