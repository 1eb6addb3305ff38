"""Dropout (Srivastava et al. 2014) as a module: it follows the module's ``training`` flag."""

from minitx import functional as F
from minitx.nn.module import Module


class Dropout(Module):
    """Zero each element with probability p while training, scaling the rest by 1/(1 − p);
    the identity after ``eval()``.

    Args:
        p: the drop probability, in [0, 1].
        generator: an ``np.random.Generator`` for the masks (default: minitx.random).
    """

    def __init__(self, p=0.5, *, generator=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training, generator=self.generator)

    def extra_repr(self):
        return f"p={self.p}"
