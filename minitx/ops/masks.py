"""Boolean masks: comparisons and logic make them (no gradient); where and masked_fill use them."""

import math
import operator

import numpy as np

from minitx import backend
from minitx.autograd import Function
from minitx.ops.common import (
    broadcast_shapes,
    check_scalar,
    operand,
    own_copy,
    register,
    unbroadcast,
)
from minitx.tensor import Tensor

# ---- selection with a boolean mask ---------------------------------------------------------


def mask_array(mask, device, shape, op_name):
    """The raw boolean array of `mask`, checked to be on `device` and to broadcast to `shape`."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{op_name}: the mask must be a boolean Tensor, got {type(mask).__name__}")
    if mask.dtype != bool:
        raise TypeError(f"{op_name}: the mask must have dtype bool, got {mask.dtype}")
    if mask.device != device:
        raise RuntimeError(f"{op_name}: the mask is on {mask.device} but the tensor is on {device}")
    if broadcast_shapes(op_name, mask.shape, shape) != tuple(shape):
        raise ValueError(f"{op_name}: mask of shape {mask.shape} does not broadcast to the "
                         f"tensor's shape {tuple(shape)}")
    return mask._data


@register
class Where(Function):
    """y = a where cond else b.   ∂y/∂a = [cond],   ∂y/∂b = [not cond]."""

    def forward(self, a, b, *, cond):
        self.a_shape, self.b_shape = a.shape, b.shape
        self.cond = own_copy(cond) if self.needs_grad else None  # the caller may change it
        return backend.xp_of(a).where(cond, a, b)

    def backward(self, g):
        ga = g * self.cond
        return unbroadcast(ga, self.a_shape), unbroadcast(g - ga, self.b_shape)


@register
class MaskedFill(Function):
    """y = value where mask else x.   ∂y/∂x = [not mask] (the filled entries are constants)."""

    def forward(self, x, *, mask, value):
        xp = backend.xp_of(x)
        self.keep = ~mask
        self.allows_inf = not math.isfinite(value)  # -inf masks are deliberate
        return xp.where(mask, xp.asarray(value, dtype=x.dtype), x)

    def backward(self, g):
        return g * self.keep


def where(cond, a, b):
    """Pick a where cond is True and b elsewhere (all three broadcast together)."""
    if not isinstance(cond, Tensor):
        raise TypeError(f"where: cond must be a boolean Tensor, got {type(cond).__name__}")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):  # two numbers: a sets the dtype
        check_scalar(a, "where")
        xp = backend.xp_of(cond._data)
        a = Tensor(xp.asarray(a, dtype=np.float32 if isinstance(a, float) else None))
    like = a if isinstance(a, Tensor) else b
    a, b = operand(a, like, "where"), operand(b, like, "where")
    shape = broadcast_shapes("where", cond.shape, a.shape, b.shape)
    return Where.apply(a, b, cond=mask_array(cond, like.device, shape, "where"))


def masked_fill(x, mask, value):
    """Return x with the entries where `mask` is True replaced by the constant `value`."""
    mask = mask_array(mask, x.device, x.shape, "masked_fill")
    check_scalar(value, "masked_fill", x.dtype)  # an integer tensor takes only integers in range
    return MaskedFill.apply(x, mask=mask, value=value)  # not float(): 2**62 + 1 would round


# ---- comparisons and logic on masks: not differentiable, they return boolean tensors -------


def compare(a, b, how):
    """Elementwise comparison; returns a boolean Tensor, which has no gradient."""
    like = a if isinstance(a, Tensor) else b
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        # a number is compared by its value (1 < 1.5 for an integer tensor; NumPy's rules for
        # Python numbers), not first cast to the tensor's dtype as arithmetic casts it. A NumPy
        # scalar counts as that Python number, as in arithmetic: NumPy would compare a float32
        # tensor holding 0.1 with np.float64(0.1) in float64 (False), with 0.1 in float32 (True)
        other = b if like is a else a
        check_scalar(other, how)
        other = other.item() if isinstance(other, np.generic) else other
        a, b = (like._data, other) if like is a else (other, like._data)
        return _mask(_COMPARISONS[how](a, b), like._data)
    broadcast_shapes(how, a.shape, b.shape)
    if a.device != b.device:
        raise RuntimeError(f"{how}: tensors on different devices {a.device} and {b.device}")
    return _mask(_COMPARISONS[how](a._data, b._data), a._data)


_COMPARISONS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
                "gt": operator.gt, "ge": operator.ge}


def _mask(result, like):
    """A boolean result as an array: NumPy gives 0-d operands a scalar (np.bool_) instead."""
    return Tensor(backend.xp_of(like).asarray(result))


def _check_bool(name, *tensors):
    for t in tensors:
        if not isinstance(t, Tensor) or t.dtype != bool:
            raise TypeError(f"{name}: works on boolean Tensors (masks), got "
                            f"{getattr(t, 'dtype', type(t).__name__)}")
    if len({t.device for t in tensors}) > 1:
        raise RuntimeError(f"{name}: tensors on different devices")


def logical_not(a):
    """~a for a boolean mask (not differentiable)."""
    _check_bool("logical_not", a)
    return _mask(~a._data, a._data)


def logical_and(a, b):
    """a & b for boolean masks (not differentiable)."""
    _check_bool("logical_and", a, b)
    broadcast_shapes("logical_and", a.shape, b.shape)
    return _mask(a._data & b._data, a._data)


def logical_or(a, b):
    """a | b for boolean masks (not differentiable)."""
    _check_bool("logical_or", a, b)
    broadcast_shapes("logical_or", a.shape, b.shape)
    return _mask(a._data | b._data, a._data)
