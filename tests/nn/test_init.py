"""nn.init: the statistics of each scheme on a large draw, and seeded reproducibility."""

import math

import numpy as np
import pytest

from minitx import backend, nn
from minitx.nn import init


def weight(shape, device="cpu", dtype=np.float32):
    return nn.Parameter(backend.xp_for(device).zeros(shape, dtype=dtype))


def draw(fn, shape=(400, 300), device="cpu", **kwargs):
    w = fn(weight(shape, device), generator=np.random.default_rng(0), **kwargs)
    assert w.device == device and w.dtype == np.float32 and w.shape == shape
    return w.numpy().astype(np.float64)


def check_uniform(x, low, high):
    assert x.min() >= low and x.max() <= high
    assert x.min() < low + 0.01 * (high - low) and x.max() > high - 0.01 * (high - low)
    assert abs(x.mean() - (low + high) / 2) < 0.01 * (high - low)
    assert abs(x.std() - (high - low) / math.sqrt(12)) < 0.01 * (high - low)


def test_uniform_and_normal(device):
    check_uniform(draw(init.uniform_, device=device, a=-3.0, b=1.0), -3.0, 1.0)
    x = draw(init.normal_, device=device, mean=0.5, std=2.0)
    assert abs(x.mean() - 0.5) < 0.02 and abs(x.std() - 2.0) < 0.02


def test_gpt2_normal_std():
    x = draw(init.normal_, std=0.02)
    assert abs(x.mean()) < 1e-3 and abs(x.std() - 0.02) < 5e-4


def test_truncated_normal_is_cut_at_the_cutoff_in_std_units(device):
    x = draw(init.trunc_normal_, device=device, std=0.02)  # ViT / timm: std 0.02, cut at ±2σ
    assert np.abs(x).max() <= 0.04 + 1e-7 and np.abs(x).max() > 0.039
    # std of N(0, 1) truncated to [−2, 2]: √(1 − 2·2φ(2) / (2Φ(2) − 1)) ≈ 0.8796
    assert abs(x.std() - 0.02 * 0.8796) < 2e-4 and abs(x.mean()) < 2e-4
    y = draw(init.trunc_normal_, mean=1.0, std=1.0, cutoff=0.5)
    assert y.min() >= 0.5 and y.max() <= 1.5
    with pytest.raises(ValueError, match="cutoff"):
        init.trunc_normal_(weight((2, 2)), cutoff=0.0)


def test_xavier(device):
    fan_in, fan_out = 300, 400
    bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot & Bengio 2010, Eq. 16
    check_uniform(draw(init.xavier_uniform_, device=device), -bound, bound)
    check_uniform(draw(init.xavier_uniform_, gain=2.0), -2 * bound, 2 * bound)
    x = draw(init.xavier_normal_, device=device)
    assert abs(x.std() - math.sqrt(2 / (fan_in + fan_out))) < 1e-3 and abs(x.mean()) < 1e-3


def test_kaiming():
    fan_in, fan_out = 300, 400
    bound = math.sqrt(2) * math.sqrt(3 / fan_in)  # He et al. 2015, gain √2 for ReLU
    check_uniform(draw(init.kaiming_uniform_, nonlinearity="relu"), -bound, bound)
    x = draw(init.kaiming_normal_, nonlinearity="relu", mode="fan_out")
    assert abs(x.std() - math.sqrt(2 / fan_out)) < 1e-3
    # PyTorch's Linear default: a = √5 gives U(−1/√fan_in, 1/√fan_in)
    check_uniform(draw(init.kaiming_uniform_, a=math.sqrt(5)), -1 / math.sqrt(fan_in),
                  1 / math.sqrt(fan_in))
    # fans of a conv-shaped weight (out, in, k, k) include the receptive field
    x = draw(init.kaiming_normal_, shape=(64, 16, 3, 3), nonlinearity="relu")
    assert abs(x.std() - math.sqrt(2 / (16 * 9))) < 3e-3
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(weight((2, 2)), mode="fan_middle")
    with pytest.raises(ValueError, match="at least 2 axes"):
        init.xavier_uniform_(weight((5,)))


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1.0 and init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("leaky_relu", 0.0) == math.sqrt(2)
    with pytest.raises(ValueError, match="swish"):
        init.calculate_gain("swish")


def test_constants(device):
    assert (init.zeros_(weight((3, 2), device)).numpy() == 0).all()
    assert (init.ones_(weight((3, 2), device)).numpy() == 1).all()
    assert (init.constant_(weight((3,), device), 2.5).numpy() == 2.5).all()


def test_seeded_draws_repeat_and_match_across_devices(device):
    for fn in (init.uniform_, init.normal_, init.trunc_normal_, init.xavier_uniform_,
               init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_):
        a = draw(fn, shape=(8, 5), device=device)
        b = draw(fn, shape=(8, 5))
        np.testing.assert_array_equal(a, b)
        c = fn(weight((8, 5)), generator=np.random.default_rng(1)).numpy()
        assert not np.array_equal(a, c)


def test_default_generator_is_minitx_random():
    import minitx.random

    state = minitx.random.get_state()
    try:
        minitx.random.seed(7)
        a = nn.Linear(4, 3).weight.numpy()
        minitx.random.seed(7)
        np.testing.assert_array_equal(nn.Linear(4, 3).weight.numpy(), a)
    finally:
        minitx.random.set_state(state)


def test_float64_parameters_stay_float64():
    w = init.normal_(weight((4, 4), dtype=np.float64), generator=np.random.default_rng(0))
    assert w.dtype == np.float64
