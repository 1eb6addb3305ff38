"""One training step of the encoder-decoder Transformer, in minitx and in a PyTorch twin, for
``benchmarks.bench_models``.

The reference configuration of the issue (``PRESETS["small"]`` of ``models/transformer.py``):
vocabularies of 1000 tokens on both sides, d_model 256, 3 encoder + 3 decoder layers, 4 heads,
d_ff 1024, post-LN, sinusoidal positions, tied target embedding / pre-softmax weights, source
and target length 32, batch 64, float32. The step is the paper's training step (§5.4: dropout
0.1, label smoothing 0.1): forward, loss, backward, AdamW update, zero the gradients.

Interface (what ``bench_models`` imports): ``NAME``; ``build_minitx(seed)`` and
``build_torch(seed)`` return ``(step, info)``, where ``step()`` runs one training step and
returns the loss as a float, and ``info`` is a dict (``"description"``, ``"parameters"``,
``"model"``); ``build_torch`` returns None when PyTorch is not installed.

The twin (:func:`torch_twin`) is built from ``torch.nn.TransformerEncoderLayer`` and
``TransformerDecoderLayer`` (batch_first, post-LN) and starts from the minitx model's weights
(:func:`copy_weights`), so that both compute the same function; the tests check it.
"""

import math
from dataclasses import replace

import numpy as np

import minitx as mt
from benchmarks.common import TORCH_FFN_NAMES, copy_into_torch, training_step
from minitx import optim
from minitx.nn.positional import sinusoidal_table
from models.transformer import PRESETS, Transformer, transformer_loss

NAME = "transformer"
CONFIG = replace(PRESETS["small"], src_vocab_size=1000, tgt_vocab_size=1000)
BATCH, SRC_LEN, TGT_LEN = 64, 32, 32
LR = 5e-4
DESCRIPTION = (f"enc-dec V {CONFIG.src_vocab_size}/{CONFIG.tgt_vocab_size}, D {CONFIG.d_model}, "
               f"{CONFIG.num_encoder_layers}+{CONFIG.num_decoder_layers} layers, "
               f"{CONFIG.num_heads} heads, FF {CONFIG.d_ff}, post-LN, S=T={SRC_LEN}, B {BATCH}")


def make_batch(seed):
    """A fixed batch of random token ids: source (B, S), decoder input and target (B, T)."""
    rng = np.random.default_rng(seed)
    src = rng.integers(3, CONFIG.src_vocab_size, (BATCH, SRC_LEN))  # 0-2: pad, bos, eos
    tgt = rng.integers(3, CONFIG.tgt_vocab_size, (BATCH, TGT_LEN + 1))
    tgt[:, 0] = 1  # <bos>
    return src, tgt[:, :-1], tgt[:, 1:]


def build_minitx(seed=0):
    """Return (step, info) for minitx: one forward, backward and AdamW update per call."""
    model = Transformer(CONFIG, generator=np.random.default_rng(seed))
    opt = optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.98), eps=1e-9)
    src, tgt_in, tgt_out = (mt.tensor(a) for a in make_batch(seed))

    step = training_step(lambda: transformer_loss(model(src, tgt_in), tgt_out, CONFIG), opt)
    return step, {"model": model, "parameters": model.num_parameters(),
                  "description": DESCRIPTION}


def build_torch(seed=0):
    """Return (step, info) for the PyTorch twin with the same initial weights, or None."""
    try:
        import torch
    except ImportError:
        return None
    twin = copy_weights(Transformer(CONFIG, generator=np.random.default_rng(seed)), torch_twin())
    opt = torch.optim.AdamW(twin.parameters(), lr=LR, betas=(0.9, 0.98), eps=1e-9,
                            weight_decay=1e-2)  # minitx's AdamW defaults
    src, tgt_in, tgt_out = (torch.from_numpy(a) for a in make_batch(seed))

    def loss_fn():
        logits = twin(src, tgt_in)  # (B, T, V)
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
            ignore_index=CONFIG.pad_id, label_smoothing=CONFIG.label_smoothing)

    parameters = sum(p.numel() for p in twin.parameters())
    return training_step(loss_fn, opt), {"model": twin, "parameters": parameters,
                                         "description": DESCRIPTION}


def torch_twin(config=CONFIG):
    """Build the PyTorch twin of ``Transformer(config)`` (sinusoidal, post-LN, tied output).

    The class is defined inside, so that this module imports without PyTorch.
    """
    import torch

    nn, c = torch.nn, config

    class _TorchTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            D, p = c.d_model, c.dropout
            self.src_embed = nn.Embedding(c.src_vocab_size, D)
            self.tgt_embed = nn.Embedding(c.tgt_vocab_size, D)
            table = sinusoidal_table(512, D).astype(np.float32)
            self.register_buffer("pe", torch.from_numpy(table), persistent=False)
            self.dropout = nn.Dropout(p)
            layer = dict(d_model=D, nhead=c.num_heads, dim_feedforward=c.d_ff, dropout=p,
                         activation="relu", batch_first=True, norm_first=False)
            self.encoder = nn.ModuleList([nn.TransformerEncoderLayer(**layer)
                                          for _ in range(c.num_encoder_layers)])
            self.decoder = nn.ModuleList([nn.TransformerDecoderLayer(**layer)
                                          for _ in range(c.num_decoder_layers)])
            self.out_proj = nn.Linear(D, c.tgt_vocab_size)
            self.out_proj.weight = self.tgt_embed.weight  # tied, §3.4

        def embed(self, embedding, ids):  # (B, T) -> (B, T, D)
            x = embedding(ids) * math.sqrt(c.d_model) + self.pe[:ids.shape[1]]
            return self.dropout(x)

        def forward(self, src, tgt_in):  # (B, S), (B, T) -> (B, T, V)
            padding = src == c.pad_id  # (B, S)
            x = self.embed(self.src_embed, src)
            for layer in self.encoder:
                x = layer(x, src_key_padding_mask=padding)
            T = tgt_in.shape[1]
            causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # True = hide
            y = self.embed(self.tgt_embed, tgt_in)
            for layer in self.decoder:
                y = layer(y, x, tgt_mask=causal, memory_key_padding_mask=padding,
                          tgt_is_causal=True)
            return self.out_proj(y)

    return _TorchTransformer()


def copy_weights(model, twin):
    """Copy a minitx Transformer's parameters into its :func:`torch_twin`; return the twin."""
    renames = {**TORCH_FFN_NAMES, ".multihead_attn.": ".cross_attn."}
    tied = {"out_proj.weight": model.out_proj.weight.numpy()}  # listed once, as tgt_embed
    return copy_into_torch(model, twin, renames, extra=tied)
