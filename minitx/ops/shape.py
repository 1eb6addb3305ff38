"""Ops that move values around without changing them: reshape, transpose, joins.

Each backward sends every gradient value back to the place its value came from: reshape and
transpose undo themselves, concatenation splits. The composites at the end (swapaxes, squeeze,
flatten, ...) are built from these ops. Indexing (getitem, gather, and the split, chunk and take
made with it) is in :mod:`minitx.ops.indexing`.
"""

import numpy as np

from minitx import backend
from minitx.autograd import Function
from minitx.ops.common import (
    broadcast_shapes,
    check_scalar,
    integer,
    normalize_axes,
    register,
    single_axis,
    unbroadcast,
)


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


# Indexing (GetItem, Gather, getitem, gather) and the split, chunk and take made with it are in
# minitx/ops/indexing.py.


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
