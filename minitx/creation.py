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
        data = data.data
    if backend.is_array(data) and backend.device_of(data) != "cpu":
        source = backend.device_of(data)
        if source != backend.normalize_device(device):
            raise RuntimeError(f"tensor: data is on {source} but device={device!r}; move it "
                               f"explicitly with .to({device!r})")
        array = data.astype(dtype if dtype is not None else data.dtype, copy=True)
    else:  # Python data or a host array: copied, then moved to `device`
        host = np.array(data, dtype=dtype if dtype is not None else _default_dtype(data))
        array = backend.to_device(host, device)
    return Tensor(array, requires_grad=requires_grad)


def _filled(shape, value, dtype, device, requires_grad):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    xp = backend.xp_for(device)
    return Tensor(xp.full(shape, value, dtype=dtype), requires_grad=requires_grad)


def zeros(shape, dtype=np.float32, device="cpu", requires_grad=False):
    return _filled(shape, 0, dtype, device, requires_grad)


def ones(shape, dtype=np.float32, device="cpu", requires_grad=False):
    return _filled(shape, 1, dtype, device, requires_grad)


def full(shape, value, dtype=np.float32, device="cpu", requires_grad=False):
    return _filled(shape, value, dtype, device, requires_grad)


def zeros_like(x, requires_grad=False):
    return zeros(x.shape, x.dtype, x.device, requires_grad)


def ones_like(x, requires_grad=False):
    return ones(x.shape, x.dtype, x.device, requires_grad)


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


def randn(*shape, dtype=np.float32, device="cpu", requires_grad=False, generator=None):
    """Standard normal samples, drawn from `generator` (default: minitx.random)."""
    rng = generator if generator is not None else mt_random.default_generator()
    host = rng.standard_normal(_shape(shape)).astype(dtype)
    return Tensor(backend.to_device(host, device), requires_grad=requires_grad)


def rand(*shape, dtype=np.float32, device="cpu", requires_grad=False, generator=None):
    """Uniform samples in [0, 1), drawn from `generator` (default: minitx.random)."""
    rng = generator if generator is not None else mt_random.default_generator()
    host = rng.random(_shape(shape)).astype(dtype)
    return Tensor(backend.to_device(host, device), requires_grad=requires_grad)


def _shape(shape):
    """Accept randn(2, 3) as well as randn((2, 3))."""
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
