"""Activation functions: sigmoid, ReLU and GELU, each y = f(x) elementwise with ∂y/∂x.

In the docstrings, g is dL/dy, the gradient arriving from above.
"""

import math

from minitx import backend
from minitx.autograd import Function
from minitx.ops.common import register
from minitx.ops.special import erf


@register
class Sigmoid(Function):
    """y = σ(x) = 1/(1 + e⁻ˣ).   ∂y/∂x = y(1 − y).

    A class, not a composite: 1/(1 + exp(−x)) overflows in its gradient (NaN below x ≈ −89 in
    float32), and ½(1 + tanh(x/2)) cancels in the left tail, where σ is small: in float32 its
    relative error is 2e-4 at x = −10 and exceeds 100% below x ≈ −17 (here: 1.1e-6 at most),
    though it is 20% faster.
    """

    def forward(self, x):
        xp = backend.xp_of(x)
        e = xp.exp(-abs(x))  # e⁻|ˣ| ≤ 1 never overflows; pick the branch that divides safely
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


@register
class ReLU(Function):
    """y = max(x, 0).   ∂y/∂x = [x > 0].

    Written as a selection, not as x · [x > 0]: that product is −∞ · 0 = NaN at x = −∞.
    """

    def forward(self, x):
        self.positive = x > 0
        return backend.xp_of(x).where(self.positive, x, 0.0)

    def backward(self, g):
        return g * self.positive


_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715  # Hendrycks & Gimpel (2016), the tanh approximation of GELU
_GELU_SATURATED = 40.0  # |x| beyond which Φ(x) is 0 or 1, φ(x) and 1 − tanh²u are 0 in float64


@register
class GELU(Function):
    """y = x · Φ(x), Φ the standard normal CDF (Hendrycks & Gimpel 2016, arXiv:1606.08415).

    Exact form: Φ(x) = ½(1 + erf(x/√2)),   ∂y/∂x = Φ(x) + x · φ(x),   φ(x) = e^(−x²/2)/√(2π).
    Tanh form:  y = ½x(1 + tanh u),  u = √(2/π)(x + 0.044715x³),
                ∂y/∂x = ½(1 + tanh u) + ½x(1 − tanh²u) · √(2/π)(1 + 3 · 0.044715x²).

    At ±∞ both forms give their limits, y(−∞) = 0, y(+∞) = +∞, ∂y/∂x = 0 and 1 (PyTorch gives
    NaN there): the formulas run on x clipped to ±40, beyond which Φ, φ and tanh are saturated
    in float32 and float64 alike, so nothing of the form ∞ · 0 arises.

    The forward pass computes ∂y/∂x too, while each block of x is in cache
    (:func:`minitx.backend.blockwise`), and keeps only that array: the backward pass is then a
    single product g · ∂y/∂x, and neither x nor Φ(x) has to be kept.
    """

    def forward(self, x, *, approximate="none"):
        shape = x.shape
        x = x.reshape(shape or (1,))  # a 0-d array would decay to a buffer-less scalar
        block = _gelu_tanh_block if approximate == "tanh" else _gelu_block
        y, self.dydx = backend.blockwise(lambda b: block(b, self.needs_grad), x)
        return y.reshape(shape)

    def backward(self, g):
        return g * self.dydx.reshape(g.shape)


def _gelu_block(x, with_grad):
    """y = x Φ(x) and, if `with_grad`, ∂y/∂x = Φ(x) + x φ(x) for one block of x."""
    xp = backend.xp_of(x)
    y = xp.maximum(x, -_GELU_SATURATED)  # x, but never −∞ (y = max(x, −40) · Φ(x) below)
    x = xp.clip(x, -_GELU_SATURATED, _GELU_SATURATED)  # the same Φ and φ, never ±∞
    cdf = erf(x * (1 / _SQRT_2))  # erf(x/√2), then Φ(x) = ½(1 + erf) in place
    cdf += 1.0
    cdf *= 0.5
    y *= cdf
    if not with_grad:
        return y, None
    dydx = x * x  # φ(x) = exp(−x²/2)/√(2π), then x φ(x) + Φ(x), all in this one buffer
    dydx *= -0.5
    xp.exp(dydx, out=dydx)
    dydx *= 1 / math.sqrt(2 * math.pi)
    dydx *= x
    dydx += cdf
    return y, dydx


def _gelu_tanh_block(x, with_grad):
    """y = ½x(1 + tanh u) and, if `with_grad`, ∂y/∂x, for one block of x (see GELU)."""
    xp = backend.xp_of(x)
    y = xp.maximum(x, -_GELU_SATURATED)  # x, but never −∞ (see GELU)
    x = xp.clip(x, -_GELU_SATURATED, _GELU_SATURATED)
    t = x * x  # x², then u = √(2/π)(x + 0.044715x³) in the same buffer, then tanh u
    t *= _GELU_CUBIC
    t += 1.0
    t *= x
    t *= _SQRT_2_OVER_PI
    xp.tanh(t, out=t)
    y *= t + 1.0
    y *= 0.5  # ½x(1 + tanh u)
    if not with_grad:
        return y, None
    dydx = x * x  # du/dx = √(2/π)(1 + 3 · 0.044715x²)
    dydx *= 3 * _GELU_CUBIC * _SQRT_2_OVER_PI
    dydx += _SQRT_2_OVER_PI
    sech2 = t * t  # 1 − tanh²u
    xp.subtract(1.0, sech2, out=sech2)
    dydx *= sech2
    dydx *= x  # x(1 − tanh²u) du/dx
    dydx += t  # + tanh u
    dydx += 1.0  # + 1
    dydx *= 0.5  # all halved
    return y, dydx


def sigmoid(x):
    return Sigmoid.apply(x)


def relu(x):
    return ReLU.apply(x)


def gelu(x, approximate="none"):
    """GELU; ``approximate="none"`` uses erf, ``"tanh"`` the tanh approximation (GPT-2)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)
