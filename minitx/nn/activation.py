"""Activation functions as modules, so that they show up in a model's repr."""

from minitx import functional as F
from minitx.nn.module import Module


class ReLU(Module):
    """max(0, x), elementwise (Nair & Hinton 2010); the FFN of Vaswani et al. §3.3."""

    def forward(self, x):
        return F.relu(x)


class GELU(Module):
    """x · Φ(x), Φ the standard normal CDF (Hendrycks & Gimpel 2016); BERT, GPT-2, ViT.

    Args:
        approximate: "none" (exact, with erf) or "tanh" (the approximation GPT-2 uses).
    """

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"
