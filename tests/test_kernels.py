"""Each speed kernel of minitx.kernels against its plain NumPy formula, on every device, and
blocked and threaded runs bit for bit equal to one whole-array pass."""

import math
import threading
import time

import numpy as np
import pytest

from minitx import backend, kernels

RNG = np.random.default_rng(0)


def on(device, *arrays):
    return [backend.to_device(np.ascontiguousarray(a), device) for a in arrays]


def host(*arrays):
    return [None if a is None else backend.to_numpy(a) for a in arrays]


@pytest.fixture
def small_blocks_many_threads(monkeypatch):
    """Blocks of 7 elements, shared among 3 threads from the first element on."""
    monkeypatch.setattr(kernels.runtime, "BLOCK", 7)
    monkeypatch.setattr(kernels.runtime, "PARALLEL_MIN", 0)
    kernels.set_thread_count(3)
    yield
    kernels.set_thread_count(None)


def plain_gelu(x, approximate):
    if approximate == "sigmoid":
        s = 1 / (1 + np.exp(-1.702 * x))
        return x * s, s + 1.702 * x * s * (1 - s)
    if approximate == "tanh":
        u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
        du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x ** 2)
        return 0.5 * x * (1 + np.tanh(u)), 0.5 * (1 + np.tanh(u)) + 0.5 * x * (
            1 - np.tanh(u) ** 2) * du
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    return x * cdf, cdf + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize("approximate", ["none", "tanh", "sigmoid"])
def test_gelu_and_its_backward_are_the_formula(device, approximate):
    x, g = RNG.uniform(-6, 6, (5, 40)), RNG.standard_normal((5, 40))
    xd, gd = on(device, x, g)
    want_y, want_d = plain_gelu(x, approximate)
    np.testing.assert_allclose(host(kernels.gelu(xd, approximate))[0], want_y, rtol=1e-13,
                               atol=1e-15)
    np.testing.assert_allclose(host(kernels.gelu_backward(xd, gd, approximate))[0], g * want_d,
                               rtol=1e-13, atol=1e-15)


def test_gelu_limits_at_infinity(device):
    x, g = on(device, np.array([-np.inf, np.inf, -1e30, 1e30]), np.ones(4))
    np.testing.assert_array_equal(host(kernels.gelu(x))[0], [0.0, np.inf, 0.0, 1e30])
    np.testing.assert_array_equal(host(kernels.gelu_backward(x, g))[0], [0.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_is_the_formula(device, axis):
    x = RNG.standard_normal((4, 6, 9)) * 5
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    (xd,) = on(device, x)
    np.testing.assert_allclose(host(kernels.softmax(xd, axis))[0],
                               e / e.sum(axis=axis, keepdims=True), rtol=1e-14, atol=1e-16)


def test_softmax_of_a_fully_masked_row_is_zero(device):
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    np.testing.assert_array_equal(host(kernels.softmax(*on(device, x)))[0], [[0, 0], [1, 0]])


@pytest.mark.parametrize("overwrite", [False, True])
def test_softmax_backward_is_the_formula(device, overwrite):
    y = kernels.softmax(RNG.standard_normal((3, 5, 8)))
    g = RNG.standard_normal(y.shape)
    want = y * (g - (g * y).sum(axis=-1, keepdims=True))
    gd, yd = on(device, g, y)
    gx = kernels.softmax_backward(gd, yd, overwrite=overwrite)
    np.testing.assert_allclose(host(gx)[0], want, rtol=1e-13, atol=1e-15)
    assert (gx is gd) == overwrite  # written into the caller's buffer only when allowed


@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm_and_its_backward_are_the_formula(device, affine):
    x, g = RNG.standard_normal((2, 5, 16)) * 3 + 1, RNG.standard_normal((2, 5, 16))
    w, b = (RNG.standard_normal(16), RNG.standard_normal(16)) if affine else (None, None)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    xhat = (x - mu) / np.sqrt(var + 1e-5)
    want_y = xhat * w + b if affine else xhat
    ghat = g * w if affine else g
    want_gx = (ghat - ghat.mean(-1, keepdims=True)
               - xhat * (ghat * xhat).mean(-1, keepdims=True)) / np.sqrt(var + 1e-5)
    xd, gd, wd, bd = on(device, x, g, *((w, b) if affine else (x, x)))
    wd, bd = (wd, bd) if affine else (None, None)
    y, mean, rstd = kernels.layer_norm(xd, wd, bd, 1e-5)
    np.testing.assert_allclose(host(y)[0], want_y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(host(mean)[0], mu, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(host(rstd)[0], 1 / np.sqrt(var + 1e-5), rtol=1e-12)
    gx, gw, gb = kernels.layer_norm_backward(gd, xd, mean, rstd, wd, affine)
    np.testing.assert_allclose(host(gx)[0], want_gx, rtol=1e-10, atol=1e-12)
    if affine:
        np.testing.assert_allclose(host(gw)[0], (g * xhat).sum((0, 1)), rtol=1e-10)
        np.testing.assert_allclose(host(gb)[0], g.sum((0, 1)), rtol=1e-12)
    else:
        assert gw is None and gb is None


@pytest.mark.parametrize("shapes", [((3, 4, 5), (5, 6)), ((4, 5), (5, 6)), ((2, 4, 5),
                                                                          (2, 5, 6))])
def test_matmul_and_matmul_summed_are_the_products(device, shapes):
    a, b = RNG.standard_normal(shapes[0]), RNG.standard_normal(shapes[1])
    ad, bd = on(device, a, b)
    np.testing.assert_allclose(host(kernels.matmul(ad, bd))[0], a @ b, rtol=1e-13)
    g = RNG.standard_normal(a.shape[:-1] + (6,))
    (gd,) = on(device, g)
    want = sum(ai.T @ gi for ai, gi in zip(a.reshape(-1, *a.shape[-2:]),
                                           g.reshape(-1, *g.shape[-2:])))  # Σ_batch aᵀ g
    np.testing.assert_allclose(host(kernels.matmul_summed(ad, gd))[0], want, rtol=1e-12)


def test_matmul_like_is_the_product_in_the_layout_of_like(device):
    """Heads as MultiHeadAttention makes them: views (B, h, T, d) of a (B, T, h, d) array. The
    product laid out like them transposes back to a contiguous (B, T, h, d)."""
    B, T, h, d = 2, 5, 3, 4
    projected = RNG.standard_normal((B, T, h, d))
    scores = RNG.standard_normal((B, h, T, T))
    sd, pd = on(device, scores, projected)
    heads, hd = projected.swapaxes(1, 2), pd.swapaxes(1, 2)  # (B, h, T, d), strided
    got = kernels.matmul_like(sd, hd, like=hd)
    np.testing.assert_allclose(host(got)[0], scores @ heads, rtol=1e-13)
    if isinstance(got, np.ndarray):  # CuPy and the strict stand-in keep a @ b's layout
        assert got.swapaxes(1, 2).flags.c_contiguous
    for like in (hd[:, :, :2], hd[0]):  # not the product's shape: a @ b
        np.testing.assert_allclose(host(kernels.matmul_like(sd, hd, like=like))[0],
                                   scores @ heads, rtol=1e-13)
    (s32,) = on(device, scores.astype(np.float32))  # float32 @ float64 -> float64, as a @ b
    assert kernels.matmul_like(s32, hd, like=hd).dtype == np.float64


@pytest.mark.parametrize("shape, n", [((6, 5), 1), ((3, 4, 5), 2), ((3, 4, 5), 1), ((7,), 1),
                                      ((3, 4), 0), ((0, 5), 1), ((4, 0), 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sum_leading_is_the_sum_over_the_first_axes(device, shape, n, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    (xd,) = on(device, x)
    for view, like in ((xd, x), (xd[::-1], x[::-1])):  # a contiguous array, and a strided one
        got = kernels.sum_leading(view, n)
        assert backend.is_array(got) and got.shape == shape[n:] and got.dtype == dtype
        np.testing.assert_allclose(host(got)[0], like.astype(np.float64).sum(
            axis=tuple(range(n))), rtol=tol, atol=tol)


def test_matmul_of_a_stack_with_a_transposed_matrix(device):
    a, w = RNG.standard_normal((3, 4, 5)), RNG.standard_normal((6, 5))
    ad, wd = on(device, a, w)
    np.testing.assert_allclose(host(kernels.matmul(ad, wd.T))[0], a @ w.T, rtol=1e-13)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_update_is_algorithm_1(device, amsgrad):
    p, g = RNG.standard_normal((7, 9)), RNG.standard_normal((7, 9))
    m, v = RNG.standard_normal((7, 9)), RNG.uniform(0, 1, (7, 9))
    v_max = RNG.uniform(0, 1, (7, 9)) if amsgrad else None
    b1, b2, lr, eps, t = 0.9, 0.999, 1e-2, 1e-8, 3
    want_m, want_v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    want_vmax = np.maximum(v_max, want_v) if amsgrad else want_v
    v_hat = want_vmax / (1 - b2 ** t)
    want_p = p - lr * (want_m / (1 - b1 ** t)) / (np.sqrt(v_hat) + eps)
    arrays = on(device, p, g, m, v, *([v_max] if amsgrad else []))
    kernels.adam_update(*arrays[:4], beta1=b1, beta2=b2, step_size=lr / (1 - b1 ** t),
                        bias2_sqrt=math.sqrt(1 - b2 ** t), eps=eps,
                        v_max=arrays[4] if amsgrad else None)
    got_p, _, got_m, got_v = host(*arrays[:4])
    np.testing.assert_allclose(got_m, want_m, rtol=1e-14)
    np.testing.assert_allclose(got_v, want_v, rtol=1e-14)
    np.testing.assert_allclose(got_p, want_p, rtol=1e-12)


def test_masked_scale_is_the_dropout_product(device):
    x, keep = RNG.standard_normal((6, 7)), RNG.uniform(size=(6, 7)) >= 0.3
    xd, keepd = on(device, x, keep)
    np.testing.assert_array_equal(host(kernels.masked_scale(xd, keepd, 1 / 0.7))[0],
                                  x * np.where(keep, 1 / 0.7, 0.0))


def test_blockwise_puts_blocks_and_rows_together(small_blocks_many_threads):
    x = RNG.standard_normal((5, 6))
    y, nothing = kernels.blockwise(lambda b: (b * 2, None), x)
    assert nothing is None and y.shape == x.shape
    np.testing.assert_array_equal(y, 2 * x)
    sums = kernels.blockwise(lambda r: r.sum(axis=-1, keepdims=True), x, row=6)
    np.testing.assert_array_equal(sums, x.sum(axis=-1, keepdims=True))


def test_thread_count_is_one_unless_asked(monkeypatch):
    monkeypatch.delenv("MINITX_NUM_THREADS", raising=False)
    kernels.set_thread_count(None)
    assert kernels.thread_count() == 1
    kernels.set_thread_count(2)
    assert kernels.thread_count() == 2
    monkeypatch.setenv("MINITX_NUM_THREADS", "blas")
    kernels.set_thread_count(None)
    assert kernels.thread_count() == kernels.runtime._blas_threads() >= 1
    monkeypatch.delenv("MINITX_NUM_THREADS")
    kernels.set_thread_count(None)
    with pytest.raises(ValueError, match="set_thread_count"):
        kernels.set_thread_count(0)
    with pytest.raises(ValueError, match="set_thread_count"):
        kernels.set_thread_count(True)
    for bad in ("abc", "0", "-1", "2.5"):
        monkeypatch.setenv("MINITX_NUM_THREADS", bad)
        kernels.set_thread_count(None)
        with pytest.raises(ValueError, match="MINITX_NUM_THREADS must be a positive integer"):
            kernels.thread_count()
    monkeypatch.delenv("MINITX_NUM_THREADS")
    kernels.set_thread_count(None)


def test_the_compiled_switch_reads_words_and_refuses_others(monkeypatch):
    for value, on in (("0", False), ("off", False), ("False", False), ("1", True), ("", True)):
        monkeypatch.setenv("MINITX_COMPILED", value)
        assert kernels.runtime._compiled_wanted() is on
    monkeypatch.setenv("MINITX_COMPILED", "maybe")
    with pytest.raises(ValueError, match="MINITX_COMPILED must be 0 or 1"):
        kernels.runtime._compiled_wanted()


def test_changing_the_thread_count_while_kernels_run_elsewhere(monkeypatch):
    monkeypatch.setattr(kernels.runtime, "PARALLEL_MIN", 0)
    monkeypatch.setattr(kernels.runtime, "BLOCK", 7)
    x = RNG.standard_normal((40, 50)).astype(np.float32)
    errors, stop = [], threading.Event()

    def work():
        while not stop.is_set():
            try:
                kernels.blockwise(lambda a: a * 2, x, cache=True)
            except Exception as error:  # noqa: BLE001 (any failure is the finding)
                errors.append(error)
                return

    worker = threading.Thread(target=work)
    worker.start()
    end, i = time.perf_counter() + 1.0, 0  # a race: give it a second to show
    while time.perf_counter() < end and not errors:
        kernels.set_thread_count(2 + i % 2)
        i += 1
    stop.set()
    worker.join()
    kernels.set_thread_count(None)
    assert not errors, errors[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_on_threads_give_the_same_bits(dtype, monkeypatch):
    """Every blocked kernel, blocks of 7 elements on 3 threads, against one whole-array call."""
    x = (RNG.standard_normal((6, 10, 13)) * 3).astype(dtype)
    g = RNG.standard_normal(x.shape).astype(dtype)
    w, b = RNG.standard_normal(13).astype(dtype), RNG.standard_normal(13).astype(dtype)
    adam = dict(beta1=0.9, beta2=0.99, step_size=0.1, bias2_sqrt=0.3, eps=1e-8)

    def run_all():
        out = [kernels.softmax(x), kernels.softmax_backward(g, x)]
        for form in ("none", "tanh", "sigmoid"):
            out += [kernels.gelu(x, form), kernels.gelu_backward(x, g, form)]
        y, mean, rstd = kernels.layer_norm(x, w, b, 1e-5)
        out += [y, mean, rstd, *kernels.layer_norm_backward(g, x, mean, rstd, w, True)]
        p, m, v = x.copy(), g.copy(), np.abs(x)
        kernels.adam_update(p, g, m, v, **adam)
        return out + [p, m, v, kernels.masked_scale(x, g > 0, 1.25)]

    whole = run_all()
    monkeypatch.setattr(kernels.runtime, "BLOCK", 7)
    monkeypatch.setattr(kernels.runtime, "PARALLEL_MIN", 0)
    for threads in (1, 3):
        kernels.set_thread_count(threads)
        try:
            for a, c in zip(whole, run_all(), strict=True):
                np.testing.assert_array_equal(a, c)
        finally:
            kernels.set_thread_count(None)


def live_state(rng):
    """A PCG64 generator's state, less the kept 32-bit half when none is kept (then unused)."""
    state = rng.bit_generator.state
    return state if state["has_uint32"] else {**state, "uinteger": None}


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1 / 3, 0.9, 1.0, 2.0 ** -24, 1 - 2.0 ** -25,
                               np.float32(0.1), np.float64(0.7)])
def test_dropout_keep_is_random_float32_at_least_p_bit_for_bit(p, monkeypatch):
    """The fast mask must be the mask of the plain formula, and leave the generator where the
    plain formula leaves it: seeded runs may not change. Odd sizes and a half-used 64-bit
    draw (left by an earlier odd call) included."""
    monkeypatch.setattr(kernels.elementwise, "_MASK_MIN", 0)  # the fast path at every size
    for seed, shapes in ((0, [(7,), (4, 5), (3,), (1,), (2, 3, 2)]),
                         (1, [(1,), (6,), (0,), (5, 1)])):
        fast, plain = np.random.default_rng(seed), np.random.default_rng(seed)
        for shape in shapes:
            got = kernels.dropout_keep(fast, shape, p)
            want = plain.random(shape, dtype=np.float32) >= p
            assert got.dtype == bool and got.shape == shape
            np.testing.assert_array_equal(got, want)
            assert live_state(fast) == live_state(plain)
        np.testing.assert_array_equal(fast.random(9, dtype=np.float32),
                                      plain.random(9, dtype=np.float32))


def test_dropout_keep_keeps_about_one_minus_p_and_other_generators_take_the_formula():
    keep = kernels.dropout_keep(np.random.default_rng(3), (200_000,), 0.1)
    assert abs(keep.mean() - 0.9) < 0.005  # 0.9 ± 7 standard deviations
    other = np.random.Generator(np.random.Philox(4))
    want = np.random.Generator(np.random.Philox(4)).random((3, 5), dtype=np.float32) >= 0.3
    np.testing.assert_array_equal(kernels.dropout_keep(other, (3, 5), 0.3), want)


@pytest.mark.parametrize("index, n", [([3, 0, 3, 3, 1], 5), ([2, 2, 2], 4), ([], 3), ([0], 1),
                                      (list(RNG.integers(0, 7, 50)), 9)])
@pytest.mark.parametrize("tail", [(4,), (), (2, 3)])
def test_sum_rows_by_index_adds_the_rows_of_each_index(device, index, n, tail):
    index = np.asarray(index, dtype=np.int64)
    values = RNG.standard_normal((len(index),) + tail)
    want = np.zeros((n,) + tail)
    for i, r in enumerate(index):  # the definition, one row at a time
        want[r] += values[i]
    index_d, values_d = on(device, index, values)
    got = kernels.sum_rows_by_index(index_d, values_d, n)
    assert got.shape == (n,) + tail
    np.testing.assert_allclose(host(got)[0], want, rtol=1e-13, atol=1e-13)


def test_relu_backward_is_the_gradient_times_the_step(device):
    g = np.array([1.5, -2.0, np.inf, np.nan, 3.0, -np.inf, 0.5])
    y = np.array([0.2, 0.0, 0.0, 1.0, 4.0, 2.0, -0.0])  # outputs of max(x, 0)
    gd, yd = on(device, g, y)
    np.testing.assert_array_equal(host(kernels.relu_backward(gd, yd))[0], g * (y > 0))


def test_fill_where_not_is_where_in_the_arrays_own_buffer(device):
    x = RNG.standard_normal((2, 3, 4, 4))
    allowed = np.tril(np.ones((4, 4), bool))  # broadcast over the leading axes
    (xd,) = on(device, x)
    (allowed_d,) = on(device, allowed)
    got = kernels.fill_where_not(xd, allowed_d, -np.inf)
    np.testing.assert_array_equal(host(got)[0], np.where(allowed, x, -np.inf))
    assert got is xd  # written in place
