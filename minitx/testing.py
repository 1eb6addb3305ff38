"""Gradient checks and hypothesis strategies, public so you can check your own ops the way the
test suite checks the built-in ones.

:func:`gradcheck` compares backward against central finite differences in float64. It sends a
*random* upstream gradient v through backward and compares ⟨v, J u⟩ both ways: a check that only
differentiates ``sum(f(x))`` (v = 1) passes a softmax whose backward returns zeros, because the
rows of softmax always sum to 1.

>>> import minitx as mt
>>> import numpy as np
>>> gradcheck(mt.tanh, np.linspace(-1.0, 1.0, 5))
True
"""

import numpy as np

from minitx import backend
from minitx.tensor import Tensor

try:  # the strategies need hypothesis (the `test` extra); gradcheck does not
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # pragma: no cover - exercised only without the test extra
    st = hnp = None


class GradcheckError(AssertionError):
    """Backward disagrees with finite differences; the message says where."""


LAYOUTS = ("contiguous", "strided", "transposed")


def _make_tensor(array, device, layout, requires_grad):
    """A Tensor over `array` on `device`, its data laid out in memory as `layout` says.

    "contiguous": row-major. "strided": a slice that takes every other element of memory along
    the last axis. "transposed": column-major, the layout a ``swapaxes`` of a row-major array
    has (results computed from it keep that order, so a ``reshape`` of them copies instead of
    viewing). The two non-contiguous layouts apply on the host and strict devices, where a view
    can be wrapped as it is; they catch an op that writes into a reshaped array and so into a
    copy.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"gradcheck: layout must be one of {LAYOUTS}, got {layout!r}")
    device, array = backend.normalize_device(device), np.asarray(array)
    if layout != "contiguous" and array.ndim > 0 and device in ("cpu", "strict"):
        if layout == "strided":
            wide = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
            wide[..., ::2] = array
            view = wide[..., ::2]  # the same values, every other element of memory
        else:
            view = np.asfortranarray(array)  # the same values, the first axis varying fastest
        data = view if device == "cpu" else backend.StrictArray(view)
    else:
        data = backend.to_device(array.copy(), device)  # fn must not reach gradcheck's copy
    return Tensor(data, requires_grad=requires_grad)


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0, device="cpu",
              layout="contiguous", max_full=256, directions=4):
    """Check the gradients of ``fn(*inputs)`` against central finite differences.

    Float inputs must be float64; they are differentiated. Integer and boolean inputs (indices,
    masks) are passed through as constant Tensors. With v a random upstream gradient and
    L(x) = ⟨v, fn(x)⟩, each float input's gradient is compared:

    * with every element's central difference (L(x + ε eⱼ) − L(x − ε eⱼ)) / 2ε, when the input
      has at most `max_full` elements (so each element of v·J is checked);
    * otherwise along `directions` random directions u: ⟨grad, u⟩ against
      (L(x + ε u) − L(x − ε u)) / 2ε.

    The step ε is `eps` times the input's largest magnitude when that exceeds 1: a step of
    1e-6 on values near 1e6 would be lost in their rounding (their ulp is about 1e-10).

    Args:
        fn: takes Tensors, returns one Tensor.
        inputs: NumPy arrays (or Tensors, copied to the host).
        device: where to run ("cpu", "strict", "cuda").
        layout: "contiguous", or "strided" / "transposed" to pass non-contiguous arrays as data
            (see :data:`LAYOUTS`).
    Returns:
        True; raises :class:`GradcheckError` naming the input, element and both values.
    """
    rng = np.random.default_rng(seed)
    host = [x.numpy() if isinstance(x, Tensor) else np.array(x) for x in inputs]  # copies
    diff = [x.dtype.kind == "f" for x in host]
    for i, x in enumerate(host):
        if diff[i] and x.dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} has dtype {x.dtype}; finite differences "
                             f"need float64")

    def loss(arrays, v):
        out = fn(*[_make_tensor(a, device, layout, False) for a in arrays])
        return float(np.sum(v * out.numpy()))

    tensors = [_make_tensor(x, device, layout, d) for x, d in zip(host, diff)]
    out = fn(*tensors)
    for i, (x, t) in enumerate(zip(host, tensors)):
        if not np.array_equal(backend.to_numpy(t._data), x, equal_nan=x.dtype.kind == "f"):
            raise GradcheckError(f"gradcheck: fn wrote into input {i}; an op must not change "
                                 f"its inputs (earlier ops may have saved them for backward)")
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    v = rng.standard_normal(out.shape)
    if not out.requires_grad:
        raise GradcheckError("gradcheck: the output does not require grad; fn lost the graph")
    out.backward(backend.to_device(v.astype(out.dtype), out.device))

    for i, (x, t) in enumerate(zip(host, tensors)):
        if not diff[i]:
            continue
        step = eps * max(1.0, float(np.abs(x).max()) if x.size else 1.0)
        analytic = np.zeros_like(x) if t.grad is None else backend.to_numpy(t.grad)

        def shifted(delta, i=i):
            return [h + delta if j == i else h for j, h in enumerate(host)]

        if x.size <= max_full:
            numeric = np.zeros_like(x)
            for j in range(x.size):
                e = np.zeros(x.size)
                e[j] = step
                e = e.reshape(x.shape)
                numeric.flat[j] = (loss(shifted(e), v) - loss(shifted(-e), v)) / (2 * step)
            _compare(f"input {i} (shape {x.shape})", analytic, numeric, atol, rtol)
        else:
            for _ in range(directions):
                u = rng.standard_normal(x.shape)
                numeric = (loss(shifted(step * u), v) - loss(shifted(-step * u), v)) / (2 * step)
                _compare(f"input {i} (shape {x.shape}) along a random direction",
                         np.array([np.sum(analytic * u)]), np.array([numeric]), atol, rtol,
                         where=False)
    return True


def _compare(what, analytic, numeric, atol, rtol, where=True):
    """A GradcheckError unless |analytic − numeric| ≤ atol + rtol·|numeric| everywhere. A NaN on
    either side is a mismatch (a NaN compares False with everything, so it would pass a plain
    `error > 0` test); equal infinities agree. `where`: name the element (not for a direction)."""
    error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    error = np.where(analytic == numeric, -1.0, np.where(np.isnan(error), np.inf, error))
    if error.size and error.max() > 0:
        worst = np.unravel_index(int(np.argmax(error)), error.shape)
        at = f" at element {tuple(int(w) for w in worst)}" if where else ""
        raise GradcheckError(
            f"gradient mismatch for {what}{at}: analytic {analytic[worst]:.8g} vs numeric "
            f"{numeric[worst]:.8g} (atol {atol}, rtol {rtol})")


# --------------------------------------------------------------------------------------------
# Hypothesis strategies
# --------------------------------------------------------------------------------------------

def _need_hypothesis():
    if st is None:
        raise ImportError("minitx.testing strategies need hypothesis: pip install -e .[test]")


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4, empty=True):
    """Array shapes: the 0-d shape () (when min_dims is 0), size-1 axes and, with `empty`,
    about one shape in four with an axis of size 0 (an empty array)."""
    _need_hypothesis()
    full = hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)
    if not empty or max_dims == 0:
        return full
    emptied = hnp.array_shapes(min_dims=max(min_dims, 1), max_dims=max_dims, min_side=min_side,
                               max_side=max_side).flatmap(
        lambda s: st.integers(0, len(s) - 1).map(lambda i: s[:i] + (0,) + s[i + 1:]))
    return st.integers(0, 3).flatmap(lambda i: emptied if i == 0 else full)


def broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4, empty=True):
    """Tuples of `num_shapes` shapes that broadcast together (missing and size-1 axes); with
    `empty`, about one tuple in four may hold axes of size 0 (which broadcast with 1)."""
    _need_hypothesis()

    def draw(min_side):
        return hnp.mutually_broadcastable_shapes(
            num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
            max_side=max_side).map(lambda r: r.input_shapes)
    return st.integers(0, 3).flatmap(lambda i: draw(int(i > 0 or not empty)))


def magnitudes():
    """A scale for test values: 1, 1e3 or 1e6. Ops that are linear or piecewise linear (sums,
    products, max, ReLU, indexing) must work at every scale; multiply their test arrays by it.
    """
    _need_hypothesis()
    return st.sampled_from([1.0, 1.0, 1e3, 1e6])


def arrays(shape, low=-2.0, high=2.0, scale=1.0):
    """float64 arrays with values in [low, high] · scale: finite and well-conditioned."""
    _need_hypothesis()
    return hnp.arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False,
                                                            allow_infinity=False)).map(
        lambda a: np.asarray(a * scale) if scale != 1.0 else a)


def separated_arrays(shape, offset=0.05, spacing=0.1, bound=40, scale=1.0):
    """float64 arrays of distinct values on the grid (offset + k·spacing) · scale (|k| ≤ bound).

    Distinct values keep max/min away from ties, and a non-zero offset keeps ReLU and clip off
    their kinks: finite differences are exact only where the function is smooth.
    """
    _need_hypothesis()
    size = int(np.prod(shape))
    return st.lists(st.integers(-bound, bound), min_size=size, max_size=size,
                    unique=True).map(
        lambda ks: ((np.array(ks, dtype=np.float64) * spacing + offset) * scale).reshape(shape))


def index_arrays(size, shape):
    """int64 arrays of `shape` with values in [0, size), repeats allowed (size may be 0 only
    for an empty shape)."""
    _need_hypothesis()
    if size == 0 and 0 not in tuple(shape):
        raise ValueError(f"index_arrays: no index fits an axis of size 0, shape {shape}")
    return hnp.arrays(np.int64, shape, elements=st.integers(0, max(size, 1) - 1))


def axes(ndim):
    """An axis argument for an ndim-d array: None, an int (maybe negative) or a tuple; a 0-d
    array takes None, 0 or −1 (as in PyTorch)."""
    _need_hypothesis()
    if ndim == 0:
        return st.sampled_from([None, 0, -1])
    single = st.integers(-ndim, ndim - 1)
    several = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(
        tuple)
    return st.one_of(st.none(), single, several)
