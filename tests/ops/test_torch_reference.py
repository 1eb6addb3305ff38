"""The fused ops agree with PyTorch's (an optional reference: skipped without torch)."""

import numpy as np
import pytest

import minitx as mt
import minitx.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def both(array):
    return (mt.tensor(array, requires_grad=True),
            torch.tensor(array, requires_grad=True))


def check(ours, theirs, inputs_ours, inputs_theirs, rng):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(ours.shape)
    ours.backward(g)
    theirs.backward(torch.tensor(g))
    for a, b in zip(inputs_ours, inputs_theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    """float64 GELU, values and gradients, to 1e-12 (float64 erf is accurate to a few ulp)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-4, 4, 50), rng.uniform(-12, 12, 50), [0.0, 2.0, -2.0]])
    (a, b) = both(x)
    ours, theirs = F.gelu(a, approximate), TF.gelu(b, approximate=approximate)
    check(ours, theirs, [a], [b], rng)


def test_gelu_float32_within_the_fit():
    """float32 keeps the fast erf fit (fractional error below 1.2e-7)."""
    x = np.random.default_rng(5).uniform(-4, 4, 200).astype(np.float32)
    ours = F.gelu(mt.tensor(x)).numpy()
    theirs = TF.gelu(torch.tensor(x.astype(np.float64))).numpy()
    np.testing.assert_allclose(ours, theirs, atol=5e-7)


def test_layer_norm():
    rng = np.random.default_rng(1)
    x, w, b = (both(rng.standard_normal(s)) for s in ((4, 5, 8), (8,), (8,)))
    check(F.layer_norm(x[0], w[0], b[0]), TF.layer_norm(x[1], (8,), w[1], b[1]),
          [x[0], w[0], b[0]], [x[1], w[1], b[1]], rng)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(reduction, smoothing):
    rng = np.random.default_rng(2)
    z = both(rng.standard_normal((12, 7)))
    t = rng.integers(0, 7, 12)
    t[[1, 5]] = -100
    ours = F.cross_entropy(z[0], mt.tensor(t), label_smoothing=smoothing, reduction=reduction)
    theirs = TF.cross_entropy(z[1], torch.tensor(t), label_smoothing=smoothing,
                              reduction=reduction)
    check(ours, theirs, [z[0]], [z[1]], rng)


@pytest.mark.parametrize("kind", ["plain", "causal", "bool", "bias"])
def test_scaled_dot_product_attention(kind):
    rng = np.random.default_rng(3)
    q, k, v = (both(rng.standard_normal((2, 3, 5, 4))) for _ in range(3))
    mask = None
    if kind == "bool":
        mask = rng.random((2, 1, 5, 5)) > 0.3
        mask[..., 0] = True
    elif kind == "bias":
        mask = rng.standard_normal((1, 3, 5, 5))
    ours = F.scaled_dot_product_attention(q[0], k[0], v[0], causal=kind == "causal",
                                          mask=None if mask is None else mt.tensor(mask))
    theirs = TF.scaled_dot_product_attention(q[1], k[1], v[1], is_causal=kind == "causal",
                                             attn_mask=None if mask is None
                                             else torch.tensor(mask))
    check(ours, theirs, [q[0], k[0], v[0]], [q[1], k[1], v[1]], rng)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_of_a_transposed_view(smoothing):
    """Classes moved to the last axis by a transpose (a segmentation head's layout): the
    logits are a non-contiguous view, and the gradient must still reach every element."""
    rng = np.random.default_rng(4)
    z = both(rng.standard_normal((2, 3, 4)))
    t = rng.integers(0, 3, (2, 4))
    ours = F.cross_entropy(z[0].swapaxes(-1, -2), mt.tensor(t), label_smoothing=smoothing)
    theirs = TF.cross_entropy(z[1], torch.tensor(t), label_smoothing=smoothing)  # (N, C, d)
    check(ours, theirs, [z[0]], [z[1]], rng)
