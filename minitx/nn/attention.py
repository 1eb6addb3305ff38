"""Multi-head attention (Vaswani et al. 2017, §3.2.2), with masks and a key/value cache.

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V),   Attention(Q, K, V) = softmax(Q Kᵀ / √d) V

The h per-head projections W_i^Q (D × d) sit side by side in one (D × D) matrix, so one Linear
(``q_proj``) computes all heads at once and a reshape splits them: d = D / h.

Shapes: B batch, Tq queries, Tk keys, D = embed_dim, h = num_heads, d = D / h. More batch axes
than B are allowed, (..., T, D): Swin runs all its windows at once as (B, windows, M², C).

The weights (each head's softmax rows) come out with ``need_weights=True`` or, for every
attention inside a model during one ordinary forward pass, with :class:`record_attention`.

Two mask conventions meet here; both are spelled out because mixing them up silently attends
to padding:

* the arguments of :meth:`MultiHeadAttention.forward` follow **PyTorch's**
  ``nn.MultiheadAttention``: a boolean ``key_padding_mask`` or ``attn_mask`` is True where
  attention is **NOT allowed** (True = padding / masked out);
* :func:`minitx.functional.scaled_dot_product_attention` takes a boolean mask that is True where
  attention **is allowed**. ``forward`` converts (``allowed = ~masked``) in one place,
  :meth:`MultiHeadAttention._merge_masks`.

A float mask (either argument) is added to the scores in both conventions (−inf masks).
"""

import math

import numpy as np

from minitx import functional as F
from minitx.creation import zeros
from minitx.nn import init
from minitx.nn.linear import Linear
from minitx.nn.module import Module
from minitx.tensor import Tensor


class MultiHeadAttention(Module):
    """Multi-head scaled dot-product attention, self- or cross- (§3.2.2).

    Args:
        embed_dim: D, the width of queries and outputs; divisible by num_heads.
        num_heads: h.
        dropout: dropout on the attention weights while training (§5.4 applies it to sub-layer
            outputs; PyTorch's ``nn.MultiheadAttention`` also has this one).
        bias: add biases in the four projections.
        kdim, vdim: the widths of keys and values when they differ from D (cross-attention over
            another model's features); None means D.
        device, dtype, generator: as for :class:`~minitx.nn.Linear`.

    Parameters: ``q_proj`` (W^Q: Linear D -> D), ``k_proj`` (W^K: kdim -> D), ``v_proj`` (W^V:
    vdim -> D) and ``out_proj`` (W^O: D -> D). Initialization follows PyTorch's
    ``nn.MultiheadAttention``: Xavier-uniform (Glorot & Bengio 2010) for W^Q, W^K, W^V (PyTorch
    applies it to the three stacked into one (3D × D) matrix, which gives a smaller bound), the
    default Linear init for W^O, and zero biases.

    >>> import minitx as mt
    >>> mha = MultiHeadAttention(8, 2)
    >>> mha(mt.ones((3, 5, 8))).shape
    (3, 5, 8)
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, kdim=None, vdim=None, *,
                 device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"MultiHeadAttention: embed_dim={embed_dim} must be divisible by "
                             f"num_heads={num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads  # d = D / h (§3.2.2: d_k = d_v = d_model / h)
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.dropout_p, self.generator = dropout, generator
        self.weights_hook = None  # when set, called with the weights of every call
        kw = dict(device=device, dtype=dtype, generator=generator)
        self.q_proj = Linear(embed_dim, embed_dim, bias, **kw)  # W^Q, all h heads side by side
        self.k_proj = Linear(self.kdim, embed_dim, bias, **kw)  # W^K
        self.v_proj = Linear(self.vdim, embed_dim, bias, **kw)  # W^V
        self.out_proj = Linear(embed_dim, embed_dim, bias, **kw)  # W^O
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            init.xavier_uniform_(proj.weight, generator=generator)
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            if proj.bias is not None:
                init.zeros_(proj.bias)

    def forward(self, query, key=None, value=None, key_padding_mask=None, attn_mask=None,
                causal=False, need_weights=False, cache=None):
        """Attend from `query` to `key`/`value` (to `query` itself when key is None).

        Args:
            query: (B, Tq, D), or (..., Tq, D) with any batch axes (e.g. Swin's
                (B, windows, M², C)).
            key: (..., Tk, kdim), the batch axes of query; None for self-attention (key =
                value = query).
            value: (..., Tk, vdim); None means value = key.
            key_padding_mask: (..., Tk); bool: True = PADDING, never attended to (PyTorch's
                convention); or float, added to the scores.
            attn_mask: (Tq, Tk), or broadcastable to the scores (..., h, Tq, Tk) (with 3-d
                inputs a 3-d mask must be PyTorch's per-head layout (B·h, Tq, Tk)); bool:
                True = NOT allowed (PyTorch's convention); or float, added to the scores: an
                additive bias, differentiable (Swin's relative position bias plus its shift
                mask is one).
            causal: query i may attend only to keys j ≤ i + Tk − Tq (the lower triangle when
                Tq = Tk; with a cache, the new queries are the newest positions).
            need_weights: also return the attention weights per head.
            cache: a dict for incremental decoding (inference), kept by the caller between
                calls. Self-attention: the new keys/values (B, h, T_new, d) are appended to
                ``cache["k"]``/``cache["v"]`` (B, h, T_past, d) and stored back, so feeding
                one token at a time costs one step; masks then cover all T_past + T_new keys.
                Cross-attention (key given): the projected keys/values are computed on the
                first call and reused afterwards (``cache["static"] = True``).
        Returns:
            (..., Tq, D); with need_weights, also the weights (..., h, Tq, Tk), each row
            summing to 1 (a row whose keys are all masked is 0), not differentiable. When
            ``self.weights_hook`` is set (see :class:`record_attention`) it is called with
            the same weights. Unlike PyTorch's, which always returns a pair, the output comes
            alone by default: ``out, _ = mha(x, x, x)`` would unpack the batch axis.
        """
        batch, Tq = self._check_input("query", query, self.embed_dim)
        q = self._split_heads(self.q_proj(query))  # (..., Tq, D) -> (..., h, Tq, d)
        k, v = self._keys_values(query, key, value, cache)  # (..., h, Tk, d) each
        mask = self._merge_masks(key_padding_mask, attn_mask, batch, Tq, k.shape[-2], q)
        want_weights = need_weights or self.weights_hook is not None
        result = F.scaled_dot_product_attention(  # Eq. 1, each head: (..., h, Tq, d)
            q, k, v, mask=mask, causal=causal, dropout_p=self.dropout_p, training=self.training,
            return_weights=want_weights, generator=self.generator)
        heads, weights = result if want_weights else (result, None)
        if self.weights_hook is not None:
            self.weights_hook(weights)  # (..., h, Tq, Tk)
        heads = heads.swapaxes(-3, -2)  # (..., h, Tq, d) -> (..., Tq, h, d)
        heads = heads.reshape(*batch, Tq, self.embed_dim)  # Concat(head_1, ..., head_h)
        out = self.out_proj(heads)  # Concat(heads) W^O (..., Tq, D)
        return (out, weights) if need_weights else out

    def _keys_values(self, query, key, value, cache):
        """Project keys and values into heads, using and updating `cache`."""
        if cache is not None and cache.get("static"):  # cross-attention, after the first step
            return cache["k"], cache["v"]
        self_attention = key is None
        if self_attention and value is not None:
            raise ValueError("MultiHeadAttention: value given without key; pass key too")
        key = query if self_attention else key
        value = key if value is None else value
        batch = query.shape[:-2]
        if self._check_input("key", key, self.kdim)[0] != batch or \
                self._check_input("value", value, self.vdim)[0] != batch:
            raise ValueError(f"MultiHeadAttention: batch sizes differ: query {query.shape}, key "
                             f"{key.shape}, value {value.shape}")
        if key.shape[-2] != value.shape[-2]:
            raise ValueError(f"MultiHeadAttention: key {key.shape} and value {value.shape} need "
                             f"the same number of positions")
        k = self._split_heads(self.k_proj(key))  # (..., Tk, kdim) -> (..., h, Tk, d)
        v = self._split_heads(self.v_proj(value))  # (..., Tk, vdim) -> (..., h, Tk, d)
        if cache is not None:
            if self_attention and "k" in cache:
                k = F.concat([cache["k"], k], axis=-2)  # (..., h, T_past + T_new, d)
                v = F.concat([cache["v"], v], axis=-2)  # (..., h, T_past + T_new, d)
            cache["k"], cache["v"], cache["static"] = k, v, not self_attention
        return k, v

    def _split_heads(self, x):  # (..., T, D)
        *batch, T, _ = x.shape
        x = x.reshape(*batch, T, self.num_heads, self.head_dim)  # (..., T, h, d)
        return x.swapaxes(-3, -2)  # (..., h, T, d)

    def _check_input(self, name, x, width):
        """Return (batch axes, T) of an input (..., T, width)."""
        if x.ndim < 3 or x.shape[-1] != width:
            raise ValueError(f"MultiHeadAttention: {name} must be (B, T, {width}) (batch first; "
                             f"more batch axes are allowed), got shape {x.shape}")
        return x.shape[:-2], x.shape[-2]

    def _merge_masks(self, key_padding_mask, attn_mask, batch, Tq, Tk, q):
        """Turn PyTorch-convention masks (True = NOT allowed) into one mask for
        F.scaled_dot_product_attention: bool with True = MAY attend, or a float bias.

        Returns None, or a Tensor broadcastable to the scores (..., h, Tq, Tk).
        """
        h, masks, scores = self.num_heads, [], (*batch, self.num_heads, Tq, Tk)
        for name, m in (("key_padding_mask", key_padding_mask), ("attn_mask", attn_mask)):
            if m is None or isinstance(m, Tensor):
                continue
            if hasattr(m, "shape"):  # a NumPy or CuPy array
                got, hint = type(m).__name__, "wrap arrays with minitx.tensor(..., device=...)"
            else:  # e.g. PyTorch's need_weights=True, passed where minitx has attn_mask
                got = f"{type(m).__name__} {m!r:.40}"
                hint = ("minitx's order is (query, key, value, key_padding_mask, attn_mask, "
                        "causal, need_weights), PyTorch's (query, key, value, "
                        "key_padding_mask, need_weights, attn_mask): pass need_weights= and "
                        "causal= by name")
            raise TypeError(f"MultiHeadAttention: {name} must be None or a Tensor (bool: True = "
                            f"NOT allowed; float: added to the scores), got {got}; {hint}")
        if key_padding_mask is not None:
            if key_padding_mask.shape != (*batch, Tk):
                raise ValueError(f"MultiHeadAttention: key_padding_mask must be (..., Tk) = "
                                 f"{(*batch, Tk)}, got {key_padding_mask.shape}")
            masks.append(key_padding_mask.reshape(*batch, 1, 1, Tk))  # (..., 1, 1, Tk)
        if attn_mask is not None:
            if len(batch) == 1 and attn_mask.shape == (batch[0] * h, Tq, Tk):  # PyTorch's
                attn_mask = attn_mask.reshape(batch[0], h, Tq, Tk)  # per-head 3-d layout
            elif (attn_mask.ndim < 2 or attn_mask.ndim == 3 and len(batch) == 1
                  or not _broadcasts(attn_mask.shape, scores)):
                raise ValueError(f"MultiHeadAttention: attn_mask must be (Tq, Tk) = {(Tq, Tk)}"
                                 f", (B·h, Tq, Tk) or broadcastable to (..., h, Tq, Tk) = "
                                 f"{scores}, got {attn_mask.shape}")
            masks.append(attn_mask)  # (Tq, Tk) or (..., h, Tq, Tk)
        for m in masks:
            if m.dtype != bool and m.dtype.kind != "f":
                raise TypeError(f"MultiHeadAttention: masks must be bool or float, got {m.dtype}")
        if not masks:
            return None
        if all(m.dtype == bool for m in masks):
            allowed = ~masks[0]  # PyTorch's True = masked  ->  True = may attend
            for m in masks[1:]:
                allowed = allowed & ~m  # (..., h or 1, Tq or 1, Tk)
            return allowed
        bias = None  # a float mask is present: express the boolean ones as −inf biases
        for m in masks:
            if m.dtype == bool:
                m = zeros(m.shape, dtype=q.dtype, device=q.device).masked_fill(m, -math.inf)
            bias = m if bias is None else bias + m  # (..., h or 1, Tq or 1, Tk)
        return bias

    def extra_repr(self):
        extra = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
        extra += f", dropout={self.dropout_p}" if self.dropout_p else ""
        return extra + (f", kdim={self.kdim}, vdim={self.vdim}"
                        if (self.kdim, self.vdim) != (self.embed_dim,) * 2 else "")


def _broadcasts(shape, target):
    """True when an array of `shape` broadcasts to `target` without growing it."""
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


class record_attention:
    """Context manager: record the attention weights of every :class:`MultiHeadAttention`
    inside `module`, as if each were called with ``need_weights=True``.

    It yields a dict {dotted module name: weights (..., h, Tq, Tk) of its latest call, or None
    if it was not called}, in the order of ``module.named_modules()``. Figures built on it read
    the weights the layers really used, whatever the layers around them do (LayerNorm
    placement, masks, windows), without running any part of the model a second time.

    >>> import minitx as mt
    >>> from minitx import nn
    >>> layer = nn.TransformerEncoderLayer(8, 2, 16)
    >>> with record_attention(layer) as weights:
    ...     _ = layer(mt.ones((3, 5, 8)))
    >>> weights["self_attn"].shape
    (3, 2, 5, 5)
    """

    def __init__(self, module):
        self.layers = {name: m for name, m in module.named_modules()
                       if isinstance(m, MultiHeadAttention)}

    def __enter__(self):
        weights = dict.fromkeys(self.layers)
        for name, layer in self.layers.items():
            if layer.weights_hook is not None:
                raise RuntimeError(f"record_attention: {name or 'the module'} is already "
                                   f"being recorded")
            layer.weights_hook = lambda w, name=name: weights.__setitem__(name, w)
        return weights

    def __exit__(self, *exc):
        for layer in self.layers.values():
            layer.weights_hook = None
