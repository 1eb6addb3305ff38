"""Image-GPT (iGPT). Chen, Radford, Child, Wu, Jun, Luan & Sutskever, "Generative Pretraining
from Pixels", ICML 2020 (openai.com/research/image-gpt; code github.com/openai/image-gpt).

An image is shrunk to a low resolution, each pixel's colour is replaced by the nearest of k
palette colours (k-means, §3.2 "context reduction"), and the pixels, read in raster order, form a
sequence of tokens. A GPT-2 decoder learns the sequence either autoregressively (predict each
pixel from the ones before it) or BERT-style (predict masked pixels from the rest). Its features,
average-pooled, are then judged by a linear probe at every layer or fine-tuned on labels.

Paper map (sections of the ICML paper):
    §3.2 context reduction -> fit_palette, quantize      k-means colour palette, raster order
                              dequantize                 tokens back to images (for figures)
    §2.1, L_AR             -> ar_inputs, ar_loss         [SOS] x₁ … x_{n−1} -> x₁ … x_n
    §2.1, L_BERT           -> bert_mask, apply_mask, bert_loss   15 % of positions masked
    §2.2 architecture      -> ImageGPT, Block, MLP       GPT-2: pre-norm blocks, learned
                              RMSNorm                    positions, final norm, untied head
    §2.3 fine-tuning       -> ImageGPT.classify          average pool n^L, Linear: L_CLF
                                                         (trained on L_CLF + L_GEN)
    §2.4 linear probing    -> ImageGPT.layer_features    f^l = ⟨n^l_i⟩_i per layer l
    §4.6, Fig. 4 (BERT)    -> ensemble_probabilities     average p(y) over 5 random masks
    generation             -> sample                     temperature, top-k, key/value cache
    §3.3                   -> PRESETS                    iGPT-S (76M), iGPT-M (455M), iGPT-L

Shapes: B batch, C/H/W image, T = H·W tokens, D width, h heads, V palette colours, K classes.

The released code (src/model.py) departs from GPT-2 in two places, and minitx follows it by
default (``norm="rms"``, ``activation="quick_gelu"``): its normalisation divides by the root mean
square without subtracting the mean and has no bias (RMSNorm below), and its MLP uses
x·σ(1.702x). ``norm="layer"`` gives GPT-2's LayerNorm; ``activation="gelu"`` gives the exact GELU
(erf), where GPT-2 itself uses GELU's tanh approximation.

Deviations:
    - DEVIATION: one extra embedding row (index V) serves as [SOS] for the AR objective and as
      [MASK] for BERT (a model is trained with one objective, so it never needs both); the
      released code keeps [SOS] and the masked-pixel embedding separately.
    - Dropout (on the embeddings, the residual branches and the attention weights) is a config
      field, 0 by default; the small examples use 0.1 against over-fitting.
"""

import math
from dataclasses import dataclass

import numpy as np

import minitx as mt
import minitx.functional as F
from minitx import nn

BITS_PER_NAT = 1.0 / math.log(2.0)  # bits per dimension = nats per dimension / ln 2
IGNORE = -100  # target value F.cross_entropy leaves out (PyTorch's ignore_index)


@dataclass(frozen=True)
class ImageGPTConfig:
    """The architecture of an Image-GPT; comments give the paper's symbol and iGPT-S's value."""

    num_colors: int = 512  # V, palette size (§3.2: 9-bit colour, 512 k-means clusters)
    seq_len: int = 1024  # n, tokens per image = H·W (iGPT-S: 32² = 1024 positions)
    dim: int = 512  # d, width (iGPT-S: 512)
    depth: int = 24  # L, blocks (iGPT-S: 24)
    heads: int = 8  # heads of attention (iGPT-S: 8), head size d / heads
    mlp_ratio: int = 4  # MLP hidden width = 4·d (GPT-2)
    objective: str = "ar"  # "ar" (L_AR, causal) or "bert" (L_BERT, bidirectional)
    norm: str = "rms"  # "rms": released code (no mean, no bias); "layer": GPT-2 LayerNorm
    activation: str = "quick_gelu"  # released x·σ(1.702x), or "gelu" (exact, erf)
    num_classes: int = 0  # K of the fine-tuning classifier (§2.3); 0: none
    dropout: float = 0.0  # on the embeddings, residual branches and attention weights
    norm_eps: float = 1e-5  # ε of every normalisation (released code)


class ImageGPT(nn.Module):
    """The GPT-2 decoder of §2.2 over pixel tokens: ids (B, T) -> logits (B, T, V).

    Input ids lie in [0, V]; id V is [SOS] (AR) or [MASK] (BERT). The AR model reads
    ``ar_inputs(x)`` = [SOS, x₁ … x_{T−1}] and its logits at position i predict x_{i+1}.

    >>> model = ImageGPT(PRESETS["tiny"])
    >>> model(mt.zeros((2, 64), dtype="int64")).shape
    (2, 64, 17)
    """

    def __init__(self, config, *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        _check_config(config)
        self.config, self.causal = config, config.objective == "ar"
        V, D = config.num_colors, config.dim
        kw = dict(device=device, dtype=dtype, generator=generator)
        self.token_embed = nn.Embedding(V + 1, D, **kw)  # V colours + [SOS]/[MASK]
        self.pos_embed = nn.LearnedPositionalEncoding(config.seq_len, D, **kw)  # §2.2
        self.dropout = nn.Dropout(config.dropout)  # draws from minitx.random, as checkpointed
        self.blocks = nn.ModuleList([Block(config, **kw) for _ in range(config.depth)])
        self.norm = make_norm(config, device, dtype)  # final norm, as GPT-2
        self.head = nn.Linear(D, V, bias=False, **kw)  # untied from token_embed (§2.2)
        self.classifier = nn.Linear(D, config.num_classes, **kw) if config.num_classes else None
        _init_gpt2(self, config.depth, generator)

    def forward(self, ids, cache=None):  # (B, T) ints
        """Logits of the next (AR) or masked (BERT) pixel at every position: (B, T, V).

        `cache` (from :meth:`new_cache`) makes decoding incremental: pass only the new ids.
        """
        return self.head(self.trunk(ids, cache))  # (B, T, D) -> (B, T, V)

    def trunk(self, ids, cache=None):  # (B, T)
        """n^L: the final-normalised features of the last block, (B, T, D)."""
        offset = 0 if cache is None else cache["length"]
        caches = [None] * len(self.blocks) if cache is None else cache["blocks"]
        x = self.embed(ids, offset)  # (B, T, D)
        for block, block_cache in zip(self.blocks, caches):
            x = block(x, self.causal, block_cache)  # (B, T, D)
        if cache is not None:
            cache["length"] += ids.shape[1]
        return self.norm(x)  # (B, T, D)

    def embed(self, ids, offset=0):  # (B, T)
        """h⁰ = W_e[ids] + W_p[offset : offset + T], then dropout: (B, T, D)."""
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"ImageGPT: expected integer ids (B, T), got {ids.shape} {ids.dtype}")
        if offset + ids.shape[1] > self.config.seq_len:
            raise ValueError(f"ImageGPT: positions up to {offset + ids.shape[1]} exceed seq_len="
                             f"{self.config.seq_len}")
        return self.dropout(self.pos_embed(self.token_embed(ids), offset))  # (B, T, D)

    def new_cache(self):
        """An empty key/value cache for :meth:`forward`: one dict per block, and the length."""
        return {"length": 0, "blocks": [{} for _ in self.blocks]}

    def classify(self, ids):  # (B, T)
        """§2.3: logits (B, T, V) for L_GEN and class logits (B, K) from f^L = ⟨n^L_i⟩_i."""
        if self.classifier is None:
            raise ValueError("ImageGPT.classify: the config has num_classes=0 (no classifier)")
        n = self.trunk(ids)  # (B, T, D)
        return self.head(n), self.classifier(n.mean(axis=1))  # (B, T, V), (B, K)

    def layer_features(self, ids):  # (B, T)
        """§2.4: f^l = ⟨n^l_i⟩_i for l = 0 … L, each (B, D). n^l is the normalised input of block
        l + 1 ("post layernorm attention block inputs"); n^L is the final norm's output."""
        x, features = self.embed(ids), []  # (B, T, D)
        for block in self.blocks:
            features.append(block.norm1(x).mean(axis=1))  # (B, D)
            x = block(x, self.causal)  # (B, T, D)
        features.append(self.norm(x).mean(axis=1))  # (B, D)
        return features


class Block(nn.Module):
    """GPT-2's pre-norm block: x = x + Attn(N₁(x)), then x = x + MLP(N₂(x)).

    Built here from nn.MultiHeadAttention rather than nn.TransformerEncoderLayer for three
    reasons: the released norm (RMSNorm) and activation (x·σ(1.702x)) are not among that layer's
    options, and incremental sampling needs the attention's key/value cache, which the encoder
    layer does not pass through.
    """

    def __init__(self, config, *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        self.norm1 = make_norm(config, device, dtype)
        # no generator: attention dropout draws from minitx.random (which checkpoints save);
        # the weights are drawn again from `generator` by _init_gpt2
        self.attn = nn.MultiHeadAttention(config.dim, config.heads, config.dropout,
                                          device=device, dtype=dtype)
        self.norm2 = make_norm(config, device, dtype)
        self.mlp = MLP(config, device=device, dtype=dtype, generator=generator)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, causal, cache=None):  # (B, T, D)
        x = x + self.dropout(self.attn(self.norm1(x), causal=causal, cache=cache))  # (B, T, D)
        return x + self.dropout(self.mlp(self.norm2(x)))  # (B, T, D)


class MLP(nn.Module):
    """MLP(x) = act(x W₁ + b₁) W₂ + b₂ with hidden width mlp_ratio·d (GPT-2)."""

    def __init__(self, config, *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype, generator=generator)
        hidden = config.mlp_ratio * config.dim
        self.fc = nn.Linear(config.dim, hidden, **kw)  # W₁, b₁
        self.proj = nn.Linear(hidden, config.dim, **kw)  # W₂, b₂
        self.activation = config.activation

    def forward(self, x):  # (B, T, D)
        z = self.fc(x)  # (B, T, 4D)
        if self.activation == "quick_gelu":  # released code; Hendrycks & Gimpel 2016, §2:
            z = F.gelu(z, approximate="sigmoid")  # GELU(x) ≈ x·σ(1.702x)
        else:  # DEVIATION: exact GELU (erf; GPT-2's is the tanh form), not the released x·σ(1.702x)
            z = F.gelu(z)
        return self.proj(z)  # (B, T, D)


class RMSNorm(nn.Module):
    """y = x / √(mean(x²) + ε) · g: the released iGPT's norm (no mean subtracted, no bias),
    known as RMSNorm (Zhang & Sennrich 2019)."""

    def __init__(self, dim, eps=1e-5, *, device="cpu", dtype=np.float32):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(mt.ones((dim,), dtype=dtype, device=device).data)  # g

    def forward(self, x):  # (..., D)
        return F.rms_norm(x, self.weight, self.eps)  # (..., D), one fused op


def make_norm(config, device, dtype):
    """The block's normalisation: the released RMSNorm, or GPT-2's LayerNorm."""
    if config.norm == "rms":
        return RMSNorm(config.dim, config.norm_eps, device=device, dtype=dtype)
    # DEVIATION: GPT-2's LayerNorm (mean subtracted, with bias) in place of the released norm
    return nn.LayerNorm(config.dim, config.norm_eps, device=device, dtype=dtype)


def _init_gpt2(model, depth, generator):
    """GPT-2's initialisation (Radford et al. 2019, §2.3), as the released iGPT: weights
    N(0, 0.02²), biases 0, the residual output projections scaled by 1/√(2L)."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(p)
        elif p.ndim == 2:
            residual = name.endswith(("attn.out_proj.weight", "mlp.proj.weight"))
            std = 0.02 / math.sqrt(2 * depth) if residual else 0.02
            nn.init.normal_(p, 0.0, std, generator=generator)


def _check_config(c):
    for name, allowed in (("objective", ("ar", "bert")), ("norm", ("rms", "layer")),
                          ("activation", ("quick_gelu", "gelu"))):
        if getattr(c, name) not in allowed:
            raise ValueError(f"ImageGPTConfig: {name} must be one of {allowed}, got "
                             f"{getattr(c, name)!r}")
    if min(c.num_colors, c.seq_len, c.dim, c.depth, c.heads) < 1 or c.dim % c.heads:
        raise ValueError(f"ImageGPTConfig: sizes must be positive and dim divisible by heads, "
                         f"got {c}")


# ---- §3.2 context reduction: palette and raster order --------------------------------------------
def fit_palette(pixels, k, seed=0, sample=100_000):
    """k colours by k-means (scikit-learn's KMeans, seeded) on a sample of `pixels` (N, C).

    Returns (k, C) float32 centres, sorted by brightness so that token ids read dark to light.
    """
    from sklearn.cluster import KMeans  # an examples dependency, not one of minitx

    rng = np.random.default_rng(seed)
    pixels = np.asarray(pixels, dtype=np.float64)
    if len(pixels) > sample:
        pixels = pixels[rng.choice(len(pixels), sample, replace=False)]  # (sample, C)
    centres = KMeans(k, n_init=4, random_state=seed).fit(pixels).cluster_centers_  # (k, C)
    return centres[np.argsort(centres.sum(axis=1))].astype(np.float32)


def quantize(images, palette, chunk=1024):
    """Images (N, C, H, W) -> tokens (N, H·W) in raster order: each pixel's nearest colour."""
    N, C, H, W = images.shape
    if palette.ndim != 2 or palette.shape[1] != C:
        raise ValueError(f"quantize: palette must be (k, {C}) for images {images.shape}, got "
                         f"{palette.shape}")
    pixels = images.transpose(0, 2, 3, 1).reshape(N, H * W, 1, C)  # raster order: row by row
    tokens = np.empty((N, H * W), dtype=np.int64)
    for i in range(0, N, chunk):  # (n, HW, 1, C) − (k, C) -> (n, HW, k) squared distances
        tokens[i:i + chunk] = ((pixels[i:i + chunk] - palette) ** 2).sum(-1).argmin(-1)
    return tokens


def dequantize(tokens, palette, height, width):
    """Tokens (N, H·W) -> images (N, C, H, W): each token's palette colour."""
    N, C = tokens.shape[0], palette.shape[1]
    return palette[tokens].reshape(N, height, width, C).transpose(0, 3, 1, 2)  # (N, C, H, W)


# ---- §2.1 the two objectives' inputs -------------------------------------------------------------
def ar_inputs(tokens, sos):
    """[SOS, x₁ … x_{T−1}] (B, T): the AR model's input, whose position i predicts x_{i+1}."""
    start = np.full((tokens.shape[0], 1), sos, dtype=tokens.dtype)  # (B, 1)
    return np.concatenate([start, tokens[:, :-1]], axis=1)  # (B, T)


def bert_mask(shape, rng, p=0.15):
    """M: each position independently in the mask with probability p (§2.1: 0.15)."""
    return rng.random(shape) < p  # (B, T) bool


def apply_mask(tokens, mask, mask_id):
    """x_[M]: the masked positions replaced by the [MASK] token (B, T)."""
    return np.where(mask, mask_id, tokens)


# ---- §4.6 BERT evaluation, and sampling ----------------------------------------------------------
def ensemble_probabilities(class_logits, tokens, rng, mask_id, masks=5, p=0.15):
    """Class probabilities (B, K) averaged over `masks` independent BERT masks (§4.6, Fig. 4):
    the BERT model always sees masked inputs, as in training, and the paper ensembles 5 masks.

    Args:
        class_logits: NumPy ids (B, T) -> class logits (B, K), a Tensor.
        tokens: (B, T) pixel tokens; rng: draws the masks; mask_id: the [MASK] id.
    """
    total = 0.0
    for _ in range(masks):
        ids = apply_mask(tokens, bert_mask(tokens.shape, rng, p), mask_id)  # (B, T)
        total = total + F.softmax(class_logits(ids), axis=-1).numpy()  # (B, K)
    return total / masks


def sample(model, n, length, rng, *, prefix=None, temperature=1.0, top_k=0, use_cache=True):
    """Draw n images' tokens (n, length) from an AR model, pixel by pixel in raster order.

    Args:
        rng: a np.random.Generator; one uniform draw per pixel, so the cached and uncached
            paths give the same tokens. prefix: (n, t) known first tokens (in-painting).
        temperature: logits are divided by it; 0 takes the most likely colour (greedy, no
            draw). top_k: keep only the k most likely colours (0: all). use_cache: feed one
            token per step through the key/value cache.
    """
    if not model.causal:
        raise ValueError("sample: needs an AR model (objective='ar')")
    device, V = model.head.weight.device, model.config.num_colors
    tokens = np.zeros((n, 0), np.int64) if prefix is None else np.asarray(prefix)
    if tokens.dtype.kind not in "iu":  # a colour id of 1.7 is an error, not colour 1
        raise TypeError(f"sample: prefix must hold integer colour ids, got dtype {tokens.dtype}")
    tokens = tokens.astype(np.int64)
    if not temperature >= 0:
        raise ValueError(f"sample: temperature must be >= 0 (0: greedy), got {temperature}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
        raise TypeError(f"sample: top_k must be an int, got {type(top_k).__name__}")
    if not 0 <= top_k <= V:
        raise ValueError(f"sample: top_k must be in 0..{V} (0: every colour), got {top_k}")
    if tokens.ndim != 2 or len(tokens) != n or tokens.shape[1] > length:
        raise ValueError(f"sample: prefix must be (n, t) = ({n}, t) with t <= length {length}, "
                         f"got shape {tokens.shape}")
    if tokens.size and not 0 <= tokens.min() <= tokens.max() < V:
        raise ValueError(f"sample: prefix colours must lie in [0, {V})")
    ids = np.concatenate([np.full((n, 1), V), tokens], axis=1)  # [SOS, prefix] (n, 1 + t)
    cache = model.new_cache() if use_cache else None
    training = model.training
    model.eval()  # no dropout while sampling
    try:
        with mt.no_grad():
            while tokens.shape[1] < length:
                logits = model(mt.tensor(ids, device=device), cache)[:, -1].numpy()  # (n, V)
                if not np.isfinite(logits).all():
                    raise FloatingPointError("sample: the model's logits hold NaN or inf")
                # the maximum subtracted first: a tiny temperature then gives 0 for the most
                # likely colours and −∞ for the others (greedy in the limit), not ∞ − ∞
                shifted = (logits - logits.max(axis=-1, keepdims=True)).astype(np.float64)
                if temperature == 0:
                    nxt = logits.argmax(axis=-1)[:, None]  # (n, 1)
                else:
                    with np.errstate(over="ignore"):  # −large / tiny is −∞, as meant
                        nxt = _draw(shifted / temperature, top_k, rng)[:, None]
                tokens = np.concatenate([tokens, nxt], axis=1)
                ids = nxt if use_cache else np.concatenate([ids, nxt], axis=1)
    finally:
        model.train(training)
    return tokens


def _draw(z, top_k, rng):
    """One index per row of logits z (n, V), by inverse transform sampling."""
    if top_k:
        kth = np.sort(z, axis=-1)[:, -top_k][:, None]  # (n, 1) k-th largest
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)  # (n, V)
    u = rng.random((len(z), 1))
    return np.minimum((cdf < u).sum(axis=-1), z.shape[1] - 1)


# ---- weights from Hugging Face's ImageGPT --------------------------------------------------------
def from_huggingface(state, config):
    """Rename and reshape a ``transformers`` ``ImageGPTForCausalImageModeling`` state dict
    (NumPy arrays) into this model's names. GPT-2's Conv1D stores weights (in, out), hence the
    transposes; its c_attn stacks W^Q, W^K, W^V along the output axis. (Published checkpoints
    load through models/pretrained_image_gpt.py.)"""
    out, D = {}, config.dim
    out["token_embed.weight"] = state["transformer.wte.weight"]
    out["pos_embed.weight"] = state["transformer.wpe.weight"]
    out["norm.weight"] = state["transformer.ln_f.weight"]
    out["head.weight"] = state["lm_head.weight"]
    for i in range(config.depth):
        src, dst = f"transformer.h.{i}.", f"blocks.{i}."
        out[dst + "norm1.weight"] = state[src + "ln_1.weight"]
        out[dst + "norm2.weight"] = state[src + "ln_2.weight"]
        w, b = state[src + "attn.c_attn.weight"], state[src + "attn.c_attn.bias"]  # (D, 3D)
        for j, name in enumerate("qkv"):
            out[dst + f"attn.{name}_proj.weight"] = w[:, j * D:(j + 1) * D].T
            out[dst + f"attn.{name}_proj.bias"] = b[j * D:(j + 1) * D]
        for ours, theirs in (("attn.out_proj", "attn.c_proj"), ("mlp.fc", "mlp.c_fc"),
                             ("mlp.proj", "mlp.c_proj")):
            out[dst + ours + ".weight"] = state[src + theirs + ".weight"].T
            out[dst + ours + ".bias"] = state[src + theirs + ".bias"]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


# ---- §2.1 losses ---------------------------------------------------------------------------------
def ar_loss(logits, tokens):
    """L_AR = E[−Σᵢ log p(xᵢ | x<ᵢ)] (§2.1), averaged over positions: nats per dimension.
    Multiply by BITS_PER_NAT for bits per dimension."""
    targets = mt.tensor(tokens, device=logits.device)  # (B, T)
    return F.cross_entropy(logits, targets)  # (B, T, V) -> scalar


def bert_loss(logits, tokens, mask):
    """L_BERT = E[−Σ_{i∈M} log p(xᵢ | x_[M])] (§2.1): averaged over the masked positions only;
    the unmasked ones are ignored targets."""
    targets = mt.tensor(np.where(mask, tokens, IGNORE), device=logits.device)  # (B, T)
    return F.cross_entropy(logits, targets, ignore_index=IGNORE)  # scalar


# ---- presets -------------------------------------------------------------------------------------
PRESETS = {
    # §3.3 models, all at 32x32 with the 512-colour palette and the released norm
    "igpt-s": ImageGPTConfig(dim=512, depth=24, heads=8),  # 76M parameters
    "igpt-m": ImageGPTConfig(dim=1024, depth=36, heads=8),  # 455M
    "igpt-l": ImageGPTConfig(dim=1536, depth=48, heads=16),  # 1.4B
    # 8x8 digits with their 17 grey levels: trains in minutes on a CPU
    "tiny": ImageGPTConfig(num_colors=17, seq_len=64, dim=128, depth=4, heads=4),
    # the step benchmark's GPT reference configuration
    "bench": ImageGPTConfig(num_colors=512, seq_len=256, dim=256, depth=4, heads=4),
}
