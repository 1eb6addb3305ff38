"""Position information for attention, which by itself ignores order (Vaswani et al. 2017, §3.5).

Two choices, both added to the token embeddings: fixed sinusoids (the paper's), which extend to
any length, and a learned table (BERT, GPT-2, ViT), which the paper found to work about as well
(§3.5, Table 3 row E) but which cannot go past the length it was trained on.
"""

import numpy as np

from minitx import backend
from minitx.nn import init
from minitx.nn.linear import empty_parameter
from minitx.nn.module import Module
from minitx.tensor import Tensor


def sinusoidal_table(length, d_model):
    """Return the (length, d_model) float64 NumPy table of §3.5:

        PE(pos, 2i) = sin(pos / 10000^(2i/d_model)),   PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))

    Each pair of columns is a sinusoid of its own wavelength, from 2π to 10000·2π, so that
    PE(pos + k) is a linear function (a rotation) of PE(pos) for every offset k.

    >>> sinusoidal_table(2, 4)[1].round(4)
    array([0.8415, 0.5403, 0.01  , 1.    ])
    """
    position = np.arange(length, dtype=np.float64)[:, None]  # (L, 1)
    two_i = np.arange(0, d_model, 2, dtype=np.float64)  # 2i = 0, 2, 4, ...
    angle = position / 10000.0 ** (two_i / d_model)  # (L, ⌈D/2⌉)   §3.5
    table = np.empty((length, d_model))
    table[:, 0::2] = np.sin(angle)  # even columns
    table[:, 1::2] = np.cos(angle[:, : d_model // 2])  # odd columns (none left over if D odd)
    return table


class SinusoidalPositionalEncoding(Module):
    """Add the fixed sinusoids of §3.5 to x: x + PE[offset : offset + T].

    The table is a buffer (moved by ``to``, not saved in the state dict: it is recomputed from
    d_model). It is first computed for `max_len` positions and recomputed, longer, whenever a
    call needs more, so the encoding extrapolates to lengths never seen in training.

    Args:
        d_model: D; max_len: the length of the first table (a cache size, not a limit);
        device, dtype: where and how the table is stored.

    >>> import minitx as mt
    >>> SinusoidalPositionalEncoding(4)(mt.zeros((1, 2, 4))).numpy()[0, 1].round(4)
    array([0.8415, 0.5403, 0.01  , 1.    ], dtype=float32)
    """

    def __init__(self, d_model, max_len=5000, *, device="cpu", dtype=np.float32):
        super().__init__()
        if d_model < 1 or max_len < 1:
            raise ValueError(f"SinusoidalPositionalEncoding: d_model and max_len must be "
                             f"positive, got {d_model}, {max_len}")
        self.d_model = d_model
        table = sinusoidal_table(max_len, d_model).astype(dtype)
        self.pe = Tensor(backend.to_device(table, device))  # buffer (L, D)

    def forward(self, x, offset=0):  # (..., T, D)
        T = _check_positions("SinusoidalPositionalEncoding", x, offset, self.d_model)
        if offset + T > self.pe.shape[0]:  # longer than any call so far: extend the table
            longer = sinusoidal_table(max(offset + T, 2 * self.pe.shape[0]), self.d_model)
            self.pe.data = backend.to_device(longer.astype(self.pe.dtype), self.pe.device)
        return x + self.pe[offset:offset + T]  # (..., T, D) + (T, D)

    def extra_repr(self):
        return f"d_model={self.d_model}"


class LearnedPositionalEncoding(Module):
    """Add a learned vector per position to x: x + W[offset : offset + T].

    The (max_len, D) table starts N(0, 0.02²), the ``initializer_range`` of BERT and GPT-2.

    Args:
        max_len: the number of positions; longer inputs are an error (no extrapolation).
        d_model: D; device, dtype, generator: as for :class:`~minitx.nn.Linear`.
    """

    def __init__(self, max_len, d_model, *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        if d_model < 1 or max_len < 1:
            raise ValueError(f"LearnedPositionalEncoding: max_len and d_model must be positive, "
                             f"got {max_len}, {d_model}")
        self.max_len, self.d_model = max_len, d_model
        self.weight = empty_parameter((max_len, d_model), device, dtype)
        init.normal_(self.weight, 0.0, 0.02, generator=generator)

    def forward(self, x, offset=0):  # (..., T, D)
        T = _check_positions("LearnedPositionalEncoding", x, offset, self.d_model)
        if offset + T > self.max_len:
            raise ValueError(f"LearnedPositionalEncoding: positions {offset}..{offset + T - 1} "
                             f"go past max_len={self.max_len}; a learned table cannot "
                             f"extrapolate: build it with a larger max_len, or use "
                             f"SinusoidalPositionalEncoding")
        return x + self.weight[offset:offset + T]  # (..., T, D) + (T, D)

    def extra_repr(self):
        return f"max_len={self.max_len}, d_model={self.d_model}"


def _check_positions(name, x, offset, d_model):
    """Return T for x (..., T, D) after checking D and the offset."""
    if x.ndim < 2 or x.shape[-1] != d_model:
        raise ValueError(f"{name}: expected input (..., T, {d_model}), got {x.shape}")
    if not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ValueError(f"{name}: offset must be a non-negative int, got {offset!r}")
    return x.shape[-2]
