"""CLIP learns images and captions together: ``python -m examples.clip [--dataset NAME]``.

CLIP (Radford et al. 2021, ``models/clip.py``) trained from scratch on image-caption pairs, then
used as a classifier made from text alone ("zero-shot", §3.1.4):

    shapes    procedural 32x32 shapes with captions ("a small red circle at the top left").
              Six colour-shape pairs (HELD_OUT) never appear in training; zero-shot
              classification over all 30 colour-shape names then tests whether the model
              composes a colour and a shape it has only seen apart.
    mnist_5k  4,000 MNIST digits (padded to 32x32) with captions in number words ("the digit
              seven"); zero-shot over the ten number words on the 1,000 held-out digits.

Reported: zero-shot accuracy (seen and held-out compositions), image -> text and text -> image
recall@1/5 among held-out pairs, and the paper's Fig. 5 at small scale: linear probes on the
same frozen image features trained with 1, 2, 4, 8, 16 examples per class and with all of them,
against zero-shot. ``--image-encoder vit|resnet`` picks the tower. Outputs in
``runs/clip/<dataset>-<encoder>/`` (``runs/clip-quick/...`` with ``--quick``, or the folder
``--run-dir`` names): checkpoint, metrics, ``loss.png``, ``similarity.png`` (the cosine
similarities of a batch of test images and their captions) and ``probes.png``.

    python -m examples.clip --quick               # a smoke run of a few seconds
    python -m examples.clip --stop-after 400      # or Ctrl-C: checkpoint and exit
    python -m examples.clip --resume              # continue, bit for bit
"""

import dataclasses
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
    MetricsLog,
    NonNegativeFloat,
    NonNegativeInt,
    OneOf,
    PositiveFloat,
    PositiveInt,
    StopRequest,
    log_progress,
    parse_config,
    plot_curves,
    progress,
    resume_step,
    run_dir,
    standardize,
    steps_run,
)
from minitx import data, nn, optim, serialization
from minitx.data import ArrayDataset, DataLoader
from models.clip import CLIP, CLIPConfig, contrastive_loss, normalize, zero_shot_classifier

# the ViT cuts the 32x32 image into P x P patches; a batch holds its own negatives
PatchSize = Annotated[int, Check("a divisor of the image side 32", lambda v: v > 0 and 32 % v == 0)]
PairBatch = Annotated[int, Check("at least 2 (a batch is its own negatives)", lambda v: v >= 2)]


@dataclass(frozen=True)
class Config:
    dataset: OneOf("shapes", "mnist_5k") = "shapes"  # the image-caption pairs
    image_encoder: OneOf("vit", "resnet") = "vit"  # the image tower
    embed_dim: PositiveInt = 64  # E, the joint embedding's width
    patch_size: PatchSize = 8  # P of the ViT (16 patches of a 32x32 image)
    vision_width: PositiveInt = 96  # D of the ViT
    vision_layers: PositiveInt = 3  # blocks of the ViT (stages of the ResNet)
    vision_heads: PositiveInt = 3  # attention heads of the ViT
    resnet_width: PositiveInt = 16  # the ResNet's stem width (its attention pool: 32x channels)
    resnet_heads: PositiveInt = 8  # heads of the ResNet's attention pool
    text_width: PositiveInt = 64  # width of the text Transformer
    text_layers: PositiveInt = 2  # blocks of the text Transformer
    text_heads: PositiveInt = 2  # attention heads of the text Transformer
    steps: PositiveInt = 1000  # optimizer steps
    batch_size: PairBatch = 128  # N pairs: an N x N similarity matrix per step
    lr: PositiveFloat = 1e-3  # peak learning rate of AdamW
    warmup_steps: NonNegativeInt = 50  # linear warm-up, then cosine decay to 0
    weight_decay: NonNegativeFloat = 0.1  # AdamW's decoupled weight decay (matrices only)
    clip_norm: PositiveFloat = 1.0  # global gradient-norm clipping
    # shapes rendered for training, before held-out removal (shapes only: mnist_5k has 4,000)
    train_size: PositiveInt = 8000
    test_size: PositiveInt = 1000  # shapes rendered for testing (shapes only: mnist_5k has 1,000)
    log_every: PositiveInt = 10  # steps between loss entries in the metrics log
    eval_every: PositiveInt = 250  # steps between zero-shot evaluations
    checkpoint_every: PositiveInt = 250  # steps between checkpoints
    probe_draws: PositiveInt = 3  # random k-shot training sets per probe, averaged
    probe_steps: PositiveInt = 300  # full-batch AdamW steps of each logistic-regression probe
    seed: NonNegativeInt = 0  # the data, the initial weights and the order of the pairs
    device: str = "cpu"  # where the model trains: cpu, cuda, cuda:1, ...


# a smoke run: few steps on a few pairs, small probes
QUICK = {"steps": 30, "warmup_steps": 3, "eval_every": 15, "checkpoint_every": 15,
         "log_every": 5, "batch_size": 32, "train_size": 600, "test_size": 200,
         "probe_draws": 1, "probe_steps": 60}


HELD_OUT = (("red", "triangle"), ("green", "cross"), ("blue", "circle"), ("yellow", "diamond"),
            ("purple", "square"), ("white", "triangle"))
# Prompts in the captions' own form (§3.1.4: prompts that look like the training text work
# best), one per size and position: 18 templates, averaged per class in embedding space.
SHAPE_TEMPLATES = tuple(f"a {size} {{}} {data.shapes.caption(0, 0, 0, p).split('circle ')[1]}"
                        for size in data.shapes.SIZES for p in range(9))
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATES = ("the digit {}", "a handwritten {}", "the number {}")
CONTEXT = 12  # tokens per caption: [SOS], at most 10 words, [EOS] (padded with [PAD])
SHOTS = (1, 2, 4, 8, 16)


class WordTokenizer:
    """Split on spaces; ids 0 [PAD], 1 [SOS], 2 [EOS], then the words in sorted order."""

    def __init__(self, words):
        self.words = ["[PAD]", "[SOS]", "[EOS]"] + sorted(set(words) - {"[PAD]", "[SOS]",
                                                                        "[EOS]"})
        self.ids = {w: i for i, w in enumerate(self.words)}

    def __call__(self, texts, device="cpu"):  # n strings -> (n, CONTEXT) int Tensor
        out = np.zeros((len(texts), CONTEXT), np.int64)
        for row, text in enumerate(texts):
            ids = [1] + [self.ids[w] for w in text.split()] + [2]
            out[row, :len(ids)] = ids
        return mt.tensor(out, device=device)


def load(cfg):
    """Return a dict: train/test images (standardized), captions, class names, test labels
    and which test images show a held-out composition."""
    if cfg.dataset == "shapes":
        train = data.load_shapes(cfg.train_size, seed=2 * cfg.seed)
        test = data.load_shapes(cfg.test_size, seed=2 * cfg.seed + 1)
        names = [f"{c} {s}" for c in data.shapes.COLORS for s in data.shapes.SHAPES]
        held = {names.index(f"{c} {s}") for c, s in HELD_OUT}

        def label(d):
            return d["color"] * len(data.shapes.SHAPES) + d["shape"]
        y_train, y_test = label(train), label(test)
        keep = ~np.isin(y_train, list(held))  # held-out compositions never seen in training
        x_train, cap_train = train["images"][keep], [str(c) for c in train["captions"][keep]]
        y_train, x_test = y_train[keep], test["images"]
        cap_test, templates = [str(c) for c in test["captions"]], SHAPE_TEMPLATES
    elif cfg.dataset == "mnist_5k":
        (x_train, y_train), (x_test, y_test) = (data.load_mnist_5k(s, seed=cfg.seed)
                                                for s in ("train", "test"))
        x_train, x_test = (np.repeat(np.pad(x, ((0, 0), (2, 2), (2, 2)))[:, None], 3, axis=1)
                           for x in (x_train, x_test))  # (N, 3, 32, 32)
        rng = np.random.default_rng(cfg.seed)  # one caption per image, fixed by the seed
        cap_train, cap_test = ([DIGIT_TEMPLATES[t].format(DIGITS[d]) for d, t in
                                zip(y, rng.integers(0, len(DIGIT_TEMPLATES), len(y)))]
                               for y in (y_train, y_test))
        names, held, templates = list(DIGITS), set(), DIGIT_TEMPLATES
    else:  # the command line only offers the two above
        raise ValueError(f"clip: unknown dataset {cfg.dataset!r}; choose shapes or mnist_5k")
    x_train, x_test = standardize(x_train, x_test)
    words = {w for c in cap_train + cap_test for w in c.split()}
    words |= {w for t in templates for n in names for w in t.format(n).split()}
    return dict(x_train=x_train.astype(np.float32), x_test=x_test.astype(np.float32),
                cap_train=cap_train, cap_test=cap_test, y_train=y_train, y_test=y_test,
                names=names, templates=templates, held_test=np.isin(y_test, list(held)),
                tokenizer=WordTokenizer(words))


def model_config(cfg, vocab_size):
    resnet = cfg.image_encoder == "resnet"
    return CLIPConfig(embed_dim=cfg.embed_dim, image_encoder=cfg.image_encoder, image_size=32,
                      patch_size=cfg.patch_size,
                      vision_width=cfg.resnet_width if resnet else cfg.vision_width,
                      vision_layers=cfg.vision_layers,
                      vision_heads=cfg.resnet_heads if resnet else cfg.vision_heads,
                      context_length=CONTEXT, vocab_size=vocab_size, text_width=cfg.text_width,
                      text_layers=cfg.text_layers, text_heads=cfg.text_heads, eot_token=2)


def main(argv=None):
    mt.backend.keep_host_memory()  # reuse freed memory step after step (see its docstring)
    cfg, args = parse_config(Config, __doc__, argv, prog="python -m examples.clip",
                             quick_config=QUICK, resumable=True,
                             run_dir=(str, "", "the folder for the checkpoint, metrics and "
                                      "figures; empty: runs/clip/<dataset>-<encoder>/"))
    sizes = [f"--{f.replace('_', '-')}" for f in ("train_size", "test_size") if f in args.given]
    if cfg.dataset != "shapes" and sizes:  # mnist_5k comes split: 4,000 and 1,000 digits
        args.error(f"{' and '.join(sizes)}: for --dataset shapes only; {cfg.dataset} has its "
                   f"own split of 4,000 training and 1,000 test digits")
    mt.random.seed(cfg.seed)
    d = load(cfg)
    tok = d["tokenizer"]
    tokens_train = tok(d["cap_train"]).numpy()  # (N, CONTEXT) on the host
    if cfg.batch_size > len(tokens_train):
        args.error(f"the training set has {len(tokens_train)} pairs, fewer than --batch-size "
                   f"{cfg.batch_size}: an epoch would have no batch")
    folder = Path(args.run_dir)  # run_dir(name, root) makes the folder, as for the default
    out = run_dir(folder.name, folder.parent, error=args.error, flag="--run-dir") \
        if args.run_dir else \
        run_dir(f"clip/{cfg.dataset}-{cfg.image_encoder}", quick=args.quick, error=args.error)
    loader_rng = np.random.default_rng(cfg.seed + 1)  # the order of the training pairs
    loader = DataLoader(ArrayDataset(d["x_train"], tokens_train), cfg.batch_size, shuffle=True,
                        drop_last=True, rng=loader_rng)  # (B, 3, 32, 32), (B, CONTEXT)

    model_cfg = model_config(cfg, len(tok.words))
    try:
        model = CLIP(model_cfg, generator=np.random.default_rng(cfg.seed)).to(cfg.device)
    except ValueError as error:  # e.g. an unknown --device
        args.error(str(error))
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "embedding" in n]
    decay = [p for p in model.parameters() if p.ndim >= 2 and all(p is not q for q in no_decay)]
    opt = optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
                      lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = optim.WarmupCosineSchedule(opt, cfg.warmup_steps, cfg.steps)
    rngs, checkpoint = {"loader": loader_rng}, out / "checkpoint.npz"
    step = resume_step(checkpoint, args, cfg, model=model, optimizer=opt, schedule=sched,
                       loader=loader, rngs=rngs)
    log = MetricsLog(out, resume=args.resume, step=step)

    batches = loader.forever()
    bar, start = progress(cfg.steps, f"clip {cfg.dataset} {cfg.image_encoder}",
                          initial=step), time.perf_counter()
    with StopRequest(args.stop_after) as stop:  # Ctrl-C or --stop-after: save, then exit
        while step < cfg.steps:
            xb, tb = next(batches)
            images = mt.tensor(xb, device=cfg.device)  # (B, 3, 32, 32)
            tokens = mt.tensor(tb, device=cfg.device)  # (B, CONTEXT)
            loss = contrastive_loss(model(images, tokens))  # forward: (B, B) logits, Fig. 3
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            opt.zero_grad()
            sched.step()
            step += 1
            log_progress(bar, log, step, loss, opt, cfg.log_every, cfg.steps)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                log.log(step=step, temperature_scale=model.scale().item(),
                        **zero_shot(model, d, cfg.device))
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop(step):
                serialization.save_checkpoint(
                    checkpoint, model=model, optimizer=opt, schedule=sched, step=step,
                    config=model_cfg, rngs=rngs,
                    extra={"loader": loader.state_dict(), "example": dataclasses.asdict(cfg),
                           "vocabulary": tok.words})
            if stop(step):
                break
    bar.close()
    seconds = time.perf_counter() - start
    if step < cfg.steps:
        print(f"clip: stopped after step {step} of {cfg.steps}; wrote {checkpoint} "
              f"(continue with --resume)")
        return {"stopped_at": step, "model": model}
    return report(model, d, cfg, log, out, step, seconds, steps_run(step, args))


# ---- evaluation -------------------------------------------------------------------------

def embed_images(model, x, device, batch=250):
    """Normalised image embeddings (N, E) as a host array, in eval mode."""
    model.eval()
    with mt.no_grad():
        out = [normalize(model.encode_image(mt.tensor(x[i:i + batch], device=device))).numpy()
               for i in range(0, len(x), batch)]
    model.train()
    return np.concatenate(out)


def embed_texts(model, tok, texts, device):
    model.eval()
    with mt.no_grad():
        out = normalize(model.encode_text(tok(texts, device))).numpy()
    model.train()
    return out


def zero_shot(model, d, device, image_emb=None):
    """Zero-shot accuracy over all class names, on seen and on held-out compositions."""
    model.eval()
    weights = zero_shot_classifier(model, lambda t: d["tokenizer"](t, device), d["names"],
                                   d["templates"]).numpy()  # (E, K)
    model.train()
    emb = embed_images(model, d["x_test"], device) if image_emb is None else image_emb
    correct = (emb @ weights).argmax(1) == d["y_test"]
    result = {"zero_shot_seen": float(correct[~d["held_test"]].mean())}
    if d["held_test"].any():
        result["zero_shot_held_out"] = float(correct[d["held_test"]].mean())
    return result


def recall_at(sim, captions, k):
    """image -> text and text -> image recall@k of a similarity matrix (images x captions);
    a retrieved caption counts when its text equals the query's (captions repeat)."""
    caps = np.array(captions)
    same = caps[:, None] == caps[None, :]  # (N, N): pairs that are equally right
    top_t = np.argsort(-sim, axis=1)[:, :k]  # each image's k best captions
    top_i = np.argsort(-sim, axis=0)[:k].T  # each caption's k best images
    i2t = same[np.arange(len(caps))[:, None], top_t].any(1).mean()
    t2i = same[np.arange(len(caps))[:, None], top_i].any(1).mean()
    return float(i2t), float(t2i)


def linear_probe(f_train, y_train, f_test, y_test, classes, steps=300):
    """Accuracy of a logistic-regression probe on frozen features (minitx, full batch)."""
    remap = {c: i for i, c in enumerate(classes)}
    yt = mt.tensor(np.array([remap[y] for y in y_train]))
    probe = nn.Linear(f_train.shape[1], len(classes), generator=np.random.default_rng(0))
    opt = optim.AdamW(probe.parameters(), lr=0.05, weight_decay=1e-3)
    x = mt.tensor(f_train * 10)  # unit vectors, scaled so the logits can grow
    for _ in range(steps):
        loss = F.cross_entropy(probe(x), yt)
        loss.backward()
        opt.step()
        opt.zero_grad()
    with mt.no_grad():
        pred = probe(mt.tensor(f_test * 10)).numpy().argmax(1)
    return float((np.array(classes)[pred] == y_test).mean())


def probes(model, d, cfg, emb_test):
    """Fig. 5 at small scale: linear probes with k examples per class against zero-shot, on
    the test images of the classes seen in training (zero-shot restricted to them too)."""
    seen = sorted(set(d["y_train"].tolist()))
    test = ~d["held_test"]
    f_train = embed_images(model, d["x_train"], cfg.device)
    weights = zero_shot_classifier(model, lambda t: d["tokenizer"](t, cfg.device),
                                   [d["names"][c] for c in seen], d["templates"]).numpy()
    zs = float((np.array(seen)[(emb_test[test] @ weights).argmax(1)] == d["y_test"][test])
               .mean())
    rng, result = np.random.default_rng(cfg.seed), {}
    for k in SHOTS:
        accs = []
        for _ in range(cfg.probe_draws):
            idx = np.concatenate([rng.choice(np.flatnonzero(d["y_train"] == c),
                                             min(k, int((d["y_train"] == c).sum())),
                                             replace=False) for c in seen])
            accs.append(linear_probe(f_train[idx], d["y_train"][idx], emb_test[test],
                                     d["y_test"][test], seen, cfg.probe_steps))
        result[k] = float(np.mean(accs))
    result["all"] = linear_probe(f_train, d["y_train"], emb_test[test], d["y_test"][test], seen,
                                 cfg.probe_steps)
    # zero-shot is worth k labelled examples per class: the largest k whose probe it equals
    worth = [k for k in (*SHOTS, "all") if result[k] <= zs]
    return zs, result, worth[-1] if worth else None


def report(model, d, cfg, log, out, step, seconds, ran):
    emb = embed_images(model, d["x_test"], cfg.device)
    zs = zero_shot(model, d, cfg.device, emb)
    pool = np.flatnonzero(d["held_test"]) if d["held_test"].any() else np.arange(len(emb))
    pool = pool[:500]
    caps = [d["cap_test"][i] for i in pool]
    sim = emb[pool] @ embed_texts(model, d["tokenizer"], caps, cfg.device).T  # (n, n)
    (r1_i2t, r1_t2i), (r5_i2t, r5_t2i) = recall_at(sim, caps, 1), recall_at(sim, caps, 5)
    zs_seen, probe_acc, matched = probes(model, d, cfg, emb)
    result = dict(zs, recall1_i2t=r1_i2t, recall1_t2i=r1_t2i, recall5_i2t=r5_i2t,
                  recall5_t2i=r5_t2i, zero_shot_seen_classes=zs_seen,
                  **{f"probe_{k}": v for k, v in probe_acc.items()}, seconds=seconds)
    log.log(step=step, **{k: v for k, v in result.items() if k != "seconds"})
    plot_curves(log, ["loss"], out / "loss.png", f"CLIP on {cfg.dataset}: contrastive loss",
                log_y=True)
    plot_similarity(model, d, cfg.device, out / "similarity.png")
    plot_probes(probe_acc, zs_seen, out / "probes.png", cfg)
    which = "retrieval among held-out pairs" if d["held_test"].any() else "retrieval"
    print(f"clip[{cfg.dataset}, {cfg.image_encoder}]: {ran} in {seconds:.1f} s")
    print("  zero-shot accuracy: seen {:.4f}".format(zs["zero_shot_seen"]) +
          (", held-out compositions {:.4f}".format(zs["zero_shot_held_out"])
           if "zero_shot_held_out" in zs else "") + f" ({len(d['names'])} classes)")
    print(f"  {which} ({len(pool)} pairs): image->text R@1 {r1_i2t:.3f} R@5 {r5_i2t:.3f}, "
          f"text->image R@1 {r1_t2i:.3f} R@5 {r5_t2i:.3f}")
    print("  linear probes on frozen features: " + ", ".join(
        f"{k}-shot {v:.3f}" for k, v in probe_acc.items()) +
        f"; zero-shot {zs_seen:.3f} (same classes) " +
        ("is below the 1-shot probe" if matched is None else f"matches the {matched}-shot probe"))
    print(f"wrote {out / 'checkpoint.npz'}, metrics and loss.png, similarity.png, probes.png")
    result["matched_shots"] = matched
    result["held_out_accuracy"] = zs.get("zero_shot_held_out", zs["zero_shot_seen"])
    result["model"] = model
    return result


def plot_similarity(model, d, device, path, n=8):
    """The cosine similarities of n test images with their own captions (the diagonal)."""
    rng, n = np.random.default_rng(0), min(n, len(d["x_test"]))  # a small --test-size: all
    idx = rng.choice(len(d["x_test"]), n, replace=False)
    caps = [d["cap_test"][i] for i in idx]
    sim = embed_images(model, d["x_test"][idx], device) @ \
        embed_texts(model, d["tokenizer"], caps, device).T  # (n, n)
    fig, ax = plt.subplots(figsize=(9, 7))
    ax.imshow(sim, cmap="viridis", vmin=sim.min(), vmax=sim.max())
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if sim[i, j] < sim.mean() else "black")
    ax.set_xticks(range(n), caps, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(n), [f"image {i}" for i in range(n)], fontsize=8)
    raw = d["x_test"][idx]
    for i in range(n):  # the images themselves, left of the rows
        img = raw[i].transpose(1, 2, 0)
        img = (img - img.min()) / (img.max() - img.min() + 1e-8)
        ax.imshow(img, extent=(-1.5, -0.5, i + 0.5, i - 0.5))
    ax.set_xlim(-1.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)  # the image column must not move the matrix's limits
    ax.set_title("cosine similarity: test images (rows) x their captions (columns)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_probes(probe_acc, zs, path, cfg):
    keys = list(probe_acc)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(len(keys)), [probe_acc[k] for k in keys], "o-", label="linear probe")
    ax.axhline(zs, color="C3", linestyle="--", label="zero-shot")
    ax.set_xticks(range(len(keys)), [str(k) for k in keys])
    ax.set_xlabel("labelled training examples per class")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"zero-shot vs linear probes ({cfg.dataset}, {cfg.image_encoder})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
