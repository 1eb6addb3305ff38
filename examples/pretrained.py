"""Published weights in minitx: ``python -m examples.pretrained COMMAND [flags]``.

The checkpoints people publish in the Hugging Face ``transformers`` layout (a folder with
config.json, model.safetensors and preprocessor_config.json, or its hub name) load into the
models of ``models/`` through ``models/hub.py`` and each family's name map:

    classify IMAGE --model NAME   the top-5 classes of an image (ViT or Swin), with the
                                  checkpoint's own pre-processing and class names; for a ViT
                                  also the attention rollout of the [class] token (Fig. 6),
                                  saved as PNG
    fine-tune --model FOLDER      a pretrained ViT gets a new, zero head (§3.2) and is trained on
                                  a few labelled images of an embedded dataset; the same
                                  architecture trained from random weights on the same images is
                                  the comparison
    pretrain --out FOLDER         make a small pretrained ViT without network: trained on 32x32
                                  shapes to tell *where* a shape is and how big (18 classes,
                                  never its kind), then saved in transformers' layout, the
                                  checkpoint ``fine-tune`` starts from by default
    zero-shot IMAGE --labels "a cat,a dog" --model NAME
                                  CLIP's probability of each label (§3.1.4: each label in a few
                                  prompt templates, averaged in the embedding space)
    complete IMAGE --model NAME   Image-GPT keeps the top half of the image (in its palette) and
                                  samples the bottom half a few times; saved as PNG

``python -m examples.pretrained COMMAND --help`` lists each command's flags. A hub name
(``google/vit-base-patch16-224``) is fetched once with the optional huggingface_hub package;
without network, download the folder elsewhere and pass its path.
"""

import argparse
import dataclasses
import json
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minitx as mt
import minitx.functional as F
from examples.common import (
    NonNegativeFloat,
    NonNegativeInt,
    OneOf,
    PositiveFloat,
    PositiveInt,
    accuracy,
    channel_stats,
    downloading,
    load_images_32,
    one_line,
    parse_config,
    progress,
)
from minitx import data, optim
from minitx.data.shapes import POSITIONS, SIZES
from models import hub
from models.clip import CLIP, TEMPLATES, zero_shot_classifier, zero_shot_logits
from models.clip_tokenizer import CLIPTokenizer
from models.image_gpt import ImageGPT, sample
from models.pretrained_clip import image_settings
from models.pretrained_image_gpt import image_tokens, token_images
from models.swin import SwinTransformer
from models.vit import ViT, ViTConfig, attention_rollout, to_transformers

PROG = "python -m examples.pretrained"
PRETRAINED = "runs/pretrained/vit-shapes-where"  # what `pretrain` writes by default
QUICK_PRETRAINED = "runs/pretrained-quick/vit-shapes-where"  # ... with --quick
QUICK = {"steps": 10, "warmup_steps": 2, "batch_size": 32}  # a smoke run of a few seconds
EVAL_BATCH = 500


# ---- classify -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassifyConfig:
    model: str = "google/vit-base-patch16-224"  # a checkpoint folder, or a hub name
    top: PositiveInt = 5  # how many classes to print
    out: str = "runs/pretrained/classify"  # the folder of the attention-rollout figure
    device: str = "cpu"  # where the model runs: cpu, cuda, ...


def classify(argv):
    """Print the top classes of one image and save the [class] token's attention rollout."""
    image_path, argv = _positional(argv, "IMAGE", "classify")
    cfg, args = parse_config(ClassifyConfig, classify.__doc__, argv, prog=f"{PROG} classify IMAGE")
    image = read_image(image_path, args)
    check_out(cfg.out, args)
    model, ckpt = load_model(cfg.model, cfg.device, args, "classify", (ViT, SwinTransformer),
                             "a ViT or a Swin")
    size = model.config.image_size
    settings = ckpt.preprocessor or {"size": size}  # none in the folder: resize, mean/std ½
    x = run_preprocessor(lambda: hub.preprocess(image, settings), ckpt, args)  # (1, 3, H, W)
    try:
        with mt.no_grad():
            logits = model(mt.tensor(x, device=cfg.device))  # (1, K)
    except ValueError as error:  # a preprocessor config that does not fit the model
        args.error(f"{error} (the image as {hub.PREPROCESSOR} prepares it)")
    probs = F.softmax(logits, axis=-1).numpy()[0]  # (K,)
    names = hub.label_names(ckpt.config)
    top = np.argsort(-probs)[:cfg.top]
    print(f"{Path(image_path).name}, {type(model).__name__} from {cfg.model}:")
    for rank, k in enumerate(top, start=1):
        print(f"  {rank}. {names[k]:<40} {probs[k]:.3f}")
    result = {"top": [(names[k], float(probs[k])) for k in top]}
    if isinstance(model, ViT):
        path = Path(cfg.out) / f"{Path(image_path).stem}_rollout.png"
        plot_rollout(model, x, settings, names[top[0]], path, cfg.device)
        print(f"wrote the attention rollout of the [class] token to {path}")
        result["figure"] = path
    else:
        print("(no rollout figure: Swin has no [class] token and attends within windows)")
    return result


def plot_rollout(model, x, settings, title, path, device):
    """Save the image as the model saw it and, over it, the attention rollout (Fig. 6)."""
    weights = model.attention_weights(mt.tensor(x, device=device))  # L x (1, h, T, T)
    grid = attention_rollout(weights)[0].reshape(model.config.grid)  # (gh, gw)
    mean = np.asarray(settings.get("image_mean", [0.5] * 3)).reshape(3, 1, 1)
    std = np.asarray(settings.get("image_std", [0.5] * 3)).reshape(3, 1, 1)
    picture = np.clip(x[0] * std + mean, 0, 1).transpose(1, 2, 0)  # (H, W, 3) back in [0, 1]
    H, W = picture.shape[:2]
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.8))
    axes[0].imshow(picture)
    axes[0].set_title(f"input ({title})", fontsize=9)
    axes[1].imshow(picture)
    axes[1].imshow(grid, cmap="inferno", alpha=0.6, extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    axes[1].set_title("attention rollout of [class]", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- fine-tune ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Training:
    """What fine-tuning and pretraining share."""

    steps: PositiveInt = 300  # optimizer steps
    batch_size: PositiveInt = 64  # images per step
    lr: PositiveFloat = 1e-3  # peak learning rate of AdamW
    warmup_steps: NonNegativeInt = 30  # linear warm-up, then cosine decay to 0
    weight_decay: NonNegativeFloat = 0.05  # AdamW's decoupled weight decay
    clip_norm: PositiveFloat = 1.0  # global gradient-norm clipping (ViT App. B.1)
    seed: NonNegativeInt = 0  # the data, the new weights and the batches
    device: str = "cpu"  # where the model trains: cpu, cuda, ...


@dataclass(frozen=True)
class FineTuneConfig(Training):
    model: str = PRETRAINED  # a ViT checkpoint folder (transformers' layout) or hub name
    dataset: OneOf("shapes", "digits", "mnist_5k") = "shapes"  # shapes: classify the kind
    train_size: PositiveInt = 500  # labelled training images (few: where pretraining pays)
    test_size: PositiveInt = 1000  # held-out test images
    scratch: bool = True  # also train the same architecture from random weights, to compare


def fine_tune(argv):
    """Fine-tune a pretrained ViT on a small dataset; compare with training from scratch."""
    cfg, args = parse_config(FineTuneConfig, fine_tune.__doc__, argv, prog=f"{PROG} fine-tune",
                             quick_config={**QUICK, "train_size": 100, "test_size": 200})
    if args.quick and cfg.model == PRETRAINED:
        cfg = dataclasses.replace(cfg, model=QUICK_PRETRAINED)
    if cfg.batch_size > cfg.train_size:
        args.error(f"--batch-size {cfg.batch_size} is larger than the training set "
                   f"(--train-size {cfg.train_size})")
    made_by = {PRETRAINED: "pretrain", QUICK_PRETRAINED: "pretrain --quick"}
    hint = f" (make it with: {PROG} {made_by[cfg.model]})" if cfg.model in made_by else ""
    pretrained, ckpt = load_model(cfg.model, cfg.device, args, "fine-tune", ViT, "a ViT", hint)
    with downloading(args, cfg.dataset):
        x_train, y_train, x_test, y_test, K = load_images_32(cfg.dataset, cfg.seed,
                                                             (cfg.train_size, cfg.test_size))
    for flag, n, have in (("--train-size", cfg.train_size, len(y_train)),
                          ("--test-size", cfg.test_size, len(y_test))):
        if n > have:  # the downloads and their splits have a fixed size
            args.error(f"{flag} {n}: {cfg.dataset} has only {have} such images")
    x_train, y_train = x_train[:cfg.train_size], y_train[:cfg.train_size]
    x_test, y_test = x_test[:cfg.test_size], y_test[:cfg.test_size]
    C = pretrained.config.in_channels
    if x_train.shape[1] != C:  # grey digits for a colour model: the same grey in each channel
        x_train, x_test = x_train.repeat(C, axis=1), x_test.repeat(C, axis=1)
    mean = np.asarray(ckpt.preprocessor.get("image_mean", [0.5] * C), np.float32)
    std = np.asarray(ckpt.preprocessor.get("image_std", [0.5] * C), np.float32)
    if mean.shape != (C,) or std.shape != (C,):
        args.error(f"{ckpt.folder / hub.PREPROCESSOR}: image_mean and image_std need {C} "
                   f"values each, got {mean.tolist()} and {std.tolist()}")
    mean, std = mean[:, None, None], std[:, None, None]  # (C, 1, 1)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std  # as in pretraining
    pretrained.train()
    pretrained.reset_head(K)  # §3.2: a zero-initialised D x K head replaces the old one
    if pretrained.config.image_size != x_train.shape[-1]:
        try:  # §3.2: the position embeddings interpolated to the new grid
            pretrained.resize_image(x_train.shape[-1])
        except ValueError as error:
            args.error(str(error))
    runs = {"pretrained": pretrained}
    if cfg.scratch:  # the same architecture, random weights
        runs["scratch"] = ViT(pretrained.config, device=cfg.device,
                              generator=np.random.default_rng(cfg.seed))
    result = {}
    for name, model in runs.items():
        start = time.perf_counter()
        train(model, x_train, y_train, cfg, f"fine-tune ({name})")
        result[name] = accuracy(model, x_test, y_test, cfg.device, EVAL_BATCH)
        print(f"{name:>10}: test accuracy {result[name]:.4f} ({cfg.steps} steps on "
              f"{len(y_train)} {cfg.dataset} images, {time.perf_counter() - start:.0f} s)")
    result["model"] = pretrained
    return result


def train(model, x, y, cfg, description):
    """AdamW with warm-up and cosine decay, gradient clipping, cross-entropy: `cfg.steps`."""
    rng = np.random.default_rng(cfg.seed)
    assert cfg.batch_size <= len(x), "the commands refuse a batch larger than the data"
    loader = data.DataLoader(data.ArrayDataset(x, y), cfg.batch_size, shuffle=True,
                             drop_last=True, rng=rng).forever()
    opt = optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = optim.WarmupCosineSchedule(opt, cfg.warmup_steps, cfg.steps)
    model.train()
    bar = progress(cfg.steps, description)
    for _ in range(cfg.steps):
        xb, yb = next(loader)
        logits = model(mt.tensor(xb.astype(np.float32), device=cfg.device))  # (B, K)
        loss = F.cross_entropy(logits, mt.tensor(yb, device=cfg.device))
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        opt.step()
        opt.zero_grad()
        sched.step()
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    model.eval()
    return model


# ---- pretrain -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PretrainConfig(Training):
    out: str = PRETRAINED  # the checkpoint folder to write, in transformers' layout
    train_size: PositiveInt = 20000  # shapes to pretrain on, seeded apart from fine-tune's
    steps: PositiveInt = 1500
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 2e-3
    warmup_steps: NonNegativeInt = 100
    patch_size: PositiveInt = 8  # P: 4x4 = 16 patches of a 32x32 image
    dim: PositiveInt = 64  # D
    depth: PositiveInt = 4  # L
    heads: PositiveInt = 4  # h
    mlp_dim: PositiveInt = 128  # the MLP's hidden width


def pretrain(argv):
    """Train a small ViT on where a shape is and how big, and save it as transformers does."""
    cfg, args = parse_config(PretrainConfig, pretrain.__doc__, argv, prog=f"{PROG} pretrain",
                             quick_config={**QUICK, "train_size": 1200})
    if args.quick and cfg.out == PRETRAINED:
        cfg = dataclasses.replace(cfg, out=QUICK_PRETRAINED)
    n = min(1000, cfg.train_size // 5)  # the last n images are held out
    if n < 1:
        args.error(f"--train-size {cfg.train_size}: a fifth of the shapes is held out for "
                   f"testing, so pretraining needs at least 5")
    if cfg.batch_size > cfg.train_size - n:
        args.error(f"--batch-size {cfg.batch_size} is larger than the training set "
                   f"({cfg.train_size - n} shapes: --train-size {cfg.train_size} less {n} "
                   f"held out)")
    check_out(cfg.out, args)
    shapes = data.load_shapes(cfg.train_size, seed=1000 + cfg.seed)  # not fine-tune's images
    x = shapes["images"]  # (N, 3, 32, 32) in [0, 1]
    y = shapes["position"] * len(SIZES) + shapes["size"]  # 9 places x 2 sizes: 18 classes
    names = [f"{size} {place}" for place in POSITIONS for size in SIZES]
    mean, std = (s.reshape(3) for s in channel_stats(x))
    model = ViT(ViTConfig(image_size=32, patch_size=cfg.patch_size, dim=cfg.dim, depth=cfg.depth,
                          heads=cfg.heads, mlp_dim=cfg.mlp_dim, num_classes=len(names),
                          layer_norm_eps=1e-12), device=cfg.device,
                generator=np.random.default_rng(cfg.seed))
    x = (x - mean[:, None, None]) / std[:, None, None]
    train(model, x[:-n], y[:-n], cfg, "pretrain")
    held_out = accuracy(model, x[-n:], y[-n:], cfg.device, EVAL_BATCH)
    tensors, config = to_transformers(model, names)
    preprocessor = {"do_resize": True, "size": {"height": 32, "width": 32}, "resample": 2,
                    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                    "image_mean": mean.tolist(), "image_std": std.tolist()}
    folder = hub.save_checkpoint(cfg.out, tensors, config, preprocessor)
    print(f"pretrain: where-and-how-big accuracy {held_out:.4f} on {n} held-out shapes; wrote "
          f"{folder} (model.safetensors, config.json, preprocessor_config.json)")
    return {"accuracy": held_out, "folder": folder, "model": model}


# ---- zero-shot (CLIP) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ZeroShotConfig:
    labels: str = "a cat,a dog"  # the candidate labels, separated by commas
    model: str = "openai/clip-vit-base-patch32"  # a CLIP checkpoint folder, or a hub name
    device: str = "cpu"  # where the model runs: cpu, cuda, ...


ARTICLE = re.compile(r"^(a|an|the)\s+", re.IGNORECASE)  # "a cat" -> "cat" for the templates


def zero_shot(argv):
    """Print CLIP's probability of each label for one image (§3.1.4: prompts from templates,
    averaged in embedding space)."""
    image_path, argv = _positional(argv, "IMAGE", "zero-shot")
    cfg, args = parse_config(ZeroShotConfig, zero_shot.__doc__, argv,
                             prog=f"{PROG} zero-shot IMAGE")
    labels = [label.strip() for label in cfg.labels.split(",") if label.strip()]
    if len(labels) < 2:
        args.error(f"zero-shot: --labels needs at least two labels separated by commas, got "
                   f"{cfg.labels!r}")
    image = read_image(image_path, args)
    model, ckpt = load_model(cfg.model, cfg.device, args, "zero-shot", CLIP, "a CLIP")
    try:
        tokenizer = CLIPTokenizer.from_folder(ckpt.folder, model.config.context_length)
    except OSError as error:  # no vocabulary in the folder
        args.error(str(error))
    except ValueError as error:  # a vocabulary without CLIP's special tokens
        args.error(f"{ckpt.folder / 'vocab.json'}: {error}")
    x = run_preprocessor(lambda: hub.preprocess(
        image, image_settings(ckpt.preprocessor, model.config.image_size)), ckpt, args)
    names = [ARTICLE.sub("", label) for label in labels]  # the templates bring the article
    classifier = zero_shot_classifier(  # (E, K): one averaged prompt embedding per label
        model, lambda texts: mt.tensor(tokenizer(texts), device=cfg.device), names, TEMPLATES)
    with mt.no_grad():
        logits = model.scale() * zero_shot_logits(model, mt.tensor(x, device=cfg.device),
                                                  classifier)  # (1, K) scaled cosines
    probs = F.softmax(logits, axis=-1).numpy()[0]  # (K,)
    print(f"{Path(image_path).name}, CLIP from {cfg.model} (prompts: "
          f"{' | '.join(t.format('{label}') for t in TEMPLATES)}):")
    for label, p in sorted(zip(labels, probs), key=lambda lp: -lp[1]):
        print(f"  {label:<40} {p:.3f}")
    return {"probs": dict(zip(labels, probs.tolist())), "names": names}


# ---- complete (Image-GPT) -----------------------------------------------------------------------

@dataclass(frozen=True)
class CompleteConfig:
    model: str = "openai/imagegpt-small"  # an Image-GPT checkpoint folder, or a hub name
    samples: PositiveInt = 4  # completions of the bottom half
    temperature: PositiveFloat = 1.0  # logits are divided by it
    top_k: NonNegativeInt = 0  # sample among the k most likely colours only (0: all)
    seed: NonNegativeInt = 0  # the random draws
    out: str = "runs/pretrained/complete"  # the folder of the figure
    device: str = "cpu"  # where the model runs: cpu, cuda, ...


def complete(argv):
    """Keep the top half of an image and let Image-GPT draw the bottom half, a few times."""
    image_path, argv = _positional(argv, "IMAGE", "complete")
    cfg, args = parse_config(CompleteConfig, complete.__doc__, argv, prog=f"{PROG} complete IMAGE")
    image = read_image(image_path, args)
    check_out(cfg.out, args)
    model, ckpt = load_model(cfg.model, cfg.device, args, "complete", ImageGPT, "an Image-GPT")
    V = model.config.num_colors  # the palette; [SOS] is never drawn
    if cfg.top_k > V:
        args.error(f"--top-k {cfg.top_k} is larger than the palette of {cfg.model} ({V} "
                   f"colours): 1 <= k <= {V}, or 0 for all")
    side = math.isqrt(model.config.seq_len)  # square images, raster order
    settings = {"size": side, **ckpt.preprocessor}
    tokens = run_preprocessor(lambda: image_tokens(image, settings), ckpt, args)  # (1, H·W)
    if tokens.shape[1] != model.config.seq_len:
        args.error(f"complete: the preprocessor makes {tokens.shape[1]} tokens; the model "
                   f"reads {model.config.seq_len}")
    T, n = model.config.seq_len, cfg.samples
    top = np.repeat(tokens[:, :T // 2], n, axis=0)  # (n, T/2): the rows kept
    start = time.perf_counter()
    drawn = sample(model, n, T, np.random.default_rng(cfg.seed), prefix=top,
                   temperature=cfg.temperature, top_k=cfg.top_k)  # (n, T)
    path = Path(cfg.out) / f"{Path(image_path).stem}_completions.png"
    rows = [token_images(t, settings, side, side) for t in (tokens, drawn)]  # uint8 (·, H, W, 3)
    titles = ["input (palette)", "kept"] + [f"sample {i + 1}" for i in range(n)]
    half = rows[0][0].copy()
    half[side // 2:] = 128  # the part the model fills, grey
    pictures = [rows[0][0], half, *rows[1]]
    fig, axes = plt.subplots(1, len(pictures), figsize=(1.6 * len(pictures), 1.9))
    for ax, picture, title in zip(axes, pictures, titles):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"{Path(image_path).name}: {n} completions of the bottom half by Image-GPT from "
          f"{cfg.model} ({side}x{side}, {model.config.num_colors} colours, "
          f"{time.perf_counter() - start:.0f} s); wrote {path}")
    return {"tokens": tokens, "samples": drawn, "figure": path}


# ---- the command line ---------------------------------------------------------------------------

COMMANDS = {"classify": classify, "fine-tune": fine_tune, "pretrain": pretrain,
            "zero-shot": zero_shot, "complete": complete}


def load_model(name, device, args, command, kind, what, hint=""):
    """Load the checkpoint `name` (a folder or hub name) and return (model, checkpoint). A folder
    that cannot be read, or a model that is not a `kind` (a class or a tuple of them, `what` in
    words), ends the program with a one-line error that names the file, then `hint`."""
    try:
        folder = hub.resolve(name)
        for file in (hub.CONFIG, hub.PREPROCESSOR, "vocab.json", "special_tokens_map.json"):
            check_json(folder / file)
        model, ckpt = hub.load_pretrained(folder, device=device)
    except (hub.CheckpointError, OSError) as error:  # the hub's messages may span lines
        args.error(f"{one_line(error, limit=600)}{hint}")
    except (ValueError, TypeError) as error:  # values in config.json the model cannot take
        args.error(f"{folder / hub.CONFIG}: cannot build the model from it ({error})")
    if not isinstance(model, kind):
        found = type(model).__name__
        article = "an" if found[0] in "AEIOU" else "a"
        args.error(f"{command}: {name} is {article} {found}; expected {what}")
    return model, ckpt


def check_json(path):
    """Raise hub.CheckpointError naming `path` when it is there but does not hold one JSON
    object (the JSON parser's own error names neither the file nor the checkpoint)."""
    if not path.is_file():
        return
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # not JSON, or not UTF-8 text
        raise hub.CheckpointError(f"{path}: not a valid JSON file ({error})") from None
    if not isinstance(value, dict):
        raise hub.CheckpointError(f"{path}: expected a JSON object {{...}}, got a "
                                  f"{type(value).__name__}")


def run_preprocessor(prepare, ckpt, args):
    """Return prepare(), the image as the model's input; a preprocessor config it cannot follow
    ends the program with a one-line error that names the file."""
    try:
        return prepare()
    except (ValueError, TypeError) as error:  # hub.CheckpointError is a ValueError
        args.error(f"{ckpt.folder / hub.PREPROCESSOR}: "
                   f"{str(error).removeprefix(hub.PREPROCESSOR + ': ')}")


def read_image(path, args):
    """The image at `path` (RGB); one that cannot be read ends the program, before the work."""
    try:
        return hub.read_image(path)
    except OSError as error:  # missing, unreadable, or not an image
        args.error(str(error))


def check_out(folder, args):
    """Create the output folder and write a scratch file there, so that a folder that cannot be
    written ends the program before the work rather than after it."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        args.error(f"--out {folder}: cannot write there ({error.strerror or error})")


def _positional(argv, name, command):
    """Split off the one positional argument of a command (its flags follow or precede it)."""
    rest = list(argv)
    for i, arg in enumerate(rest):
        if not arg.startswith("-") and (i == 0 or not rest[i - 1].startswith("--")
                                        or "=" in rest[i - 1]):
            return arg, rest[:i] + rest[i + 1:]
    if "-h" in rest or "--help" in rest:
        return None, rest
    print(f"usage: {PROG} {command} {name} [flags]\n{PROG} {command}: error: the {name} "
          f"argument is missing", file=sys.stderr)
    raise SystemExit(2)  # as argparse ends on a usage error


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own flags")
    args = parser.parse_args(argv)
    mt.backend.keep_host_memory()  # reuse freed memory step after step
    return COMMANDS[args.command](args.args)


if __name__ == "__main__":
    main()
