"""The Transformer: an encoder-decoder built from attention alone.

Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser, Polosukhin: "Attention Is All You
Need", NeurIPS 2017, arXiv:1706.03762.

Paper map:  Fig. 1, §3.1  -> Transformer.forward         encode the source, decode the target
            §3.1          -> nn.TransformerEncoderLayer   self-attention, FFN; residual + LN
            §3.1          -> nn.TransformerDecoderLayer   masked self-attn, enc-dec attn, FFN
            §3.2, Eq. 1   -> nn.MultiHeadAttention        (its key/value cache: decoding)
            §3.2.3        -> Transformer.padding_mask     source padding; the causal mask is
                                                          ``tgt_is_causal=True`` in decode
            §3.3, Eq. 2   -> nn.PositionwiseFeedForward
            §3.4          -> Transformer.embed            embeddings × √d_model
            §3.4          -> Transformer.decode           pre-softmax linear (tied weights)
            §3.5          -> nn.SinusoidalPositionalEncoding, or the learned table (Table 3 E)
            §5.3, Eq. 3   -> make_optimizer               Adam + inverse-square-root warm-up
            §5.4          -> Transformer.embed (dropout on the sums), transformer_loss (ε_ls)
            §6.1          -> greedy_decode, beam_search   beam 4, length penalty α = 0.6
            Table 3       -> PRESETS["base"], PRESETS["big"]
Shapes: B batch, S source positions, T target positions, D = d_model, h heads, d = D/h,
    V vocabulary, K beam size. Token ids are int64; ``pad_id`` marks padding on both sides.
Deviations (each also marked in the code):
    * ``norm_first=True`` gives pre-LN layers (Xiong et al. 2020) plus a final LayerNorm after
      each stack; the default is the paper's post-LN;
    * the attention weights and the FFN's hidden layer also get dropout (as in PyTorch's
      layers, which minitx.nn follows); §5.4 names only the residual dropout;
    * embeddings start N(0, D^-½) as in tensor2tensor (the paper gives no initialization), so
      that after the ×√D of §3.4 they have unit scale, like the positional encodings.
"""

import math
from dataclasses import dataclass

import numpy as np

import minitx as mt
from minitx import backend, nn, optim
from minitx import functional as F


@dataclass(frozen=True)
class TransformerConfig:
    src_vocab_size: int = 37000  # shared source-target BPE vocabulary of ~37000 tokens (§5.1)
    tgt_vocab_size: int = 37000  # V
    d_model: int = 512  # d_model (§3.1)
    num_heads: int = 8  # h, head size d_k = d_v = d_model / h = 64 (§3.2.2)
    d_ff: int = 2048  # d_ff, the inner width of the FFN (§3.3)
    num_encoder_layers: int = 6  # N (§3.1)
    num_decoder_layers: int = 6  # N (§3.1)
    dropout: float = 0.1  # P_drop (§5.4)
    label_smoothing: float = 0.1  # ε_ls (§5.4)
    positional: str = "sinusoidal"  # §3.5; "learned": Table 3 row (E)
    max_len: int = 512  # positions of a learned table (the sinusoids have no limit)
    norm_first: bool = False  # post-LN, LN(x + Sublayer(x)) (§3.1); True: pre-LN
    tie_embeddings: bool = True  # target embedding = pre-softmax weights (§3.4)
    share_embeddings: bool = True  # source embedding too (§3.4: one shared vocabulary)
    activation: str = "relu"  # max(0, ·) of Eq. 2
    pad_id: int = 0  # padding token of both vocabularies


class Transformer(nn.Module):
    """The encoder-decoder Transformer (Fig. 1): logits of each next target token.

    Args:
        config: a :class:`TransformerConfig`.
        device, dtype, generator: where the parameters live and the seeded initial values.

    >>> from dataclasses import replace
    >>> cfg = replace(PRESETS["tiny"], src_vocab_size=11, tgt_vocab_size=13)
    >>> model = Transformer(cfg)
    >>> model(mt.tensor([[5, 6, 7, 2, 0]]), mt.tensor([[1, 8, 9]])).shape
    (1, 3, 13)
    """

    def __init__(self, config, *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        check_config(config)
        self.config = c = config
        kw = dict(device=device, dtype=dtype)
        self.src_embed = nn.Embedding(c.src_vocab_size, c.d_model, generator=generator, **kw)
        self.tgt_embed = (self.src_embed if c.share_embeddings else  # §3.4
                          nn.Embedding(c.tgt_vocab_size, c.d_model, generator=generator, **kw))
        for embedding in (self.src_embed, self.tgt_embed):
            # DEVIATION: the paper gives no init; N(0, D^-½) is tensor2tensor's, see docstring
            nn.init.normal_(embedding.weight, 0.0, c.d_model ** -0.5, generator=generator)
        self.src_positions, self.tgt_positions = (
            make_positional(c, generator=generator, **kw) for _ in range(2))  # §3.5
        self.dropout = nn.Dropout(c.dropout, generator=generator)  # on the sums (§5.4)
        # DEVIATION: the layers also drop attention weights and FFN activations (PyTorch's)
        layer = dict(d_model=c.d_model, nhead=c.num_heads, dim_feedforward=c.d_ff,
                     dropout=c.dropout, activation=c.activation, norm_first=c.norm_first,
                     generator=generator, **kw)
        self.encoder = nn.ModuleList([nn.TransformerEncoderLayer(**layer)
                                      for _ in range(c.num_encoder_layers)])
        self.decoder = nn.ModuleList([nn.TransformerDecoderLayer(**layer)
                                      for _ in range(c.num_decoder_layers)])
        # DEVIATION (pre-LN only): the residual stream is never normalized inside the stack
        self.encoder_norm = nn.LayerNorm(c.d_model, **kw) if c.norm_first else None
        self.decoder_norm = nn.LayerNorm(c.d_model, **kw) if c.norm_first else None
        self.out_proj = nn.Linear(c.d_model, c.tgt_vocab_size, generator=generator, **kw)
        if c.tie_embeddings:
            self.out_proj.weight = self.tgt_embed.weight  # one (V, D) matrix, §3.4

    def forward(self, src, tgt_in):  # (B, S), (B, T) token ids
        """Return the logits (B, T, V) of target token t+1 given src and tgt_in[:, :t+1]."""
        src_padding = self.padding_mask(src)  # (B, S), True = padding
        memory = self.encode(src, src_padding)  # (B, S, D)
        return self.decode(tgt_in, memory, src_padding)  # (B, T, V)

    def padding_mask(self, ids):  # (B, S)
        """Return a bool Tensor (B, S), True at padding: keys nobody may attend to."""
        return ids == self.config.pad_id  # (B, S)

    def embed(self, embedding, positions, ids, offset=0):  # (B, T) token ids
        """Return Dropout(E[ids]·√D + PE[offset : offset + T]), (B, T, D) (§3.4, §3.5, §5.4)."""
        x = embedding(ids) * math.sqrt(self.config.d_model)  # (B, T, D)   §3.4
        return self.dropout(positions(x, offset))  # (B, T, D)   §3.5, §5.4

    def encode(self, src, src_padding=None):  # (B, S)
        """Return the memory (B, S, D): the encoder stack's output (Fig. 1, left)."""
        src_padding = self.padding_mask(src) if src_padding is None else src_padding
        x = self.embed(self.src_embed, self.src_positions, src)  # (B, S, D)
        for layer in self.encoder:
            x = layer(x, src_key_padding_mask=src_padding)  # (B, S, D)   §3.1
        return x if self.encoder_norm is None else self.encoder_norm(x)  # (B, S, D)

    def decode(self, tgt_in, memory, src_padding, cache=None, offset=0):  # (B, T), (B, S, D)
        """Return the logits (B, T, V) of the next token after each target position.

        Args:
            tgt_in: (B, T) ids, starting with <bos> (the targets shifted right, §3.1).
            memory: (B, S, D) from :meth:`encode`; src_padding: (B, S), True = padding.
            cache: from :func:`new_cache` for incremental decoding: then tgt_in holds only the
                new positions, `offset` of them having been decoded before.
        """
        x = self.embed(self.tgt_embed, self.tgt_positions, tgt_in, offset)  # (B, T, D)
        for i, layer in enumerate(self.decoder):
            x = layer(x, memory, memory_key_padding_mask=src_padding, tgt_is_causal=True,
                      cache=None if cache is None else cache[i])  # (B, T, D)   §3.2.3
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)  # (B, T, D)
        # Target padding needs no mask: it sits after the real tokens, which the causal mask
        # already hides from them, and the loss ignores the outputs at padded positions.
        return self.out_proj(x)  # (B, T, D) -> (B, T, V); softmax in the loss / decoder


def make_positional(config, *, device="cpu", dtype=np.float32, generator=None):
    """Return the positional encoding of §3.5: fixed sinusoids, or a learned (max_len, D)
    table (Table 3 row E, "nearly identical results")."""
    if config.positional == "sinusoidal":
        return nn.SinusoidalPositionalEncoding(config.d_model, device=device, dtype=dtype)
    return nn.LearnedPositionalEncoding(config.max_len, config.d_model, device=device,
                                        dtype=dtype, generator=generator)


def check_config(config):
    """Raise ValueError for an inconsistent :class:`TransformerConfig`."""
    c = config
    for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "num_heads", "d_ff",
                 "num_encoder_layers", "num_decoder_layers", "max_len"):
        if not getattr(c, name) >= 1:
            raise ValueError(f"Transformer: {name} must be a positive integer, got "
                             f"{getattr(c, name)}")
    if c.d_model % c.num_heads:
        raise ValueError(f"Transformer: d_model={c.d_model} must be divisible by "
                         f"num_heads={c.num_heads}")
    if c.positional not in ("sinusoidal", "learned"):
        raise ValueError(f"Transformer: positional must be 'sinusoidal' or 'learned', got "
                         f"{c.positional!r}")
    if c.share_embeddings and c.src_vocab_size != c.tgt_vocab_size:
        raise ValueError(f"Transformer: share_embeddings needs one vocabulary, got "
                         f"src_vocab_size={c.src_vocab_size}, tgt_vocab_size={c.tgt_vocab_size}"
                         f"; pass share_embeddings=False")
    if not 0 <= c.pad_id < min(c.src_vocab_size, c.tgt_vocab_size):
        raise ValueError(f"Transformer: pad_id={c.pad_id} is not in both vocabularies")


# ---- training (§5.3, §5.4) ----------------------------------------------------------------------

def transformer_loss(logits, target, config):
    """Return the label-smoothed cross-entropy (§5.4) over the non-padding target tokens.

    Args:
        logits: (B, T, V) from the model; target: (B, T) ids, tgt_in shifted left, padded.
    """
    return F.cross_entropy(logits, target, ignore_index=config.pad_id,  # mean over tokens
                           label_smoothing=config.label_smoothing)  # ε_ls = 0.1, §5.4


def make_optimizer(model, warmup_steps=4000, lr_scale=1.0):
    """Return the paper's Adam (β1 = 0.9, β2 = 0.98, ε = 1e-9) and its schedule (§5.3, Eq. 3):

        lrate = lr_scale · d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5)

    `lr_scale` is 1 in the paper (tensor2tensor calls it ``learning_rate``).
    """
    opt = optim.Adam(model.parameters(), lr=lr_scale, betas=(0.9, 0.98), eps=1e-9)  # §5.3
    return opt, optim.InverseSqrtSchedule(opt, model.config.d_model, warmup_steps)  # Eq. 3


# ---- inference: greedy decoding and beam search with a key/value cache (§6.1) -------------------

def new_cache(model):
    """Return an empty incremental-decoding cache: one dict per decoder layer.

    Each layer keeps the keys and values of the target positions decoded so far (its masked
    self-attention) and the memory's projected keys and values (its encoder-decoder
    attention), so each new token costs one position, not a re-run of the whole prefix.
    """
    return [{} for _ in model.decoder]


def next_log_probs(model, memory, src_padding, prefix, cache):
    """Return log P(next token | prefix, source) as a host array (N, V).

    Args:
        prefix: (N, t) host int64 ids decoded so far, starting with <bos>.
        cache: from :func:`new_cache` (feeds only the newest token), or None (re-runs the
            whole prefix and keeps the last position: the same numbers, t times the work).
    """
    t = prefix.shape[1]
    new, offset = (prefix, 0) if cache is None else (prefix[:, -1:], t - 1)
    ids = mt.tensor(new, device=memory.device)  # (N, t) or (N, 1)
    logits = model.decode(ids, memory, src_padding, cache=cache, offset=offset)  # (N, ·, V)
    return backend.to_numpy(F.log_softmax(logits[:, -1], axis=-1).data)  # softmax, (N, V)


def greedy_decode(model, src, bos_id, eos_id, max_len=None, use_cache=True):
    """Translate by taking the most probable token at each step.

    Args:
        src: (B, S) source ids (a Tensor on the model's device).
        bos_id, eos_id: the target's start and end tokens.
        max_len: most tokens to generate; default S + 50 (§6.1).
        use_cache: feed one token per step with a key/value cache (False re-runs the prefix).
    Returns:
        (B, L) host int64 ids without <bos>, each row ending at its <eos>, then pad_id.
    """
    pad_id = model.config.pad_id
    max_len = src.shape[1] + 50 if max_len is None else max_len  # §6.1: input length + 50
    with _inference(model):
        src_padding = model.padding_mask(src)  # (B, S)
        memory = model.encode(src, src_padding)  # (B, S, D)
        prefix = np.full((src.shape[0], 1), bos_id, dtype=np.int64)  # (B, 1)
        done = np.zeros(src.shape[0], dtype=bool)  # (B,)
        cache = new_cache(model) if use_cache else None
        for _ in range(max_len):
            log_p = next_log_probs(model, memory, src_padding, prefix, cache)  # (B, V)
            token = np.where(done, pad_id, log_p.argmax(axis=-1))  # (B,)
            prefix = np.concatenate([prefix, token[:, None]], axis=1)  # (B, t + 1)
            done |= token == eos_id
            if done.all():  # terminate early when possible (§6.1)
                break
    return prefix[:, 1:]  # (B, L)


def beam_search(model, src, bos_id, eos_id, beam_size=4, length_penalty=0.6, max_len=None,
                use_cache=True):
    """Translate with beam search (§6.1: beam 4, α = 0.6), batched over sentences.

    Each sentence keeps its K best hypotheses. A finished one stays in the beam, extended by
    padding at no cost, so it competes with the unfinished ones; all are ranked by
    log P(Y) / lp(Y), with GNMT's length penalty lp(Y) = ((5 + |Y|) / 6)^α (Wu et al. 2016,
    Eq. 14), |Y| counting tokens up to and including <eos>. α = 0 ranks by log P alone. The
    bookkeeping (K·V candidates per sentence) runs on the host. With K = 1 this is
    :func:`greedy_decode`.

    Args:
        beam_size: K; length_penalty: α; others as for :func:`greedy_decode`.
    Returns:
        (B, L) host int64 ids of each sentence's best hypothesis, as greedy_decode.
    """
    B, S = src.shape
    K, V, pad_id = beam_size, model.config.tgt_vocab_size, model.config.pad_id
    if not 1 <= K <= V:
        raise ValueError(f"beam_search: beam_size must be in [1, {V}], got {beam_size}")
    max_len = S + 50 if max_len is None else max_len  # §6.1
    if B == 0:  # no sentence: nothing to search (greedy_decode's shape, (0, 1) of <bos>'s)
        return greedy_decode(model, src, bos_id, eos_id, max_len, use_cache)

    def lp(length):  # GNMT's length penalty (Wu et al. 2016, Eq. 14)
        return ((5.0 + length) / 6.0) ** length_penalty

    with _inference(model):
        rows = np.repeat(np.arange(B), K)  # (B·K,) the sentence of each hypothesis
        src_padding = model.padding_mask(src)[rows]  # (B·K, S)
        memory = model.encode(src, model.padding_mask(src))[rows]  # (B·K, S, D)
        prefix = np.full((B * K, 1), bos_id, dtype=np.int64)  # (B·K, 1)
        score = np.full((B, K), -np.inf)  # log P(Y) of each hypothesis (B, K)
        score[:, 0] = 0.0  # one live hypothesis at the start: <bos>
        length, done = np.zeros((B, K)), np.zeros((B, K), dtype=bool)  # (B, K) each
        cache = new_cache(model) if use_cache else None
        for t in range(1, max_len + 1):
            log_p = next_log_probs(model, memory, src_padding, prefix, cache).reshape(B, K, V)
            log_p[done] = -np.inf  # a finished hypothesis continues with padding only,
            log_p[done, pad_id] = 0.0  # at no cost
            total = (score[..., None] + log_p).reshape(B, K * V)  # (B, K·V) candidates
            new_length = np.repeat(np.where(done, length, t), V, axis=1)  # (B, K·V)
            best = np.argsort(-total / lp(new_length), axis=1, kind="stable")[:, :K]  # (B, K)
            parent, token = best // V, best % V  # (B, K) each
            score = np.take_along_axis(total, best, axis=1)  # (B, K)
            length = np.take_along_axis(new_length, best, axis=1)  # (B, K)
            done = np.take_along_axis(done, parent, axis=1) | (token == eos_id)  # (B, K)
            keep = (np.arange(B)[:, None] * K + parent).reshape(-1)  # (B·K,) parent rows
            prefix = np.concatenate([prefix[keep], token.reshape(-1, 1)], axis=1)
            if cache is not None:
                reorder_cache(cache, keep)
            if done.all():  # terminate early when possible (§6.1)
                break
        best = np.argmax(score / lp(length), axis=1)  # (B,)
        return prefix.reshape(B, K, -1)[np.arange(B), best, 1:]  # (B, L)


def reorder_cache(cache, keep):
    """Make row i of every self-attention cache a copy of row keep[i] (beams follow their
    parents). The memory's keys and values are the same for all beams of a sentence and
    ``keep`` never leaves a sentence, so the cross-attention caches stay as they are."""
    for layer_cache in cache:
        self_cache = layer_cache["self"]
        self_cache["k"] = self_cache["k"][keep]  # (B·K, h, t, d)
        self_cache["v"] = self_cache["v"][keep]  # (B·K, h, t, d)


class _inference:
    """Context: evaluation mode and no graph, restoring the model's mode afterwards."""

    def __init__(self, model):
        self.model, self.no_grad = model, mt.no_grad()

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def cross_attention_weights(model, src, tgt_in, layer=-1):
    """Return the encoder-decoder attention weights of one decoder layer, (B, h, T, S).

    Row t says how much the query at target position t (predicting token t + 1) reads each
    source position. One ordinary forward pass in eval mode (no dropout), during which the
    layer's cross-attention records the weights it uses (``nn.record_attention``).
    """
    block = model.decoder[range(len(model.decoder))[layer]]
    with _inference(model), nn.record_attention(block.cross_attn) as recorded:
        model(src, tgt_in)
    return recorded[""]  # (B, h, T, S)


# ---- presets ------------------------------------------------------------------------------------

PRESETS = {
    "base": TransformerConfig(),  # Table 3 "base": 65M parameters
    "big": TransformerConfig(d_model=1024, num_heads=16, d_ff=4096,  # Table 3 "big"
                             dropout=0.3),  # P_drop 0.3 for EN-DE (§6.1)
    # Small sizes for CPU runs (not in the paper). Their vocabularies are the task's: replace
    # src_vocab_size and tgt_vocab_size, e.g. replace(PRESETS["tiny"], src_vocab_size=...).
    "small": TransformerConfig(src_vocab_size=1000, tgt_vocab_size=1000, d_model=256,
                               num_heads=4, d_ff=1024, num_encoder_layers=3,
                               num_decoder_layers=3, share_embeddings=False),
    "tiny": TransformerConfig(src_vocab_size=64, tgt_vocab_size=64, d_model=128, num_heads=4,
                              d_ff=512, num_encoder_layers=2, num_decoder_layers=2,
                              share_embeddings=False),
}
