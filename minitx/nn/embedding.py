"""Embedding: a learned table of vectors, looked up by integer index (tokens, classes)."""

import numpy as np

from minitx import functional as F
from minitx.nn import init
from minitx.nn.linear import empty_parameter
from minitx.nn.module import Module


class Embedding(Module):
    """Look up rows of a (num_embeddings, embedding_dim) table: y[..., :] = W[index, :].

    Initialized N(0, 1) as in PyTorch. Vaswani et al. (2017, §3.4) multiply the looked-up
    vectors by √d_model, and GPT-2 initializes the table N(0, 0.02²): both are the model's
    choice, not this layer's.

    Args:
        num_embeddings: V, the number of rows (vocabulary size).
        embedding_dim: D, the width of each row.
        device, dtype, generator: as for :class:`~minitx.nn.Linear`.

    >>> import minitx as mt
    >>> Embedding(10, 4)(mt.tensor([[1, 2, 3]])).shape
    (1, 3, 4)
    """

    def __init__(self, num_embeddings, embedding_dim, *, device="cpu", dtype=np.float32,
                 generator=None):
        super().__init__()
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError(f"Embedding: sizes must be positive, got num_embeddings="
                             f"{num_embeddings}, embedding_dim={embedding_dim}")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = empty_parameter((num_embeddings, embedding_dim), device, dtype)
        init.normal_(self.weight, 0.0, 1.0, generator=generator)

    def forward(self, indices):  # (...) integers in [0, V)
        return F.embedding(indices, self.weight)  # (..., D)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"
