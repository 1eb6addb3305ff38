"""Semantic segmentation with a Swin backbone: ``python -m examples.swin_segment``.

The Swin of ``examples.swin_classify`` (32x32 images, window 4, three stages; patch 4 here, an
8x8 token grid) as a backbone, with the small all-MLP decoder of ``models/swin_segment.py``:
each stage's map is projected, upsampled to the 8x8 grid of stage 1 by nearest-neighbour
repetition (a reshape and a broadcast), concatenated with an image-level pooled feature and
fused, and each token predicts the classes of its 4x4 pixels.
The loss is the per-pixel cross-entropy; the metric is the mean intersection-over-union (mIoU)
over the classes of the held-out images.

Datasets (``--dataset``): ``shapes`` (default; 6 classes: background and the five shapes, masks
drawn with the images), or a grey digit dataset (``mnist_5k``, ``digits``, ``mnist``,
``fashion_mnist``), whose masks are made by thresholding the strokes at 0.5 and labelling them
with the digit: 11 classes. Outputs go to ``runs/swin_segment/``, with ``masks.png`` showing
held-out images, their ground truth and the predicted masks.
"""

import time
from dataclasses import dataclass

import numpy as np

import minitx as mt
import minitx.functional as F
from examples.common import (
    MetricsLog,
    log_progress,
    optimizer_step,
    parse_config,
    plot_curves,
    predict,
    progress,
    resume_step,
    run_dir,
    standardize,
)
from examples.swin_classify import load_dataset, swin_config
from minitx import data, optim, serialization
from models.swin_segment import SwinSegmenter, confusion_matrix, mean_iou

SHAPE_CLASSES = ("background", "circle", "square", "triangle", "diamond", "cross")
EVAL_BATCH = 100  # images per forward pass when predicting masks


@dataclass(frozen=True)
class Config:
    dataset: str = "shapes"  # shapes, or a grey digit dataset (thresholded masks)
    embed_dim: int = 32  # C of stage 1 (then 2C, 4C)
    depth: int = 2  # Swin blocks per stage
    head_dim: int = 16  # d; heads per stage = C_i / d
    window_size: int = 4  # M
    # P: each token predicts the classes of its P x P pixels. Patch 2 (16x16 tokens) draws finer
    # edges but costs 4x per image: 1,000 steps of 32 from 3,000 images reached mIoU 0.52.
    patch_size: int = 4
    mlp_ratio: int = 4  # α, MLP hidden width α·C
    decoder_dim: int = 64  # D of the decoder
    activation: str = "gelu_tanh"  # see examples.swin_classify
    train_images: int = 20000  # procedural, so plenty: rendering them takes about 15 s
    test_images: int = 500
    steps: int = 2500
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.05
    clip_norm: float = 5.0
    seed: int = 0
    device: str = "cpu"


def load_segmentation(cfg):
    """Return (x_train, m_train, x_test, m_test, class names); masks (N, 32, 32) int64."""
    if cfg.dataset == "shapes":
        train = data.load_shapes(cfg.train_images, seed=cfg.seed)
        test = data.load_shapes(cfg.test_images, seed=cfg.seed + 1)
        return train["images"], train["masks"], test["images"], test["masks"], SHAPE_CLASSES
    if cfg.dataset == "cifar10":
        raise ValueError("swin_segment: cifar10 has no masks; use shapes or a digit dataset")
    x_train, y_train, x_test, y_test, _ = load_dataset(cfg.dataset, cfg.seed)
    masks = [np.where(x[:, 0] > 0.5, y[:, None, None] + 1, 0) for x, y in
             ((x_train, y_train), (x_test, y_test))]  # stroke pixels get 1 + the digit
    names = ("background",) + tuple(str(d) for d in range(10))
    return (x_train[:cfg.train_images], masks[0][:cfg.train_images], x_test[:cfg.test_images],
            masks[1][:cfg.test_images], names)


def build_model(cfg, in_channels, num_classes):
    """The Swin backbone of examples.swin_classify with the all-MLP decoder."""
    config = swin_config(cfg, in_channels, num_classes=1, patch_size=cfg.patch_size)  # no head
    return SwinSegmenter(config, num_classes, cfg.decoder_dim, device=cfg.device)


def main(argv=None):
    mt.backend.keep_host_memory()  # reuse freed memory step after step (see its docstring)
    cfg, args = parse_config(Config, __doc__, argv,
                             resume=(bool, False, "continue from runs/swin_segment/"
                                                  "checkpoint.npz"),
                             quick=(bool, False, "a smoke run of a few steps on few images"))
    if args.quick:  # a smoke run: a tiny model, a few steps (unless --steps says otherwise)
        cfg = Config(**{**cfg.__dict__, "steps": 3 if cfg.steps == Config.steps else cfg.steps,
                        "batch_size": 8, "embed_dim": 8, "head_dim": 4, "decoder_dim": 8,
                        "train_images": 32, "test_images": 16})
    cfg = Config(**{**cfg.__dict__, "warmup_steps": min(cfg.warmup_steps, cfg.steps // 2)})
    out = run_dir("swin_segment")
    mt.random.seed(cfg.seed)
    x_train, m_train, x_test, m_test, names = load_segmentation(cfg)
    K = len(names)
    n_train, n_test = standardize(x_train, x_test)  # per channel, training-set statistics
    loader_rng = np.random.default_rng(cfg.seed)
    loader = data.DataLoader(data.ArrayDataset(n_train, m_train), cfg.batch_size, shuffle=True,
                             drop_last=True, rng=loader_rng)

    model = build_model(cfg, x_train.shape[1], K)
    opt = optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = optim.WarmupCosineSchedule(opt, warmup_steps=cfg.warmup_steps,
                                       total_steps=cfg.steps)
    checkpoint = out / "checkpoint.npz"
    step = resume_step(checkpoint, args.resume, model=model, optimizer=opt, schedule=sched,
                       rngs={"loader": loader_rng})
    log = MetricsLog(out, resume=args.resume)

    bar, start = progress(cfg.steps, "swin_segment", initial=step), time.perf_counter()
    while step < cfg.steps:
        for xb, mb in loader:
            logits = model(mt.tensor(xb, device=cfg.device))  # (B, H, W, K)
            loss = F.cross_entropy(logits, mt.tensor(mb, device=cfg.device))  # per pixel
            optimizer_step(loss, model, opt, sched, clip_norm=cfg.clip_norm)
            step += 1
            log_progress(bar, log, step, loss, opt, every=25, total=cfg.steps)
            if step % 250 == 0 and step < cfg.steps:
                predicted = predict(model, n_test, cfg.device, EVAL_BATCH)  # (N, 32, 32)
                miou = mean_iou(confusion_matrix(predicted, m_test, K))
                log.log(step=step, test_miou=miou[0])
            if step == cfg.steps:
                break
    bar.close()
    seconds = time.perf_counter() - start

    predicted = predict(model, n_test, cfg.device, EVAL_BATCH)  # (N, 32, 32)
    miou, iou = mean_iou(confusion_matrix(predicted, m_test, K))
    pixel_acc = float((predicted == m_test).mean())
    log.log(step=step, test_miou=miou, test_pixel_accuracy=pixel_acc)
    serialization.save_checkpoint(checkpoint, model=model, optimizer=opt, schedule=sched,
                                  step=step, config=cfg, rngs={"loader": loader_rng})
    plot_curves(log, ["loss"], out / "loss.png", f"Swin segmentation on {cfg.dataset}: loss",
                log_y=True)
    draw_masks(x_test, m_test, predicted, names, out / "masks.png")
    per_class = ", ".join(f"{n} {v:.3f}" for n, v in zip(names, iou) if not np.isnan(v))
    print(f"swin_segment: {step} steps in {seconds:.1f} s on {cfg.dataset}; test mIoU "
          f"{miou:.4f}, pixel accuracy {pixel_acc:.4f} ({len(m_test)} held-out images)")
    print(f"per-class IoU: {per_class}")
    print(f"wrote {checkpoint}, {out / 'metrics.csv'}, {out / 'loss.png'} and "
          f"{out / 'masks.png'}")
    return {"test_miou": miou, "test_pixel_accuracy": pixel_acc, "seconds": seconds}


def draw_masks(images, truth, predicted, names, path, count=8):
    """Save held-out images (top), their ground-truth masks (middle), predictions (bottom)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20").colors[:len(names)]
    colors = ListedColormap(["#202020", *palette[1:]])  # background dark, one colour per class
    count = min(count, len(images))
    fig, axes = plt.subplots(3, count, figsize=(1.6 * count, 5.6), squeeze=False)
    for i in range(count):
        picture = images[i].transpose(1, 2, 0)  # (H, W, Cin)
        axes[0, i].imshow(picture[..., 0] if picture.shape[-1] == 1 else picture,
                          cmap="gray", vmin=0, vmax=1)
        for row, mask in ((1, truth[i]), (2, predicted[i])):
            axes[row, i].imshow(mask, cmap=colors, vmin=-0.5, vmax=len(names) - 0.5,
                                interpolation="nearest")
        correct = (truth[i] == predicted[i]).mean()
        axes[2, i].set_title(f"{correct:.0%} px", fontsize=8)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    for row, label in enumerate(("image", "ground truth", "predicted")):
        axes[row, 0].set_ylabel(label)
    fig.legend(handles=[Patch(color=colors(k), label=n) for k, n in enumerate(names)],
               loc="lower center", ncol=min(len(names), 11), fontsize=8, frameon=False)
    fig.suptitle("Swin + all-MLP decoder: held-out images, ground truth, predicted masks")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
