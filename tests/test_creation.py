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
