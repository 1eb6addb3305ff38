"""Tensor: an array of one backend, plus what reverse-mode autodiff needs.

A Tensor holds ``data`` (a NumPy, CuPy or strict-device array), ``requires_grad``, ``grad`` (a raw
array of the same shape once backward has run) and ``creator``, the Function that made it (None
for a leaf). Every method below calls an op from :mod:`minitx.ops`; no method is added from
elsewhere, so "go to definition" always lands here.

Each Tensor also carries a *version counter* (PyTorch's ``Tensor._version``): it goes up every
time the array may have been written in place. The backward pass compares it with the version
that the forward pass saw, so a change in between is an error instead of a wrong gradient (see
:attr:`Tensor.data` and :mod:`minitx.autograd`).
"""

import math

import numpy as np

from minitx import backend

FLOAT_DTYPES = (np.float16, np.float32, np.float64)


class VersionCounter:
    """How many times the memory of a tensor may have been changed in place.

    Tensors that share memory (a view made by reshape or indexing, a ``detach()``) share one
    counter, as in PyTorch: a write through any of them changes what the others hold.
    """

    __slots__ = ("value",)

    def __init__(self, value=0):
        self.value = value

    def bump(self):
        self.value += 1


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    >>> import minitx as mt
    >>> x = mt.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    array([[2., 4.],
           [6., 8.]], dtype=float32)
    """

    __array_ufunc__ = None  # `np.float32(2) * t` defers to Tensor.__rmul__ instead of NumPy

    def __init__(self, data, requires_grad=False, creator=None):
        if isinstance(data, np.generic):  # NumPy gives scalars where CuPy gives 0-d arrays
            data = np.asarray(data)
        if not backend.is_array(data):
            raise TypeError(f"Tensor wraps an array of a backend, got {type(data).__name__}; "
                            f"use minitx.tensor(...) to build one from Python data")
        if requires_grad and data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"only floating-point tensors can require grad; this one has dtype "
                            f"{data.dtype} (cast it with .astype('float32') first)")
        self._data = data  # the engine reads this; the public `data` property counts versions
        self._version_counter = VersionCounter()
        self.requires_grad = requires_grad
        self.grad = None
        self.creator = creator
        self.retains_grad = False

    # ---- the array, and its version -----------------------------------------------------------
    @property
    def data(self):
        """The tensor's own array (not a copy): writing into it changes the tensor.

        Whoever holds this array may write into it (``w.data[:] = 0``, ``p.data -= lr * g`` in
        an optimizer), so reading ``.data`` counts as a possible in-place change: the tensor's
        version goes up. If an op saved this tensor's values in a forward pass, the backward
        pass then refuses to run, because it would compute the gradient from the new values
        (PyTorch raises the same error for an in-place change of a saved tensor).

        So, between forward and backward, read values with ``.numpy()`` or ``.item()``, and
        change parameters (``optimizer.step()``) only after ``backward()``.
        """
        self._version_counter.bump()
        return self._data

    @data.setter
    def data(self, array):
        """Set the array. ``p.data -= u`` writes into the same memory: a new version. A new
        array leaves the old one, which the graph may have saved, as it was, so it starts a new
        version count of its own (views made earlier keep the old one)."""
        if isinstance(array, np.generic):
            array = np.asarray(array)
        if not backend.is_array(array):
            raise TypeError(f"Tensor.data must be an array of a backend, got "
                            f"{type(array).__name__}")
        if backend.memory_owner(array) is backend.memory_owner(self._data):
            self._version_counter.bump()
        else:
            self._version_counter = VersionCounter(self._version_counter.value + 1)
        self._data = array

    @property
    def grad(self):
        """dL/d(this tensor) after ``backward()``: an array of the tensor's shape, dtype and
        device, or None."""
        return self._grad

    @grad.setter
    def grad(self, array):
        """Set the gradient by hand (or None). It must match the tensor, as an optimizer reads
        it element for element: a gradient of another shape is refused, not broadcast."""
        if isinstance(array, np.generic):  # NumPy's scalar for a 0-d result
            array = np.asarray(array)
        if array is not None and not backend.is_array(array):
            raise TypeError(f"Tensor.grad must be an array of a backend or None, got "
                            f"{type(array).__name__}")
        if array is not None and (
                array.shape != self._data.shape or array.dtype != self._data.dtype
                or backend.device_of(array) != backend.device_of(self._data)):
            raise ValueError(f"Tensor.grad: a gradient of shape {tuple(array.shape)}, dtype "
                             f"{array.dtype} on {backend.device_of(array)} for a tensor of shape "
                             f"{self.shape}, dtype {self._data.dtype} on "
                             f"{backend.device_of(self._data)}; they must be the same")
        self._grad = array

    @property
    def _version(self):
        """How often the array may have been changed in place (as PyTorch's ``_version``)."""
        return self._version_counter.value

    # ---- facts about the array ---------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self._data.shape)

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def size(self):
        return int(self._data.size)

    @property
    def device(self):
        return backend.device_of(self._data)

    @property
    def is_leaf(self):
        return self.creator is None

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor; use .item() for its value")
        return self.shape[0]

    def __bool__(self):
        """The truth of a one-element tensor, as in NumPy and PyTorch (``if loss < 1e-3:``).

        With several elements (or none) the question "is it true?" has no single answer, so it
        is an error; ``.any()`` and ``.all()`` say which one is meant. This also keeps
        ``t in [u]`` honest: ``in`` compares with ``==``, which is elementwise here.
        """
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor with {self.size} elements (shape "
                             f"{self.shape}) is ambiguous; use .any() or .all()")
        return bool(self.item())

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor; use .item() for its value")
        return (self[i] for i in range(self.shape[0]))

    def __float__(self):
        return float(self._one_value("float()"))

    def __int__(self):
        return int(self._one_value("int()"))

    def __format__(self, spec):
        """A format spec (f"{loss:.3f}") formats the value of a one-element tensor."""
        return format(self._one_value("format"), spec) if spec else repr(self)

    def _one_value(self, what):
        if self.size != 1:
            raise ValueError(f"{what} needs a tensor with one element, not shape {self.shape}")
        return self._data.item()

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        device = "" if self.device == "cpu" else f", device='{self.device}'"
        body = np.array2string(backend.to_numpy(self._data), separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{device}{grad})"

    __hash__ = object.__hash__  # == is elementwise, so hashing stays by identity

    # ---- autodiff ----------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False, create_graph=False):
        """Back-propagate from this tensor; see :func:`minitx.autograd.backward`. The engine is
        first order: gradients are arrays, not a graph to differentiate again."""
        if create_graph:
            raise NotImplementedError("backward: create_graph=True (gradients of gradients) is "
                                      "not supported; minitx's backward passes are written on "
                                      "raw arrays, so the gradient records no graph")
        autograd.backward(self, grad, retain_graph)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self.retains_grad = True
        return self

    def detach(self):
        """Return a new leaf Tensor sharing this data (and its version), cut off from the graph."""
        detached = Tensor(self._data)
        detached._version_counter = self._version_counter
        return detached

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place on a leaf; returns self."""
        if not self.is_leaf:
            raise RuntimeError("requires_grad_ works on leaf tensors only; use detach() first")
        if requires_grad and self.dtype not in FLOAT_DTYPES:
            raise TypeError(f"only floating-point tensors can require grad, not {self.dtype}")
        self.requires_grad = requires_grad
        return self

    # ---- leaving the graph / the device ------------------------------------------------------
    def item(self):
        """Return the value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, not shape {self.shape}")
        return self._data.item()

    def numpy(self):
        """Return a NumPy copy of the data (copied to the host from a device).

        Always a copy, on every device: writing into it leaves the tensor alone (``.data`` is
        the tensor's own array).
        """
        host = backend.to_numpy(self._data)
        return host.copy() if host is self._data else host

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device):
        """Return this tensor on `device`; differentiable, and ``self`` if already there."""
        return ops.to_device(self, device)

    def astype(self, dtype):
        """Return a copy cast to `dtype` (differentiable between float types)."""
        return ops.astype(self, dtype)

    # ---- arithmetic --------------------------------------------------------------------------
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pow__(self, exponent):
        return ops.pow(self, exponent)

    def __rpow__(self, base):
        """base ** t for a positive number base: e^(t · ln base)."""
        if isinstance(base, Tensor) or not isinstance(base, (int, float, np.number)) \
                or not base > 0:
            raise TypeError(f"pow: a number base must be positive for base ** tensor, got "
                            f"{base!r}")
        if self.dtype not in FLOAT_DTYPES:
            raise TypeError(f"pow: base ** tensor needs a float tensor, got dtype {self.dtype}; "
                            f"convert it first, e.g. t.astype('float32')")
        return ops.exp(self * math.log(base))

    # ---- no in-place arithmetic: Python would make `x += y` mean x = x + y, a new tensor ------
    # Other names for x (a model's parameter, `y = x`) would keep the old one, and an update
    # `w -= lr * g` would silently change nothing: so these refuse, with the two ways to write it.
    def __iadd__(self, other):
        raise _no_in_place("+")

    def __isub__(self, other):
        raise _no_in_place("-")

    def __imul__(self, other):
        raise _no_in_place("*")

    def __itruediv__(self, other):
        raise _no_in_place("/")

    def __ipow__(self, exponent):
        raise _no_in_place("**")

    def __imatmul__(self, other):
        raise _no_in_place("@")

    def __abs__(self):
        return ops.abs(self)

    def abs(self):
        return ops.abs(self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # ---- comparisons: not differentiable, they return boolean tensors ------------------------
    def __eq__(self, other):
        return ops.compare(self, other, "eq")

    def __ne__(self, other):
        return ops.compare(self, other, "ne")

    def __lt__(self, other):
        return ops.compare(self, other, "lt")

    def __le__(self, other):
        return ops.compare(self, other, "le")

    def __gt__(self, other):
        return ops.compare(self, other, "gt")

    def __ge__(self, other):
        return ops.compare(self, other, "ge")

    # ---- logic on boolean tensors (masks) ----------------------------------------------------
    def __invert__(self):
        return ops.logical_not(self)

    def __and__(self, other):
        return ops.logical_and(self, other)

    def __or__(self, other):
        return ops.logical_or(self, other)

    # ---- elementwise functions ---------------------------------------------------------------
    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    def clip(self, low=None, high=None):
        return ops.clip(self, low, high)

    def masked_fill(self, mask, value):
        return ops.masked_fill(self, mask, value)

    # ---- reductions --------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return ops.min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, correction=1):
        return ops.var(self, axis, keepdims, correction)

    def logsumexp(self, axis=-1, keepdims=False):
        return ops.logsumexp(self, axis, keepdims)

    def argmax(self, axis=None):
        """Indices of the maxima (an int64 tensor; not differentiable)."""
        return Tensor(self._data.argmax(axis=self._arg_axis(axis, "argmax")))

    def argmin(self, axis=None):
        """Indices of the minima (an int64 tensor; not differentiable)."""
        return Tensor(self._data.argmin(axis=self._arg_axis(axis, "argmin")))

    def _arg_axis(self, axis, name):
        """argmax's / argmin's axis, checked: None (all of x) or one axis, over some values."""
        if axis is not None:
            axis = ops.common.normalize_axes(ops.common.integer(axis, "axis", name), self.ndim,
                                             name)
            axis = axis[0] if axis else None  # a 0-d tensor's axis 0 is all of it
        if (self.size if axis is None else self.shape[axis]) == 0:
            along = "" if axis is None else f" along axis {axis}"
            raise ValueError(f"{name}: a tensor of shape {self.shape} has no values{along} to "
                             f"pick from")
        return axis

    def any(self, axis=None, keepdims=False):
        """True where any element along `axis` is nonzero (a bool tensor; not differentiable)."""
        axes = ops.common.normalize_axes(axis, self.ndim, "any")
        return Tensor(self._data.any(axis=axes, keepdims=keepdims))

    def all(self, axis=None, keepdims=False):
        """True where every element along `axis` is nonzero (a bool tensor; not differentiable)."""
        axes = ops.common.normalize_axes(axis, self.ndim, "all")
        return Tensor(self._data.all(axis=axes, keepdims=keepdims))

    def softmax(self, axis=-1):
        return ops.softmax(self, axis)

    def log_softmax(self, axis=-1):
        return ops.log_softmax(self, axis)

    # ---- shape -------------------------------------------------------------------------------
    def reshape(self, *shape):
        return ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes):
        return ops.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def permute(self, *axes):
        return ops.transpose(self, axes[0] if len(axes) == 1 else axes)

    @property
    def T(self):
        return ops.transpose(self, None)

    def swapaxes(self, axis1, axis2):
        return ops.swapaxes(self, axis1, axis2)

    def squeeze(self, axis=None):
        return ops.squeeze(self, axis)

    def unsqueeze(self, axis):
        return ops.unsqueeze(self, axis)

    def flatten(self, start_axis=0, end_axis=-1):
        return ops.flatten(self, start_axis, end_axis)

    def broadcast_to(self, shape):
        return ops.broadcast_to(self, shape)

    def split(self, sections, axis=0):
        return ops.split(self, sections, axis)

    def chunk(self, chunks, axis=0):
        return ops.chunk(self, chunks, axis)


def _no_in_place(op):
    """The TypeError for `x op= y` on a Tensor (see the in-place operators above)."""
    return TypeError(f"minitx has no in-place arithmetic on Tensors: `x {op}= y` would bind x to "
                     f"a new tensor and leave other names for it (a model's parameter) as they "
                     f"were. Write `x = x {op} y` for a new tensor, or change the array itself: "
                     f"`x.data {op}= y.data` (a parameter update: `with mt.no_grad(): "
                     f"p.data -= lr * p.grad`)")


# The one sanctioned import cycle: ops and the autograd engine build Tensors, and Tensor's
# methods call them. Importing them after the class exists lets both sides refer to each other.
from minitx import autograd, ops  # noqa: E402
