"""A multi-layer perceptron on the 8x8 handwritten digits: ``python -m examples.mlp_digits``.

The smallest complete training of minitx: data from ``minitx.data`` (the 1,797 digits that ship
with scikit-learn, split 80/20 per class), a model of a few lines, AdamW, a progress bar, a
metrics log, a loss-curve PNG and a checkpoint that ``--resume`` continues from.
Outputs go to ``runs/mlp_digits/``.
"""

import time
from dataclasses import dataclass

import numpy as np

import minitx as mt
import minitx.functional as F
from examples.common import (
    MetricsLog,
    accuracy,
    log_progress,
    optimizer_step,
    parse_config,
    plot_curves,
    progress,
    resume_step,
    run_dir,
)
from minitx import nn, optim, serialization
from minitx.data import ArrayDataset, DataLoader, load_digits


@dataclass(frozen=True)
class Config:
    hidden: int = 128  # width of the two hidden layers
    dropout: float = 0.1
    steps: int = 1500  # optimizer steps (about 105 epochs of 1,437 images)
    batch_size: int = 96
    lr: float = 3e-3
    warmup_steps: int = 50  # linear warm-up, then cosine decay to 0
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "cpu"


def build_model(cfg):
    """64 pixels -> hidden -> hidden -> 10 classes."""
    return nn.Sequential(
        nn.Linear(64, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
        nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
        nn.Linear(cfg.hidden, 10),
    )


def main(argv=None):
    mt.backend.keep_host_memory()  # reuse freed memory step after step (see its docstring)
    cfg, args = parse_config(Config, __doc__, argv,
                             resume=(bool, False, "continue from runs/mlp_digits/checkpoint.npz"),
                             quick=(bool, False, "a smoke run of a few steps"))
    if args.quick and cfg.steps == Config.steps:  # a smoke run, unless --steps says otherwise
        cfg = Config(**{**cfg.__dict__, "steps": 20, "warmup_steps": 5})
    out = run_dir("mlp_digits")
    mt.random.seed(cfg.seed)
    x_train, y_train = load_digits("train", seed=cfg.seed)
    x_test, y_test = load_digits("test", seed=cfg.seed)
    x_train, x_test = (x.reshape(len(x), -1) for x in (x_train, x_test))  # (N, 8, 8) -> (N, 64)
    loader_rng = np.random.default_rng(cfg.seed)
    train_set = ArrayDataset(x_train, y_train)  # (N, 64), (N,)
    loader = DataLoader(train_set, cfg.batch_size, shuffle=True, drop_last=True, rng=loader_rng)

    model = build_model(cfg).to(cfg.device)
    opt = optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = optim.WarmupCosineSchedule(opt, warmup_steps=cfg.warmup_steps,
                                       total_steps=cfg.steps)
    checkpoint = out / "checkpoint.npz"
    step = resume_step(checkpoint, args.resume, model=model, optimizer=opt, schedule=sched,
                       rngs={"loader": loader_rng})
    log = MetricsLog(out, resume=args.resume)

    bar, start = progress(cfg.steps, "mlp_digits", initial=step), time.perf_counter()
    while step < cfg.steps:
        for xb, yb in loader:
            logits = model(mt.tensor(xb, device=cfg.device))  # (B, 10)
            loss = F.cross_entropy(logits, mt.tensor(yb, device=cfg.device))
            optimizer_step(loss, model, opt, sched)  # no gradient clipping
            step += 1
            log_progress(bar, log, step, loss, opt, every=50, total=cfg.steps)
            if step == cfg.steps:
                break
    bar.close()
    seconds = time.perf_counter() - start

    train_acc = accuracy(model, x_train, y_train, cfg.device)  # all images in one pass
    test_acc = accuracy(model, x_test, y_test, cfg.device)
    log.log(step=step, train_accuracy=train_acc, test_accuracy=test_acc)
    serialization.save_checkpoint(checkpoint, model=model, optimizer=opt, schedule=sched,
                                  step=step, config=cfg, rngs={"loader": loader_rng})
    plot_curves(log, ["loss"], out / "loss.png", "MLP on digits: training loss", log_y=True)
    print(f"mlp_digits: {step} steps in {seconds:.1f} s; train accuracy {train_acc:.4f}, "
          f"test accuracy {test_acc:.4f} ({len(y_test)} held-out digits)")
    print(f"wrote {checkpoint}, {out / 'metrics.csv'} and {out / 'loss.png'}")
    return {"test_accuracy": test_acc, "train_accuracy": train_acc, "seconds": seconds}


if __name__ == "__main__":
    main()
