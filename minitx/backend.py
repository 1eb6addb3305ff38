"""The NumPy/CuPy switch, and the strict stand-in device that keeps CPU code honest.

Every array in minitx lives on one *device*:

* ``"cpu"``: a ``numpy.ndarray``;
* ``"cuda"`` / ``"cuda:N"``: a ``cupy.ndarray`` on GPU N (CuPy is imported lazily, only here);
* ``"strict"``: a :class:`StrictArray`, a NumPy array in a wrapper that refuses every implicit
  conversion to NumPy, as CuPy does. It exists for testing: ops that run on ``"strict"`` will not
  call NumPy on device data by mistake, so they run on a GPU too.

Ops never import NumPy functions for their math; they ask the data for its module::

    xp = xp_of(x)          # numpy, cupy or the strict namespace
    y = xp.exp(x)

Moving data between devices is always explicit (:func:`to_device`); nothing here copies silently.
"""

import numpy as np

_cupy = None  # the cupy module once imported; see _import_cupy()

GPU_INSTALL_HINT = (
    "install the GPU extra with `pip install -e .[gpu]` (CuPy for CUDA 12) on a machine with "
    "an NVIDIA GPU"
)


# --------------------------------------------------------------------------------------------
# The strict stand-in device
# --------------------------------------------------------------------------------------------

def _unwrap(value):
    """Replace StrictArrays by their NumPy payload, inside lists, tuples and dicts too."""
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value):
    """Wrap NumPy results as StrictArrays; NumPy scalars become 0-d arrays, as in CuPy (the
    stand-in models the GPU; on the CPU, ``Tensor()`` turns NumPy's scalars into 0-d arrays)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return StrictArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class StrictArray:
    """A NumPy array on the pretend device ``"strict"``, behaving like a ``cupy.ndarray``.

    It is deliberately *not* an ndarray subclass: a subclass slips through ``np.asarray``. The
    operators and methods forward to the payload and wrap what comes back; everything that would
    turn it into a NumPy array behind the caller's back raises ``TypeError``.
    """

    __array_ufunc__ = None  # np.exp(strict) raises instead of computing on the host

    def __init__(self, array):
        self._a = array

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "a 'strict' device array cannot be converted to NumPy implicitly; "
            "use minitx.backend.to_numpy(x) or Tensor.to('cpu')"
        )

    def __array_function__(self, func, types, args, kwargs):
        return NotImplemented  # np.sum(strict) etc. raise TypeError, like a device array should

    def __getattr__(self, name):  # methods and attributes: .shape, .sum(), .reshape(), ...
        if name.startswith("__"):  # __array_interface__ & co. would hand NumPy the payload
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *args, **kwargs: _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        return _wrap(attr)

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    def __hash__(self):
        return id(self)


def _no_host_arrays(values, what):
    """A TypeError for a NumPy array among `values`: CuPy refuses host arrays as operands of
    device arithmetic ("Unsupported type numpy.ndarray"), so the stand-in does too. Numbers and
    NumPy scalars are fine on both."""
    for value in values:
        if isinstance(value, np.ndarray):
            raise TypeError(f"strict: {what} got a NumPy array (shape {value.shape}) beside "
                            f"device data; move it first with minitx.backend.to_device(x, "
                            f"'strict') (CuPy refuses host arrays too)")
        if isinstance(value, (list, tuple)):
            _no_host_arrays(value, what)


def _binary(name):
    def method(self, other):
        _no_host_arrays([other], name)
        return _wrap(getattr(self._a, name)(_unwrap(other)))
    method.__name__ = name
    return method


def _unary(name):
    def method(self):
        return _wrap(getattr(self._a, name)())
    method.__name__ = name
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul",
              "and", "or", "xor"):
    for _dunder in (f"__{_name}__", f"__r{_name}__", f"__i{_name}__"):
        setattr(StrictArray, _dunder, _binary(_dunder))
for _dunder in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
    setattr(StrictArray, _dunder, _binary(_dunder))
for _dunder in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(StrictArray, _dunder, _unary(_dunder))


class _StrictNamespace:
    """The array module of the strict device: ``xp.exp``, ``xp.zeros``, ``xp.float32``, ...

    Each NumPy function is forwarded with its array arguments unwrapped and its results wrapped,
    so code written against it runs unchanged on CuPy.
    """

    __name__ = "minitx.backend.strict"

    def __getattr__(self, name):
        attr = getattr(np, name)
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes (xp.float32), constants (xp.inf), classes
        if name in _FROM_HOST:
            return lambda *args, **kwargs: _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))

        def device_function(*args, **kwargs):
            _no_host_arrays([*args, *kwargs.values()], f"xp.{name}")
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        return device_function


_FROM_HOST = {"asarray", "array", "ascontiguousarray", "asanyarray"}  # copy host data over


strict = _StrictNamespace()


# --------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------

def _import_cupy():
    """Import CuPy on first use and check that a GPU is really there."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as exc:
            raise RuntimeError(f"device 'cuda' needs CuPy, which is not installed: "
                               f"{GPU_INSTALL_HINT}") from exc
        if not cupy.cuda.is_available():  # `import cupy` succeeds without a GPU
            raise RuntimeError(f"device 'cuda' requested but CuPy sees no GPU; "
                               f"{GPU_INSTALL_HINT}")
        _cupy = cupy
    return _cupy


def cuda_available():
    """Return True when CuPy is installed and sees at least one GPU."""
    try:
        _import_cupy()
    except RuntimeError:
        return False
    return True


def normalize_device(device):
    """Return the canonical name of `device`: "cpu", "strict" or "cuda:N".

    >>> normalize_device("cuda")
    'cuda:0'
    """
    if device is None:
        return "cpu"
    name = str(device)
    if name in ("cpu", "strict"):
        return name
    if name == "cuda":
        return "cuda:0"
    if name.startswith("cuda:") and name[5:].isdigit():
        return name
    raise ValueError(f"unknown device {device!r}; expected 'cpu', 'cuda', 'cuda:N' or 'strict'")


def _is_cupy(array):
    return _cupy is not None and isinstance(array, _cupy.ndarray)


def xp_of(array):
    """Return the array module (numpy, cupy or the strict namespace) that owns `array`."""
    if isinstance(array, StrictArray):
        return strict
    if _is_cupy(array):
        return _cupy
    return np


def xp_for(device):
    """Return the array module of a device name."""
    device = normalize_device(device)
    if device == "cpu":
        return np
    if device == "strict":
        return strict
    return _import_cupy()


def device_of(array):
    """Return the canonical device name of `array`."""
    if isinstance(array, StrictArray):
        return "strict"
    if _is_cupy(array):
        return f"cuda:{array.device.id}"
    return "cpu"


def is_array(value):
    """True for an array of any backend (NumPy, CuPy or strict)."""
    return isinstance(value, (np.ndarray, StrictArray)) or _is_cupy(value)


def memory_owner(array):
    """The object that owns the memory of `array`: the array itself, or the array it is a view
    of (``x.reshape(...)``, ``x[1:]``, ``x.T``). Two arrays with the same owner may overlap."""
    if isinstance(array, StrictArray):
        array = array._a
    while getattr(array, "base", None) is not None:  # NumPy and CuPy keep the owner in .base
        array = array.base
    return array


def to_numpy(array):
    """`array` on the host as a NumPy array (explicit; the only way off a device): a copy of a
    device array, a NumPy array itself as it is (``Tensor.numpy()`` always copies)."""
    if isinstance(array, StrictArray):
        return array._a.copy()
    if _is_cupy(array):
        return array.get()
    return np.asarray(array)


def to_device(array, device):
    """Return `array` on `device` (the same object when it is already there)."""
    device = normalize_device(device)
    if device_of(array) == device:
        return array
    host = to_numpy(array)
    if device == "cpu":
        return host
    if device == "strict":
        return StrictArray(host)
    cupy = _import_cupy()
    with cupy.cuda.Device(int(device.split(":")[1])):
        return cupy.asarray(host)


# --------------------------------------------------------------------------------------------
# What differs between backends (and the allocator switch, where the examples look for it)
# --------------------------------------------------------------------------------------------

def keep_host_memory():
    """Keep freed host memory for reuse: :func:`minitx.kernels.keep_host_memory`."""
    from minitx import kernels  # kernels imports this module

    return kernels.keep_host_memory()


def scatter_add(target, index, values):
    """target[index] += values, where repeated indices accumulate (unlike ``+=``)."""
    if isinstance(target, StrictArray):
        np.add.at(target._a, _unwrap(index), _unwrap(values))
    elif _is_cupy(target):
        import cupyx
        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)
    return target
