"""German number words to English with the Transformer: ``python -m examples.translate``.

    dreihundertzweiundvierzigtausendeinhundertneunzehn
        -> three hundred and forty-two thousand, one hundred and nineteen

The source is read character by character (German writes a number as one compound word, units
before tens: "zweiundvierzig" is two-and-forty); the target is written word by word, with the
hyphen and the comma as words of their own, so the model must split the compound, reorder
units and tens, and insert "and" and the comma where English puts them. The integers are drawn
from 0..999,999 (``minitx.data.load_number_words``: 20,000 of them, split 80/10/10), so the
test numbers are never seen in training.

The recipe is the paper's (Vaswani et al. 2017, §5.3-5.4): Adam (0.9, 0.98, 1e-9), the
inverse-square-root warm-up, dropout 0.1 and label smoothing 0.1; batches group sentences of
similar length (§5.1). After training it prints exact match, character error rate and corpus
BLEU on the test set for greedy decoding and beam search, the speed-up of the key/value cache,
and writes to ``runs/translate/`` (``runs/translate-quick/`` for ``--quick``): checkpoint.npz
(+ the two vocabularies as JSON), metrics.jsonl/.csv, loss.png and attention.png
(encoder-decoder attention of a few test sentences).

    python -m examples.translate --translate siebenhundertelf   # with the trained model
    python -m examples.translate --stop-after 300   # or Ctrl-C: write the checkpoint, exit
    python -m examples.translate --resume           # continue where it stopped
    python -m examples.translate --pe-experiment    # sinusoidal vs learned positions (§3.5)

BLEU needs sacrebleu (``pip install "sacrebleu>=2.4"``).
"""

import dataclasses
import json
import re
import time
from dataclasses import dataclass

import numpy as np

import minitx as mt
from examples.common import (
    Fraction,
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
    steps_run,
)
from minitx import serialization
from minitx.data import ArrayDataset, CharTokenizer, DataLoader, load_number_words
from minitx.data.tokenizers import SPECIAL_TOKENS
from models.transformer import (
    PRESETS,
    Transformer,
    TransformerConfig,
    beam_search,
    cross_attention_weights,
    greedy_decode,
    make_optimizer,
    transformer_loss,
)

SACREBLEU_HINT = ('examples.translate reports corpus BLEU with sacrebleu, which is not '
                  'installed: pip install "sacrebleu>=2.4"')


@dataclass(frozen=True)
class Config:
    preset: OneOf(*PRESETS) = "tiny"  # models.transformer.PRESETS: width and depth
    positional: OneOf("sinusoidal", "learned") = "sinusoidal"  # position encodings (§3.5)
    norm_first: bool = False  # post-LN as in the paper; --norm-first for pre-LN
    dropout: Fraction = 0.1  # dropout probability P_drop (§5.4)
    label_smoothing: Fraction = 0.1  # label smoothing ε_ls (§5.4)
    count: PositiveInt = 20_000  # numbers drawn, see BANDS (80% train, 10% validation, 10% test)
    steps: PositiveInt = 1000  # optimizer steps
    batch_size: PositiveInt = 64  # sentences per batch
    warmup_steps: NonNegativeInt = 200  # warm-up of the inverse-square-root schedule (Eq. 3)
    lr_scale: PositiveFloat = 0.5  # multiplies Eq. 3: peak lr_scale·d_model^-½·warmup^-½
    log_every: PositiveInt = 25  # steps between loss entries in the metrics log
    eval_every: PositiveInt = 250  # steps between validation checks (greedy, 256 sentences)
    checkpoint_every: PositiveInt = 250  # steps between checkpoints
    beam_size: PositiveInt = 4  # beam width of beam search (§6.1)
    length_penalty: NonNegativeFloat = 0.6  # length penalty α of beam search (§6.1)
    seed: NonNegativeInt = 0  # the numbers drawn, the initial weights, dropout and the batches
    device: str = "cpu"  # where the model trains: cpu, cuda, cuda:1, ...


# a smoke run: a few steps on a small subset
QUICK = {"steps": 8, "warmup_steps": 4, "batch_size": 16, "eval_every": 4,
         "checkpoint_every": 4, "count": 2000}


# ---- data: characters in, words out -------------------------------------------------------------

class WordTokenizer(CharTokenizer):
    """English number words as tokens: "forty-two thousand, one" -> forty - two thousand , one.

    The same special tokens and ids as :class:`CharTokenizer`; `decode` puts the hyphen and the
    comma back without spaces, so decode(encode(text)) == text for every num2words output.
    """

    def __init__(self, words):  # CharTokenizer insists on single characters: set up directly
        self.chars = list(words)
        self.id_to_token = list(SPECIAL_TOKENS) + self.chars
        self.char_to_id = {w: i for i, w in enumerate(self.chars, start=len(SPECIAL_TOKENS))}

    @classmethod
    def from_corpus(cls, texts):
        return cls(sorted({w for text in texts for w in split_words(text)}))

    def encode(self, text, add_bos=False, add_eos=False):
        ids = [self.char_to_id.get(w, self.unk_id) for w in split_words(text)]
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids, skip_special=True):
        words = [self.id_to_token[i] for i in np.asarray(ids).reshape(-1).tolist()
                 if not (skip_special and i < len(SPECIAL_TOKENS))]
        return " ".join(words).replace(" - ", "-").replace(" ,", ",")

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"type": "WordTokenizer", "words": self.chars}, f, indent=1)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f)["words"])


def split_words(text):
    return re.findall(r"[a-z]+|[,-]", text)


# Numbers of 1-3, 4-5 and 6 digits, and the share of each in the data. Drawn uniformly from
# 0..999,999, only 0.1% would be below 1000 and a short number such as "siebenhundertelf" would
# be all but unseen in training; the integers of each band are split 80/10/10 on their own.
BANDS = ((0, 999, 0.05), (1_000, 99_999, 0.25), (100_000, 999_999, 0.70))  # low, high, share


def load_pairs(cfg, split):
    """Return (German texts, English texts, numbers) of one split, the bands mixed."""
    parts = [load_number_words(split, low=low, high=high, seed=cfg.seed,
                               count=min(high - low + 1, max(round(share * cfg.count), 10)))
             for low, high, share in BANDS]
    german, english, numbers = (np.concatenate(p) for p in zip(*parts))
    order = np.random.default_rng(cfg.seed).permutation(len(numbers))  # mix the bands
    return german[order], english[order], numbers[order]


def encode_pairs(src_tok, tgt_tok, german, english):
    """Return source ids (N, S), decoder inputs (N, T) and targets (N, T), padded with 0."""
    src, _ = src_tok.encode_batch(list(german))  # (N, S)
    tgt, _ = tgt_tok.encode_batch(list(english), add_bos=True, add_eos=True)  # (N, T + 1)
    tgt_in = np.where(tgt == tgt_tok.eos_id, tgt_tok.pad_id, tgt)[:, :-1]  # no <eos> in
    return src, tgt_in, tgt[:, 1:]  # <bos> y1 .. yn  ->  y1 .. yn <eos>


def length_batches(src, batch_size, rng):
    """Return one epoch's index arrays of full batches of similar source length, in random
    order (§5.1): the ``batch_sampler`` of the training DataLoader."""
    order = rng.permutation(len(src))
    pool = 50 * batch_size  # sort within pools: similar lengths, still a random mix
    lengths = (src != 0).sum(axis=1)
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches)) if len(batches[i]) == batch_size]


def trim(*arrays):
    """Cut the columns that are padding in every row."""
    return [a[:, :max(int((a != 0).sum(axis=1).max()), 1)] for a in arrays]


# ---- evaluation ---------------------------------------------------------------------------------

def translate(model, src_tok, tgt_tok, german, device, beam_size=1, length_penalty=0.6,
              use_cache=True, max_len=24, batch=500):
    """Return the English translations of a list of German texts."""
    out = []
    for start in range(0, len(german), batch):
        (src,) = trim(src_tok.encode_batch(list(german[start:start + batch]))[0])
        src = mt.tensor(src, device=device)
        bos, eos = tgt_tok.bos_id, tgt_tok.eos_id
        ids = (greedy_decode(model, src, bos, eos, max_len, use_cache) if beam_size == 1 else
               beam_search(model, src, bos, eos, beam_size, length_penalty, max_len, use_cache))
        out += tgt_tok.decode_batch(ids)
    return out


def edit_distance(a, b):
    """Levenshtein distance, one row of the table at a time."""
    row = np.arange(len(b) + 1)
    chars = np.array(list(b)) if b else np.array([], dtype="<U1")
    for i, ca in enumerate(a, start=1):
        sub = np.minimum(row[:-1] + (chars != ca), row[1:] + 1)  # substitute / delete
        new = np.concatenate([[i], sub])
        row = np.minimum.accumulate(new - np.arange(len(new))) + np.arange(len(new))  # insert
    return int(row[-1])


def scores(hypotheses, references):
    """Return exact match, character error rate and corpus BLEU (sacrebleu, 13a tokens)."""
    import sacrebleu

    exact = float(np.mean([h == r for h, r in zip(hypotheses, references)]))
    edits = sum(edit_distance(h, r) for h, r in zip(hypotheses, references) if h != r)
    cer = edits / sum(len(r) for r in references)
    bleu = sacrebleu.corpus_bleu(hypotheses, [list(references)]).score
    return {"exact_match": exact, "cer": cer, "bleu": bleu}


def plot_attention(model, src_tok, tgt_tok, german, path, device):
    """Save a heat-map per sentence: which German characters each English word attends to."""
    import matplotlib.pyplot as plt

    english = translate(model, src_tok, tgt_tok, german, device)
    fig, axes = plt.subplots(len(german), 1, figsize=(11, 3.2 * len(german)))
    for ax, de, en in zip(np.atleast_1d(axes), german, english):
        src = mt.tensor(np.array([src_tok.encode(de)]), device=device)  # (1, S)
        tgt = tgt_tok.encode(en, add_bos=True, add_eos=True)
        tgt_in = mt.tensor(np.array([tgt[:-1]]), device=device)  # (1, T)
        weights = cross_attention_weights(model, src, tgt_in).numpy()[0].mean(axis=0)  # (T, S)
        ax.imshow(weights, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(de)), list(de), fontsize=7)
        ax.set_yticks(range(len(tgt) - 1), [tgt_tok.id_to_token[i] for i in tgt[1:]],
                      fontsize=7)
        ax.set_title(f"{de} -> {en}", fontsize=8)
    fig.suptitle("encoder-decoder attention, last decoder layer, mean over heads "
                 "(row: English word predicted, column: German character)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- training -----------------------------------------------------------------------------------

def model_config(cfg, src_tok, tgt_tok, max_len=128):
    return dataclasses.replace(
        PRESETS[cfg.preset], src_vocab_size=src_tok.vocab_size,
        tgt_vocab_size=tgt_tok.vocab_size, positional=cfg.positional, max_len=max_len,
        norm_first=cfg.norm_first, dropout=cfg.dropout, label_smoothing=cfg.label_smoothing,
        share_embeddings=False, pad_id=CharTokenizer.pad_id)


def train(cfg, data, out, name, args, quick=False):
    """Train one model on data = (src_tok, tgt_tok, train texts, validation texts); `args` has
    resume and stop_after (see examples.common). Returns (model, log, (wall s, CPU s), step)."""
    src_tok, tgt_tok, (de, en), (val_de, val_en) = data
    src, tgt_in, tgt_out = encode_pairs(src_tok, tgt_tok, de, en)
    if cfg.batch_size > len(src):
        args.error(f"the training set has {len(src)} sentences, fewer than --batch-size "
                   f"{cfg.batch_size}: an epoch would have no batch")
    mt.random.seed(cfg.seed)
    try:
        model = Transformer(model_config(cfg, src_tok, tgt_tok)).to(cfg.device)
    except ValueError as error:  # an unknown --device
        args.error(str(error))
    opt, sched = make_optimizer(model, cfg.warmup_steps, cfg.lr_scale)  # §5.3
    batch_rng, checkpoint = np.random.default_rng(cfg.seed), out / "checkpoint.npz"
    loader = DataLoader(ArrayDataset(src, tgt_in, tgt_out), cfg.batch_size, rng=batch_rng,
                        batch_sampler=lambda rng: length_batches(src, cfg.batch_size, rng))
    rngs = {"batches": batch_rng}
    step = resume_step(checkpoint, args, cfg, model=model, optimizer=opt, schedule=sched,
                       loader=loader, rngs=rngs)
    log = MetricsLog(out, resume=args.resume, step=step)

    batches = loader.forever()
    bar, start, cpu = progress(cfg.steps, name, initial=step), time.perf_counter(), cpu_seconds()
    with StopRequest(args.stop_after) as stop:  # Ctrl-C or --stop-after: save, then exit
        while step < cfg.steps:
            xb, yb_in, yb_out = (mt.tensor(a, device=cfg.device) for a in trim(*next(batches)))
            loss = transformer_loss(model(xb, yb_in), yb_out, model.config)  # §5.4
            loss.backward()
            opt.step()  # no gradient clipping in the paper
            opt.zero_grad()
            sched.step()
            step += 1
            loss_value = log_progress(bar, log, step, loss, opt, cfg.log_every, cfg.steps)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                n = 16 if quick else 256
                hyp = translate(model, src_tok, tgt_tok, val_de[:n], cfg.device)
                val_exact = float(np.mean([h == r for h, r in zip(hyp, val_en[:n])]))
                log.log(step=step, val_exact_match=val_exact)
                bar.set_postfix(loss=f"{loss_value:.3f}", val_exact=f"{val_exact:.3f}",
                                refresh=False)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop(step):
                serialization.save_checkpoint(
                    checkpoint, model=model, optimizer=opt, schedule=sched, step=step,
                    config=model.config, rngs=rngs,
                    extra={"loader": loader.state_dict(), "example": dataclasses.asdict(cfg)})
                src_tok.save(out / "src_vocab.json")
                tgt_tok.save(out / "tgt_vocab.json")
            if stop(step):
                break
    bar.close()
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    plot_curves(log, ["loss"], out / "loss.png", f"{name}: training loss", log_y=True)
    return model, log, (seconds, cpu), step


def cpu_seconds():
    """CPU time of this process: on a busy machine, close to what the wall time would be on an
    idle one when the process runs one thread (OPENBLAS_NUM_THREADS=1)."""
    return time.process_time()


def load_trained(out, device):
    """Return (model, src_tok, tgt_tok) from a checkpoint written by `train`."""
    checkpoint = out / "checkpoint.npz"
    model = Transformer(serialization.load_config(checkpoint, TransformerConfig)).to(device)
    serialization.load_checkpoint(checkpoint, model=model)
    return model, CharTokenizer.load(out / "src_vocab.json"), WordTokenizer.load(
        out / "tgt_vocab.json")


# ---- the run ------------------------------------------------------------------------------------

def main(argv=None):
    mt.backend.keep_host_memory()  # reuse freed memory step after step (see its docstring)
    cfg, args = parse_config(
        Config, __doc__, argv, prog="python -m examples.translate", quick_config=QUICK,
        resumable=True,
        translate=(str, None, "translate this German number word, e.g. siebenhundertelf, with "
                              "the trained model of runs/translate/ (with --quick: of "
                              "runs/translate-quick/); no training"),
        pe_experiment=(bool, False, "train sinusoidal and learned positions on short "
                                    "numbers, test on longer ones (§3.5)"))
    if args.translate is not None:
        return translate_saved(cfg, args)
    try:
        import sacrebleu  # noqa: F401  (fail now, not after training)
    except ImportError:
        raise SystemExit(SACREBLEU_HINT) from None
    if args.pe_experiment:
        if args.resume or args.stop_after:
            args.error("--pe-experiment trains two models from scratch: no --resume or "
                       "--stop-after")
        return pe_experiment(cfg, args)
    out = run_dir("translate", quick=args.quick, error=args.error)
    full = [f"{low:,}-{high:,}" for low, high, share in BANDS if share * cfg.count > high - low + 1]
    if full:  # a band holds only so many numbers
        print(f"note: --count {cfg.count:,} asks for more numbers than the bands {', '.join(full)} "
              f"hold; each gives all it has")

    de, en, _ = load_pairs(cfg, "train")
    val_de, val_en, _ = load_pairs(cfg, "validation")
    test_de, test_en, test_numbers = load_pairs(cfg, "test")
    src_tok, tgt_tok = CharTokenizer.from_corpus(de), WordTokenizer.from_corpus(en)
    if args.resume and (out / "tgt_vocab.json").exists():  # the vocabularies of the checkpoint
        src_tok = CharTokenizer.load(out / "src_vocab.json")
        tgt_tok = WordTokenizer.load(out / "tgt_vocab.json")
    check_beam_size(cfg, tgt_tok, args)  # now, not after training
    data = (src_tok, tgt_tok, (de, en), (val_de, val_en))
    model, log, (seconds, cpu), step = train(cfg, data, out, "translate", args, args.quick)
    if step < cfg.steps:
        print(f"translate: stopped after step {step} of {cfg.steps}; wrote "
              f"{out / 'checkpoint.npz'} (continue with --resume)")
        return {"stopped_at": step, "model": model}
    if args.quick:
        test_de, test_en, test_numbers = test_de[:12], test_en[:12], test_numbers[:12]

    def run(sentences, **kwargs):  # (translations, wall seconds, CPU seconds)
        start, cpu_start = time.perf_counter(), cpu_seconds()
        hyp = translate(model, src_tok, tgt_tok, sentences, cfg.device, **kwargs)
        return hyp, time.perf_counter() - start, cpu_seconds() - cpu_start

    beam_args = dict(beam_size=cfg.beam_size, length_penalty=cfg.length_penalty)
    greedy, *t_greedy = run(test_de)
    uncached, *t_uncached = run(test_de, use_cache=False)
    beam, *t_beam = run(test_de, **beam_args)
    sub = test_de[:200]  # beam search without the cache is slow: time it on a part
    _, *t_beam_sub = run(sub, **beam_args)
    beam_uncached, *t_beam_uncached = run(sub, use_cache=False, **beam_args)
    metrics = {"steps": step, "train_seconds": seconds, "train_cpu_seconds": cpu,
               "test_sentences": len(test_de)}
    for name, hyp in (("greedy", greedy), ("beam", beam)):
        metrics.update({f"{name}_{k}": v for k, v in scores(hyp, test_en).items()})
    metrics.update(greedy_seconds=t_greedy, greedy_uncached_seconds=t_uncached,
                   beam_seconds=t_beam, beam_part_seconds=t_beam_sub,
                   beam_part_uncached_seconds=t_beam_uncached, beam_part_sentences=len(sub),
                   greedy_beam_differ=sum(g != b for g, b in zip(greedy, beam)),
                   cache_same_output=uncached == greedy and beam_uncached == beam[:len(sub)])
    correct = np.array([h == r for h, r in zip(greedy, test_en)])
    for low, high, _ in BANDS:  # exact match by size of the number
        band = (test_numbers >= low) & (test_numbers <= high)
        metrics[f"greedy_exact_match_{low}-{high}"] = float(correct[band].mean()) if any(band) \
            else None
    log.log(step=step, **metrics)
    shown = [test_de[np.flatnonzero((test_numbers >= low) & (test_numbers <= high))[0]]
             for low, high in ((100_000, 999_999), (10_000, 99_999), (100, 999))
             if np.any((test_numbers >= low) & (test_numbers <= high))]  # 6, 5 and 3 digits
    plot_attention(model, src_tok, tgt_tok, shown, out / "attention.png", cfg.device)

    print(f"translate: {steps_run(step, args)} in {seconds:.0f} s ({cpu:.0f} s of CPU time); "
          f"test set of {len(test_de)} numbers never seen in training:")
    for name in ("greedy", f"beam {cfg.beam_size}"):
        key = name.split()[0]
        print(f"  {name:7s}  exact match {metrics[key + '_exact_match']:.4f}  CER "
              f"{metrics[key + '_cer']:.4f}  BLEU {metrics[key + '_bleu']:.2f}")
    print("  greedy exact match by size: " + ", ".join(
        f"{low:,}-{high:,}: {metrics[f'greedy_exact_match_{low}-{high}']:.4f}"
        for low, high, _ in BANDS if metrics[f"greedy_exact_match_{low}-{high}"] is not None))
    print(f"  greedy and beam differ on {metrics['greedy_beam_differ']} sentences; decoding "
          f"took {t_greedy[0]:.1f} s (greedy) and {t_beam[0]:.1f} s (beam)")
    print(f"  key/value cache (wall / CPU seconds): greedy, {len(test_de)} sentences: "
          f"{t_uncached[0]:.1f} / {t_uncached[1]:.1f} s uncached -> {t_greedy[0]:.1f} / "
          f"{t_greedy[1]:.1f} s cached ({t_uncached[1] / t_greedy[1]:.1f}x CPU); beam, "
          f"{len(sub)} sentences: {t_beam_uncached[0]:.1f} / {t_beam_uncached[1]:.1f} s -> "
          f"{t_beam_sub[0]:.1f} / {t_beam_sub[1]:.1f} s "
          f"({t_beam_uncached[1] / t_beam_sub[1]:.1f}x CPU); same translations: "
          f"{metrics['cache_same_output']}")
    for de_text, en_text, hyp in list(zip(test_de, test_en, greedy))[:3]:
        print(f"  {de_text} -> {hyp}{'' if hyp == en_text else f'  (expected {en_text})'}")
    print(f"wrote {out / 'checkpoint.npz'}, metrics.csv, loss.png, attention.png")
    return {**metrics, "model": model}


def translate_saved(cfg, args):
    """--translate TEXT: translate with the model saved by a training run (never train)."""
    text = args.translate.strip().lower()
    if not text:
        args.error("--translate: give a German number word, e.g. --translate siebenhundertelf")
    if args.resume or args.pe_experiment or args.stop_after:
        args.error("--translate uses the saved model: no --resume, --stop-after or "
                   "--pe-experiment")
    out = run_dir("translate", quick=args.quick, error=args.error)
    checkpoint = out / "checkpoint.npz"
    if not checkpoint.exists():
        args.error(f"--translate: no trained model in {checkpoint}; train one first with "
                   f"python -m examples.translate" + (" --quick" if args.quick else ""))
    model, src_tok, tgt_tok = load_trained(out, cfg.device)
    check_beam_size(cfg, tgt_tok, args)
    if model.config.positional == "learned" and len(text) > model.config.max_len:
        args.error(f"--translate: {len(text)} characters, but the model learned positions for "
                   f"{model.config.max_len} only (--positional learned)")
    saved = serialization.read_checkpoint(checkpoint)
    step, example = saved["step"], (saved["extra"] or {}).get("example", {})
    if step < example.get("steps", step):
        print(f"note: {checkpoint} is a stopped run, at step {step} of {example['steps']}")
    return translate_and_print(model, src_tok, tgt_tok, text, cfg)


def check_beam_size(cfg, tgt_tok, args):
    """Beam search keeps at most one hypothesis per English word: --beam-size ≤ the vocabulary."""
    if cfg.beam_size > tgt_tok.vocab_size:
        args.error(f"--beam-size {cfg.beam_size}: the English vocabulary has "
                   f"{tgt_tok.vocab_size} words, the most a beam can hold")


def translate_and_print(model, src_tok, tgt_tok, text, cfg):
    """Print the greedy and beam translations of one German number word."""
    text = text.strip().lower()
    unknown = sorted({c for c in text if c not in src_tok.char_to_id})
    if unknown:
        print(f"note: characters {unknown} are not in the German vocabulary (read as <unk>)")
    greedy = translate(model, src_tok, tgt_tok, [text], cfg.device)[0]
    beam = translate(model, src_tok, tgt_tok, [text], cfg.device, cfg.beam_size,
                     cfg.length_penalty)[0]
    print(f"{text} -> {greedy}" + ("" if beam == greedy else f"   (beam {cfg.beam_size}: {beam})"))
    return {"greedy": greedy, "beam": beam}


def pe_experiment(cfg, args):
    """§3.5: "learned positional embeddings [...] produced nearly identical results", but the
    sinusoids "may allow the model to extrapolate to sequence lengths longer than the ones
    encountered during training". Train both on numbers whose German spelling has at most
    `short` characters, then test each on held-out numbers, grouped by source length."""
    quick = args.quick
    out, short = run_dir("translate_pe", quick=quick, error=args.error), 45
    if "count" in args.given:
        print("note: --pe-experiment draws its own numbers (100,000, or 4,000 with --quick); "
              "--count is not used")
    cfg = dataclasses.replace(cfg, count=4000 if quick else 100_000)
    de, en, _ = load_pairs(cfg, "train")
    val_de, val_en, _ = load_pairs(cfg, "validation")
    test_de, test_en, _ = load_pairs(cfg, "test")
    keep, val_keep = ([len(t) <= short for t in texts] for texts in (de, val_de))
    de, en, val_de, val_en = de[keep], en[keep], val_de[val_keep], val_en[val_keep]
    src_tok, tgt_tok = CharTokenizer.from_corpus(de), WordTokenizer.from_corpus(en)
    groups = [(0, short), (short + 1, 50), (51, 55), (56, 60), (61, 99)]  # source lengths
    lengths = np.array([len(t) for t in test_de])
    rows, results = [], {"train_max_chars": short, "train_pairs": len(de)}
    for positional in ("sinusoidal", "learned"):
        run_cfg = dataclasses.replace(cfg, positional=positional)
        data = (src_tok, tgt_tok, (de, en), (val_de, val_en))
        folder = run_dir(f"translate_pe/{positional}", quick=quick, error=args.error)
        model, _, (seconds, _), step = train(run_cfg, data, folder, positional, args, quick)
        if step < run_cfg.steps:  # Ctrl-C: no comparison from a half-trained model
            print(f"positional encodings: stopped while training {positional}")
            return results
        row = [positional]
        for low, high in groups:
            pick = (lengths >= low) & (lengths <= high)
            hyp = translate(model, src_tok, tgt_tok, test_de[pick][:48 if quick else 400],
                            cfg.device)
            exact = float(np.mean([h == r for h, r in zip(hyp, test_en[pick])]))
            results[f"{positional}_{low}-{high}"] = {"exact_match": exact, "n": len(hyp)}
            row.append(f"{exact:.3f} (n={len(hyp)})")
        results[f"{positional}_train_seconds"] = seconds
        rows.append(row)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"positional encodings: trained on {len(de)} numbers of <= {short} German "
          f"characters ({step} steps each); exact match on held-out numbers by source length:")
    header = ["encoding"] + [f"{low}-{high} chars" for low, high in groups]
    for row in [header] + rows:
        print("  " + "  ".join(f"{cell:>16s}" for cell in row))
    print(f"wrote {out / 'results.json'}")
    return results


if __name__ == "__main__":
    main()
