"""One hypothesis strategy per op in ``minitx.ops.OPS``.

Each strategy draws a :class:`Case`: the inputs (float64 arrays are differentiated, integer and
boolean ones are constants), the function to check, and a pure-NumPy reference of its forward
value. ``test_ops.py`` runs every case through a forward check and :func:`gradcheck`; a meta-test
fails when an op in ``OPS`` has no case here.

The shapes include 0-d and empty arrays (``minitx.testing.shapes``); where an op rightly refuses
one (the max of nothing), the case says which error it expects. Ops that are linear or
piecewise linear also draw their values at magnitudes up to 1e6 (``magnitudes``).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

import minitx as mt
import minitx.functional as F
from minitx import ops
from minitx.testing import (
    arrays,
    axes,
    broadcastable_shapes,
    index_arrays,
    magnitudes,
    separated_arrays,
    shapes,
)


@dataclass
class Case:
    inputs: list
    fn: Callable  # Tensors -> Tensor
    ref: Callable | None  # NumPy arrays -> NumPy array
    tol: dict = field(default_factory=dict)  # gradcheck tolerances, when the defaults are tight
    casts: bool = False  # the op's purpose is to change the dtype
    raises: type | None = None  # the op refuses these inputs with this error
    scale: float = 1.0  # the magnitude of the values: rounding errors grow with it

    def __post_init__(self):
        if self.scale != 1.0:  # an error relative to the size of products of two values
            self.tol.setdefault("atol", 1e-5 * self.scale)


def refused(inputs, fn, error=ValueError):
    """A case whose inputs the op must refuse with `error` (e.g. the max of an empty axis)."""
    return Case(inputs, fn, None, raises=error)


CASES = {}  # op class name (or composite function name) -> strategy drawing a Case

# Functions of minitx.ops that are composed of other ops (no class, no backward of their own),
# checked here like the ops: their cases are keyed by the function's name.
COMPOSITES = {"minimum", "clip", "mean", "var", "stack"}


def case(name):
    def register(strategy):
        CASES[name] = st.composite(strategy)()
        return strategy
    return register


def _np_erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


# ---- elementwise ---------------------------------------------------------------------------

def _binary(name, fn, ref, draw, low=-2.0, high=2.0):
    sa, sb = draw(broadcastable_shapes(2))
    k = draw(magnitudes())
    return Case([draw(arrays(sa, low, high, k)), draw(arrays(sb, low, high, k))], fn, ref,
                scale=k * k if name == "Mul" else k)


@case("Add")
def _add(draw):
    return _binary("Add", lambda a, b: a + b, np.add, draw)


@case("Sub")
def _sub(draw):
    return _binary("Sub", lambda a, b: a - b, np.subtract, draw)


@case("Mul")
def _mul(draw):
    return _binary("Mul", lambda a, b: a * b, np.multiply, draw)


@case("Div")
def _div(draw):
    sa, sb = draw(broadcastable_shapes(2))
    b = np.asarray(draw(arrays(sb, 0.5, 2.0)) * draw(st.sampled_from([1.0, -1.0])))
    return Case([draw(arrays(sa)), b], lambda a, b: a / b, np.divide)


def _no_ties(draw, k):
    """Two broadcastable arrays whose values never coincide (offsets 0.05 and 0.1 apart)."""
    sa, sb = draw(broadcastable_shapes(2))
    a = draw(arrays(sa, -2, 2).map(lambda x: np.asarray((np.round(x * 5) / 5 + 0.03) * k)))
    b = draw(arrays(sb, -2, 2).map(lambda x: np.asarray((np.round(x * 5) / 5 + 0.13) * k)))
    return a, b


@case("Maximum")
def _maximum(draw):
    k = draw(magnitudes())
    return Case(list(_no_ties(draw, k)), mt.maximum, np.maximum, scale=k)


@case("minimum")
def _minimum(draw):
    k = draw(magnitudes())
    return Case(list(_no_ties(draw, k)), mt.minimum, np.minimum, scale=k)


@case("Neg")
def _neg(draw):
    k = draw(magnitudes())
    return Case([draw(arrays(draw(shapes()), scale=k))], lambda x: -x, np.negative, scale=k)


@case("Pow")
def _pow(draw):
    p = draw(st.sampled_from([2, 3, -1, 0, 0.5, 1.5, -2.5]))
    return Case([draw(arrays(draw(shapes()), 0.3, 2.0))], lambda x: x ** p, lambda x: x ** p)


def _unary(fn, ref, draw, low=-2.0, high=2.0):
    return Case([draw(arrays(draw(shapes()), low, high))], fn, ref)


@case("Exp")
def _exp(draw):
    return _unary(mt.exp, np.exp, draw)


@case("Log")
def _log(draw):
    return _unary(mt.log, np.log, draw, 0.2, 3.0)


@case("Abs")
def _abs(draw):  # |x| ≥ 0.2, both signs: away from the kink at 0, where differences fail
    x = draw(arrays(draw(shapes()), 0.2, 3.0))
    signs = np.where(np.arange(x.size).reshape(x.shape) % 2, -1.0, 1.0)
    return Case([x * signs], mt.abs, np.abs)


@case("Sqrt")
def _sqrt(draw):
    return _unary(mt.sqrt, np.sqrt, draw, 0.2, 3.0)


@case("Tanh")
def _tanh(draw):
    return _unary(mt.tanh, np.tanh, draw, -3.0, 3.0)


@case("Sigmoid")
def _sigmoid(draw):
    return _unary(mt.sigmoid, lambda x: 1 / (1 + np.exp(-x)), draw, -4.0, 4.0)


@case("ReLU")
def _relu(draw):
    k = draw(magnitudes())
    return Case([draw(separated_arrays(draw(shapes()), scale=k))], F.relu,
                lambda x: np.maximum(x, 0), scale=k)


@case("GELU")
def _gelu(draw):
    x = draw(arrays(draw(shapes()), -3.0, 3.0))
    form = draw(st.sampled_from(["none", "tanh", "sigmoid"]))
    if form == "tanh":
        k = math.sqrt(2 / math.pi)
        return Case([x], lambda t: F.gelu(t, approximate="tanh"),
                    lambda x: 0.5 * x * (1 + np.tanh(k * (x + 0.044715 * x ** 3))))
    if form == "sigmoid":
        return Case([x], lambda t: F.gelu(t, approximate="sigmoid"),
                    lambda x: x / (1 + np.exp(-1.702 * x)))
    return Case([x], F.gelu, lambda x: x * 0.5 * (1 + _np_erf(x / math.sqrt(2))))


@case("clip")
def _clip(draw):
    x = draw(separated_arrays(draw(shapes()), offset=0.07))  # never exactly on a bound
    return Case([x], lambda t: t.clip(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5))


@case("Where")
def _where(draw):
    sc, sa, sb = draw(broadcastable_shapes(3))
    cond = draw(index_arrays(2, sc)).astype(bool)
    k = draw(magnitudes())
    return Case([cond, draw(arrays(sa, scale=k)), draw(arrays(sb, scale=k))],
                lambda c, a, b: mt.where(c, a, b), np.where, scale=k)


@case("MaskedFill")
def _masked_fill(draw):
    shape = draw(shapes())
    mshape = tuple(draw(st.sampled_from([1, n])) for n in shape)[draw(st.integers(0, len(shape))):]
    mask = draw(index_arrays(2, mshape)).astype(bool)
    k = draw(magnitudes())
    return Case([draw(arrays(shape, scale=k)), mask], lambda x, m: x.masked_fill(m, -3.0),
                lambda x, m: np.where(m, -3.0, x), scale=k)


@case("Astype")
def _astype(draw):
    # float64 -> float32 -> float64: linear, so a wide step beats float32 rounding noise
    return Case([draw(arrays(draw(shapes())))],
                lambda x: x.astype("float32").astype("float64"),
                lambda x: x.astype(np.float32).astype(np.float64),
                tol={"eps": 1e-2, "atol": 1e-4}, casts=True)


@case("ToDevice")
def _to_device(draw):
    def there_and_back(x):
        other = "strict" if x.device == "cpu" else "cpu"
        return (x.to(other) * 2.0).to(x.device)
    return Case([draw(arrays(draw(shapes())))], there_and_back, lambda x: 2 * x)


# ---- reductions ----------------------------------------------------------------------------

def _reduced(shape, axis):
    """How many elements each output element of a reduction over `axis` sums up."""
    if not shape or axis is None:
        return int(np.prod(shape))
    axis = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axis]))


def _np_axis(shape, axis):
    """NumPy's spelling of a minitx axis: a 0-d array has no axis 0 / -1 to reduce there."""
    return None if not shape else axis


def _reduction(fn, ref, draw, values=None, empty_ok=True):
    shape = draw(shapes())
    axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
    k = draw(magnitudes())
    x = draw(values(shape, scale=k) if values else arrays(shape, scale=k))
    if not empty_ok and _reduced(shape, axis) == 0:  # e.g. the max of nothing
        return refused([x], lambda t: fn(t, axis, keepdims))
    return Case([x], lambda t: fn(t, axis, keepdims),
                lambda a: ref(a, axis=_np_axis(shape, axis), keepdims=keepdims), scale=k)


@case("Sum")
def _sum(draw):
    return _reduction(ops.sum, np.sum, draw)


@case("mean")
def _mean(draw):
    return _reduction(ops.mean, np.mean, draw)


@case("Max")
def _max(draw):
    return _reduction(ops.max, np.max, draw, separated_arrays, empty_ok=False)


@case("Min")
def _min(draw):
    return _reduction(ops.min, np.min, draw, separated_arrays, empty_ok=False)


@case("var")
def _var(draw):
    shape = draw(shapes(min_side=2))
    axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
    c = draw(st.sampled_from([0, 1]))
    x = draw(arrays(shape))
    if _reduced(shape, axis) - c <= 0:  # no degrees of freedom left
        return refused([x], lambda t: ops.var(t, axis, keepdims, c))
    return Case([x], lambda t: ops.var(t, axis, keepdims, c),
                lambda a: np.var(a, axis=_np_axis(shape, axis), keepdims=keepdims, ddof=c))


@case("LogSumExp")
def _logsumexp(draw):
    def ref(a, axis, keepdims):
        if a.ndim == 0:
            return a
        if a.size == 0:  # log of an empty sum
            return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))
        m = np.max(a, axis=axis, keepdims=True)
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
        return out if keepdims else np.squeeze(out, axis=axis)
    shape = draw(shapes())
    axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
    return Case([draw(arrays(shape, -3, 3))], lambda t: ops.logsumexp(t, axis, keepdims),
                lambda a: ref(a, axis if axis is not None else tuple(range(a.ndim)), keepdims))


# ---- matmul --------------------------------------------------------------------------------

def _side(draw):
    """A matrix side: 1 to 4, and now and then 0 (an empty product)."""
    return draw(st.one_of(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.just(0)))


@case("MatMul")
def _matmul(draw):
    n, k, m = (_side(draw) for _ in range(3))
    ba, bb = draw(broadcastable_shapes(2, max_dims=2, max_side=3))
    a_shape = (k,) if draw(st.integers(0, 4)) == 0 else ba + (n, k)
    b_shape = (k,) if draw(st.integers(0, 4)) == 0 else bb + (k, m)
    s = draw(magnitudes())
    return Case([draw(arrays(a_shape, scale=s)), draw(arrays(b_shape, scale=s))],
                lambda a, b: a @ b, np.matmul, scale=s * s)


@case("Linear")
def _linear(draw):
    lead = draw(shapes(min_dims=0, max_dims=3))
    k, m = _side(draw), _side(draw)
    s = draw(magnitudes())
    x, W = draw(arrays(lead + (k,), scale=s)), draw(arrays((m, k), scale=s))
    if draw(st.booleans()):
        return Case([x, W], F.linear, lambda a, w: a @ w.T, scale=s * s)
    return Case([x, W, draw(arrays((m,), scale=s * s))], F.linear,
                lambda a, w, b: a @ w.T + b, scale=s * s)


# ---- shape ---------------------------------------------------------------------------------

@case("Reshape")
def _reshape(draw):
    shape = draw(shapes())
    size = int(np.prod(shape))
    target = draw(st.sampled_from([(size,), (-1,), tuple(reversed(shape)), (1, size)] + (
        [(size, 1, -1)] if size else [(0, 2, 0)])))
    return Case([draw(arrays(shape))], lambda t: t.reshape(target),
                lambda a: a.reshape(target))


@case("Transpose")
def _transpose(draw):
    shape = draw(shapes())
    perm = tuple(draw(st.permutations(range(len(shape)))))
    k = draw(magnitudes())
    return Case([draw(arrays(shape, scale=k))], lambda t: t.transpose(perm),
                lambda a: a.transpose(perm), scale=k)


@case("BroadcastTo")
def _broadcast_to(draw):
    shape = draw(shapes())
    target = tuple(draw(st.lists(st.integers(1, 3), max_size=2))) + tuple(
        draw(st.integers(1, 3)) if n == 1 else n for n in shape)
    return Case([draw(arrays(shape))], lambda t: t.broadcast_to(target),
                lambda a: np.broadcast_to(a, target))


@st.composite
def basic_index(draw, shape):
    """A tuple of ints, slices (with steps), None and at most one Ellipsis fitting `shape`."""
    parts = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "all"] if n else ["all"]))
        if kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            parts.append(slice(draw(st.integers(0, n - 1)), None,
                               draw(st.sampled_from([1, 2, -1]))))
        else:
            parts.append(slice(None))
        if draw(st.integers(0, 5)) == 0:
            parts.append(None)
    if parts and draw(st.booleans()):
        parts = parts[:draw(st.integers(0, len(parts)))] + [Ellipsis]
    return tuple(parts)


@case("GetItem")
def _getitem(draw):
    shape = draw(shapes(min_dims=1))
    k = draw(magnitudes())
    kind = draw(st.sampled_from(["basic", "array", "mask", "mixed"] if 0 not in shape
                                else ["basic", "mask"]))
    if kind == "basic":
        index = draw(basic_index(shape))
    elif kind == "array":  # repeats must accumulate
        index = draw(index_arrays(shape[0], draw(shapes(max_dims=2))))
    elif kind == "mask":
        index = draw(index_arrays(2, shape)).astype(bool)
    else:
        index = (slice(None),) * (len(shape) - 1) + (
            draw(index_arrays(shape[-1], (draw(st.integers(1, 5)),))),)
    return Case([draw(arrays(shape, scale=k))], lambda t: t[index], lambda a: a[index],
                scale=k)


@case("Gather")
def _gather(draw):
    shape = draw(shapes())
    k = draw(magnitudes())
    x = draw(arrays(shape, scale=k))
    if not shape:  # a scalar is one axis of size 1, as in PyTorch
        return Case([x, np.zeros((), np.int64)], lambda t, i: ops.gather(t, i, 0), lambda a, i: a)
    axis = draw(st.integers(0, len(shape) - 1))
    # the index may be shorter than x on the other axes (PyTorch's rule), never longer
    ishape = tuple(draw(st.integers(0 if n == 0 else 1, 4)) if i == axis
                   else draw(st.integers(min(n, 1), n)) for i, n in enumerate(shape))
    if shape[axis] == 0:
        ishape = ishape[:axis] + (0,) + ishape[axis + 1:]
    index = draw(index_arrays(shape[axis], ishape))
    corner = tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(ishape))
    return Case([x, index], lambda t, i: ops.gather(t, i, axis),
                lambda a, i: np.take_along_axis(a[corner], i, axis), scale=k)


@case("Concat")
def _concat(draw):
    shape = draw(shapes(min_dims=1))
    axis = draw(st.integers(0, len(shape) - 1))
    xs = [draw(arrays(shape[:axis] + (draw(st.integers(1, 3)),) + shape[axis + 1:]))
          for _ in range(draw(st.integers(1, 3)))]
    return Case(xs, lambda *ts: mt.concat(ts, axis), lambda *a: np.concatenate(a, axis))


@case("stack")
def _stack(draw):
    shape = draw(shapes())
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    xs = [draw(arrays(shape)) for _ in range(draw(st.integers(1, 3)))]
    return Case(xs, lambda *ts: mt.stack(ts, axis), lambda *a: np.stack(a, axis))


@case("Pad")
def _pad(draw):
    shape = draw(shapes(min_dims=1))
    widths = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in shape)
    return Case([draw(arrays(shape))], lambda t: ops.pad(t, widths, 0.5),
                lambda a: np.pad(a, widths, constant_values=0.5))


@case("Roll")
def _roll(draw):
    shape = draw(shapes(min_dims=1))
    if draw(st.booleans()):
        axis, shift = draw(st.integers(0, len(shape) - 1)), draw(st.integers(-5, 5))
    else:
        axis = tuple(range(len(shape)))
        shift = tuple(draw(st.integers(-5, 5)) for _ in shape)
    return Case([draw(arrays(shape))], lambda t: ops.roll(t, shift, axis),
                lambda a: np.roll(a, shift, axis))
