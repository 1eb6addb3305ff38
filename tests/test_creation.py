"""Creation functions: the dtype a user gets without asking is the one NumPy's rules suggest,
in minitx's float32 default, on the requested device."""

import numpy as np
import pytest

import minitx as mt


@pytest.mark.parametrize("args, dtype, values", [
    ((4,), np.int64, [0, 1, 2, 3]),
    ((2, 8, 3), np.int64, [2, 5]),
    ((0, 1, 0.25), np.float32, [0.0, 0.25, 0.5, 0.75]),  # a float step: floats, not zeros
    ((1.5,), np.float32, [0.0, 1.0]),
    ((np.int32(3),), np.int64, [0, 1, 2]),
])
def test_arange_infers_integer_or_float(args, dtype, values):
    t = mt.arange(*args)
    assert t.dtype == dtype
    np.testing.assert_allclose(t.numpy(), values)


def test_arange_honours_dtype_and_device(device):
    t = mt.arange(3, dtype=np.float64, device=device)
    assert t.dtype == np.float64 and t.device == device
    np.testing.assert_array_equal(t.numpy(), [0.0, 1.0, 2.0])


@pytest.mark.parametrize("make", [mt.zeros, mt.ones, mt.randn, mt.rand])
def test_float_creation_defaults_to_float32(make, device):
    t = make((2, 3), device=device)
    assert t.dtype == np.float32 and t.shape == (2, 3) and t.device == device


# ---- sizes as PyTorch takes them: f(2, 3), f((2, 3)) or f([2, 3]) ----------------------------

SIZED = {"zeros": mt.zeros, "ones": mt.ones, "empty": mt.empty, "randn": mt.randn,
         "rand": mt.rand}


@pytest.mark.parametrize("name", SIZED)
@pytest.mark.parametrize("size, shape", [
    ((2, 3), (2, 3)), (((2, 3),), (2, 3)), (([2, 3],), (2, 3)), ((4,), (4,)), ((), ()),
    (((),), ()), ((0, 5), (0, 5)), ((np.int64(2), 3), (2, 3)),
])
def test_sized_creation_takes_ints_a_tuple_or_a_list(name, size, shape, device):
    t = SIZED[name](*size, dtype=np.float64, device=device, requires_grad=True)
    assert t.shape == shape and t.dtype == np.float64 and t.device == device and t.requires_grad


@pytest.mark.parametrize("name, value", [("zeros", 0.0), ("ones", 1.0)])
def test_zeros_and_ones_hold_their_value(name, value, device):
    np.testing.assert_array_equal(SIZED[name](2, 3, device=device).numpy(), np.full((2, 3), value))


@pytest.mark.parametrize("name", SIZED)
@pytest.mark.parametrize("size, error, words", [
    ((2, -1), ValueError, "non-negative"),
    ((2.0, 3), TypeError, "integers"),
    (((2, 3), 4), TypeError, "not both"),
    (("3",), TypeError, "integers"),
    ((True,), TypeError, "integers"),
    (((2, 3.5),), TypeError, "integers"),
])
def test_bad_sizes_are_refused_naming_the_function(name, size, error, words):
    with pytest.raises(error, match=f"{name}: .*{words}"):
        SIZED[name](*size)


def test_randn_and_rand_draw_the_same_numbers_for_either_spelling():
    a = mt.randn(2, 3, generator=np.random.default_rng(1))
    b = mt.randn((2, 3), generator=np.random.default_rng(1))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    u = mt.rand([4], generator=np.random.default_rng(2)).numpy()
    assert ((0 <= u) & (u < 1)).all()


@pytest.mark.parametrize("value, dtype", [(7, np.int64), (0.5, np.float32), (True, np.bool_)])
def test_full_takes_a_size_then_a_value_and_infers_the_dtype(value, dtype, device):
    t = mt.full((2, 3), value, device=device)
    assert t.shape == (2, 3) and t.dtype == dtype and t.device == device
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), value))
    assert mt.full(4, value).shape == (4,)
    assert mt.full([2, 2], value, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("size", [(2, -3), 2.5, ((2,), 3)])
def test_full_refuses_bad_sizes(size):
    with pytest.raises((TypeError, ValueError), match="full: "):
        mt.full(size, 1.0)


@pytest.mark.parametrize("make, args, value", [
    (mt.zeros_like, (), 0), (mt.ones_like, (), 1), (mt.full_like, (3.5,), 3.5),
    (mt.empty_like, (), None),
])
def test_like_functions_copy_shape_dtype_and_device_unless_told(make, args, value, device):
    x = mt.tensor(np.ones((2, 3), np.float64), device=device)
    t = make(x, *args)
    assert t.shape == (2, 3) and t.dtype == np.float64 and t.device == device
    if value is not None:
        np.testing.assert_array_equal(t.numpy(), np.full((2, 3), value))
    other = make(x, *args, dtype=np.float32, device="cpu", requires_grad=True)
    assert other.dtype == np.float32 and other.device == "cpu" and other.requires_grad
    with pytest.raises(TypeError, match="_like"):
        make(np.ones(3), *args)
