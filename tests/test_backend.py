"""Devices: the strict stand-in behaves like CuPy (no implicit NumPy), moves are explicit,
mixing devices is an error, and asking for CUDA without it says how to get it."""


import numpy as np
import pytest

import minitx as mt
from minitx import backend


def test_strict_arrays_refuse_implicit_conversion_to_numpy():
    a = backend.StrictArray(np.ones(3))
    with pytest.raises(TypeError, match="implicitly"):
        np.asarray(a)
    with pytest.raises(TypeError):
        np.exp(a)  # a NumPy ufunc on device data
    with pytest.raises(TypeError):
        np.sum(a)  # a NumPy function on device data
    np.testing.assert_array_equal(backend.to_numpy(a), np.ones(3))


def test_strict_namespace_mirrors_numpy_and_returns_device_arrays():
    xp = backend.strict
    a = xp.arange(6).reshape(2, 3)
    assert isinstance(a, backend.StrictArray) and a.shape == (2, 3)
    s = a.sum()
    assert isinstance(s, backend.StrictArray) and s.ndim == 0  # no NumPy scalar leaks out
    assert backend.xp_of(a) is xp and backend.device_of(a) == "strict"


def test_to_moves_explicitly_and_round_trips(device):
    x = mt.tensor([1.0, 2.0])
    y = x.to(device)
    assert y.device == backend.normalize_device(device)
    np.testing.assert_array_equal(y.to("cpu").numpy(), [1.0, 2.0])
    assert x.to("cpu") is x  # already there: no copy


def test_ops_on_two_devices_are_an_error():
    a = mt.tensor([1.0, 2.0])
    b = mt.tensor([1.0, 2.0], device="strict")
    with pytest.raises(RuntimeError, match="different devices"):
        a + b
    with pytest.raises(RuntimeError, match="different devices"):
        a @ b


def test_gradient_flows_back_across_a_device_move():
    x = mt.tensor([1.0, 2.0], requires_grad=True)
    y = (x.to("strict") * 3.0).sum()
    y.backward()
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_cuda_without_a_gpu_says_how_to_install(monkeypatch):
    if backend.cuda_available():
        pytest.skip("a GPU is present: the error path cannot be reached")
    with pytest.raises(RuntimeError, match=r"pip install -e \.\[gpu\]"):
        mt.tensor([1.0]).to("cuda")
    with pytest.raises(RuntimeError, match="gpu"):
        mt.zeros(3, device="cuda:0")


def test_unknown_device_names_are_rejected():
    with pytest.raises(ValueError, match="unknown device"):
        mt.tensor([1.0], device="tpu")


def test_tensor_refuses_device_data_for_another_device():
    data = backend.StrictArray(np.ones(2))
    with pytest.raises(RuntimeError, match="strict"):
        mt.tensor(data, device="cpu")


def test_random_tensors_are_identical_on_every_device(device):
    a = mt.randn(3, 4, generator=np.random.default_rng(7))
    b = mt.randn(3, 4, generator=np.random.default_rng(7), device=device)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.skipif(not backend.cuda_available(), reason="needs CuPy and a GPU")
def test_cupy_path_computes_like_numpy():
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    cpu = mt.tensor(x, requires_grad=True)
    gpu = mt.tensor(x, device="cuda", requires_grad=True)
    for t in (cpu, gpu):
        (t.softmax(-1) * t).sum().backward()
    np.testing.assert_allclose(backend.to_numpy(gpu.grad), cpu.grad, rtol=1e-5, atol=1e-6)


def test_keep_host_memory_takes_effect_on_glibc():
    import platform
    import subprocess
    import sys

    code = "from minitx import backend; print(backend.keep_host_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()  # its own process: the setting is global
    glibc = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
    assert out == ("True" if glibc else "False")


def test_strict_refuses_host_arrays_beside_device_data_as_cupy_does():
    s = backend.to_device(np.arange(3.0), "strict")
    host = np.ones(3)
    for mix in (lambda: s + host, lambda: host * s, lambda: s @ host,
                lambda: backend.strict.where(host > 0, s, 0),
                lambda: backend.strict.matmul(s, host)):
        with pytest.raises(TypeError, match="strict: .* got a NumPy array .*CuPy refuses"):
            mix()
    assert backend.to_numpy(s + 1.0).tolist() == [1.0, 2.0, 3.0]  # numbers are fine
    assert backend.to_numpy(s * np.float32(2)).tolist() == [0.0, 2.0, 4.0]
    assert backend.to_numpy(backend.strict.asarray(host)).tolist() == [1.0, 1.0, 1.0]  # a copy in
