"""minitx.ops.special.erf against math.erf: float64 to a few ulp, float32 to its fit's 1.2e-7."""

import math

import numpy as np
import pytest

from minitx import backend
from minitx.ops.special import _erf_fit, erf


def exact(x):
    return np.array([math.erf(v) for v in x.reshape(-1)]).reshape(x.shape)


def test_float64_erf_within_1e_15_on_a_dense_grid():
    x = np.linspace(-10.0, 10.0, 200_001)  # step 1e-4, both sides of the switch at |x| = 2
    x = np.concatenate([x, np.nextafter(2.0, [0.0, 4.0]), -np.nextafter(2.0, [0.0, 4.0]),
                        np.geomspace(1e-300, 1e-3, 50)])
    error = np.abs(erf(x) - exact(x))
    assert error.max() <= 1e-15
    ulps = error / np.spacing(np.abs(exact(x)))
    assert ulps.max() <= 6  # "a few ulp", relative to each value, tiny ones included


def test_float64_erf_special_values(device):
    x = backend.to_device(np.array([np.inf, -np.inf, 0.0, -0.0, 30.0, np.nan]), device)
    y = backend.to_numpy(erf(x))
    np.testing.assert_array_equal(y[:5], [1.0, -1.0, 0.0, -0.0, 1.0])
    assert np.signbit(y[3]) and np.isnan(y[5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_is_odd_and_keeps_dtype_and_shape(dtype, device):
    x = np.random.default_rng(0).uniform(-5, 5, (3, 0, 2)).astype(dtype)
    for a in (x, np.random.default_rng(1).uniform(-5, 5, (4, 7)).astype(dtype), np.array(1.5,
                                                                                      dtype)):
        y = backend.to_numpy(erf(backend.to_device(a, device)))
        assert y.dtype == dtype and y.shape == a.shape
        np.testing.assert_array_equal(backend.to_numpy(erf(backend.to_device(-a,
                                                                                     device))), -y)


def test_float32_keeps_the_fast_fit():
    x = np.linspace(-6, 6, 10_001)
    assert np.abs(_erf_fit(x) - exact(x)).max() < 1.2e-7  # the fit's own accuracy
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(erf(x32), _erf_fit(x32))  # float32 takes the fit
    # float32 arithmetic inside the fit adds its own rounding (a few float32 ulp)
    assert np.abs(erf(x32) - exact(x32.astype(np.float64))).max() < 5e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_on_strict_equals_cpu(dtype):
    x = np.random.default_rng(0).standard_normal((3, 1000)).astype(dtype) * 3
    for a in (x, x.T, x[:, ::2]):  # contiguous and strided
        on_strict = erf(backend.to_device(np.ascontiguousarray(a), "strict"))
        np.testing.assert_array_equal(backend.to_numpy(on_strict), erf(a))
