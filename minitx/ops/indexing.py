"""Indexing ops: x[index] and gather, and the cuts made with them (split, chunk, take)."""

import numpy as np

from minitx import backend
from minitx.autograd import Function
from minitx.ops.common import normalize_axes, own_copy, register, single_axis
from minitx.ops.shape import reshape
from minitx.tensor import Tensor


@register
class GetItem(Function):
    """y = x[index] (NumPy indexing).   dL/dx = zeros with g scattered to x[index].

    With integer-array indices an element may be picked several times; its gradient is then the
    sum of all the picks (scatter-add), not the last one written.
    """

    def forward(self, x, *, index, advanced):
        self.shape, self.dtype, self.advanced = x.shape, x.dtype, advanced
        self.index = own_copy(index) if self.needs_grad else None  # the caller may change it
        return x[index]

    def backward(self, g):
        gx = backend.xp_of(g).zeros(self.shape, dtype=self.dtype)
        if self.advanced:
            backend.scatter_add(gx, self.index, g)
        else:
            gx[self.index] = g  # basic indexing never repeats an element
        return gx


@register
class Gather(Function):
    """y[..., j, ...] = x[..., index[..., j, ...], ...] along one axis (PyTorch's gather).

    y has the index's shape; on the other axes the index may be shorter than x (x is then read
    from its start), as in PyTorch. dL/dx = zeros with g scatter-added at the gathered positions
    (repeats accumulate).
    """

    def forward(self, x, *, index, axis):
        xp = backend.xp_of(x)
        self.shape, self.dtype = x.shape, x.dtype
        corner = tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(index.shape))
        y = xp.take_along_axis(x[corner], index, axis=axis)  # x cut to the index's extent
        if self.needs_grad:  # the full advanced index of every gathered element, for backward
            grids = [xp.arange(n).reshape([-1 if i == d else 1 for i in range(y.ndim)])
                     for d, n in enumerate(y.shape)]
            grids[axis] = own_copy(index)  # the caller may change its index before backward
            self.positions = tuple(grids)
        return y

    def backward(self, g):
        gx = backend.xp_of(g).zeros(self.shape, dtype=self.dtype)
        return backend.scatter_add(gx, self.positions, g)


# ---- wrappers: validate the arguments, then apply ------------------------------------------


_INDEX_HELP = ("supported indices: int, slice (with step), None, Ellipsis, and integer or "
               "boolean arrays / Tensors / lists, or a tuple of these")


def _index_part(part, x):
    """One component of an index as a raw value on x's device; integer arrays are 'advanced'."""
    xp = backend.xp_of(x._data)
    if part is None or part is Ellipsis or isinstance(part, slice):
        return part, False
    if isinstance(part, bool):
        raise TypeError(f"getitem: a Python bool is not an index; {_INDEX_HELP}")
    if isinstance(part, (int, np.integer)):
        return int(part), False
    if isinstance(part, Tensor):
        if part.device != x.device:
            raise RuntimeError(f"getitem: index on {part.device}, tensor on {x.device}")
        part = part._data
    elif isinstance(part, (list, tuple)) and not part:
        part = xp.zeros(0, np.int64)  # an empty list selects nothing (not a float64 array)
    elif isinstance(part, (list, tuple)) or backend.is_array(part):
        part = xp.asarray(backend.to_numpy(part) if backend.is_array(part) else part)
    else:
        raise TypeError(f"getitem: index of type {type(part).__name__} is not supported; "
                        f"{_INDEX_HELP}")
    if part.dtype == bool and part.ndim == 0:
        raise TypeError(f"getitem: a 0-d boolean mask is not supported; {_INDEX_HELP}")
    if part.dtype.kind not in "iub":
        raise TypeError(f"getitem: index arrays must be integer or boolean, got {part.dtype}; "
                        f"{_INDEX_HELP}")
    return part, True


def getitem(x, index):
    """x[index] with NumPy's rules; repeated integer indices accumulate their gradients."""
    parts = index if isinstance(index, tuple) else (index,)
    values = [_index_part(part, x) for part in parts]
    is_mask = [advanced and value.dtype == bool for value, advanced in values]
    used = sum(value.ndim if mask else value is not None and value is not Ellipsis
               for (value, _), mask in zip(values, is_mask))  # the axes of x the index names
    raw, advanced, axis = [], False, 0
    for (value, is_advanced), mask in zip(values, is_mask):
        advanced |= is_advanced
        if value is Ellipsis:
            axis += x.ndim - used
        elif mask:  # a mask stands for the axes it covers and selects its True positions
            covered = x.shape[axis:axis + value.ndim]
            if value.shape != covered:
                raise IndexError(f"getitem: a boolean mask of shape {value.shape} at axis "
                                 f"{axis} of a tensor of shape {x.shape} must have the shape "
                                 f"of the axes it covers, {covered}")
            axis += value.ndim
            raw.extend(backend.xp_of(value).nonzero(value))
            continue
        elif value is not None:
            axis += 1
        raw.append(value)
    try:
        return GetItem.apply(x, index=tuple(raw), advanced=advanced)
    except IndexError as exc:
        raise IndexError(f"getitem: index {index!r} does not fit shape {x.shape}: {exc}") from None


def gather(x, index, axis):
    """Pick along `axis` at `index`, an integer Tensor with x's number of axes and, on every
    other axis, at most x's size (PyTorch's rule). A 0-d x is treated as one axis of size 1."""
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError("gather: index must be an integer Tensor")
    if index.ndim != x.ndim:
        raise ValueError(f"gather: index has {index.ndim} axes but x has {x.ndim} "
                         f"(shapes {index.shape} and {x.shape})")
    if index.device != x.device:
        raise RuntimeError(f"gather: index on {index.device}, tensor on {x.device}")
    if x.ndim == 0:  # one axis of size 1, as PyTorch treats a scalar
        normalize_axes(axis, 0, "gather")
        return reshape(gather(reshape(x, (1,)), reshape(index, (1,)), 0), ())
    axis = single_axis(axis, x.ndim, "gather")
    if any(i > n for d, (i, n) in enumerate(zip(index.shape, x.shape)) if d != axis):
        raise ValueError(f"gather: index of shape {index.shape} is larger than x of shape "
                         f"{x.shape} on an axis other than {axis}")
    if index.size and (int(index._data.min()) < 0 or int(index._data.max()) >= x.shape[axis]):
        raise IndexError(f"gather: indices must lie in [0, {x.shape[axis]}) along axis {axis} "
                         f"of shape {x.shape}, got values from {int(index._data.min())} to "
                         f"{int(index._data.max())}")
    return Gather.apply(x, index=index._data, axis=axis)


# ---- composites ----------------------------------------------------------------------------


def split(x, sections, axis=0):
    """Cut along `axis` into pieces of size `sections` (an int) or of the listed sizes."""
    axis = single_axis(axis, x.ndim, "split")
    n = x.shape[axis]
    if isinstance(sections, np.integer):
        sections = int(sections)
    if isinstance(sections, int) and sections < 1:
        raise ValueError(f"split: pieces of size {sections} do not cut axis {axis} of {x.shape}")
    sizes = [sections] * -(-n // sections) if isinstance(sections, int) else list(sections)
    if isinstance(sections, int):
        sizes = sizes or [0]  # an empty axis gives one empty piece, as in PyTorch
        sizes[-1] = n - sections * (len(sizes) - 1)
    if any(s < 0 for s in sizes) or sum(sizes) != n:
        raise ValueError(f"split: sizes {sizes} do not add up to {n} (axis {axis} of {x.shape})")
    pieces, start = [], 0
    for s in sizes:
        pieces.append(getitem(x, (slice(None),) * axis + (slice(start, start + s),)))
        start += s
    return pieces


def chunk(x, chunks, axis=0):
    """Cut along `axis` into `chunks` pieces of equal size (the last may be smaller)."""
    n = x.shape[single_axis(axis, x.ndim, "chunk")]
    if chunks < 1:
        raise ValueError(f"chunk: needs at least one chunk, got {chunks}")
    return split(x, max(-(-n // chunks), 1), axis)


def take(x, indices, axis=0):
    """Pick whole slices along `axis` at integer `indices` (NumPy take)."""
    axis = single_axis(axis, x.ndim, "take")
    return getitem(x, (slice(None),) * axis + (indices,))
