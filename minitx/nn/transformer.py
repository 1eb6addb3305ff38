"""The Transformer's encoder and decoder layers (Vaswani et al. 2017, §3.1), post-LN or pre-LN.

Each sub-layer (self-attention, cross-attention, feed-forward) sits in a residual connection
with dropout and LayerNorm, in one of two arrangements (``norm_first``):

* post-LN (``norm_first=False``, the paper's §3.1 and §5.4):  x = LN(x + Dropout(Sublayer(x)))
* pre-LN  (``norm_first=True``, GPT-2, ViT):                  x = x + Dropout(Sublayer(LN(x)))

Pre-LN leaves the residual path x → x + ... free of normalization, which trains deep stacks
without learning-rate warm-up (Xiong et al. 2020); such a stack then needs one final LayerNorm
after its last layer (the model adds it, as GPT-2 and ViT do).

The argument names and semantics follow PyTorch's ``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer`` with ``batch_first=True`` (always, here), so weights copied from
them give the same outputs. One difference: PyTorch's ``is_causal`` is only a hint that the
mask you pass is causal; here ``is_causal=True`` applies the causal mask itself.

The attention weights a layer uses are read with :class:`minitx.nn.record_attention` (one
ordinary forward pass), never by re-running a sub-layer: that way figures stay right whatever
the norm placement.

Shapes: B batch, T target (or source) positions, S memory positions, D = d_model.
"""

import numpy as np

from minitx.nn.attention import MultiHeadAttention
from minitx.nn.dropout import Dropout
from minitx.nn.mlp import PositionwiseFeedForward
from minitx.nn.module import Module
from minitx.nn.norm import LayerNorm


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward network, each with residual, dropout and LayerNorm.

    Args:
        d_model: D; nhead: h (D divisible by h); dim_feedforward: the FFN's hidden width.
        dropout: on each sub-layer's output (§5.4), on the attention weights and inside the
            FFN, as in PyTorch.
        activation: of the FFN, "relu" (the paper), "gelu" or "gelu_tanh".
        layer_norm_eps: ε of the LayerNorms; norm_first: pre-LN (True) or post-LN (False).
        bias: biases in the Linear and LayerNorm layers.
        attention_dropout: dropout on the attention weights; None means `dropout` (PyTorch's
            layers have only the one rate).
        device, dtype, generator: as for :class:`~minitx.nn.Linear`.

    >>> import minitx as mt
    >>> TransformerEncoderLayer(8, 2, 16)(mt.ones((2, 5, 8))).shape
    (2, 5, 8)
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", *,
                 layer_norm_eps=1e-5, norm_first=False, bias=True, attention_dropout=None,
                 device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.norm_first = norm_first
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.self_attn = MultiHeadAttention(d_model, nhead, attention_dropout, bias,
                                            generator=generator, **kw)
        self.ffn = PositionwiseFeedForward(d_model, dim_feedforward, dropout, activation, bias,
                                           generator=generator, **kw)
        self.norm1 = LayerNorm(d_model, layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout, generator=generator)
        self.dropout2 = Dropout(dropout, generator=generator)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        """Encode `src` (B, T, D) -> (B, T, D).

        Args:
            src_mask: (T, T) or (B·h, T, T); bool True = NOT allowed, or float added.
            src_key_padding_mask: (B, T); bool True = padding, or float added.
            is_causal: position i attends to positions ≤ i only.
        """
        x = src  # (B, T, D)
        masks = dict(attn_mask=src_mask, key_padding_mask=src_key_padding_mask, causal=is_causal)
        if self.norm_first:  # pre-LN: x + Dropout(Sublayer(LN(x)))
            x = x + self.dropout1(self.self_attn(self.norm1(x), **masks))  # (B, T, D)
            x = x + self.dropout2(self.ffn(self.norm2(x)))  # (B, T, D)
        else:  # post-LN: LN(x + Dropout(Sublayer(x))), §3.1
            x = self.norm1(x + self.dropout1(self.self_attn(x, **masks)))  # (B, T, D)
            x = self.norm2(x + self.dropout2(self.ffn(x)))  # (B, T, D)
        return x

    def extra_repr(self):
        return f"norm_first={self.norm_first}"


class TransformerDecoderLayer(Module):
    """Masked self-attention, cross-attention over the encoder's output ("memory"), then a
    feed-forward network; each with residual, dropout and LayerNorm (§3.1, Fig. 1 right).

    Arguments as for :class:`TransformerEncoderLayer`. The cross-attention module is
    ``cross_attn`` (PyTorch calls it ``multihead_attn``).

    >>> import minitx as mt
    >>> layer = TransformerDecoderLayer(8, 2, 16)
    >>> layer(mt.ones((2, 5, 8)), mt.ones((2, 7, 8)), tgt_is_causal=True).shape
    (2, 5, 8)
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", *,
                 layer_norm_eps=1e-5, norm_first=False, bias=True, attention_dropout=None,
                 device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.norm_first = norm_first
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.self_attn = MultiHeadAttention(d_model, nhead, attention_dropout, bias,
                                            generator=generator, **kw)
        self.cross_attn = MultiHeadAttention(d_model, nhead, attention_dropout, bias,
                                             generator=generator, **kw)
        self.ffn = PositionwiseFeedForward(d_model, dim_feedforward, dropout, activation, bias,
                                           generator=generator, **kw)
        self.norm1 = LayerNorm(d_model, layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, layer_norm_eps, bias=bias, **kw)
        self.norm3 = LayerNorm(d_model, layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout, generator=generator)
        self.dropout2 = Dropout(dropout, generator=generator)
        self.dropout3 = Dropout(dropout, generator=generator)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False,
                cache=None):
        """Decode `tgt` (B, T, D) attending to `memory` (B, S, D) -> (B, T, D).

        Args:
            tgt_mask: (T, T) or (B·h, T, T); memory_mask: (T, S) or (B·h, T, S); bool True =
                NOT allowed, or float added to the scores.
            tgt_key_padding_mask: (B, T); memory_key_padding_mask: (B, S); bool True = padding.
            tgt_is_causal: position i of tgt attends to tgt positions ≤ i only (§3.2.3).
            memory_is_causal: the same for the memory (rarely wanted).
            cache: a dict kept by the caller for incremental decoding (inference): pass the
                same dict at every step with only the new positions as `tgt`. It holds
                ``cache["self"]`` (keys/values of the positions so far) and ``cache["cross"]``
                (the memory's keys/values, projected once). tgt_key_padding_mask must then
                cover all positions so far.
        """
        self_cache = cross_cache = None
        if cache is not None:
            self_cache = cache.setdefault("self", {})
            cross_cache = cache.setdefault("cross", {})
        x = tgt  # (B, T, D)

        def self_attention(y):  # masked self-attention over the target, §3.2.3
            return self.dropout1(self.self_attn(
                y, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask,
                causal=tgt_is_causal, cache=self_cache))  # (B, T, D)

        def cross_attention(y):  # queries from the decoder, keys and values from the memory
            return self.dropout2(self.cross_attn(
                y, memory, attn_mask=memory_mask, key_padding_mask=memory_key_padding_mask,
                causal=memory_is_causal, cache=cross_cache))  # (B, T, D)

        if self.norm_first:  # pre-LN: x + Dropout(Sublayer(LN(x)))
            x = x + self_attention(self.norm1(x))  # (B, T, D)
            x = x + cross_attention(self.norm2(x))  # (B, T, D)
            x = x + self.dropout3(self.ffn(self.norm3(x)))  # (B, T, D)
        else:  # post-LN: LN(x + Dropout(Sublayer(x))), §3.1
            x = self.norm1(x + self_attention(x))  # (B, T, D)
            x = self.norm2(x + cross_attention(x))  # (B, T, D)
            x = self.norm3(x + self.dropout3(self.ffn(x)))  # (B, T, D)
        return x

    def extra_repr(self):
        return f"norm_first={self.norm_first}"
