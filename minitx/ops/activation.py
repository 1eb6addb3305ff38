"""Activation functions: sigmoid, ReLU and GELU, each y = f(x) elementwise with ∂y/∂x.

In the docstrings, g is dL/dy, the gradient arriving from above.
"""

from minitx import backend, kernels
from minitx.autograd import Function
from minitx.ops.common import check_float, register


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
    """y = max(x, 0).   ∂y/∂x = [x > 0] = [y > 0].

    A maximum, not x · [x > 0]: that product is −∞ · 0 = NaN at x = −∞. The output is saved,
    as the next layer usually keeps it anyway, and backward reads the sign from it.
    """

    def forward(self, x):
        self.y = backend.xp_of(x).maximum(x, 0)
        return self.y

    def backward(self, g):
        return kernels.relu_backward(g, self.y)  # g · [y > 0]


@register
class GELU(Function):
    """y = x · Φ(x), Φ the standard normal CDF (Hendrycks & Gimpel 2016, arXiv:1606.08415).

    Exact form: Φ(x) = ½(1 + erf(x/√2)),   ∂y/∂x = Φ(x) + x · φ(x),   φ(x) = e^(−x²/2)/√(2π).
    Tanh form:  y = ½x(1 + tanh u),  u = √(2/π)(x + 0.044715x³),
                ∂y/∂x = ½(1 + tanh u) + ½x(1 − tanh²u) · √(2/π)(1 + 3 · 0.044715x²).
    Sigmoid form (the paper's §2, CLIP's and Image-GPT's "quick GELU"): Φ(x) ≈ σ(1.702x),
                y = x · s,  s = σ(1.702x),  ∂y/∂x = s + 1.702x · s(1 − s).

    At ±∞ every form gives its limits, y(−∞) = 0, y(+∞) = +∞, ∂y/∂x = 0 and 1 (PyTorch gives
    NaN there): the formulas run on x clipped to ±40 (±440 for σ), where they are saturated.

    x is saved (the graph holds it anyway, as the input of this op), and the backward pass
    computes ∂y/∂x from it; nothing the size of x is kept besides.
    """

    def forward(self, x, *, approximate="none"):
        self.x, self.approximate = x, approximate
        return kernels.gelu(x, approximate)

    def backward(self, g):
        return kernels.gelu_backward(self.x, g, self.approximate)


def sigmoid(x):
    check_float("sigmoid", x)
    return Sigmoid.apply(x)


def relu(x):
    if x.dtype == bool:  # max(x, 0) of a bool array is an integer array in NumPy
        raise TypeError("relu: expected a numeric tensor, got dtype bool")
    return ReLU.apply(x)


def gelu(x, approximate="none"):
    """GELU; ``approximate="none"`` uses erf, ``"tanh"`` the tanh approximation (GPT-2),
    ``"sigmoid"`` x·σ(1.702x) (CLIP, Image-GPT; not in PyTorch, which spells it out)."""
    check_float("gelu", x)
    if approximate not in ("none", "tanh", "sigmoid"):
        raise ValueError(f"gelu: approximate must be 'none', 'tanh' or 'sigmoid', "
                         f"got {approximate!r}")
    return GELU.apply(x, approximate=approximate)
