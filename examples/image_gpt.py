"""Image-GPT learns pixels as tokens: ``python -m examples.image_gpt [--dataset NAME]``.

Image-GPT (Chen et al. 2020, ``models/image_gpt.py``): images are quantised to a small palette,
read in raster order, and a GPT-2 decoder is pre-trained on the pixel sequences, either
autoregressively (``--objective ar``: predict each pixel from those before it) or BERT-style
(``--objective bert``: predict 15 % masked pixels from the rest). Then, with the Transformer
frozen, a linear probe is trained on the average-pooled features of every layer (§2.4).

    digits    the 1,797 real 8x8 digits of scikit-learn, their own 17 grey levels (64 tokens)
    mnist_5k  5,000 real MNIST digits shrunk to 14x14, a 16-level k-means palette (196 tokens)
    shapes    procedural 16x16 coloured shapes, a 16-colour k-means palette (256 tokens)
    cifar10   CIFAR-10 (downloaded once) at 32x32 with the paper's 512-colour palette; a run for
              a machine with a GPU (not tuned)

Outputs go to ``runs/image_gpt/<dataset>-<objective>/`` (``runs/image_gpt-quick/...`` with
``--quick``): the checkpoint (the model's config inside, the palette and the batch generator's
state in it too, so ``--resume`` continues bit-exactly), ``metrics.csv``/``.jsonl``, ``loss.png``
(nats per dimension),
``probe.png`` (probe accuracy against depth) and, for the AR model, ``samples.png`` and
``inpainting.png`` (the top half of held-out images given, the bottom half sampled).

``--experiment objectives`` reproduces the lecture's comparison (the paper's Fig. 4) at small
scale: AR and BERT pre-training, each probed at every layer and fine-tuned on L_CLF + L_GEN
(§2.3), BERT evaluated with one mask and with 5 masks (§4.6); a table and ``objectives.png``.

    python -m examples.image_gpt --quick                # a smoke run of a few seconds
    python -m examples.image_gpt --stop-after 500       # or Ctrl-C: checkpoint and exit
    python -m examples.image_gpt --resume               # continue, bit for bit
"""

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import matplotlib.pyplot as plt
import numpy as np

import minitx as mt
import minitx.functional as F
from examples.common import (
    Check,
    Fraction,
    MetricsLog,
    NonNegativeFloat,
    NonNegativeInt,
    OneOf,
    PositiveFloat,
    PositiveInt,
    StopRequest,
    downloading,
    log_progress,
    parse_dataset_config,
    plot_curves,
    progress,
    resume_step,
    run_dir,
    steps_run,
)
from minitx import data, nn, optim, serialization
from minitx.data import ArrayDataset, DataLoader
from models.image_gpt import (
    BITS_PER_NAT,
    ImageGPT,
    ImageGPTConfig,
    apply_mask,
    ar_inputs,
    ar_loss,
    bert_loss,
    bert_mask,
    dequantize,
    ensemble_probabilities,
    fit_palette,
    quantize,
    sample,
)

# §3.2 uses 9-bit colour (512); beyond 12 bits k-means and the (B, T, V) logits grow for nothing
Palette = Annotated[int, Check("between 1 and 4096 (12-bit colour)", lambda v: 0 < v <= 4096)]


@dataclass(frozen=True)
class Config:
    """Defaults for the 8x8 digits (about 5 minutes of pre-training on one core)."""

    dataset: OneOf("digits", "mnist_5k", "shapes", "cifar10") = "digits"  # the images
    objective: OneOf("ar", "bert") = "ar"  # pre-training: autoregressive or masked (§2.1)
    image_size: PositiveInt = 8  # H = W after resizing (§3.2 context reduction)
    colors: Palette = 17  # V, palette size (digits: their 17 grey levels)
    dim: PositiveInt = 128  # D
    depth: PositiveInt = 4  # L
    heads: PositiveInt = 4  # h
    dropout: Fraction = 0.1  # dropout probability in the Transformer
    steps: PositiveInt = 2000  # pre-training steps
    batch_size: PositiveInt = 32  # images per step, drawn at random
    lr: PositiveFloat = 3e-3  # peak learning rate of AdamW
    warmup_steps: NonNegativeInt = 100  # linear warm-up, then cosine decay to 0
    weight_decay: NonNegativeFloat = 0.01  # AdamW's decoupled weight decay
    clip_norm: PositiveFloat = 1.0  # global gradient-norm clipping
    log_every: PositiveInt = 25  # steps between loss entries in the metrics log
    eval_every: PositiveInt = 250  # steps between test evaluations
    checkpoint_every: PositiveInt = 250  # steps between checkpoints
    probe_steps: PositiveInt = 500  # full-batch steps of each linear probe (§2.4)
    # steps of fine-tuning on L_CLF + L_GEN (§2.3, --experiment objectives only)
    finetune_steps: NonNegativeInt = 400
    train_size: NonNegativeInt = 0  # images generated for training (shapes only)
    seed: NonNegativeInt = 0  # the data split, the palette, the initial weights and the batches
    device: str = "cpu"  # where the model trains: cpu, cuda, cuda:1, ...


@dataclass(frozen=True)
class Mnist5kConfig(Config):
    dataset: str = "mnist_5k"
    image_size: int = 14
    colors: int = 16
    steps: int = 1500


@dataclass(frozen=True)
class ShapesConfig(Config):
    dataset: str = "shapes"
    image_size: int = 16
    colors: int = 16
    steps: int = 1500
    train_size: int = 5000


@dataclass(frozen=True)
class Cifar10Config(Config):  # not tuned: CIFAR-10 is not on this machine
    dataset: str = "cifar10"
    image_size: int = 32
    colors: int = 512  # §3.2: 9-bit colour
    dim: int = 256
    depth: int = 8
    heads: int = 8
    steps: int = 20000
    batch_size: int = 64


CONFIGS = {"digits": Config, "mnist_5k": Mnist5kConfig, "shapes": ShapesConfig,
           "cifar10": Cifar10Config}
# a smoke run: a few steps, short probes, trained and evaluated on slices of the data
QUICK = {"steps": 20, "warmup_steps": 5, "eval_every": 10, "checkpoint_every": 10,
         "log_every": 5, "probe_steps": 30, "finetune_steps": 5, "train_size": 300}
EVAL_BATCH = 256
SIDES = {"digits": 8, "mnist_5k": 28, "shapes": 32, "cifar10": 32}  # H = W before resizing


def load(cfg):
    """(x_train, y_train, x_test, y_test): images (N, C, H, W) float32 in [0, 1], labels."""
    if cfg.dataset in ("digits", "mnist_5k"):
        loader = data.load_digits if cfg.dataset == "digits" else data.load_mnist_5k
        (x_train, y_train), (x_test, y_test) = (loader(s, seed=cfg.seed) for s in ("train", "test"))
        x_train, x_test = x_train[:, None], x_test[:, None]  # (N, 1, H, W)
    elif cfg.dataset == "shapes":  # test images from another seed: a disjoint sample stream
        train = data.load_shapes(cfg.train_size, seed=2 * cfg.seed)
        test = data.load_shapes(1000, seed=2 * cfg.seed + 1)
        x_train, y_train, x_test, y_test = train["images"], train["shape"], test["images"], \
            test["shape"]
    else:
        (x_train, y_train), (x_test, y_test) = (data.load_cifar10(s) for s in ("train", "test"))
    return resize(x_train, cfg.image_size), y_train, resize(x_test, cfg.image_size), y_test


def resize(images, size):
    """Shrink (N, C, H, W) to size x size by averaging f x f blocks, f = H // size; when H is
    not a multiple of size, the border is cropped first (28 -> 14 averages 2x2 blocks, 28 -> 5
    averages 5x5 blocks of the central 25x25)."""
    N, C, H, W = images.shape
    if not 0 < size <= H:  # f = 0 would average empty blocks: NaN images
        raise ValueError(f"resize: size must be in 1..{H} for images {images.shape}, got {size}")
    f = H // size
    crop = (H - f * size) // 2
    images = images[:, :, crop:crop + f * size, crop:crop + f * size]
    return images.reshape(N, C, size, f, size, f).mean(axis=(3, 5))  # (N, C, size, size)


def make_palette(cfg, x_train):
    """§3.2: the digits keep their 17 levels; other data gets a k-means palette (k, C)."""
    if cfg.dataset == "digits" and cfg.colors == 17:
        return (np.arange(17, dtype=np.float32) / 16)[:, None]  # (17, 1)
    pixels = x_train.transpose(0, 2, 3, 1).reshape(-1, x_train.shape[1])  # (N·H·W, C)
    return fit_palette(pixels, cfg.colors, seed=cfg.seed)


# ---- pre-training -----------------------------------------------------------------------------
def model_config(cfg, objective, num_classes=0):
    return ImageGPTConfig(num_colors=cfg.colors, seq_len=cfg.image_size ** 2, dim=cfg.dim,
                          depth=cfg.depth, heads=cfg.heads, objective=objective,
                          num_classes=num_classes, dropout=cfg.dropout)


def generative_loss(model, tokens, rng):
    """L_GEN of a batch of tokens (B, T): L_AR or L_BERT with a fresh mask (§2.1)."""
    device, V = model.head.weight.device, model.config.num_colors
    if model.causal:
        return ar_loss(model(mt.tensor(ar_inputs(tokens, V), device=device)), tokens)
    mask = bert_mask(tokens.shape, rng)  # (B, T)
    return bert_loss(model(mt.tensor(apply_mask(tokens, mask, V), device=device)), tokens, mask)


def evaluate(model, tokens, seed):
    """Test loss in bits per dimension (BERT: over masked pixels, the same masks every time)."""
    rng, total = np.random.default_rng(seed), 0.0
    model.eval()
    with mt.no_grad():
        for i in range(0, len(tokens), EVAL_BATCH):
            batch = tokens[i:i + EVAL_BATCH]
            total += generative_loss(model, batch, rng).item() * len(batch)
    model.train()
    return total / len(tokens) * BITS_PER_NAT


def pretrain(cfg, args, objective, tokens, test_tokens, palette, out):
    """Pre-train an Image-GPT on `tokens` (N, T), resuming and stopping as `args` says; return
    (model, log, step reached, seconds, cpu seconds)."""
    mt.random.seed(cfg.seed)  # dropout draws from minitx's generator
    model_cfg = model_config(cfg, objective)
    try:
        model = ImageGPT(model_cfg, device=cfg.device, generator=np.random.default_rng(cfg.seed))
    except ValueError as error:  # e.g. an unknown --device
        args.error(str(error))
    opt = optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = optim.WarmupCosineSchedule(opt, cfg.warmup_steps, cfg.steps)
    batch_rng = np.random.default_rng(cfg.seed + 1)  # batches and BERT masks
    # Each step draws its batch at random with replacement (nanoGPT's get_batch): a loader
    # whose "epoch" is that one batch, so its position is saved like any other loader's.
    loader = DataLoader(ArrayDataset(tokens), cfg.batch_size, rng=batch_rng,
                        batch_sampler=lambda rng: [rng.integers(0, len(tokens), cfg.batch_size)])
    rngs, checkpoint = {"batches": batch_rng}, out / "checkpoint.npz"
    step = resume_step(checkpoint, args, cfg, model=model, optimizer=opt, schedule=sched,
                       loader=loader, rngs=rngs)
    log = MetricsLog(out, resume=args.resume, step=step)

    batches = loader.forever()
    bar = progress(cfg.steps, f"igpt {cfg.dataset} {objective}", initial=step)
    start, cpu_start = time.perf_counter(), time.process_time()
    with StopRequest(args.stop_after) as stop:  # Ctrl-C or --stop-after: save, then exit
        while step < cfg.steps:
            (batch,) = next(batches)  # (B, T) tokens
            loss = generative_loss(model, batch, batch_rng)  # forward: nats per dimension
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            opt.zero_grad()
            sched.step()
            step += 1
            log_progress(bar, log, step, loss, opt, cfg.log_every, cfg.steps)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                bits = evaluate(model, test_tokens, cfg.seed + 2)
                log.log(step=step, test_bits=bits, test_loss=bits / BITS_PER_NAT)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop(step):
                serialization.save_checkpoint(
                    checkpoint, model=model, optimizer=opt, schedule=sched, step=step,
                    config=model_cfg, rngs=rngs,
                    extra={"loader": loader.state_dict(), "example": dataclasses.asdict(cfg),
                           "palette": palette, "dataset": cfg.dataset})
            if stop(step):
                break
    bar.close()
    return model, log, step, time.perf_counter() - start, time.process_time() - cpu_start


# ---- §2.4 linear probes and §2.3 fine-tuning --------------------------------------------------
def layer_features(model, tokens, rng=None):
    """f^l for l = 0 … L, each (N, D) NumPy; BERT models see one random mask (§4.6)."""
    V, device, out = model.config.num_colors, model.head.weight.device, []
    model.eval()
    with mt.no_grad():
        for i in range(0, len(tokens), EVAL_BATCH):
            batch = tokens[i:i + EVAL_BATCH]
            ids = ar_inputs(batch, V) if model.causal else \
                apply_mask(batch, bert_mask(batch.shape, rng), V)
            out.append([f.numpy() for f in model.layer_features(mt.tensor(ids, device=device))])
    model.train()
    return [np.concatenate(layer) for layer in zip(*out)]


def train_probe(x, y, steps, classes, seed):
    """A linear classifier on frozen features x (N, D), full batch, cross-entropy (§2.4).
    Returns the classifier and the features' training mean and std (z-scoring)."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    probe = nn.Linear(x.shape[1], classes, generator=np.random.default_rng(seed))
    opt = optim.AdamW(probe.parameters(), lr=1e-2, weight_decay=1e-3)
    inputs, targets = mt.tensor((x - mean) / std), mt.tensor(y)
    for _ in range(steps):
        loss = F.cross_entropy(probe(inputs), targets)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return lambda features: probe(mt.tensor((features - mean) / std))


def probe_layers(model, cfg, tokens, labels, test_tokens, test_labels, masks=5):
    """Probe accuracy on the test set at every depth l = 0 … L. BERT also gets the accuracy
    of the 5-mask ensemble (probabilities averaged over masks)."""
    rng, classes = np.random.default_rng(cfg.seed + 3), int(labels.max()) + 1
    train_f = layer_features(model, tokens, rng)
    tests = [layer_features(model, test_tokens, rng) for _ in range(1 if model.causal else masks)]
    single, ensemble = [], []
    for layer, x in enumerate(train_f):
        probe = train_probe(x, labels, cfg.probe_steps, classes, cfg.seed)
        with mt.no_grad():
            probs = [F.softmax(probe(t[layer]), axis=-1).numpy() for t in tests]
        single.append(float((probs[0].argmax(-1) == test_labels).mean()))
        ensemble.append(float((np.mean(probs, axis=0).argmax(-1) == test_labels).mean()))
    return single, (None if model.causal else ensemble)


def finetune(pretrained, cfg, tokens, labels, test_tokens, test_labels):
    """§2.3: the whole model plus a Linear on f^L, trained on L = L_CLF + L_GEN. Returns the
    test accuracy (BERT: no mask, one mask, and the 5-mask ensemble)."""
    classes, V = int(labels.max()) + 1, cfg.colors
    model = ImageGPT(dataclasses.replace(pretrained.config, num_classes=classes),
                     device=cfg.device, generator=np.random.default_rng(cfg.seed))
    model.load_state_dict(pretrained.state_dict(), strict=False)  # all but the classifier
    opt = optim.AdamW(model.parameters(), lr=cfg.lr / 3, weight_decay=cfg.weight_decay)
    rng, device = np.random.default_rng(cfg.seed + 4), cfg.device

    def ids_of(batch, masked):
        if model.causal:
            return ar_inputs(batch, V), None
        mask = bert_mask(batch.shape, rng) if masked else np.zeros(batch.shape, bool)
        return apply_mask(batch, mask, V), mask

    bar = progress(cfg.finetune_steps, f"fine-tune {pretrained.config.objective}")
    for _ in range(cfg.finetune_steps):
        pick = rng.integers(0, len(tokens), cfg.batch_size)
        ids, mask = ids_of(tokens[pick], masked=True)
        logits, class_logits = model.classify(mt.tensor(ids, device=device))
        gen = ar_loss(logits, tokens[pick]) if model.causal else \
            bert_loss(logits, tokens[pick], mask)
        loss = F.cross_entropy(class_logits, mt.tensor(labels[pick], device=device)) + gen
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        opt.step()
        opt.zero_grad()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    model.eval()

    def class_logits(ids):  # (N, T) -> (N, K), in batches
        return mt.tensor(np.concatenate([
            model.classify(mt.tensor(ids[i:i + EVAL_BATCH], device=device))[1].numpy()
            for i in range(0, len(ids), EVAL_BATCH)]))

    with mt.no_grad():
        plain = class_logits(ids_of(test_tokens, masked=not model.causal)[0]).numpy()
        result = {"finetune": float((plain.argmax(-1) == test_labels).mean())}
        if not model.causal:  # §4.6: one mask (above), no mask, and 5 masks averaged
            unmasked = class_logits(ids_of(test_tokens, masked=False)[0]).numpy()
            result["finetune_no_mask"] = float((unmasked.argmax(-1) == test_labels).mean())
            probs = ensemble_probabilities(class_logits, test_tokens, rng, V, masks=5)
            result["finetune_5_masks"] = float((probs.argmax(-1) == test_labels).mean())
    return result


# ---- figures -----------------------------------------------------------------------------------
def show(ax, tokens, palette, size):
    image = dequantize(tokens[None], palette, size, size)[0].transpose(1, 2, 0)  # (H, W, C)
    ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_samples(model, palette, size, rng, path, n=16):
    """Unconditional samples (temperature 1, all colours), drawn through the key/value cache."""
    tokens = sample(model, n, size * size, rng)  # (n, T)
    fig, axes = plt.subplots(2, n // 2, figsize=(n * 0.6, 2.6))
    for ax, t in zip(axes.flat, tokens):
        show(ax, t, palette, size)
    fig.suptitle("Image-GPT samples")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_inpainting(model, palette, size, test_tokens, rng, path, images=6, completions=4):
    """The top size // 2 rows of held-out images given, the rest sampled `completions` times
    (an odd size samples the middle row too)."""
    half = size // 2 * size  # tokens of the given rows, in raster order
    fig, axes = plt.subplots(images, completions + 2, figsize=((completions + 2) * 1.1,
                                                              images * 1.1))
    for row, truth in enumerate(test_tokens[:images]):
        prefix = np.repeat(truth[None, :half], completions, axis=0)  # (completions, half)
        done = sample(model, completions, size * size, rng, prefix=prefix)
        given = np.concatenate([truth[:half], np.zeros(size * size - half, np.int64)])  # (T,)
        for col, t in enumerate([given, *done, truth]):
            show(axes[row, col], t, palette, size)
        axes[row, 0].axhline(size // 2 - 0.5, color="red", linewidth=1)  # below: not given
    for col, title in enumerate(["given", *["sample"] * completions, "original"]):
        axes[0, col].set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_probes(curves, path, title):
    """Probe accuracy against depth, one curve per entry of `curves` {label: [acc per l]}."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, accs in curves.items():
        ax.plot(range(len(accs)), accs, marker="o", label=label)
    ax.set_xticks(range(max(len(accs) for accs in curves.values())))
    ax.set_xlabel("layer l (0 = embeddings)")
    ax.set_ylabel("linear probe test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- main ---------------------------------------------------------------------------------------
def main(argv=None):
    mt.backend.keep_host_memory()  # reuse freed memory step after step (see its docstring)
    cfg, args = parse_dataset_config(
        CONFIGS, "digits", __doc__, argv, prog="python -m examples.image_gpt",
        quick_config=QUICK, resumable=True,
        experiment=(str, "", "'objectives': AR vs BERT, probes and fine-tuning (Fig. 4)"))
    if args.experiment not in ("", "objectives"):
        args.error(f"--experiment must be objectives (or not given), got {args.experiment!r}")
    if args.experiment and (args.resume or args.stop_after):
        args.error("--experiment objectives runs whole: it takes neither --resume nor "
                   "--stop-after")
    if args.experiment and cfg.finetune_steps == 0:
        args.error("--finetune-steps 0: --experiment objectives reports fine-tuned accuracy")
    if cfg.dataset == "shapes" and cfg.train_size < cfg.batch_size:
        args.error(f"--train-size {cfg.train_size} is smaller than --batch-size "
                   f"{cfg.batch_size}")
    side = SIDES[cfg.dataset]
    if cfg.image_size > side:  # resize only shrinks
        args.error(f"--image-size {cfg.image_size} is larger than the {cfg.dataset} images "
                   f"({side}x{side})")
    with downloading(args, cfg.dataset):
        x_train, y_train, x_test, y_test = load(cfg)
    if args.quick:  # a smoke run trains and evaluates on slices
        x_train, y_train, x_test, y_test = x_train[:300], y_train[:300], x_test[:100], y_test[:100]
    if cfg.batch_size > len(x_train):
        args.error(f"--batch-size {cfg.batch_size} exceeds the {len(x_train)} training images")
    pixels = x_train.shape[0] * cfg.image_size ** 2  # what k-means fits the palette on
    if not (cfg.dataset == "digits" and cfg.colors == 17) and cfg.colors > pixels:
        args.error(f"--colors {cfg.colors} exceeds the {pixels} pixels of the {len(x_train)} "
                   f"training images ({cfg.image_size}x{cfg.image_size}) the palette is fit on")
    palette = make_palette(cfg, x_train)  # (V, C)
    distinct = len(np.unique(palette, axis=0))  # k-means repeats centres when k > the colours
    if distinct < cfg.colors:
        args.error(f"--colors {cfg.colors}: the training images hold only {distinct} distinct "
                   f"colours (a palette of {cfg.colors} would repeat them)")
    tokens, test_tokens = quantize(x_train, palette), quantize(x_test, palette)  # (N, T)
    root = run_dir("image_gpt", quick=args.quick, error=args.error)
    if args.experiment:
        return objectives(cfg, args, tokens, y_train, test_tokens, y_test, palette, root)

    out = run_dir(f"image_gpt/{cfg.dataset}-{cfg.objective}", quick=args.quick, error=args.error)
    np.save(out / "palette.npy", palette)
    model, log, step, seconds, cpu = pretrain(cfg, args, cfg.objective, tokens, test_tokens,
                                              palette, out)
    plot_curves(log, ["loss", "test_loss"], out / "loss.png",
                f"Image-GPT ({cfg.objective}) on {cfg.dataset}: nats per dimension")
    if step < cfg.steps:
        print(f"image_gpt: stopped after step {step} of {cfg.steps}; wrote "
              f"{out / 'checkpoint.npz'} (continue with --resume)")
        return {"stopped_at": step, "model": model}
    test_bits = log.series("test_bits")[1][-1]
    result = {"test_bits": test_bits, "seconds": seconds, "cpu_seconds": cpu, "model": model}
    single, ensemble = probe_layers(model, cfg, tokens, y_train, test_tokens, y_test)
    curves = {cfg.objective: single, **({"bert, 5 masks": ensemble} if ensemble else {})}
    plot_probes(curves, out / "probe.png", f"linear probes, {cfg.dataset}")
    result.update(probe=single, best_probe=max(single), best_layer=int(np.argmax(single)))
    figures = "loss.png, probe.png"
    if model.causal:
        rng, size = np.random.default_rng(cfg.seed + 5), cfg.image_size
        plot_samples(model, palette, size, rng, out / "samples.png")
        plot_inpainting(model, palette, size, test_tokens, rng, out / "inpainting.png")
        figures += ", samples.png, inpainting.png"
    print(f"image_gpt[{cfg.dataset}, {cfg.objective}]: {steps_run(step, args)} in {seconds:.0f} s "
          f"({cpu:.0f} s CPU); test {test_bits:.3f} bits/dim; linear probe accuracy per layer "
          f"{' '.join(f'{a:.3f}' for a in single)} (best {max(single):.4f} at layer "
          f"{result['best_layer']}, {len(y_test)} held-out images)")
    print(f"wrote {out / 'checkpoint.npz'}, metrics and the figures {figures} in {out}")
    return result


def objectives(cfg, args, tokens, labels, test_tokens, test_labels, palette, root):
    """The lecture's Fig. 4 at small scale: AR vs BERT, probes per layer and fine-tuning, and
    the same linear probe on the raw pixels as a baseline."""
    size, classes = cfg.image_size, int(labels.max()) + 1
    pixels = [dequantize(t, palette, size, size).reshape(len(t), -1) for t in (tokens,
                                                                             test_tokens)]
    probe = train_probe(pixels[0], labels, cfg.probe_steps, classes, cfg.seed)
    with mt.no_grad():
        accuracy = float((probe(pixels[1]).numpy().argmax(-1) == test_labels).mean())
    rows, curves = {"pixels": {"best_probe": accuracy}}, {}
    for objective in ("ar", "bert"):
        out = run_dir(f"objectives/{cfg.dataset}-{objective}", root, error=args.error)
        model, log, _, seconds, cpu = pretrain(cfg, args, objective, tokens, test_tokens,
                                               palette, out)
        single, ensemble = probe_layers(model, cfg, tokens, labels, test_tokens, test_labels)
        curves[objective] = single
        row = {"test_bits": log.series("test_bits")[1][-1], "pretrain_cpu_s": cpu,
               "best_probe": max(single), "best_layer": int(np.argmax(single)),
               "probe_per_layer": single}
        if ensemble:
            curves["bert, 5 masks"] = ensemble
            row.update(best_probe_5_masks=max(ensemble), probe_5_masks_per_layer=ensemble)
        row.update(finetune(model, cfg, tokens, labels, test_tokens, test_labels))
        rows[objective] = row
    plot_probes(curves, root / "objectives.png", f"linear probe per layer, {cfg.dataset}")
    (root / "objectives.json").write_text(json.dumps(rows, indent=1))
    print(f"\n| {cfg.dataset} | test bits/dim | best probe (layer) | probe, 5 masks | "
          f"fine-tune | fine-tune, no mask | fine-tune, 5 masks |\n|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        cells = [f"{r['test_bits']:.3f}" if "test_bits" in r else "-",
                 f"{r['best_probe']:.4f} ({r.get('best_layer', '-')})",
                 *(f"{r[k]:.4f}" if k in r else "-" for k in (
                     "best_probe_5_masks", "finetune", "finetune_no_mask", "finetune_5_masks"))]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"wrote {Path(root) / 'objectives.json'} and objectives.png")
    return rows


if __name__ == "__main__":
    main()
