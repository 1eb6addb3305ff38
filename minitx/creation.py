"""Making tensors: from Python data, filled with a constant, or drawn at random.

Random tensors are drawn on the host from a seeded NumPy generator (``minitx.random``) and then
moved, so they are identical on every device.
"""

import numpy as np

from minitx import backend
from minitx import random as mt_random
from minitx.tensor import Tensor


def _default_dtype(data):
    """Python floats become float32 (the default); NumPy data keeps its dtype."""
    array = np.asarray(data)
    if array.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
        return np.float32
    return array.dtype


def tensor(data, dtype=None, device="cpu", requires_grad=False):
    """Build a Tensor from Python data or an array (copied).

    Python floats default to float32 and Python ints to int64; NumPy arrays keep their dtype, so
    a float64 array gives a float64 tensor (what gradient checks need).

    >>> tensor([1, 2]).dtype, tensor([1.5]).dtype
    (dtype('int64'), dtype('float32'))
    """
    if isinstance(data, Tensor):
        data = data._data
    if backend.is_array(data) and backend.device_of(data) != "cpu":
        source = backend.device_of(data)
        if source != backend.normalize_device(device):
            raise RuntimeError(f"tensor: data is on {source} but device={device!r}; move it "
                               f"explicitly with .to({device!r})")
        array = data.astype(dtype if dtype is not None else data.dtype, copy=True)
    else:  # Python data or a host array: copied, then moved to `device`
        host = np.array(data, dtype=dtype if dtype is not None else _default_dtype(data))
        if host.dtype.kind not in "biuf":  # objects (None, a list of Tensors), strings
            raise TypeError(f"tensor: cannot make a tensor of {type(data).__name__} data "
                            f"(it became a NumPy array of dtype {host.dtype}); give numbers, "
                            f"nested lists of numbers or an array (join Tensors with stack)")
        array = backend.to_device(host, device)
    return Tensor(array, requires_grad=requires_grad)


def _size(name, size):
    """The shape of ``name(*size)``: ``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` all mean (2, 3),
    as in PyTorch; anything else (a negative or fractional side, a tuple mixed with ints) is
    refused with the function's name."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    elif any(isinstance(s, (tuple, list)) for s in size):
        raise TypeError(f"{name}: give the size as integers, {name}(2, 3), or as one tuple, "
                        f"{name}((2, 3)), not both: got {size}")
    for s in size:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{name}: sizes must be integers, got {s!r} "
                            f"({type(s).__name__}) in {size}")
        if s < 0:
            raise ValueError(f"{name}: sizes must be non-negative, got {tuple(size)}")
    return tuple(int(s) for s in size)


def _filled(name, size, value, dtype, device, requires_grad):
    xp = backend.xp_for(device)
    return Tensor(xp.full(_size(name, size), value, dtype=dtype), requires_grad=requires_grad)


def zeros(*size, dtype=np.float32, device="cpu", requires_grad=False):
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``.

    >>> zeros(2, 3).shape, zeros((4,)).dtype
    ((2, 3), dtype('float32'))
    """
    return _filled("zeros", size, 0, dtype, device, requires_grad)


def ones(*size, dtype=np.float32, device="cpu", requires_grad=False):
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    return _filled("ones", size, 1, dtype, device, requires_grad)


def empty(*size, dtype=np.float32, device="cpu", requires_grad=False):
    """A tensor whose values are whatever the memory held (fast; overwrite every element)."""
    xp = backend.xp_for(device)
    return Tensor(xp.empty(_size("empty", size), dtype=dtype), requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device="cpu", requires_grad=False):
    """A tensor of shape `size` (a tuple, or one int) filled with `fill_value`.

    Without `dtype`, the dtype follows the value, as in PyTorch: bool for True/False, int64 for
    an integer, float32 (the default float) otherwise.

    >>> full((2, 2), 7).dtype, full(3, 0.5).tolist()
    (dtype('int64'), [0.5, 0.5, 0.5])
    """
    size = (size,) if isinstance(size, (int, np.integer)) else size
    dtype = _fill_dtype(fill_value) if dtype is None else dtype
    return _filled("full", (size,), fill_value, dtype, device, requires_grad)


def _fill_dtype(value):
    if isinstance(value, (bool, np.bool_)):
        return np.bool_
    if isinstance(value, (int, np.integer)):
        return np.int64
    return np.float32


def zeros_like(x, dtype=None, device=None, requires_grad=False):
    """Zeros of x's shape, with x's dtype and device unless given."""
    return zeros(x.shape, **_like(x, dtype, device), requires_grad=requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False):
    """Ones of x's shape, with x's dtype and device unless given."""
    return ones(x.shape, **_like(x, dtype, device), requires_grad=requires_grad)


def empty_like(x, dtype=None, device=None, requires_grad=False):
    """An uninitialized tensor of x's shape, with x's dtype and device unless given."""
    return empty(x.shape, **_like(x, dtype, device), requires_grad=requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False):
    """`fill_value` in x's shape, with x's dtype and device unless given."""
    return full(x.shape, fill_value, **_like(x, dtype, device), requires_grad=requires_grad)


def _like(x, dtype, device):
    if not isinstance(x, Tensor):
        raise TypeError(f"*_like functions take a Tensor, got {type(x).__name__}")
    return {"dtype": x.dtype if dtype is None else dtype,
            "device": x.device if device is None else device}


def arange(*args, dtype=None, device="cpu"):
    """Evenly spaced values in [start, stop) with spacing `step`, as ``np.arange(*args)``.

    Without `dtype`: int64 when every argument is an integer, else float32 (minitx's default
    float; the values are computed in float64 first, then rounded once).

    >>> arange(3).dtype, arange(0, 1, 0.25).tolist()
    (dtype('int64'), [0.0, 0.25, 0.5, 0.75])
    """
    if dtype is None:
        integral = all(isinstance(a, (int, np.integer)) for a in args)
        dtype = np.int64 if integral else np.float32
    values = backend.xp_for(device).arange(*args)  # int64 or float64, as NumPy infers
    return Tensor(values.astype(dtype, copy=False))


def randn(*size, dtype=np.float32, device="cpu", requires_grad=False, generator=None):
    """Standard normal samples, ``randn(2, 3)`` or ``randn((2, 3))``, drawn from `generator`
    (default: minitx.random)."""
    rng = mt_random.generator_or_default(generator, "randn")
    host = rng.standard_normal(_size("randn", size)).astype(dtype)
    return Tensor(backend.to_device(host, device), requires_grad=requires_grad)


def rand(*size, dtype=np.float32, device="cpu", requires_grad=False, generator=None):
    """Uniform samples in [0, 1), ``rand(2, 3)`` or ``rand((2, 3))``, drawn from `generator`
    (default: minitx.random)."""
    rng = mt_random.generator_or_default(generator, "rand")
    host = rng.random(_size("rand", size)).astype(dtype)
    return Tensor(backend.to_device(host, device), requires_grad=requires_grad)
