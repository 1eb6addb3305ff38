"""The backward engine: accumulation, broadcasting, graph freeing, depth, memory, grad modes."""

import gc
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

import minitx as mt
import minitx.functional as F
from minitx import backend
from minitx.autograd import Function


def leaf(values, device, dtype=np.float64):
    return mt.tensor(np.asarray(values, dtype=dtype), device=device, requires_grad=True)


def grad(t):
    return backend.to_numpy(t.grad)


def test_a_tensor_used_twice_collects_both_gradients(device):
    x = leaf([1.0, 2.0, 3.0], device)
    y = (x * x + x * 3.0).sum()  # dy/dx = 2x + 3
    y.backward()
    np.testing.assert_allclose(grad(x), [5.0, 7.0, 9.0])


def test_same_tensor_as_both_operands(device):
    x = leaf([2.0, -1.0], device)
    (x * x).sum().backward()
    np.testing.assert_allclose(grad(x), [4.0, -2.0])


def test_backward_accumulates_across_calls_until_reset(device):
    x = leaf([1.0, 2.0], device)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(grad(x), [5.0, 5.0])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(grad(x), [3.0, 3.0])


@pytest.mark.parametrize("shape, loss", [((1,), lambda w: w.mean()), ((), lambda w: w.sum() * 2),
                                         ((4, 1), lambda w: w.sum(1) * 2)])
def test_a_gradient_from_a_broadcast_view_accumulates_and_can_be_clipped(device, shape, loss):
    """Sum's backward over axes of size 1 (or a 0-d input) hands back a read-only broadcast
    view; the leaf's .grad must still be an array that the next pass and clipping write into."""
    from minitx import optim
    w = leaf(np.ones(shape), device)
    loss(w).sum().backward()
    first = grad(w).copy()
    loss(w).sum().backward()  # accumulates into .grad
    np.testing.assert_allclose(grad(w), 2 * first)
    optim.clip_grad_norm_([w], 1e-3)
    assert np.linalg.norm(grad(w)) == pytest.approx(1e-3)


def test_broadcasting_gradient_sums_over_broadcast_axes(device):
    a = leaf(np.ones((2, 3)), device)
    b = leaf(np.ones((3,)), device)
    c = leaf(np.ones((2, 1)), device)
    (a * b * c).sum().backward()
    assert grad(b).shape == (3,) and grad(c).shape == (2, 1)
    np.testing.assert_allclose(grad(b), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(grad(c), [[3.0], [3.0]])


def test_leaf_grad_is_not_shared_with_another_leaf(device):
    """a + b hands the same upstream array to both; each leaf must own its .grad."""
    a, b = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    (a + b).sum().backward()
    a.grad *= 10  # e.g. gradient clipping in place
    np.testing.assert_allclose(grad(b), [1.0, 1.0])


def test_second_backward_through_a_freed_graph_is_an_error(device):
    x = leaf([1.0, 2.0], device)
    y = (x.exp() * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward(device):
    x = leaf([1.0, 2.0], device)
    y = (x.exp()).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(grad(x), 2 * np.exp([1.0, 2.0]))


def test_non_scalar_backward_needs_grad(device):
    x = leaf([1.0, 2.0], device)
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"shape \(2,\)"):
        y.backward()
    y.backward(backend.to_device(np.array([1.0, -1.0]), device))
    np.testing.assert_allclose(grad(x), [2.0, -2.0])


def test_backward_grad_of_wrong_shape_is_an_error(device):
    y = leaf([1.0, 2.0], device) * 2.0
    with pytest.raises(ValueError, match="shape"):
        y.backward(backend.to_device(np.ones(3), device))


def test_retain_grad_keeps_intermediate_gradients(device):
    x = leaf([1.0, 2.0], device)
    h = (x * 3.0).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(grad(h), 2 * 3.0 * np.array([1.0, 2.0]))
    np.testing.assert_allclose(grad(x), 18.0 * np.array([1.0, 2.0]))


def test_intermediates_keep_no_grad_by_default(device):
    x = leaf([1.0], device)
    h = x * 2.0
    (h * 1.0).sum().backward()
    assert h.grad is None and x.grad is not None


def test_no_grad_records_nothing(device):
    x = leaf([1.0, 2.0], device)
    with mt.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.creator is None
    assert mt.is_grad_enabled()


def _in_other_thread(context, make_context):
    """Run `context` in the main thread while a worker thread sits inside `make_context()`;
    return what `context` returned and what the worker saw inside its block."""
    entered, release, seen = threading.Event(), threading.Event(), {}

    def worker():
        with make_context():
            seen["grad"] = mt.is_grad_enabled()
            try:
                with np.errstate(invalid="ignore"):
                    mt.tensor([-1.0]).log()  # NaN from a finite input: anomaly mode reports it
                seen["anomaly"] = False
            except FloatingPointError:
                seen["anomaly"] = True
            entered.set()
            release.wait(timeout=10)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert entered.wait(timeout=10)
        result = context()  # the worker is inside its block now
    finally:
        release.set()
        thread.join()
    return result, seen


def test_no_grad_in_another_thread_leaves_this_one_recording(device):
    x = leaf([1.0, 2.0], device)

    def record():
        assert mt.is_grad_enabled()
        return x * 3.0

    y, seen = _in_other_thread(record, mt.no_grad)
    assert seen["grad"] is False  # the worker itself was under no_grad
    assert y.requires_grad and y.creator is not None
    y.sum().backward()
    np.testing.assert_allclose(grad(x), [3.0, 3.0])


@pytest.mark.filterwarnings("ignore:invalid value encountered in log")
def test_detect_anomaly_in_another_thread_does_not_check_this_one(device):
    x = leaf([1.0, -1.0], device)
    y, seen = _in_other_thread(lambda: x.log(), mt.detect_anomaly)  # NaN, unchecked here
    assert seen["anomaly"] is True
    assert np.isnan(y.numpy()[1])


def test_detach_cuts_the_graph(device):
    x = leaf([1.0, 2.0], device)
    y = (x.detach() * x).sum()  # d/dx = detached x only
    y.backward()
    np.testing.assert_allclose(grad(x), [1.0, 2.0])


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        mt.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        mt.tensor([1, 2]).requires_grad_()


def test_a_chain_of_20000_ops_backpropagates_without_recursion():
    x = mt.tensor(np.array([0.5]), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001 ** 20_000], rtol=1e-9)


def test_training_iterations_keep_memory_flat():
    """2,000 steps of a small model: the graph is freed each step, nothing accumulates."""
    rng = np.random.default_rng(0)
    W = mt.tensor(rng.normal(size=(16, 8)).astype(np.float32), requires_grad=True)
    x = mt.tensor(rng.normal(size=(32, 8)).astype(np.float32))
    target = mt.tensor(rng.integers(0, 16, 32))

    def step():
        loss = F.cross_entropy(F.linear(x, W).tanh(), target)
        loss.backward()
        with mt.no_grad():
            W.data -= 0.01 * W.grad
        W.grad = None

    def live_graph_objects():
        gc.collect()
        return sum(isinstance(o, (mt.Tensor, Function)) for o in gc.get_objects())

    for _ in range(50):
        step()
    objects_before = live_graph_objects()
    tracemalloc.start()
    for _ in range(200):
        step()
    early, _ = tracemalloc.get_traced_memory()
    for _ in range(1800):
        step()
    late, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Python keeps up to 2,000 freed small tuples per size on a free list, which tracemalloc
    # still counts (~110 kB); a leaked graph would cost kilobytes per step, megabytes in all.
    assert late - early < 256 * 1024, f"memory grew by {late - early} bytes over 1,800 steps"
    assert live_graph_objects() == objects_before, "Tensors or Functions were kept alive"
    assert gc.collect() == 0, "reference cycles were created"


def test_function_releases_saved_arrays_after_backward():
    x = mt.tensor(np.ones(3), requires_grad=True)
    y = x.exp()
    fn = y.creator
    y.sum().backward()
    assert fn.freed and not hasattr(fn, "y") and not hasattr(fn, "edges")


def test_the_graph_keeps_only_what_ops_saved():
    """An intermediate no op saved (the output of an Add, read by a Sum) is freed after the
    forward pass, as in PyTorch; the gradient is the same."""
    x = mt.tensor(np.arange(1000.0), requires_grad=True)
    h = x + 1.0  # Add saves nothing of its result, Sum needs only the shape
    freed = weakref.ref(h._data)
    y = h.sum()
    del h
    gc.collect()
    assert freed() is None
    y.backward()
    np.testing.assert_array_equal(x.grad, np.ones(1000))


def test_leaves_sharing_one_gradient_get_their_own_arrays():
    """Add passes one gradient to both inputs: each leaf's .grad must be its own array, so that
    scaling one (clip_grad_norm_, zero_grad) leaves the other alone."""
    a, b = (mt.tensor(np.ones(3), requires_grad=True) for _ in range(2))
    upstream = np.full(3, 2.0)
    (a + b).backward(upstream)
    a.grad *= 10
    np.testing.assert_array_equal(b.grad, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(upstream, [2.0, 2.0, 2.0])  # the caller's array untouched


def _counting(monkeypatch, name):
    """Count the calls of minitx.kernels.<name> from now on."""
    from minitx import kernels
    calls, original = [], getattr(kernels, name)
    monkeypatch.setattr(kernels, name, lambda *args: calls.append(name) or original(*args))
    return calls


def test_a_frozen_weight_is_neither_kept_for_nor_differentiated(monkeypatch):
    """Linear with W frozen: the node does not keep its input (only dL/dW reads it), backward
    runs no dL/dW product, and dL/dx is the unfrozen layer's."""
    rng = np.random.default_rng(0)
    x = mt.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    W = mt.tensor(rng.standard_normal((3, 4)))  # frozen
    h = x * 2.0  # read only by the Linear
    kept = weakref.ref(h._data)
    y = F.linear(h, W).sum()
    del h
    gc.collect()
    assert kept() is None
    products = _counting(monkeypatch, "matmul_summed")
    y.backward()
    assert products == [] and W.grad is None
    np.testing.assert_allclose(x.grad, 2.0 * np.ones((5, 3)) @ W.numpy())


def test_the_data_fed_to_a_layer_gets_no_gradient_product(monkeypatch):
    """x without requires_grad (a batch of data): backward computes dL/dW and dL/db only."""
    rng = np.random.default_rng(1)
    x = mt.tensor(rng.standard_normal((6, 4)))
    W = mt.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = mt.tensor(np.zeros(3), requires_grad=True)
    y = F.linear(x, W, b)
    upstream = rng.standard_normal((6, 3))
    products = _counting(monkeypatch, "matmul")
    y.backward(upstream)
    assert products == []
    np.testing.assert_allclose(W.grad, upstream.T @ x.numpy())
    np.testing.assert_allclose(b.grad, upstream.sum(axis=0))


@pytest.mark.parametrize("op", ["mul", "div", "matmul"])
@pytest.mark.parametrize("constant", [0, 1])
def test_an_operand_without_grad_gets_none_and_the_other_its_gradient(op, constant, device):
    """Each binary op with one constant operand: the variable's gradient is the formula's (the
    same as when both require one), the constant's stays None."""
    rng = np.random.default_rng(2)
    a_data, b_data = rng.uniform(0.5, 2.0, (3, 3)), rng.uniform(0.5, 2.0, (3, 3))
    f = {"mul": lambda a, b: a * b, "div": lambda a, b: a / b, "matmul": lambda a, b: a @ b}[op]

    def grads(requires):
        a, b = (mt.tensor(d, device=device, requires_grad=r) for d, r in zip((a_data, b_data),
                                                                             requires))
        (f(a, b) * mt.tensor(np.arange(9.0).reshape(3, 3), device=device)).sum().backward()
        return [None if t.grad is None else backend.to_numpy(t.grad) for t in (a, b)]

    both = grads((True, True))
    one = grads(tuple(i != constant for i in range(2)))
    assert one[constant] is None
    np.testing.assert_allclose(one[1 - constant], both[1 - constant], rtol=1e-12)


def test_backward_must_return_one_array_per_input_on_the_inputs_device():
    class Three(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, g):
            return g, g, g

    class Number(Function):
        def forward(self, a):
            return a * 2

        def backward(self, g):
            return 3.0

    class OnTheHost(Function):
        def forward(self, a):
            return a * 2

        def backward(self, g):
            return backend.to_numpy(g) * 2

    a, b = (mt.tensor([1.0, 2.0], requires_grad=True) for _ in range(2))
    with pytest.raises(RuntimeError, match=r"Three.backward returned 3 gradient\(s\) for 2"):
        Three.apply(a, b).sum().backward()
    with pytest.raises(TypeError, match="Number.backward returned a float as a gradient"):
        Number.apply(a).sum().backward()
    s = mt.tensor([1.0, 2.0], device="strict", requires_grad=True)
    with pytest.raises(RuntimeError, match="OnTheHost.backward returned a gradient on cpu for an "
                                           "input on strict"):
        OnTheHost.apply(s).sum().backward()


def test_one_context_instance_entered_inside_itself_restores_the_state():
    ctx, anomaly = mt.no_grad(), mt.detect_anomaly()
    with ctx, anomaly:
        with ctx, anomaly:
            assert not mt.is_grad_enabled()
    assert mt.is_grad_enabled()
    x = mt.tensor([1.0], requires_grad=True)
    with pytest.raises(NotImplementedError, match="create_graph=True .* is not supported"):
        (x * 2).sum().backward(create_graph=True)


# ---- index arrays, conditions and masks that an op saves for backward ------------------------
# Each case returns (y, the array the op was given, new values to write into it). These reach
# an op as parameters, not inputs, so no version counter watches them: the op keeps a copy.


def index_with_numpy_array(x):
    index = np.array([0, 1])
    return x[index], index, [2, 3]


def index_with_tensor(x):
    index = mt.tensor([0, 1], device=x.device)
    return x[index], index.data, [2, 3]


def index_with_mask(x):
    mask = mt.tensor([True, True, False, False], device=x.device)
    return x[mask], mask.data, [False, False, True, True]


def where_condition(x):
    cond = mt.tensor([True, True, False, False], device=x.device)
    return mt.where(cond, x, 0.0), cond.data, [False, False, True, True]


def gather_index(x):
    index = mt.tensor([0, 1], device=x.device)
    return F.gather(x, index, 0), index.data, [2, 3]


def embedding_indices(x):
    indices = mt.tensor([0, 1], device=x.device)
    return F.embedding(indices, x.reshape(4, 1)).reshape(-1), indices.data, [2, 3]


@pytest.mark.parametrize("case", [index_with_numpy_array, index_with_tensor, index_with_mask,
                                  where_condition, gather_index, embedding_indices],
                         ids=lambda case: case.__name__)
def test_changing_an_index_or_condition_after_forward_leaves_the_gradient_alone(case, device):
    """The gradient goes where the forward pass took the values from, as if nothing changed."""
    grads = []
    for change in (False, True):
        x = leaf([1.0, 2.0, 3.0, 4.0], device)
        y, given, new_values = case(x)
        if change:
            given[:] = new_values
        (y * mt.tensor(10.0 * np.arange(1, y.size + 1), device=device)).sum().backward()
        grads.append(grad(x))
    np.testing.assert_array_equal(grads[1], grads[0])
