"""The simple layers: Linear, Embedding, LayerNorm, activations, dropout, FFN, positions."""

import math

import numpy as np
import pytest

import minitx as mt
from minitx import functional as F
from minitx import nn
from tests.nn.helpers import module_gradcheck

F64 = dict(dtype=np.float64)


def rng(seed=0):
    return np.random.default_rng(seed)


def test_linear_shapes_init_and_forward(device):
    layer = nn.Linear(50, 30, generator=rng(), device=device)
    assert layer.weight.shape == (30, 50) and layer.bias.shape == (30,)
    assert layer.weight.device == device and layer.weight.dtype == np.float32
    bound = 1 / math.sqrt(50)  # PyTorch's default: U(−1/√in, 1/√in) for weight and bias
    for p in (layer.weight, layer.bias):
        assert np.abs(p.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > 0.95 * bound
    x = rng(1).standard_normal((2, 3, 50)).astype(np.float32)
    y = layer(mt.tensor(x, device=device)).numpy()
    np.testing.assert_allclose(y, x @ layer.weight.numpy().T + layer.bias.numpy(), rtol=1e-5,
                               atol=1e-6)
    assert nn.Linear(4, 2, bias=False).bias is None
    with pytest.raises(ValueError, match=r"Linear: expected input \(..., 50\)"):
        layer(mt.ones((2, 49), device=device))
    with pytest.raises(ValueError, match="positive"):
        nn.Linear(0, 3)


def test_linear_gradients(device):
    layer = nn.Linear(3, 2, generator=rng(), **F64)
    module_gradcheck(layer, rng(1).standard_normal((2, 4, 3)), device=device)
    module_gradcheck(nn.Linear(3, 2, bias=False, **F64), rng(2).standard_normal((5, 3)),
                     device=device)


def test_embedding(device):
    emb = nn.Embedding(7, 3, generator=rng(), device=device)
    idx = np.array([[0, 6, 6], [2, 1, 0]])
    out = emb(mt.tensor(idx, device=device))
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[idx])
    big = nn.Embedding(1000, 100, generator=rng()).weight.numpy()
    assert abs(big.std() - 1.0) < 0.01  # N(0, 1), as PyTorch
    module_gradcheck(nn.Embedding(5, 2, generator=rng(), **F64), idx % 5, device=device)
    with pytest.raises(IndexError):
        emb(mt.tensor([7], device=device))


def test_layer_norm(device):
    norm = nn.LayerNorm(6, device=device)
    x = rng().standard_normal((4, 6)).astype(np.float32) * 3 + 1
    y = norm(mt.tensor(x, device=device)).numpy()
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(-1), 1, atol=1e-3)
    assert [n for n, _ in norm.named_parameters()] == ["weight", "bias"]
    assert nn.LayerNorm((6,), bias=False).bias is None
    assert nn.LayerNorm(6, elementwise_affine=False).num_parameters() == 0
    layer = nn.LayerNorm(4, **F64)
    layer.weight.data = rng(1).standard_normal(4)  # away from the trivial 1 and 0
    layer.bias.data = rng(2).standard_normal(4)
    module_gradcheck(layer, rng(3).standard_normal((2, 3, 4)), device=device)
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm((2, 3))
    with pytest.raises(ValueError, match=r"expected input \(..., 6\)"):
        norm(mt.ones((2, 5), device=device))


def test_activations(device):
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    t = mt.tensor(x, device=device)
    np.testing.assert_array_equal(nn.ReLU()(t).numpy(), np.maximum(x, 0))
    exact = x * 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
    np.testing.assert_allclose(nn.GELU()(t).numpy(), exact, atol=1e-6)
    approx = nn.GELU("tanh")(t).numpy()
    assert np.abs(approx - exact).max() < 1e-3 and not np.array_equal(approx, exact)
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


def test_dropout_statistics_and_seeding(device):
    x = mt.ones((200, 100), device=device)
    y = nn.Dropout(0.3, generator=rng())(x).numpy()
    assert abs((y == 0).mean() - 0.3) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    again = nn.Dropout(0.3, generator=rng())(x).numpy()
    np.testing.assert_array_equal(y, again)
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match="Dropout"):
        nn.Dropout(1.5)


def test_feed_forward(device):
    ffn = nn.PositionwiseFeedForward(4, 6, generator=rng(), device=device)
    x = rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    w1, b1 = ffn.linear1.weight.numpy(), ffn.linear1.bias.numpy()
    w2, b2 = ffn.linear2.weight.numpy(), ffn.linear2.bias.numpy()
    expected = np.maximum(0, x @ w1.T + b1) @ w2.T + b2  # §3.3, Eq. 2
    np.testing.assert_allclose(ffn(mt.tensor(x, device=device)).numpy(), expected, rtol=1e-5,
                               atol=1e-6)
    assert isinstance(nn.PositionwiseFeedForward(4, 6, activation="gelu").activation, nn.GELU)
    assert nn.PositionwiseFeedForward(4, 6, activation="gelu_tanh").activation.approximate == \
        "tanh"
    with pytest.raises(ValueError, match="swish"):
        nn.PositionwiseFeedForward(4, 6, activation="swish")
    gelu = nn.PositionwiseFeedForward(3, 5, activation="gelu", generator=rng(2), **F64)
    module_gradcheck(gelu, rng(3).standard_normal((2, 2, 3)), device=device)


def test_sinusoidal_encoding_matches_the_formula(device):
    D, T = 6, 9
    pe = nn.SinusoidalPositionalEncoding(D, max_len=4, device=device, dtype=np.float64)
    out = pe(mt.zeros((2, T, D), device=device, dtype=np.float64)).numpy()
    for pos in range(T):
        for i in range(D // 2):  # §3.5
            np.testing.assert_allclose(out[:, pos, 2 * i], math.sin(pos / 10000 ** (2 * i / D)))
            np.testing.assert_allclose(out[:, pos, 2 * i + 1],
                                       math.cos(pos / 10000 ** (2 * i / D)))
    assert pe.pe.shape[0] >= T and pe.pe.device == device  # extended past max_len on demand
    shifted = pe(mt.zeros((1, 2, D), device=device, dtype=np.float64), offset=5).numpy()
    np.testing.assert_allclose(shifted[0], out[0, 5:7])
    odd = nn.SinusoidalPositionalEncoding(5, dtype=np.float64)(mt.zeros((1, 3, 5),
                                                                        dtype=np.float64))
    np.testing.assert_allclose(odd.numpy()[0, 2, 4], math.sin(2 / 10000 ** (4 / 5)))
    with pytest.raises(ValueError, match="offset"):
        pe(mt.zeros((1, 2, D), device=device, dtype=np.float64), offset=-1)
    with pytest.raises(ValueError, match=r"\(..., T, 6\)"):
        pe(mt.zeros((1, 2, 4), device=device, dtype=np.float64))


def test_learned_positional_encoding(device):
    pe = nn.LearnedPositionalEncoding(5, 3, generator=rng(), device=device, dtype=np.float64)
    assert [n for n, _ in pe.named_parameters()] == ["weight"]
    x = rng(1).standard_normal((2, 4, 3))
    out = pe(mt.tensor(x, device=device), offset=1).numpy()
    np.testing.assert_allclose(out, x + pe.weight.numpy()[1:5])
    module_gradcheck(pe, x, device=device)
    with pytest.raises(ValueError, match="max_len=5"):
        pe(mt.tensor(x, device=device), offset=2)


def test_module_gradcheck_really_differentiates_the_parameters():
    """A layer that cuts its weight out of the graph must fail the helper's check."""
    from minitx.testing import GradcheckError

    class Broken(nn.Linear):
        def forward(self, x):
            return F.linear(x, self.weight.detach(), self.bias)

    x = rng(1).standard_normal((2, 3))
    with pytest.raises(GradcheckError, match="input 1"):
        module_gradcheck(Broken(3, 2, generator=rng(), **F64), x)


def test_constructor_arguments_that_are_numpy_ints_or_unsupported_are_handled():
    from minitx import optim
    assert nn.LayerNorm(np.int64(4)).normalized_shape == (4,)
    with pytest.raises(ValueError, match="momentum=None .* is not supported"):
        nn.BatchNorm1d(3, momentum=None)
    opt = optim.SGD([mt.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(TypeError, match="warmup_steps must be an int"):
        optim.WarmupCosineSchedule(opt, 0.5, 10)  # int() would have made it no warm-up
