"""Initial values for parameters: each scheme, where it comes from and what it is for.

Every function fills a Tensor (usually a :class:`~minitx.nn.Parameter`) in place and returns it,
as PyTorch's ``torch.nn.init`` does (hence the trailing underscore). The numbers are drawn on the
host from a seeded ``np.random.Generator`` (default: :func:`minitx.random.default_generator`) in
float64, cast to the tensor's dtype and then moved to its device, so a seed gives the same
weights on every backend.

Fans: for a weight of shape (out, in, *kernel), fan_in = in · ∏kernel and fan_out = out ·
∏kernel (a Linear weight is (out_features, in_features)).

>>> import numpy as np
>>> from minitx import nn
>>> w = nn.Parameter(np.empty((256, 128), dtype=np.float32))
>>> _ = nn.init.xavier_uniform_(w, generator=np.random.default_rng(0))
>>> bool(abs(w.numpy()).max() <= (6 / (128 + 256)) ** 0.5)
True
"""

import math

import numpy as np

from minitx import backend
from minitx import random as mt_random

__all__ = [
    "calculate_gain", "constant_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
    "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]


def _fill(tensor, host):
    """Write host values (float64 NumPy) into `tensor`, cast to its dtype, on its device."""
    tensor.data = backend.to_device(host.astype(tensor.dtype), tensor.device)
    return tensor


def _rng(generator):
    return mt_random.generator_or_default(generator, "init")


def _fans(tensor, name):
    """Return (fan_in, fan_out) of a weight of shape (out, in, *kernel)."""
    if tensor.ndim < 2:
        raise ValueError(f"{name}: fans need a weight with at least 2 axes (out, in, ...), got "
                         f"shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """Return the gain that keeps the variance of activations steady through `nonlinearity`.

    linear/sigmoid: 1; tanh: 5/3 (PyTorch's empirical value); relu: √2 (He et al. 2015: ReLU
    halves the second moment); leaky_relu with negative slope a: √(2 / (1 + a²)).
    """
    if nonlinearity in ("linear", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; expected 'linear', "
                     f"'sigmoid', 'tanh', 'relu' or 'leaky_relu'")


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    return _fill(tensor, _rng(generator).uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std²).

    GPT-2 (Radford et al. 2019, and its released code) initializes every weight with
    ``normal_(w, std=0.02)``, and scales the residual output projections by 1/√(2·n_layer).
    """
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _fill(tensor, _rng(generator).normal(mean, std, tensor.shape))


def trunc_normal_(tensor, mean=0.0, std=1.0, cutoff=2.0, generator=None):
    """Fill with N(mean, std²) truncated to [mean − cutoff·std, mean + cutoff·std].

    ViT's reference implementations (Dosovitskiy et al. 2021; timm) initialize position
    embeddings, the class token and many weights with std 0.02, cut at ±2 std. Samples outside
    the interval are redrawn (rejection sampling: exact, and with cutoff 2 only ~5% are redrawn).

    Note: here the cutoff is in units of std. PyTorch's ``trunc_normal_(t, mean, std, a, b)``
    takes absolute bounds a = −2, b = 2, so ``trunc_normal_(w, std=0.02)`` there cuts at ±100
    std (hardly at all); hence the different argument name.
    """
    if std < 0 or cutoff <= 0:
        raise ValueError(f"trunc_normal_: need std >= 0 and cutoff > 0, got std={std}, "
                         f"cutoff={cutoff}")
    rng = _rng(generator)
    z = rng.standard_normal(tensor.shape)
    outside = np.abs(z) > cutoff
    while outside.any():
        z[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(z) > cutoff
    return _fill(tensor, mean + std * z)


def constant_(tensor, value):
    """Fill with `value`."""
    return _fill(tensor, np.full(tensor.shape, float(value)))


def zeros_(tensor):
    """Fill with 0 (biases; LayerNorm's shift)."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Fill with 1 (LayerNorm's scale)."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot & Bengio (2010), Eq. 16: U(−a, a) with a = gain · √(6 / (fan_in + fan_out)).

    It keeps the variance of activations (forward) and of gradients (backward) roughly equal
    across layers: Var(w) = 2 / (fan_in + fan_out) is the compromise between the two.
    """
    fan_in, fan_out = _fans(tensor, "xavier_uniform_")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot & Bengio (2010): N(0, std²) with std = gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor, "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity, name):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor, name)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He et al. (2015), Eq. 10 in uniform form: U(−b, b) with b = √3 · gain / √fan.

    Var(w) = gain² / fan keeps the activations' second moment constant through ReLU layers
    (fan_in) or the gradients' (fan_out). PyTorch's default for ``nn.Linear`` is this with
    a = √5 (leaky_relu), which works out to b = 1 / √fan_in.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    bound = math.sqrt(3.0) * std  # a uniform on (−b, b) has std b / √3
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He et al. (2015), Eq. 10: N(0, std²) with std = gain / √fan."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    return normal_(tensor, 0.0, std, generator)
