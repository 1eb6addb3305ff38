"""Transformer encoder and decoder layers: the residual arrangement, gradients, causality,
padding and cached decoding."""

import numpy as np
import pytest

import minitx as mt
from minitx import nn
from tests.nn.helpers import module_gradcheck

B, T, S, D, H, FF = 2, 4, 3, 8, 2, 12


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(device, *shape, seed=1):
    return mt.tensor(rng(seed).standard_normal(shape), device=device)


def perturb(module, seed=9):
    """Move LayerNorm's γ, β away from 1 and 0 so that their gradients are really checked."""
    for name, p in module.named_parameters():
        if "norm" in name:
            p.data = p.data + (0.2 * rng(seed).standard_normal(p.shape)).astype(p.dtype)
    return module


def encoder(device, norm_first, dtype=np.float64, dropout=0.0, **kwargs):
    layer = nn.TransformerEncoderLayer(D, H, FF, dropout, norm_first=norm_first, generator=rng(),
                                       dtype=dtype, **kwargs)
    return perturb(layer).to(device)


def decoder(device, norm_first, dtype=np.float64, dropout=0.0, **kwargs):
    layer = nn.TransformerDecoderLayer(D, H, FF, dropout, norm_first=norm_first, generator=rng(),
                                       dtype=dtype, **kwargs)
    return perturb(layer).to(device)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_residual_arrangement(device, norm_first):
    layer = encoder(device, norm_first)
    x = randn(device, B, T, D)
    attn, ffn, n1, n2 = layer.self_attn, layer.ffn, layer.norm1, layer.norm2
    if norm_first:  # pre-LN: x + Sublayer(LN(x))
        h = x + attn(n1(x))
        expected = h + ffn(n2(h))
    else:  # post-LN (Vaswani §3.1): LN(x + Sublayer(x))
        h = n1(x + attn(x))
        expected = n2(h + ffn(h))
    np.testing.assert_allclose(layer(x).numpy(), expected.numpy(), atol=1e-12)
    assert [n for n, _ in layer.named_children()] == ["self_attn", "ffn", "norm1", "norm2",
                                                      "dropout1", "dropout2"]


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_residual_arrangement(device, norm_first):
    layer = decoder(device, norm_first)
    x, mem = randn(device, B, T, D), randn(device, B, S, D, seed=2)
    sa, ca, ffn = layer.self_attn, layer.cross_attn, layer.ffn
    n1, n2, n3 = layer.norm1, layer.norm2, layer.norm3
    if norm_first:
        h = x + sa(n1(x), causal=True)
        h = h + ca(n2(h), mem)
        expected = h + ffn(n3(h))
    else:
        h = n1(x + sa(x, causal=True))
        h = n2(h + ca(h, mem))
        expected = n3(h + ffn(h))
    out = layer(x, mem, tgt_is_causal=True)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_gradients(device, norm_first):
    layer = nn.TransformerEncoderLayer(4, 2, 6, 0.0, activation="gelu", norm_first=norm_first,
                                       generator=rng(), dtype=np.float64)
    padding = np.array([[False, False, True], [False, False, False]])
    module_gradcheck(perturb(layer), rng(1).standard_normal((2, 3, 4)), padding, device=device,
                     call=lambda m, x, pad: m(x, src_key_padding_mask=pad))


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_gradients(device, norm_first):
    layer = nn.TransformerDecoderLayer(4, 2, 6, 0.0, norm_first=norm_first, generator=rng(),
                                       dtype=np.float64)
    # the (4, 4) weights are checked along 2 random directions each, the rest element-wise
    module_gradcheck(perturb(layer), rng(1).standard_normal((1, 3, 4)),
                     rng(2).standard_normal((1, 2, 4)), device=device, max_full=8, directions=2,
                     call=lambda m, x, mem: m(x, mem, tgt_is_causal=True))


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_layers_ignore_later_tokens(device, norm_first):
    enc, dec = encoder(device, norm_first), decoder(device, norm_first)
    x, mem = rng(1).standard_normal((B, T, D)), randn(device, B, S, D, seed=2)
    changed = x.copy()
    changed[:, 2:] += 1.0
    for run in (lambda t: enc(t, is_causal=True), lambda t: dec(t, mem, tgt_is_causal=True)):
        a = run(mt.tensor(x, device=device)).numpy()
        b = run(mt.tensor(changed, device=device)).numpy()
        np.testing.assert_allclose(a[:, :2], b[:, :2], atol=1e-12)
        assert not np.allclose(a[:, 2:], b[:, 2:])


def test_padded_memory_never_changes_the_decoder(device):
    dec = decoder(device, norm_first=False)
    x, mem = randn(device, B, T, D), rng(2).standard_normal((B, S, D))
    padding = np.array([[False, False, True], [False, True, True]])
    mask = mt.tensor(padding, device=device)
    a = dec(x, mt.tensor(mem, device=device), memory_key_padding_mask=mask).numpy()
    noisy = mem + 50 * padding[..., None] * rng(3).standard_normal(mem.shape)
    b = dec(x, mt.tensor(noisy, device=device), memory_key_padding_mask=mask).numpy()
    np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoding_equals_the_full_causal_pass(device, norm_first):
    dec = decoder(device, norm_first).eval()
    x, mem = randn(device, B, T, D), randn(device, B, S, D, seed=2)
    full = dec(x, mem, tgt_is_causal=True).numpy()
    cache, steps = {}, []
    with mt.no_grad():
        for t in range(T):
            steps.append(dec(x[:, t:t + 1], mem, tgt_is_causal=True, cache=cache).numpy())
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-12)
    assert cache["self"]["k"].shape == (B, H, T, D // H) and cache["cross"]["static"]


def test_dropout_is_active_in_training_only(device):
    enc = encoder(device, norm_first=True, dtype=np.float32, dropout=0.3)
    x = randn(device, B, T, D).astype(np.float32)
    assert not np.allclose(enc(x).numpy(), enc(x).numpy())
    enc.eval()
    np.testing.assert_array_equal(enc(x).numpy(), enc(x).numpy())


def test_encoder_state_dict_round_trip(device):
    a, b = encoder(device, False), nn.TransformerEncoderLayer(D, H, FF, 0.0, generator=rng(5),
                                                              dtype=np.float64).to(device)
    x = randn(device, B, T, D)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
