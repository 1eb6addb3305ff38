"""Reverse-mode automatic differentiation: Function nodes and the backward walk.

A :class:`Function` is one differentiable operation. ``Fn.apply(*tensors, **params)`` runs
``Fn.forward`` on the raw arrays of the input Tensors and wraps the result in a Tensor whose
``creator`` is that Function instance. The instance keeps, by name, the arrays its ``backward``
needs (``self.y = y``), and for each input an :class:`Edge`: where that input's gradient goes
(its creator, or the leaf tensor itself) and what it looked like, but not its array. So an
intermediate result that no op saved is freed as soon as the forward pass moves on, as in
PyTorch; only what backward really needs stays in memory.

``loss.backward()`` then visits the graph in reverse topological order: each Function receives
dL/d(output) as a raw array and returns dL/d(input) for every input, and the engine *adds* these
contributions, so a tensor used twice collects both. Leaves (tensors made by the user, such as
parameters) keep their gradient in ``.grad``; intermediates do so only after ``retain_grad()``.

Between forward and backward the saved arrays must stay as they were: a backward that reads a
weight changed by ``w.data[:] = ...`` or ``optimizer.step()`` returns a gradient for values the
forward pass never saw. As PyTorch does, every Tensor carries a version counter (see
``Tensor.data``). ``apply`` notes the versions of each op's inputs and output, and the walk
refuses to call ``backward`` when one of them has changed since *and* the op saved that tensor's
memory (its array, or a view of it, is among the op's attributes: found by identity). Tensors
the op did not save may change freely: their values do not enter its gradient.

The engine is first-order: ``backward`` works on raw arrays, so gradients of gradients are not
available. After a backward pass each Function drops its inputs and saved arrays (the graph is
freed); a second pass through it is an error unless the first used ``retain_graph=True``.
"""

import functools
import threading
import weakref

import numpy as np

from minitx import backend
from minitx.tensor import Tensor


class _Mode(threading.local):
    """The switches of the engine, one set per thread (as in PyTorch): a data-loading or
    evaluation thread inside ``no_grad`` leaves recording on in the training thread."""

    grad_enabled = True  # recording on or off
    anomaly = False  # check every forward and backward result for NaN/inf


_mode = _Mode()


class no_grad:
    """Context manager that turns graph recording off in this thread (inference, updates).

    >>> import minitx as mt
    >>> x = mt.tensor([1.0, 2.0], requires_grad=True)
    >>> with mt.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    def __enter__(self):
        self._previous = [*getattr(self, "_previous", []), _mode.grad_enabled]  # a stack: one
        _mode.grad_enabled = False  # instance may be entered again inside itself

    def __exit__(self, *exc):
        _mode.grad_enabled = self._previous.pop()

    def __call__(self, fn):
        """As a decorator, ``@mt.no_grad()``: `fn` runs without recording a graph."""
        @functools.wraps(fn)
        def without_grad(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return without_grad


def is_grad_enabled():
    """Return True when new operations in this thread are recorded for backward."""
    return _mode.grad_enabled


class detect_anomaly:
    """Context manager that names the first op whose forward or backward made a NaN or inf.

    Inside it, every op of this thread checks its result. A forward result is reported when it
    holds NaN or inf although all of the op's inputs were finite (so the report names where the
    trouble starts); a backward result whenever it holds NaN or inf. Deliberate infinities, such
    as a ``masked_fill`` with ``-inf``, are not reported. It slows every op down: use it to debug.
    """

    def __enter__(self):
        self._previous = [*getattr(self, "_previous", []), _mode.anomaly]  # as no_grad
        _mode.anomaly = True

    def __exit__(self, *exc):
        _mode.anomaly = self._previous.pop()


def _all_finite(array):
    return bool(backend.xp_of(array).isfinite(array).all())


class Function:
    """One differentiable operation: ``forward`` and ``backward`` on raw arrays.

    Subclasses implement ``forward(self, *arrays, **params)``, saving what backward needs on
    ``self``, and ``backward(self, gy)``, which returns one gradient per input (a tuple when
    there are several; ``None`` for an input that needs none). Each gradient has its input's
    shape and dtype. ``backward`` must not write into ``gy``: it may be shared; it returns new
    arrays, or ``gy`` itself, never an array it keeps.

    ``forward`` may read ``self.needs_grad``: False when the result will not be recorded (under
    ``no_grad``, or no input requires a gradient), so work only ``backward`` uses can be skipped;
    and ``self.needs_input_grad``, one bool per input, True where a gradient will be asked for:
    an op need not save what only another input's gradient reads, nor compute a gradient no
    one will use (``backward`` returns None for it), as with a frozen layer's weights or the
    data fed to the first layer.
    """

    needs_grad = True  # set per call by apply; True for a forward called directly
    needs_input_grad = ()  # set per call by apply, before forward
    freed = False  # set once backward has run and the saved arrays are gone
    allows_inf = False  # an op may set this in forward when it makes infinities on purpose
    same_dtype = True  # all array inputs must share one dtype (no silent promotion)

    @classmethod
    def apply(cls, *inputs, **params):
        """Run the op on Tensors (``None`` allowed for optional inputs) and record it."""
        tensors = [t for t in inputs if t is not None]
        _check_inputs(cls.__name__, tensors, cls.same_dtype)
        fn = cls()
        fn.needs_grad = _mode.grad_enabled and any(t.requires_grad for t in tensors)
        fn.needs_input_grad = tuple(fn.needs_grad and t is not None and t.requires_grad
                                    for t in inputs)
        arrays = [None if t is None else t._data for t in inputs]
        out = fn.forward(*arrays, **params)  # Tensor() turns a NumPy scalar into a 0-d array
        if _mode.anomaly and not fn.allows_inf and not _all_finite(out):
            if all(_all_finite(a) for a in arrays if a is not None):
                raise FloatingPointError(f"{cls.__name__}.forward produced NaN or inf from "
                                         f"finite inputs of shapes {[t.shape for t in tensors]}")
        result = Tensor(out, requires_grad=fn.needs_grad, creator=fn if fn.needs_grad else None)
        _share_version_with_inputs(result, tensors)
        if fn.needs_grad:
            fn.edges = tuple(None if t is None else Edge(t) for t in inputs)
            fn.output, fn.output_edge = weakref.ref(result), Edge(result)
        return result

    def forward(self, *arrays, **params):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, gy):
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    def release(self):
        """Drop the edges and saved arrays once backward is done with them."""
        vars(self).clear()
        self.freed = True


class Edge:
    """What a Function remembers of one input (or of its output), without holding its array.

    ``creator`` is where the walk goes on from an intermediate tensor, ``leaf`` the leaf tensor
    whose ``.grad`` receives the gradient (each None when it does not apply). Shape, dtype and
    class check the gradient and name the tensor in errors; the version counter, the version
    at the time and the identity of the memory's owner let the walk see whether the op's saved
    arrays were changed in place since (:func:`_check_versions`).
    """

    __slots__ = ("requires_grad", "creator", "leaf", "shape", "dtype", "kind", "device",
                 "counter", "version", "owner")

    def __init__(self, t):
        self.requires_grad, self.creator = t.requires_grad, t.creator
        self.leaf = t if t.requires_grad and t.creator is None else None
        self.shape, self.dtype, self.kind = t.shape, t.dtype, type(t).__name__
        self.device = t.device
        self.counter, self.version = t._version_counter, t._version_counter.value
        self.owner = id(backend.memory_owner(t._data))  # compared only while fn's arrays live


def _share_version_with_inputs(result, tensors):
    """A result that is a view of an input (reshape, indexing, transpose) shares its memory, so
    it shares its version counter too: a later write through either one is seen by both."""
    owner = backend.memory_owner(result._data)
    for t in tensors:
        if backend.memory_owner(t._data) is owner:
            result._version_counter = t._version_counter
            return


def _check_versions(fn):
    """Refuse to run ``fn.backward`` when a tensor whose memory it saved has changed since.

    A changed version is an error only if ``fn`` saved that tensor's memory on itself (the
    tensor's array, or a view of it, among ``vars(fn)``): an op that saved nothing of an input
    (Add, Reshape) gives the right gradient whatever happens to that input later, as in
    PyTorch. The saved arrays are searched only when some version has changed. (Comparing the
    owner's identity is sound: every array fn saved was made while that owner was alive.)
    """
    edges = [(e, f"its input {i}") for i, e in enumerate(fn.edges) if e is not None]
    changed = [(e, which) for e, which in edges + [(fn.output_edge, "its output")]
               if e.counter.value != e.version]
    if not changed:
        return
    saved = set()
    for value in vars(fn).values():
        for array in value if isinstance(value, (tuple, list)) else (value,):
            if backend.is_array(array):
                saved.add(id(backend.memory_owner(array)))
    for e, which in changed:
        if e.owner in saved:
            raise RuntimeError(
                f"{type(fn).__name__}.backward needs the values its forward pass saved, but "
                f"{which} (a {e.kind} of shape {e.shape}, dtype {e.dtype}) was changed in place "
                f"since: version {e.version} then, {e.counter.value} now (a write through "
                f".data, or optimizer.step()). Between forward and backward, read values with "
                f".numpy() or .item(), and step the optimizer after backward()")


def _check_inputs(name, tensors, same_dtype):
    """Refuse inputs on different devices (never copy silently) or, usually, of mixed dtypes."""
    if not tensors:
        raise TypeError(f"{name} needs at least one Tensor input")
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} expects Tensors, got {type(t).__name__}; "
                            f"wrap arrays with minitx.tensor(...)")
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise RuntimeError(f"{name}: inputs are on different devices {sorted(devices)}; "
                           f"move them with .to(device) first")
    if same_dtype and len({t.dtype for t in tensors}) > 1:
        raise TypeError(f"{name}: inputs have different dtypes "
                        f"{[str(t.dtype) for t in tensors]}; cast one with .astype(...) first")


# --------------------------------------------------------------------------------------------
# The backward walk
# --------------------------------------------------------------------------------------------

def backward(root, grad=None, retain_graph=False):
    """Accumulate d(root)/d(leaf) into the ``.grad`` of every leaf that requires grad.

    Args:
        root: the Tensor to differentiate, usually a scalar loss.
        grad: dL/d(root), an array or Tensor of root's shape; may be left out for a scalar.
        retain_graph: keep the saved arrays so that backward can run through the graph again.
    """
    if not root.requires_grad:
        raise RuntimeError("backward() called on a tensor that does not require grad "
                           "(no input had requires_grad=True, or it was made under no_grad)")
    xp = backend.xp_of(root._data)
    if grad is None:
        if root.size != 1:
            raise RuntimeError(f"backward() without grad= works on scalars only; this tensor "
                               f"has shape {root.shape}: pass grad= of that shape, or reduce "
                               f"it first (e.g. .sum())")
        grad = xp.ones_like(root._data)
    else:
        grad = grad._data if isinstance(grad, Tensor) else grad
        if (not backend.is_array(grad) or backend.device_of(grad) != root.device
                or grad.shape != root.shape or grad.dtype != root.dtype):
            raise ValueError(f"backward(grad=...) must be an array of shape {root.shape}, dtype "
                             f"{root.dtype} on {root.device}; got {_describe(grad)}")

    given = {id(backend.memory_owner(grad))}  # memory a .grad may not take over (see below)
    if root.creator is None:  # a leaf: d(root)/d(root) = grad
        _accumulate(root, grad, given)
        return
    grads = {id(root.creator): grad}  # dL/d(output) of the Functions reached so far
    leaves = {}  # id(leaf) -> [leaf, dL/d(leaf) summed so far]
    for fn in reversed(_topological_order(root.creator)):
        g = grads.pop(id(fn))
        out = fn.output()  # the output tensor, if anyone still holds it
        if out is not None and out.retains_grad:
            _accumulate(out, g, given)
        _check_versions(fn)
        in_grads = fn.backward(g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if len(in_grads) != len(fn.edges):
            raise RuntimeError(f"{type(fn).__name__}.backward returned {len(in_grads)} "
                               f"gradient(s) for {len(fn.edges)} input(s); return one per "
                               f"input of forward (None for one without a gradient), as a "
                               f"tuple when there are several")
        for edge, gx in zip(fn.edges, in_grads):
            if edge is None or not edge.requires_grad or gx is None:
                continue
            gx = _as_array(gx)
            _check_grad(fn, edge, gx)
            if edge.creator is not None:
                key = id(edge.creator)
                grads[key] = gx if key not in grads else _as_array(grads[key] + gx)
            elif id(edge.leaf) in leaves:
                leaves[id(edge.leaf)][1] = _as_array(leaves[id(edge.leaf)][1] + gx)
            else:
                leaves[id(edge.leaf)] = [edge.leaf, gx]
        if not retain_graph:
            fn.release()
    for leaf, g in leaves.values():  # every Function is done with the gradients now
        _accumulate(leaf, g, given)


def _as_array(total):
    """NumPy turns 0-d results into scalars; gradients stay arrays, as on a GPU."""
    return np.asarray(total) if isinstance(total, np.generic) else total


def _topological_order(root_fn):
    """Functions reachable from root_fn, each after all that feed it (iterative depth-first)."""
    order, visited = [], set()
    stack = [(root_fn, False)]
    while stack:
        fn, inputs_done = stack.pop()
        if inputs_done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        if fn.freed:
            raise RuntimeError("backward through a graph that was already freed: the first "
                               "backward() freed it; pass retain_graph=True to the first call "
                               "to go through the graph twice")
        stack.append((fn, True))
        stack.extend((e.creator, False) for e in fn.edges
                     if e is not None and e.requires_grad and e.creator is not None
                     and id(e.creator) not in visited)
    return order


def _accumulate(t, g, given):
    """Add g into t.grad. The first time, t.grad takes g itself when g spans all of its memory,
    may be written (a ``broadcast_to`` view may not) and no other .grad of this pass (nor the
    caller's grad=) holds that memory; else a copy. One
    gradient may reach several tensors (Add passes it to both inputs), and a later ``+=`` or
    ``zero_grad`` on one .grad must not change another. `given` collects the memory handed out.
    """
    if t.grad is None:
        owner = backend.memory_owner(g)  # g, or the array g is a view of (a reshape, .T)
        whole = getattr(g, "nbytes", None) == getattr(owner, "nbytes", 0)  # not a slice
        writeable = getattr(g.flags, "writeable", True)  # not a read-only broadcast view
        t.grad = g if whole and writeable and id(owner) not in given else g.copy()
        given.add(id(backend.memory_owner(t.grad)))
    else:
        t.grad += g


def _check_grad(fn, x, gx):
    name = type(fn).__name__
    if not backend.is_array(gx):
        raise TypeError(f"{name}.backward returned a {type(gx).__name__} as a gradient; return "
                        f"raw arrays of the input's backend (a tuple of them for several "
                        f"inputs), not Tensors, lists or numbers")
    if backend.device_of(gx) != x.device:
        raise RuntimeError(f"{name}.backward returned a gradient on {backend.device_of(gx)} for "
                           f"an input on {x.device}")
    if gx.shape != x.shape or gx.dtype != x.dtype:
        raise RuntimeError(f"{name}.backward returned a gradient of shape {gx.shape} and dtype "
                           f"{gx.dtype} for an input of shape {x.shape} and dtype {x.dtype}")
    if _mode.anomaly and not _all_finite(gx):
        raise FloatingPointError(f"{name}.backward produced NaN or inf in the gradient of an "
                                 f"input of shape {x.shape}")


def _describe(value):
    if backend.is_array(value):
        return f"shape {value.shape}, dtype {value.dtype} on {backend.device_of(value)}"
    return type(value).__name__
