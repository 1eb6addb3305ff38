"""What every op module shares: the registry, broadcasting's adjoint, operand checks."""

import numpy as np

from minitx import backend, kernels
from minitx.tensor import FLOAT_DTYPES, Tensor

OPS = {}  # op name -> Function class; the test suite walks it, so an untested op fails CI


def register(cls):
    """Class decorator that records a Function in ``OPS`` under its class name."""
    OPS[cls.__name__] = cls
    return cls


def unbroadcast(g, shape):
    """Sum `g` down to `shape`: the adjoint of broadcasting `shape` up to ``g.shape``.

    Broadcasting copies a value along new leading axes and along axes of size 1, so each copy's
    gradient flows back to the one original: sum over exactly those axes.
    """
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape)
                                      if n == 1 and g.shape[i + lead] != 1)
    if lead and axes == tuple(range(lead)):  # only new leading axes
        return kernels.sum_leading(g, lead)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def own_copy(value):
    """`value` with each of its arrays copied: an array, or a tuple of index parts (arrays, ints,
    slices, None, Ellipsis), for an op to save for its backward pass.

    Index arrays, conditions and masks reach an op as parameters, not as Tensor inputs, so the
    version check of the backward pass (see :mod:`minitx.autograd`) does not watch them. An op
    that kept the caller's array would, after ``index[:] = ...``, silently send the gradient to
    the new positions; with its own copy it sends it where the forward pass took the values.
    """
    if isinstance(value, tuple):
        return tuple(own_copy(part) for part in value)
    return value.copy() if backend.is_array(value) else value


def operand(value, like, op_name):
    """Return `value` as a Tensor beside `like`: a Python (or NumPy) number takes like's dtype
    and device, as PyTorch's scalars do, provided that dtype holds it: a float does not join an
    integer or bool tensor, nor an int outside the integer dtype's range, nor a number other
    than True/False a bool tensor (NumPy's cast would truncate or wrap it without a word)."""
    if isinstance(value, Tensor):
        return value
    check_scalar(value, op_name, like.dtype)
    xp = backend.xp_of(like._data)
    return Tensor(xp.asarray(value, dtype=like.dtype))


def check_float(op_name, *tensors):
    """A TypeError unless each tensor (None is skipped) has a float dtype: an op built on
    e^x, a division or a square root has no integer version, and NumPy would either fail inside
    it or quietly compute in float64."""
    for t in tensors:
        if t is not None and t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op_name}: expected a float tensor, got dtype {t.dtype}; convert "
                            f"it first, e.g. t.astype('float32')")


def check_scalar(value, op_name, dtype=None):
    """A TypeError unless `value` is a host number (bool, int, float, a NumPy scalar) and,
    with a `dtype`, one that dtype holds (:func:`scalar_fits`)."""
    if not isinstance(value, (bool, int, float, np.generic)):
        raise TypeError(f"{op_name}: cannot combine a Tensor with {type(value).__name__}; "
                        f"wrap arrays with minitx.tensor(..., device=...) first")
    if dtype is not None and not scalar_fits(value, dtype):
        raise TypeError(f"{op_name}: the number {value!r} does not fit a tensor of dtype "
                        f"{dtype} (it would be cast to it); convert the tensor first, "
                        f"e.g. t.astype('float32')")


def scalar_fits(value, dtype):
    """True when the number `value` is held by `dtype` without losing its meaning: any number
    by a float dtype (rounded, as a float32 tensor holds 0.1), an integer within range by an
    integer dtype, only True and False by bool."""
    kind = np.dtype(dtype).kind
    if kind == "b":
        return isinstance(value, (bool, np.bool_))
    if kind in "iu":
        if isinstance(value, (bool, np.bool_)):
            return True
        if not isinstance(value, (int, np.integer)):
            return False
        info = np.iinfo(dtype)
        return info.min <= int(value) <= info.max
    return True


def broadcast_shapes(op_name, *shapes):
    """The broadcast shape of `shapes`, or a ValueError that names the op and every shape."""
    out = []
    for dims in _zip_right(shapes):
        sizes = {n for n in dims if n != 1}
        if len(sizes) > 1:
            raise ValueError(f"{op_name}: shapes {', '.join(map(str, shapes))} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(reversed(out))


def _zip_right(shapes):
    longest = max(len(s) for s in shapes)
    padded = [(1,) * (longest - len(s)) + tuple(s) for s in shapes]
    return reversed(list(zip(*padded)))


def normalize_axes(axis, ndim, op_name):
    """Turn None / an int / a tuple of ints into a sorted tuple of non-negative axes.

    A 0-d tensor accepts axis 0 and −1 as PyTorch does (as if it had one axis of size 1) and
    has no axis to reduce over: the result is ().
    """
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in (integer(a, "axis", op_name) for a in axes):
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"{op_name}: axis {a} is out of range for a {ndim}-d tensor")
        out.append(a % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op_name}: repeated axis in {axis}")
    return tuple(sorted(out)) if ndim else ()


def single_axis(axis, ndim, op_name):
    """One axis as a non-negative int; a clear error for a 0-d tensor, which has none."""
    if ndim == 0:
        raise ValueError(f"{op_name}: needs a tensor with at least one axis, got a 0-d tensor")
    return normalize_axes(integer(axis, "axis", op_name), ndim, op_name)[0]


def integer(value, what, op_name):
    """`value` as a Python int when it is an integer (a NumPy integer too), else a TypeError
    that names `what`; a bool is refused (True is not axis 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op_name}: {what} must be an int, got {type(value).__name__}")
    return int(value)
