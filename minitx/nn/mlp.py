"""The position-wise feed-forward network of the Transformer (Vaswani et al. 2017, §3.3)."""

import numpy as np

from minitx.nn.activation import GELU, ReLU
from minitx.nn.dropout import Dropout
from minitx.nn.linear import Linear
from minitx.nn.module import Module


def make_activation(name):
    """Return the activation module for `name`: "relu" (Vaswani), "gelu" (BERT, ViT; exact,
    with erf) or "gelu_tanh" (GPT-2's tanh approximation)."""
    if name == "relu":
        return ReLU()
    if name in ("gelu", "gelu_tanh"):
        return GELU("tanh" if name == "gelu_tanh" else "none")
    raise ValueError(f"unknown activation {name!r}; expected 'relu', 'gelu' or 'gelu_tanh'")


class PositionwiseFeedForward(Module):
    """FFN(x) = max(0, x W₁ + b₁) W₂ + b₂, applied to each position separately (§3.3, Eq. 2).

    In Linear's layout W₁ is ``linear1.weight`` transposed: (d_ff, D). The paper uses D = 512,
    d_ff = 2048. ``activation="gelu"`` swaps max(0, ·) for the exact GELU, ``"gelu_tanh"`` for its
    tanh approximation (GPT-2's). The dropout between the two layers is the one PyTorch's
    Transformer layers apply (tensor2tensor's "relu_dropout"); §5.4 of the paper only names the
    dropout on each sub-layer's output, which the Transformer layers apply around this module.

    Args:
        d_model: D; d_ff: the hidden width; dropout: on the hidden activations while training;
        activation: "relu", "gelu" or "gelu_tanh"; bias: biases in both layers;
        device, dtype, generator: as for :class:`~minitx.nn.Linear`.

    >>> import minitx as mt
    >>> PositionwiseFeedForward(4, 16)(mt.ones((2, 3, 4))).shape
    (2, 3, 4)
    """

    def __init__(self, d_model, d_ff, dropout=0.0, activation="relu", bias=True, *,
                 device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype, generator=generator)
        self.linear1 = Linear(d_model, d_ff, bias, **kw)  # W₁, b₁
        self.activation = make_activation(activation)
        self.dropout = Dropout(dropout, generator=generator)
        self.linear2 = Linear(d_ff, d_model, bias, **kw)  # W₂, b₂

    def forward(self, x):  # (B, T, D)
        hidden = self.activation(self.linear1(x))  # max(0, x W₁ + b₁): (B, T, d_ff)
        return self.linear2(self.dropout(hidden))  # (B, T, d_ff) -> (B, T, D)
