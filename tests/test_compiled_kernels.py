"""The compiled float32 loops (minitx.kernels.compiled, numba) against the NumPy spelling of the
same formula in float64, on random shapes and values, with ±∞, NaN and fully masked rows, and
on strided input (which must give the bits of a contiguous copy)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitx import kernels

pytest.importorskip("numba")


@pytest.fixture(autouse=True)
def compiled_on():
    kernels.set_compiled(True)
    yield
    kernels.set_compiled(None)


def reference(fn, *arrays, **params):
    """fn in NumPy on float64 copies of the float32 arrays (other dtypes kept)."""
    kernels.set_compiled(False)
    try:
        return fn(*(a.astype(np.float64) if a is not None and a.dtype == np.float32 else a
                    for a in arrays), **params)
    finally:
        kernels.set_compiled(True)


def close(got, want, scale=1.0, rtol=3e-5):
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


@st.composite
def rows(draw, special=True, min_rows=0):
    """A float32 (rows, n) array with values of a drawn scale, perhaps with ±∞ and NaN."""
    shape = (draw(st.integers(min_rows, 5)), draw(st.integers(1, 37)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    scale = draw(st.sampled_from([1e-3, 1.0, 8.0, 60.0]))
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    if special and draw(st.booleans()) and x.size:
        flat = x.reshape(-1)
        flat[rng.integers(0, x.size, 3)] = rng.choice([np.inf, -np.inf, np.nan], 3)
    return x


def strided(x):
    """x's values in a non-contiguous layout (every other column of a wider array)."""
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), x.dtype)
    wide[:, ::2] = x
    return wide[:, ::2]


@pytest.mark.parametrize("approximate", ["none", "tanh", "sigmoid"])
@given(x=rows(), data=st.data())
def test_gelu_and_backward(approximate, x, data):
    g = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    y = kernels.gelu(x, approximate)
    close(y, reference(kernels.gelu, x, approximate=approximate), np.abs(x[np.isfinite(x)],
                                                                         ).max(initial=1))
    gx = kernels.gelu_backward(x, g, approximate)
    close(gx, reference(kernels.gelu_backward, x, g, approximate=approximate), 4.0)
    np.testing.assert_array_equal(kernels.gelu(strided(x), approximate), y)
    np.testing.assert_array_equal(kernels.gelu_backward(strided(x), g, approximate), gx)


@given(x=rows())
def test_softmax_and_backward(x):
    x[0:1] = -np.inf  # a fully masked row (when there is a row)
    y = kernels.softmax(x)
    close(y, reference(kernels.softmax, x))
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    y = np.nan_to_num(y)
    close(kernels.softmax_backward(g, y), reference(kernels.softmax_backward, g, y), 4.0)
    np.testing.assert_array_equal(kernels.softmax(strided(x)), kernels.softmax(x))


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@given(x=rows(), data=st.data())
def test_layer_norm_and_backward(affine, center, x, data):
    rng = np.random.default_rng(2)
    w, b = ((rng.standard_normal(x.shape[1]).astype(np.float32) for _ in range(2)) if affine
            else (None, None))
    g = rng.standard_normal(x.shape).astype(np.float32)
    y, mean, rstd = kernels.layer_norm(x, w, b, 1e-5, center)
    want_y, want_mean, want_rstd = reference(kernels.layer_norm, x, w, b, eps=1e-5,
                                             center=center)
    close(y, want_y, 4.0, rtol=2e-4)  # float32 x̂ of a wide-ranging row: a few 1e-5
    close(mean, want_mean, np.abs(x[np.isfinite(x)]).max(initial=1))
    close(rstd, want_rstd, rtol=2e-4)
    got = kernels.layer_norm_backward(g, x, mean, rstd, w, affine, center)
    want = reference(kernels.layer_norm_backward, g, x, mean, rstd, w, with_bias=affine,
                     center=center)
    for a, c in zip(got, want):
        assert (a is None) == (c is None)
        if a is not None:
            close(a, c, 4.0 * max(1, x.shape[0]), rtol=2e-4)
    np.testing.assert_array_equal(kernels.layer_norm(strided(x), w, b, 1e-5, center)[0], y)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@given(z=rows(min_rows=1), data=st.data())
def test_cross_entropy_and_backward(smoothing, z, data):
    rng = np.random.default_rng(3)
    target = rng.integers(0, z.shape[1], z.shape[0])
    weight = rng.uniform(0, 1, z.shape[0]).astype(np.float32)
    loss, lse = kernels.cross_entropy(z, target, smoothing)
    want_loss, want_lse = reference(kernels.cross_entropy, z, target, smoothing=smoothing)
    scale = np.abs(z[np.isfinite(z)]).max(initial=1)
    close(loss, want_loss, scale)
    np.testing.assert_allclose(lse, want_lse, rtol=3e-6, atol=3e-6 * scale)
    gz = kernels.cross_entropy_backward(z, lse, target, weight, smoothing)
    close(gz, reference(kernels.cross_entropy_backward, z, want_lse, target, weight,
                        smoothing=smoothing))


@given(x=rows(), p=st.floats(0.0, 0.9))
def test_masked_scale_is_numpys_product_bit_for_bit(x, p):
    keep = np.random.default_rng(4).uniform(size=x.shape) >= p
    kernels.set_compiled(False)
    want = kernels.masked_scale(x, keep, 1 / (1 - p))
    kernels.set_compiled(True)
    np.testing.assert_array_equal(kernels.masked_scale(x, keep, 1 / (1 - p)), want)


@given(g=rows(), y=rows())
def test_relu_backward_is_numpys_product_bit_for_bit(g, y):
    y = np.maximum(y[: g.shape[0], : g.shape[1]], 0)  # an output of ReLU, up to g's shape
    g = g[: y.shape[0], : y.shape[1]]
    np.testing.assert_array_equal(kernels.relu_backward(g, y), g * (y > 0))
    np.testing.assert_array_equal(kernels.relu_backward(strided(g), y), g * (y > 0))


@pytest.mark.parametrize("amsgrad", [False, True])
@given(param=rows(special=False, min_rows=1))
def test_adam_update(amsgrad, param):
    rng = np.random.default_rng(5)
    grad = rng.standard_normal(param.shape).astype(np.float32)
    m = rng.standard_normal(param.shape).astype(np.float32)
    v = rng.uniform(0, 1, param.shape).astype(np.float32)
    v_max = rng.uniform(0, 1, param.shape).astype(np.float32) if amsgrad else None
    hyper = dict(beta1=0.9, beta2=0.999, step_size=1e-2 / 0.271, bias2_sqrt=0.0547, eps=1e-8)
    state = [a.astype(np.float64) for a in (param, grad, m, v)]
    state_max = None if v_max is None else v_max.astype(np.float64)
    reference(lambda *a, **k: kernels.adam_update(*a, **k), *state, v_max=state_max, **hyper)
    kernels.adam_update(param, grad, m, v, v_max=v_max, **hyper)
    for got, want in zip((param, m, v), (state[0], state[2], state[3])):
        close(got, want, 1.0)


def test_set_compiled_refuses_a_non_boolean():
    with pytest.raises(ValueError, match="set_compiled"):
        kernels.set_compiled("yes")


def test_float64_never_takes_the_compiled_loops(monkeypatch):
    calls = []
    monkeypatch.setattr(kernels.compiled, "softmax", lambda *a: calls.append(a))
    kernels.softmax(np.ones((2, 3)))
    assert calls == []
    kernels.softmax(np.ones((2, 3), np.float32))
    assert len(calls) == 1


def test_the_environment_turns_them_off(monkeypatch):
    monkeypatch.setenv("MINITX_COMPILED", "0")
    kernels.set_compiled(None)  # the default again: read the environment
    assert not kernels.compiled_enabled()
    monkeypatch.delenv("MINITX_COMPILED")
    kernels.set_compiled(None)
    assert kernels.compiled_enabled()


@pytest.mark.parametrize("compiled", [True, False])
def test_cross_entropy_at_a_target_of_minus_infinity_is_infinite(compiled):
    """(1 − ε)·∞ + ε·∞ must stay ∞: reassociated, it once became ∞ − ∞ = NaN."""
    kernels.set_compiled(compiled)
    z = np.zeros((1, 5), np.float32)
    z[0, 2] = -np.inf
    for smoothing in (0.0, 0.1):
        loss, _ = kernels.cross_entropy(z, np.array([2]), smoothing)
        assert loss[0] == np.inf


@pytest.mark.parametrize("compiled", [True, False])
def test_rms_norm_of_an_infinite_row_has_r_zero(compiled):
    """r = 1/√(mean(x²) + ε) is 0 for an infinite x, not NaN (as a reciprocal estimate gives)."""
    kernels.set_compiled(compiled)
    _, _, rstd = kernels.layer_norm(np.array([[np.inf, 1.0]], np.float32), None, None, 1e-5,
                                    center=False)
    assert rstd[0, 0] == 0.0


@pytest.mark.parametrize("compiled", [True, False])
def test_softmax_of_a_row_with_nan_is_nan_throughout(compiled):
    kernels.set_compiled(compiled)
    y = kernels.softmax(np.array([[0.5, np.nan, 1.0], [0.0, 0.0, 0.0]], np.float32))
    assert np.isnan(y[0]).all()
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_softmax_and_cross_entropy_of_rows_with_nan_of_either_sign(sign):
    """The row maximum is taken among integers that order like the floats: a NaN with the sign
    bit set orders below −∞, one without above +∞, and either must make its row NaN."""
    nan = np.copysign(np.float32(np.nan), np.float32(sign))
    z = np.zeros((4, 37), np.float32)
    z[0, 5] = nan  # NaN among finite numbers
    z[1, :] = -np.inf
    z[1, 30] = nan  # NaN among −∞
    z[2, 3], z[2, 4] = np.inf, nan  # NaN beside +∞
    z[3, :] = -0.0  # −0 and +0 order as equals (shift by either: e^0 = 1)
    z[3, 9] = 0.0
    assert np.signbit(z[0, 5]) == (sign < 0)
    y = kernels.softmax(z)
    assert np.isnan(y[:3]).all()
    np.testing.assert_allclose(y[3], 1 / 37, rtol=1e-6)
    loss, _ = kernels.cross_entropy(z, np.array([0, 0, 0, 9]), 0.0)
    assert np.isnan(loss[:3]).all()
    np.testing.assert_allclose(loss[3], np.log(37), rtol=1e-6)


def test_softmax_of_rows_of_every_magnitude():
    """Rows of values from 1e-30 to 1e30, of both signs: shifted by anything but the row's
    maximum, e^(x − m) would overflow or lose the row; the result is NumPy's float64 one."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 50)) * 10.0 ** rng.integers(-30, 30, (64, 1))).astype(
        np.float32)
    y = kernels.softmax(x)
    np.testing.assert_allclose(y, reference(kernels.softmax, x), rtol=1e-5, atol=1e-30)


def test_exp_is_within_a_few_ulps_of_e_to_the_x():
    """The arithmetic exp behind softmax, GELU and cross-entropy: relative error below 3e-7 on
    [−87.33, 0] (a million points and the range-reduction boundary ±ln 2/2), 0 below, NaN kept."""
    import numba

    from minitx.kernels.compiled import _exp

    @numba.njit
    def exp_each(x, out):
        for i in range(x.size):
            out[i] = _exp(x[i])

    x = np.concatenate([np.linspace(-87.33, 0, 1_000_000, dtype=np.float32),
                        np.float32([-1e-30, -0.0, -0.34657359, -0.34657362, -88.0, -np.inf,
                                    np.nan])])
    got = np.empty_like(x)
    exp_each(x, got)
    want = np.exp(x[:-3].astype(np.float64))
    assert np.max(np.abs(got[:-3] / want - 1)) < 3e-7
    assert got[-3] == 0 and got[-2] == 0 and np.isnan(got[-1])


def test_erf_is_within_a_few_ulps():
    """The rational erf behind exact GELU: |error| below 4e-7 on a million points of [−6, 6]
    (3.7e-7 measured: 6 float32 ulps near 1, where the quotient's roundings add up; a few ulps
    relative near 0), exactly ±1 beyond ±4, odd, NaN kept."""
    import math

    import numba

    from minitx.kernels.compiled import _erf

    @numba.njit
    def erf_each(x, out):
        for i in range(x.size):
            out[i] = _erf(x[i])

    x = np.concatenate([np.linspace(-6, 6, 1_000_001, dtype=np.float32),
                        np.float32([1e-30, -1e-30, 0.0, np.inf, -np.inf, np.nan])])
    got = np.empty_like(x)
    erf_each(x, got)
    want = np.array([math.erf(v) for v in x[:-1].astype(np.float64)])
    assert np.max(np.abs(got[:-1] - want)) < 4e-7
    np.testing.assert_allclose(got[-6:-4], [1.1283791671e-30, -1.1283791671e-30], rtol=1e-6)
    assert got[-4] == 0 and got[-3] == 1 and got[-2] == -1 and np.isnan(got[-1])
    beyond = np.abs(x[:-6]) >= 4
    assert np.all(np.abs(got[:-6][beyond]) == 1)
    np.testing.assert_array_equal(got[:1_000_001], -got[:1_000_001][::-1])  # odd
