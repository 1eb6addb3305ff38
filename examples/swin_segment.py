"""Semantic segmentation with a Swin backbone: ``python -m examples.swin_segment``.

The small Swin of ``examples.swin_classify`` (32x32 images, window 4, three stages; patch 4 here, an
8x8 token grid) as a backbone, with the small all-MLP decoder of ``models/swin_segment.py``:
each stage's map is projected, upsampled to the 8x8 grid of stage 1 by nearest-neighbour
repetition (a reshape and a broadcast), concatenated with an image-level pooled feature and
fused, and each token predicts the classes of its 4x4 pixels.
The loss is the per-pixel cross-entropy; the metric is the mean intersection-over-union (mIoU)
over the classes of the held-out images.

Datasets (``--dataset``): ``shapes`` (default; 6 classes: background and the five shapes, masks
drawn with the images), or a grey digit dataset (``mnist_5k``, ``digits``, ``mnist``,
``fashion_mnist``), whose masks are made by thresholding the strokes at 0.5 and labelling them
with the digit: 11 classes. Outputs go to ``runs/swin_segment/`` (``runs/swin_segment-quick/``
for ``--quick``), with ``masks.png`` showing held-out images, their ground truth and the
predicted masks. Ctrl-C or ``--stop-after N`` writes the checkpoint and exits; ``--resume``
continues from it. The checkpoint's config is a
:class:`models.swin_segment.SegmenterConfig` (the backbone's ``SwinConfig``, the classes and the
decoder width), from which the model is rebuilt.
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
    downloading,
    load_images_32,
    log_progress,
    parse_config,
    plot_curves,
    predict,
    progress,
    resume_step,
    run_dir,
    standardize,
    steps_run,
)
from minitx import data, optim, serialization
from models.swin import SwinConfig
from models.swin_segment import SegmenterConfig, SwinSegmenter, confusion_matrix, mean_iou

SHAPE_CLASSES = ("background", "circle", "square", "triangle", "diamond", "cross")
EVAL_BATCH = 100  # images per forward pass when predicting masks


@dataclass(frozen=True)
class Config:
    # shapes, or a grey digit dataset (thresholded masks)
    dataset: OneOf("shapes", "mnist_5k", "digits", "mnist", "fashion_mnist") = "shapes"
    embed_dim: PositiveInt = 32  # C of stage 1 (then 2C, 4C)
    depth: PositiveInt = 2  # Swin blocks per stage
    head_dim: PositiveInt = 16  # d; heads per stage = C_i / d
    window_size: PositiveInt = 4  # M, the side of an attention window in tokens
    # P: each token predicts the classes of its P x P pixels. Patch 2 (16x16 tokens) draws finer
    # edges but costs 4x per image: 1,000 steps of 32 from 3,000 images reached mIoU 0.52.
    patch_size: PositiveInt = 4
    mlp_ratio: PositiveInt = 4  # α, MLP hidden width α·C
    decoder_dim: PositiveInt = 64  # D of the decoder
    # GELU's tanh form; the exact GELU ("gelu") is faster with the compiled loops, slower without
    activation: OneOf("gelu_tanh", "gelu") = "gelu_tanh"
    # training images: generated (shapes; rendering 20,000 takes about 15 s) or the first N
    train_images: PositiveInt = 20000
    test_images: PositiveInt = 500  # held-out images: generated (shapes) or the first N
    steps: PositiveInt = 2500  # optimizer steps
    batch_size: PositiveInt = 64  # images per step
    lr: PositiveFloat = 2e-3  # peak learning rate of AdamW
    warmup_steps: NonNegativeInt = 100  # linear warm-up, then cosine decay to 0
    weight_decay: NonNegativeFloat = 0.05  # AdamW's decoupled weight decay (Swin §4.1)
    clip_norm: PositiveFloat = 5.0  # global gradient-norm clipping, as Swin's official code
    log_every: PositiveInt = 25  # steps between loss entries in the metrics log
    eval_every: PositiveInt = 250  # steps between held-out mIoU evaluations
    checkpoint_every: PositiveInt = 250  # steps between checkpoints
    seed: NonNegativeInt = 0  # the images, the initial weights and the batches
    device: str = "cpu"  # where the model trains: cpu, cuda, cuda:1, ...


# a smoke run: a tiny model, a few steps on a few images
QUICK = {"steps": 3, "warmup_steps": 1, "batch_size": 8, "embed_dim": 8, "head_dim": 4,
         "decoder_dim": 8, "train_images": 32, "test_images": 16, "eval_every": 2,
         "checkpoint_every": 2}


def load_segmentation(cfg):
    """Return (x_train, m_train, x_test, m_test, class names); masks (N, 32, 32) int64."""
    if cfg.dataset == "shapes":
        train = data.load_shapes(cfg.train_images, seed=cfg.seed)
        test = data.load_shapes(cfg.test_images, seed=cfg.seed + 1)
        return train["images"], train["masks"], test["images"], test["masks"], SHAPE_CLASSES
    x_train, y_train, x_test, y_test, _ = load_images_32(cfg.dataset, cfg.seed)
    masks = [np.where(x[:, 0] > 0.5, y[:, None, None] + 1, 0) for x, y in
             ((x_train, y_train), (x_test, y_test))]  # stroke pixels get 1 + the digit
    names = ("background",) + tuple(str(d) for d in range(10))
    return (x_train[:cfg.train_images], masks[0][:cfg.train_images], x_test[:cfg.test_images],
            masks[1][:cfg.test_images], names)


def segmenter_config(cfg, in_channels, num_classes):
    """The three-stage Swin backbone for 32x32 images (as in examples.swin_classify: stage i has
    width C_i = 2^i C and C_i / d heads) with the all-MLP decoder's sizes."""
    widths = [cfg.embed_dim * 2 ** i for i in range(3)]
    backbone = SwinConfig(image_size=32, patch_size=cfg.patch_size, in_channels=in_channels,
                          embed_dim=cfg.embed_dim, depths=(cfg.depth,) * 3,
                          num_heads=tuple(max(c // cfg.head_dim, 1) for c in widths),
                          window_size=cfg.window_size, mlp_ratio=cfg.mlp_ratio,
                          num_classes=1, activation=cfg.activation)  # its head is not used
    return SegmenterConfig(backbone, num_classes, cfg.decoder_dim)


def build_model(config, device="cpu"):
    """A SwinSegmenter from its :class:`SegmenterConfig`."""
    return SwinSegmenter(config.backbone, config.num_classes, config.decoder_dim, device=device)


def main(argv=None):
    mt.backend.keep_host_memory()  # reuse freed memory step after step (see its docstring)
    cfg, args = parse_config(Config, __doc__, argv, prog="python -m examples.swin_segment",
                             quick_config=QUICK, resumable=True)
    if cfg.embed_dim % cfg.head_dim:  # C_i = 2^i C: d dividing C divides every stage
        args.error(f"--head-dim {cfg.head_dim} does not divide --embed-dim {cfg.embed_dim}: "
                   f"stage i has C_i / d heads of d features each")
    out = run_dir("swin_segment", quick=args.quick, error=args.error)
    mt.random.seed(cfg.seed)
    with downloading(args, cfg.dataset):
        x_train, m_train, x_test, m_test, names = load_segmentation(cfg)
    for flag, asked, got in (("--train-images", cfg.train_images, len(x_train)),
                             ("--test-images", cfg.test_images, len(x_test))):
        if got < asked:
            print(f"note: {cfg.dataset} has {got} images for {flag} {asked}; using all {got}")
    if cfg.batch_size > len(x_train):
        args.error(f"the training set has {len(x_train)} images, fewer than --batch-size "
                   f"{cfg.batch_size}: an epoch would have no batch")
    K = len(names)
    n_train, n_test = standardize(x_train, x_test)  # per channel, training-set statistics
    loader_rng = np.random.default_rng(cfg.seed)
    loader = data.DataLoader(data.ArrayDataset(n_train, m_train), cfg.batch_size, shuffle=True,
                             drop_last=True, rng=loader_rng)

    model_cfg = segmenter_config(cfg, x_train.shape[1], K)
    try:
        model = build_model(model_cfg, cfg.device)
    except ValueError as error:  # sizes that do not fit together, an unknown --device
        args.error(str(error))
    opt = optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = optim.WarmupCosineSchedule(opt, warmup_steps=cfg.warmup_steps,
                                       total_steps=cfg.steps)
    rngs, checkpoint = {"loader": loader_rng}, out / "checkpoint.npz"
    step = resume_step(checkpoint, args, cfg, model=model, optimizer=opt, schedule=sched,
                       loader=loader, rngs=rngs)
    log = MetricsLog(out, resume=args.resume, step=step)

    batches = loader.forever()
    bar, start = progress(cfg.steps, "swin_segment", initial=step), time.perf_counter()
    with StopRequest(args.stop_after) as stop:  # Ctrl-C or --stop-after: save, then exit
        while step < cfg.steps:
            xb, mb = next(batches)
            logits = model(mt.tensor(xb, device=cfg.device))  # (B, H, W, K)
            loss = F.cross_entropy(logits, mt.tensor(mb, device=cfg.device))  # per pixel
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            opt.zero_grad()
            sched.step()
            step += 1
            log_progress(bar, log, step, loss, opt, cfg.log_every, cfg.steps)
            if step % cfg.eval_every == 0 and step < cfg.steps:
                predicted = predict(model, n_test, cfg.device, EVAL_BATCH)  # (N, 32, 32)
                log.log(step=step, test_miou=mean_iou(confusion_matrix(predicted, m_test, K))[0])
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
        print(f"swin_segment: stopped after step {step} of {cfg.steps}; wrote {checkpoint} "
              f"(continue with --resume)")
        return {"stopped_at": step, "model": model}

    predicted = predict(model, n_test, cfg.device, EVAL_BATCH)  # (N, 32, 32)
    miou, iou = mean_iou(confusion_matrix(predicted, m_test, K))
    pixel_acc = float((predicted == m_test).mean())
    log.log(step=step, test_miou=miou, test_pixel_accuracy=pixel_acc)
    plot_curves(log, ["loss"], out / "loss.png", f"Swin segmentation on {cfg.dataset}: loss",
                log_y=True)
    draw_masks(x_test, m_test, predicted, names, out / "masks.png")
    per_class = ", ".join(f"{n} {v:.3f}" for n, v in zip(names, iou) if not np.isnan(v))
    print(f"swin_segment: {steps_run(step, args)} in {seconds:.1f} s on {cfg.dataset}; test mIoU "
          f"{miou:.4f}, pixel accuracy {pixel_acc:.4f} ({len(m_test)} held-out images)")
    print(f"per-class IoU: {per_class}")
    print(f"wrote {checkpoint}, {out / 'metrics.csv'}, {out / 'loss.png'} and "
          f"{out / 'masks.png'}")
    return {"test_miou": miou, "test_pixel_accuracy": pixel_acc, "seconds": seconds,
            "model": model}


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
