"""The Tensor object itself: truth values, len, what numpy() hands out, a hand-set .grad, and
how its operators treat NumPy scalars, copies and in-place arithmetic."""

import operator
import re

import numpy as np
import pytest

import minitx as mt
from minitx import backend, optim

# ---- truth values, as in NumPy and PyTorch ---------------------------------------------------


@pytest.mark.parametrize("values, truth", [
    (0.0, False), (2.5, True), ([0.0], False), ([[3.0]], True), (True, True), ([False], False),
])
def test_a_one_element_tensor_has_the_truth_of_its_element(device, values, truth):
    t = mt.tensor(values, device=device)
    assert bool(t) is truth
    assert bool(t) is bool(np.asarray(values))


@pytest.mark.parametrize("values", [[1.0, 2.0], [[True], [False]], np.zeros((0,)), []])
def test_the_truth_of_several_or_no_elements_is_an_error(device, values):
    t = mt.tensor(values, device=device)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)
    with pytest.raises(ValueError, match="ambiguous"):
        if t:
            pass


def test_in_compares_elementwise_and_refuses_an_ambiguous_answer(device):
    a = mt.tensor([1.0, 2.0], device=device)
    b = mt.tensor([3.0, 4.0], device=device)
    with pytest.raises(ValueError, match="ambiguous"):
        a in [b]  # noqa: B015  (`in` is what is tested)
    assert a in [a]  # identity first, as for every Python object
    assert mt.tensor(1.0, device=device) in [mt.tensor(1.0, device=device)]
    assert mt.tensor(1.0, device=device) not in [mt.tensor(2.0, device=device)]


def test_len_of_a_0d_tensor_is_a_type_error_and_of_others_the_first_side(device):
    with pytest.raises(TypeError, match="0-d"):
        len(mt.tensor(1.0, device=device))
    assert len(mt.zeros((3, 2), device=device)) == 3


def test_any_and_all(device):
    t = mt.tensor([[True, False], [True, True]], device=device)
    assert bool(t.any()) and not bool(t.all())
    np.testing.assert_array_equal(t.all(axis=1).numpy(), [False, True])
    np.testing.assert_array_equal(t.any(axis=0, keepdims=True).numpy(), [[True, True]])


# ---- numpy() is a copy on every device --------------------------------------------------------

def test_numpy_returns_a_copy_that_does_not_write_back(device):
    w = mt.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    host = w.numpy()
    assert isinstance(host, np.ndarray)
    host[:] = 0
    np.testing.assert_array_equal(backend.to_numpy(w.data), [1.0, 2.0, 3.0])
    assert not np.shares_memory(w.numpy(), w.numpy())


def test_numpy_of_a_parameter_leaves_the_layer_alone(device):
    from minitx import nn
    layer = nn.Linear(2, 2).to(device)
    before = layer.weight.numpy().copy()
    layer.weight.numpy()[:] = 0
    np.testing.assert_array_equal(layer.weight.numpy(), before)


def test_python_number_protocols_of_a_one_element_tensor(device):
    t = mt.tensor([2.5], device=device)
    assert float(t) == 2.5 and int(mt.tensor(7, device=device)) == 7
    assert f"{mt.tensor(0.123456, device=device):.3f}" == "0.123"
    with pytest.raises(ValueError, match=r"float\(\) needs a tensor with one element"):
        float(mt.tensor([1.0, 2.0], device=device))
    x = mt.tensor(2.0, requires_grad=True, device=device)
    y = 2 ** x  # e^(x ln 2): dy/dx = 2^x ln 2
    y.backward()
    assert np.isclose(y.item(), 4.0) and np.isclose(float(backend.to_numpy(x.grad)),
                                                    4 * np.log(2))
    with pytest.raises(TypeError, match="base must be positive"):
        (-2) ** x


def test_iterating_gives_the_rows_and_a_0d_tensor_refuses(device):
    rows = list(mt.tensor([[1.0, 2.0], [3.0, 4.0]], device=device))
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(mt.tensor(1.0, device=device))


@pytest.mark.parametrize("data", [None, "abc", [mt.tensor(1.0), mt.tensor(2.0)]])
def test_tensor_refuses_data_that_is_not_numbers(data):
    with pytest.raises(TypeError, match="tensor: cannot make a tensor of"):
        mt.tensor(data)


def test_no_grad_as_a_decorator():
    x = mt.tensor([1.0], requires_grad=True)

    @mt.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad and (x * 2).requires_grad


def test_numpy_integers_serve_as_axes_sizes_and_indices(device):
    t = mt.arange(6.0, device=device)
    assert t[np.int64(1)].item() == 1.0
    assert t.reshape(np.int64(2), 3).sum(np.int64(0)).shape == (3,)
    assert t[[]].shape == (0,)  # an empty list selects nothing
    with pytest.raises(TypeError, match="sum: axis must be an int, got bool"):
        t.sum(True)  # not axis 1


def test_a_gradient_set_by_hand_must_match_the_tensor(device):
    w = mt.zeros(8, device=device, requires_grad=True)
    xp = backend.xp_for(device)
    # Adam's compiled loop read past the end of a (2,) gradient; SGD broadcast a (3,) one
    for wrong in (xp.ones(2, np.float32), xp.ones((2, 4), np.float32), xp.ones(8, np.float64)):
        with pytest.raises(ValueError, match=r"Tensor.grad: a gradient of shape .* for a tensor "
                                             r"of shape \(8,\), dtype float32"):
            w.grad = wrong
    with pytest.raises(TypeError, match="Tensor.grad must be an array of a backend or None"):
        w.grad = [0.0] * 8
    w.grad = xp.ones(8, np.float32)
    optim.Adam([w], lr=0.1).step()
    assert np.allclose(w.numpy(), -0.1)
    scalar = mt.tensor(1.0, requires_grad=True)
    scalar.grad = np.float32(2.0)  # NumPy's scalar becomes a 0-d array
    assert isinstance(scalar.grad, np.ndarray) and scalar.grad.shape == ()


# ---- operators and copies --------------------------------------------------------------------


def test_a_numpy_scalar_compares_as_the_python_number_does(device):
    """Arithmetic casts a number to the tensor's dtype, NumPy scalar or not; comparisons too."""
    t = mt.tensor([0.1, 0.2], device=device)  # float32
    for number in (0.1, np.float64(0.1), np.float32(0.1)):
        np.testing.assert_array_equal((t == number).numpy(), [True, False])
        np.testing.assert_array_equal((t != number).numpy(), [False, True])
        np.testing.assert_array_equal((number < t).numpy(), [False, True])
    assert (mt.tensor([1], device=device) < np.float64(1.5)).item()  # by value for integers


def test_masked_fill_keeps_a_large_integer_exact(device):
    t = mt.tensor([0, 0], device=device)  # int64
    filled = t.masked_fill(mt.tensor([True, False], device=device), 2**62 + 1)
    assert filled.tolist() == [2**62 + 1, 0]
    with pytest.raises(TypeError, match="does not fit a tensor of dtype int8"):
        t.astype(np.int8).masked_fill(mt.tensor([True, False], device=device), 200)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_astype_to_the_same_dtype_is_a_copy(device, dtype):
    x = mt.tensor([1, 2], dtype=dtype, device=device)
    y = x.astype(dtype)
    y.data[:] = 7
    assert x.tolist() == [1, 2] and y.dtype == dtype


@pytest.mark.parametrize("op, update", [
    ("+", operator.iadd), ("-", operator.isub), ("*", operator.imul), ("/", operator.itruediv),
    ("**", operator.ipow), ("@", operator.imatmul)])
def test_in_place_arithmetic_on_a_tensor_is_an_error(device, op, update):
    """`w op= v` would bind w to a new tensor and leave other names for it (the model's
    parameter) as they were: it must fail, not update nothing."""
    w = mt.tensor([1.0, 2.0], device=device, requires_grad=True)
    other = 2 if op == "**" else mt.tensor([2.0, 2.0], device=device)
    op = re.escape(op)
    with pytest.raises(TypeError, match=rf"no in-place arithmetic on Tensors: `x {op}= y`.*"
                                        rf"`x = x {op} y`.*`x\.data {op}= y\.data`.*"
                                        r"p\.data -= lr \* p\.grad"):
        with mt.no_grad():
            update(w, other)
    assert w.tolist() == [1.0, 2.0]


def test_a_parameter_update_is_written_with_data(device):
    w = mt.tensor([1.0, 2.0], device=device, requires_grad=True)
    parameter = w  # as a model holds it
    with pytest.raises(TypeError, match="no in-place arithmetic"), mt.no_grad():
        w -= 0.5
    assert w is parameter
    with mt.no_grad():
        w.data -= 0.5  # the array, changed in place
    np.testing.assert_allclose(parameter.numpy(), [0.5, 1.5])
    y = w
    w = w + 1.0  # a new tensor, written out
    assert y.tolist() == [0.5, 1.5] and w.tolist() == [1.5, 2.5]
