"""Ops that move values around without changing them: reshape, transpose, indexing, joins.

Each backward sends every gradient value back to the place its value came from: reshape and
transpose undo themselves, indexing scatters (adding where an index repeats), concatenation splits.
The composites at the end (swapaxes, squeeze, split, take, ...) are built from these ops.
"""

import numpy as np

from minitx import backend
from minitx.autograd import Function
from minitx.ops.common import (
    broadcast_shapes,
    check_scalar,
    integer,
    normalize_axes,
    own_copy,
    register,
    single_axis,
    unbroadcast,
)
from minitx.tensor import Tensor


@register
class Reshape(Function):
    """y = x with a new shape (same elements, row-major order).   dL/dx = reshape(g, x.shape)."""

    def forward(self, x, *, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


@register
class Transpose(Function):
    """y = x with its axes permuted: y.shape[i] = x.shape[axes[i]].   dL/dx = g with the inverse
    permutation, which sends axis i back to axes[i]."""

    def forward(self, x, *, axes):
        self.inverse = tuple(sorted(range(len(axes)), key=lambda i: axes[i]))
        return x.transpose(axes)

    def backward(self, g):
        return g.transpose(self.inverse)


@register
class BroadcastTo(Function):
    """y = x repeated along new leading axes and along its size-1 axes.   dL/dx = Σ over them."""

    def forward(self, x, *, shape):
        self.shape = x.shape
        return backend.xp_of(x).broadcast_to(x, shape)

    def backward(self, g):
        return unbroadcast(g, self.shape)


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


@register
class Concat(Function):
    """y = [x₁, x₂, ...] joined along an axis.   dL/dxᵢ = the slice of g where xᵢ was placed."""

    def forward(self, *xs, axis):
        self.axis, self.sizes = axis, [x.shape[axis] for x in xs]
        return backend.xp_of(xs[0]).concatenate(xs, axis=axis)

    def backward(self, g):
        out, start = [], 0
        for size in self.sizes:
            index = (slice(None),) * self.axis + (slice(start, start + size),)
            out.append(g[index])
            start += size
        return tuple(out)


@register
class Pad(Function):
    """y = x surrounded by a constant; pad_width[i] = (before, after) on axis i.

    dL/dx = the part of g that covers x (the padding is constant).
    """

    def forward(self, x, *, pad_width, value):
        self.inside = tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape))
        if x.ndim == 0:  # no axis to pad (NumPy's pad refuses an empty pad_width)
            return x.copy()
        return backend.xp_of(x).pad(x, pad_width, mode="constant", constant_values=value)

    def backward(self, g):
        return g[self.inside]


@register
class Roll(Function):
    """y = x shifted cyclically by `shift` along `axis`.   dL/dx = g shifted back by −shift."""

    def forward(self, x, *, shift, axis):
        self.shift, self.axis = shift, axis
        return backend.xp_of(x).roll(x, shift, axis=axis)

    def backward(self, g):
        back = tuple(-s for s in self.shift) if isinstance(self.shift, tuple) else -self.shift
        return backend.xp_of(g).roll(g, back, axis=self.axis)


# ---- wrappers: validate the arguments, then apply ------------------------------------------


def reshape(x, shape):
    """Give x a new shape with the same number of elements (one axis may be -1)."""
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    shape = tuple(integer(n, "a size", "reshape") for n in shape)
    if any(n < -1 for n in shape):
        raise ValueError(f"reshape: sizes must be non-negative (or one -1), got {shape}")
    known = 1
    for n in shape:
        known *= n if n != -1 else 1
    free = shape.count(-1)
    if free == 1 and known == 0:
        raise ValueError(f"reshape: cannot infer the -1 in {shape} for a tensor of shape "
                         f"{x.shape}: with another size 0, any size fits")
    if free > 1 or (free == 0 and known != x.size) or (free == 1 and x.size % max(known, 1)):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} "
                         f"elements) to {shape}")
    return Reshape.apply(x, shape=shape)


def transpose(x, axes=None):
    """Permute the axes; None reverses them."""
    if axes is None:
        return Transpose.apply(x, axes=tuple(reversed(range(x.ndim))))
    given = tuple(integer(a, "an axis", "transpose") for a in axes)
    if any(not -max(x.ndim, 1) <= a < max(x.ndim, 1) for a in given):
        raise ValueError(f"transpose: axes {given} are out of range for a tensor of shape "
                         f"{x.shape}")
    axes = tuple(a % max(x.ndim, 1) for a in given)  # -1 is the last axis
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {given} are not a permutation of the {x.ndim} axes "
                         f"of a tensor of shape {x.shape}")
    return Transpose.apply(x, axes=axes)


def broadcast_to(x, shape):
    """Repeat x along new leading axes and its size-1 axes to reach `shape`."""
    shape = tuple(shape)
    if len(shape) < x.ndim or broadcast_shapes("broadcast_to", x.shape, shape) != shape:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return BroadcastTo.apply(x, shape=shape)


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


def _check_join(name, xs, axis, same_axis):
    if not xs:
        raise ValueError(f"{name}: needs at least one tensor")
    shapes = [x.shape for x in xs]
    for s in shapes:
        rest = [n for i, n in enumerate(s) if i != axis or not same_axis]
        first = [n for i, n in enumerate(shapes[0]) if i != axis or not same_axis]
        if len(s) != len(shapes[0]) or rest != first:
            where = f"outside axis {axis}" if same_axis else "(stack needs one shape)"
            raise ValueError(f"{name}: shapes {shapes} differ {where}")


def concat(xs, axis=0):
    """Join tensors along an existing axis."""
    xs = list(xs)
    axis = single_axis(axis, xs[0].ndim, "concat") if xs else axis
    _check_join("concat", xs, axis, same_axis=True)
    return Concat.apply(*xs, axis=axis)


def stack(xs, axis=0):
    """Join tensors of one shape along a new axis: each gets that axis (size 1), then concat.

    Its gradient, g taken at position i of the new axis for xᵢ, comes from Concat and Reshape.
    """
    xs = list(xs)
    _check_join("stack", xs, None, same_axis=False)
    axis = single_axis(axis, xs[0].ndim + 1, "stack")  # one new axis: a tuple is refused
    return concat([unsqueeze(x, axis) for x in xs], axis)


def pad(x, pad_width, value=0.0):
    """Pad with a constant; pad_width is ((before, after), ...) per axis, as in NumPy."""
    check_scalar(value, "pad", x.dtype)
    try:
        pairs = tuple((b, a) for b, a in pad_width)
    except (TypeError, ValueError):
        pairs = None
    if (pairs is None or len(pairs) != x.ndim
            or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0
                       for pair in pairs for n in pair)):
        raise ValueError(f"pad: pad_width needs one pair of non-negative integers (before, "
                         f"after) per axis of shape {x.shape}, got {pad_width!r}")
    pad_width = tuple((int(b), int(a)) for b, a in pairs)
    return Pad.apply(x, pad_width=pad_width, value=value)


def roll(x, shift, axis):
    """Shift cyclically along `axis` (shift and axis may be tuples, as in NumPy)."""
    if isinstance(shift, tuple) != isinstance(axis, tuple):
        raise ValueError("roll: give shift and axis both as ints or both as tuples")
    if isinstance(axis, tuple) and len(axis) != len(shift):
        raise ValueError(f"roll: {len(shift)} shifts for {len(axis)} axes")
    for a in axis if isinstance(axis, tuple) else (axis,):
        single_axis(a, x.ndim, "roll")
    return Roll.apply(x, shift=shift, axis=axis)


# ---- composites ----------------------------------------------------------------------------


def swapaxes(x, axis1, axis2):
    """Exchange two axes (a transpose)."""
    axes = list(range(x.ndim))
    if x.ndim == 0:  # axes 0 and -1 name the scalar's one implicit axis: nothing to swap
        normalize_axes((axis1,), 0, "swapaxes"), normalize_axes((axis2,), 0, "swapaxes")
        return transpose(x, ())
    a, b = single_axis(axis1, x.ndim, "swapaxes"), single_axis(axis2, x.ndim, "swapaxes")
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, axes)


def squeeze(x, axis=None):
    """Drop axes of size 1 (all of them when axis is None)."""
    axes = normalize_axes(axis, x.ndim, "squeeze")
    if axis is not None and any(x.shape[a] != 1 for a in axes):
        raise ValueError(f"squeeze: axis {axis} of shape {x.shape} does not have size 1")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))


def unsqueeze(x, axis):
    """Insert axes of size 1 so that they sit at the positions `axis` (an int or a tuple) of
    the result, as NumPy's expand_dims does: (2, 3, 4) with axis (0, 1) gives (1, 1, 2, 3, 4)."""
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    axes = normalize_axes(axes, x.ndim + len(axes), "unsqueeze")  # positions in the result
    sizes = iter(x.shape)  # x's own sizes fill the other positions, in order
    return reshape(x, tuple(1 if i in axes else next(sizes) for i in range(x.ndim + len(axes))))


def flatten(x, start_axis=0, end_axis=-1):
    """Merge the axes start_axis..end_axis (inclusive) into one."""
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = (single_axis(a, x.ndim, "flatten") for a in (start_axis, end_axis))
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} "
                         f"for a tensor of shape {x.shape}")
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1:])


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
