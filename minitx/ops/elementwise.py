"""Elementwise ops. Binary ops broadcast as NumPy does; their backward sums the gradient back
down to each input's shape (``unbroadcast``), since broadcasting's adjoint is a sum.

In the docstrings, g is dL/dy, the gradient arriving from above.
"""

from minitx import backend
from minitx.autograd import Function
from minitx.ops.common import (
    broadcast_shapes,
    check_float,
    operand,
    register,
    unbroadcast,
)
from minitx.ops.masks import compare, where  # minimum is where(a ≤ b, a, b)
from minitx.tensor import FLOAT_DTYPES, Tensor

# ---- binary arithmetic ---------------------------------------------------------------------


@register
class Add(Function):
    """y = a + b.   ∂y/∂a = 1,   ∂y/∂b = 1."""

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.a_shape), unbroadcast(g, self.b_shape)


@register
class Sub(Function):
    """y = a − b.   ∂y/∂a = 1,   ∂y/∂b = −1.

    A class, not add(a, neg(b)): that composite makes two passes and a full-size temporary each
    way, 1.7-2.0x the time of forward + backward here (31 vs 18 ms on a (64, 197, 384) float32
    array, three runs), and x − y is everywhere in a model.
    """

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.a_shape), unbroadcast(-g, self.b_shape)


@register
class Mul(Function):
    """y = a · b.   ∂y/∂a = b,   ∂y/∂b = a."""

    def forward(self, a, b):
        wants_a, wants_b = self.needs_input_grad
        self.a_shape, self.b_shape = a.shape, b.shape
        self.a = a if wants_b else None  # dL/db reads a, dL/da reads b
        self.b = b if wants_a else None
        return a * b

    def backward(self, g):
        wants_a, wants_b = self.needs_input_grad
        return (unbroadcast(g * self.b, self.a_shape) if wants_a else None,
                unbroadcast(g * self.a, self.b_shape) if wants_b else None)


@register
class Div(Function):
    """y = a / b.   ∂y/∂a = 1/b,   ∂y/∂b = −a/b²."""

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        self.a = a if self.needs_input_grad[1] else None  # only dL/db reads a
        self.b = b
        return a / b

    def backward(self, g):
        wants_a, wants_b = self.needs_input_grad
        ga = g / self.b  # dL/da, and a factor of dL/db
        gb = unbroadcast(-ga * self.a / self.b, self.b_shape) if wants_b else None
        return unbroadcast(ga, self.a_shape) if wants_a else None, gb


@register
class Maximum(Function):
    """y = max(a, b) elementwise.   ∂y/∂a = [a ≥ b],   ∂y/∂b = [a < b] (ties go to a)."""

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        self.a_wins = a >= b
        return backend.xp_of(a).maximum(a, b)

    def backward(self, g):
        ga = g * self.a_wins
        return unbroadcast(ga, self.a_shape), unbroadcast(g - ga, self.b_shape)


def _binary(fn_class, a, b, name):
    """Apply a broadcasting binary op after turning Python numbers into tensors."""
    like = a if isinstance(a, Tensor) else b
    a, b = operand(a, like, name), operand(b, like, name)
    broadcast_shapes(name, a.shape, b.shape)  # a clear error before NumPy's
    return fn_class.apply(a, b)


def add(a, b):
    """a + b with broadcasting."""
    return _binary(Add, a, b, "add")


def sub(a, b):
    """a − b with broadcasting."""
    return _binary(Sub, a, b, "sub")


def mul(a, b):
    """a · b with broadcasting."""
    return _binary(Mul, a, b, "mul")


def div(a, b):
    """a / b with broadcasting, for float tensors (the quotient of integers is not one)."""
    check_float("div", *(v for v in (a, b) if isinstance(v, Tensor)))
    return _binary(Div, a, b, "div")


def maximum(a, b):
    """Elementwise maximum with broadcasting."""
    return _binary(Maximum, a, b, "maximum")


def minimum(a, b):
    """Elementwise minimum with broadcasting: a where a ≤ b, else b (ties go to a).

    Composed of compare and where, so ∂/∂a = [a ≤ b] and ∂/∂b = [a > b] come from Where.
    """
    like = a if isinstance(a, Tensor) else b
    a, b = operand(a, like, "minimum"), operand(b, like, "minimum")
    broadcast_shapes("minimum", a.shape, b.shape)
    return where(compare(a, b, "le"), a, b)


# ---- unary functions -----------------------------------------------------------------------


@register
class Neg(Function):
    """y = −x.   ∂y/∂x = −1.

    A class, not mul(x, −1): Mul's backward would also form the gradient of the constant −1
    (a full product and a full sum), 1.5-2.0x the time of forward + backward here (17 vs 10 ms
    on a (64, 197, 384) float32 array, three runs).
    """

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


@register
class Pow(Function):
    """y = xᵖ for a constant exponent p.   ∂y/∂x = p · xᵖ⁻¹."""

    def forward(self, x, *, exponent):
        self.x, self.p = x, exponent
        return x ** exponent

    def backward(self, g):
        if self.p == 0:  # y = 1, a constant: 0 at x = 0 as well, where p · xᵖ⁻¹ is 0 · ∞
            return backend.xp_of(g).zeros_like(g)
        return g * self.p * self.x ** (self.p - 1)


@register
class Exp(Function):
    """y = eˣ.   ∂y/∂x = eˣ = y (so the output is saved, not the input)."""

    def forward(self, x):
        self.y = backend.xp_of(x).exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


@register
class Log(Function):
    """y = ln x.   ∂y/∂x = 1/x."""

    def forward(self, x):
        self.x = x
        return backend.xp_of(x).log(x)

    def backward(self, g):
        return g / self.x


@register
class Abs(Function):
    """y = |x|.   ∂y/∂x = sign(x), 0 at x = 0 (a subgradient, as in PyTorch)."""

    def forward(self, x):
        self.sign = backend.xp_of(x).sign(x)
        return self.sign * x

    def backward(self, g):
        return g * self.sign


@register
class Sqrt(Function):
    """y = √x.   ∂y/∂x = 1/(2√x) = 1/(2y)."""

    def forward(self, x):
        self.y = backend.xp_of(x).sqrt(x)
        return self.y

    def backward(self, g):
        return g / (2 * self.y)


@register
class Tanh(Function):
    """y = tanh x.   ∂y/∂x = 1 − y²."""

    def forward(self, x):
        self.y = backend.xp_of(x).tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


def _check_numeric(name, x, hint=""):
    if x.dtype == bool:  # NumPy has no negative or sign of a bool
        raise TypeError(f"{name}: expected a numeric tensor, got dtype bool{hint}")


def neg(x):
    _check_numeric("neg", x, " (a mask's complement is ~mask)")
    return Neg.apply(x)


def pow(x, exponent):  # noqa: A001 (the public name mirrors Python's ** operator)
    """xᵖ for a constant Python-number exponent p."""
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
        raise TypeError(f"pow: the exponent must be a Python number, got "
                        f"{type(exponent).__name__}; for a tensor exponent b use exp(b · log x)")
    if x.dtype not in FLOAT_DTYPES and not (x.dtype.kind in "iu" and isinstance(exponent, int)
                                            and exponent >= 0):
        raise TypeError(f"pow: a tensor of dtype {x.dtype} to the power {exponent!r} is not "
                        f"of its dtype (only integers to powers 0, 1, 2, ... are); convert it "
                        f"first, e.g. t.astype('float32')")
    return Pow.apply(x, exponent=exponent)


def exp(x):
    check_float("exp", x)
    return Exp.apply(x)


def log(x):
    check_float("log", x)
    return Log.apply(x)


def abs(x):  # noqa: A001 (the op's name, as in NumPy)
    _check_numeric("abs", x)
    return Abs.apply(x)


def sqrt(x):
    check_float("sqrt", x)
    return Sqrt.apply(x)


def tanh(x):
    check_float("tanh", x)
    return Tanh.apply(x)


def clip(x, low=None, high=None):
    """Clamp x into [low, high]; either bound may be None: min(max(x, low), high).

    Composed of maximum and minimum, whose ties go to x, so ∂y/∂x = [low ≤ x ≤ high].
    """
    if low is None and high is None:
        raise ValueError("clip: give low, high or both")
    y = x if low is None else maximum(x, operand(low, x, "clip"))
    return y if high is None else minimum(y, operand(high, x, "clip"))


# Selection with a boolean mask (where, masked_fill) and the comparisons and logic that make
# masks (compare, logical_not/and/or) are in minitx/ops/masks.py.


# ---- dtype and device ----------------------------------------------------------------------


@register
class Astype(Function):
    """y = x cast to a float dtype (a copy).   ∂y/∂x = 1, cast back to x's dtype."""

    def forward(self, x, *, dtype):
        self.source = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.source)


@register
class ToDevice(Function):
    """y = x copied to another device.   ∂y/∂x = 1, copied back to x's device."""

    def forward(self, x, *, device):
        self.source = backend.device_of(x)
        return backend.to_device(x, device)

    def backward(self, g):
        return backend.to_device(g, self.source)


def astype(x, dtype):
    """A copy cast to `dtype`, even to x's own dtype (as NumPy's astype); differentiable between
    float types, a tensor without a graph otherwise."""
    xp = backend.xp_of(x._data)
    dtype = xp.dtype(dtype)
    if dtype.type not in FLOAT_DTYPES:
        return Tensor(x._data.astype(dtype))
    return Astype.apply(x, dtype=dtype)


def to_device(x, device):
    """Move to `device` (explicitly; returns x itself when it is already there)."""
    device = backend.normalize_device(device)
    backend.xp_for(device)  # a clear error if the device cannot be used
    if x.device == device:
        return x
    return ToDevice.apply(x, device=device)
