"""MultiHeadAttention: gradients, masks (causal, padding, attention), weights, the KV cache."""

import math

import numpy as np
import pytest

import minitx as mt
from minitx import nn
from minitx.testing import gradcheck
from tests.nn.helpers import module_gradcheck

B, T, D, H = 2, 5, 8, 2


def rng(seed=0):
    return np.random.default_rng(seed)


def mha(device, dtype=np.float64, **kwargs):
    return nn.MultiHeadAttention(D, H, generator=rng(), device=device, dtype=dtype, **kwargs)


def randn(device, *shape, seed=1):
    return mt.tensor(rng(seed).standard_normal(shape), device=device)


def reference(layer, q_in, k_in, v_in, blocked=None):
    """Eq. 1 and §3.2.2 in NumPy; blocked (B or 1, h or 1, Tq, Tk) True = not allowed."""
    def heads(x, proj):  # (B, T, D) -> (B, h, T, d)
        y = x @ proj.weight.numpy().T + proj.bias.numpy()
        return y.reshape(y.shape[0], y.shape[1], H, D // H).transpose(0, 2, 1, 3)

    q, k, v = heads(q_in, layer.q_proj), heads(k_in, layer.k_proj), heads(v_in, layer.v_proj)
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D // H)  # (B, h, Tq, Tk)
    if blocked is not None:
        s = np.where(blocked, -np.inf, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = (p @ v).transpose(0, 2, 1, 3).reshape(q_in.shape[0], q_in.shape[1], D)
    return o @ layer.out_proj.weight.numpy().T + layer.out_proj.bias.numpy(), p


def test_structure_and_init():
    layer = nn.MultiHeadAttention(D, H, kdim=3, vdim=5)
    assert [n for n, _ in layer.named_children()] == ["q_proj", "k_proj", "v_proj", "out_proj"]
    assert layer.k_proj.weight.shape == (D, 3) and layer.v_proj.weight.shape == (D, 5)
    assert all((m.bias.numpy() == 0).all() for m in layer.children())
    big = nn.MultiHeadAttention(64, 4, generator=rng())
    bound = math.sqrt(6 / 128)  # Xavier-uniform, Glorot & Bengio 2010
    assert bound * 0.95 < np.abs(big.q_proj.weight.numpy()).max() <= bound
    assert "kdim=3, vdim=5" in repr(layer)
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiHeadAttention(10, 3)


def test_forward_matches_numpy_with_masks(device):
    layer = mha(device)
    x, mem = randn(device, B, T, D), randn(device, B, 4, D, seed=2)
    out, w = layer(x, need_weights=True)
    ref, p = reference(layer, x.numpy(), x.numpy(), x.numpy())
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), p, atol=1e-12)
    padding = np.array([[False, False, True, False], [False, True, True, False]])
    forbid = rng(3).random((T, 4)) < 0.3
    forbid[:, 0] = False  # keep one key per row
    out = layer(x, mem, key_padding_mask=mt.tensor(padding, device=device),
                attn_mask=mt.tensor(forbid, device=device))
    blocked = padding[:, None, None, :] | forbid
    np.testing.assert_allclose(out.numpy(), reference(layer, x.numpy(), mem.numpy(),
                                                      mem.numpy(), blocked)[0], atol=1e-12)


def test_bool_float_and_per_head_masks_agree(device):
    layer = mha(device)
    x = randn(device, B, T, D)
    forbid = np.triu(np.ones((T, T), bool), 1)
    padding = np.zeros((B, T), bool)
    padding[1, 3:] = True
    as_bool = layer(x, attn_mask=mt.tensor(forbid, device=device),
                    key_padding_mask=mt.tensor(padding, device=device)).numpy()
    float_mask = mt.tensor(np.where(forbid, -np.inf, 0.0), device=device)
    mixed = layer(x, attn_mask=float_mask, key_padding_mask=mt.tensor(padding, device=device))
    np.testing.assert_allclose(mixed.numpy(), as_bool, atol=1e-12)
    per_head = np.broadcast_to(forbid, (B * H, T, T)).copy()
    three_d = layer(x, attn_mask=mt.tensor(per_head, device=device),
                    key_padding_mask=mt.tensor(padding, device=device))
    np.testing.assert_allclose(three_d.numpy(), as_bool, atol=1e-12)
    causal = layer(x, causal=True, key_padding_mask=mt.tensor(padding, device=device))
    np.testing.assert_allclose(causal.numpy(), as_bool, atol=1e-12)
    with pytest.raises(ValueError, match="attn_mask"):
        layer(x, attn_mask=mt.tensor(np.zeros((T, T + 1), bool), device=device))
    with pytest.raises(ValueError, match="key_padding_mask"):
        layer(x, key_padding_mask=mt.tensor(np.zeros((B, T + 1), bool), device=device))
    with pytest.raises(TypeError, match="bool or float"):
        layer(x, attn_mask=mt.tensor(np.zeros((T, T), np.int64), device=device))


def test_causal_outputs_ignore_later_tokens(device):
    layer = mha(device)
    x = rng(1).standard_normal((B, T, D))
    base = layer(mt.tensor(x, device=device), causal=True).numpy()
    for t in range(T - 1):
        changed = x.copy()
        changed[:, t + 1:] += rng(t).standard_normal(changed[:, t + 1:].shape)
        out = layer(mt.tensor(changed, device=device), causal=True).numpy()
        np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-12)
        assert not np.allclose(out[:, t + 1:], base[:, t + 1:])


def test_padded_keys_never_change_the_outputs(device):
    layer = mha(device)
    x, mem = rng(1).standard_normal((B, T, D)), rng(2).standard_normal((B, 6, D))
    padding = np.zeros((B, 6), bool)
    padding[0, 4:], padding[1, 2:] = True, True
    mask = mt.tensor(padding, device=device)
    base = layer(mt.tensor(x, device=device), mt.tensor(mem, device=device),
                 key_padding_mask=mask).numpy()
    noisy = mem + 100 * rng(3).standard_normal(mem.shape) * padding[..., None]
    out = layer(mt.tensor(x, device=device), mt.tensor(noisy, device=device),
                key_padding_mask=mask).numpy()
    np.testing.assert_allclose(out, base, atol=1e-12)


def test_need_weights_shapes_and_rows(device):
    layer = nn.MultiHeadAttention(D, 4, generator=rng(), device=device)
    x, mem = randn(device, B, 3, D).astype(np.float32), randn(device, B, 7, D).astype(np.float32)
    padding = np.zeros((B, 7), bool)
    padding[:, 5:] = True
    out, w = layer(x, mem, need_weights=True, key_padding_mask=mt.tensor(padding, device=device))
    assert out.shape == (B, 3, D) and w.shape == (B, 4, 3, 7) and not w.requires_grad
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-5)
    assert (w.numpy()[..., 5:] == 0).all()


def test_gradients_self_and_cross_attention(device):
    layer = nn.MultiHeadAttention(4, 2, generator=rng(), dtype=np.float64)
    for p in layer.parameters():  # non-zero biases, so their gradients are checked for real
        p.data = p.data + 0.1 * rng(1).standard_normal(p.shape)
    x = rng(2).standard_normal((2, 3, 4))
    module_gradcheck(layer, x, device=device,
                     call=lambda m, t: m(t, causal=True))
    cross = nn.MultiHeadAttention(4, 2, kdim=3, vdim=2, generator=rng(3), dtype=np.float64)
    padding = np.array([[False, False, True, False], [False, False, False, False]])
    module_gradcheck(cross, x, rng(4).standard_normal((2, 4, 3)),
                     rng(5).standard_normal((2, 4, 2)), padding, device=device,
                     call=lambda m, q, k, v, pad: m(q, k, v, key_padding_mask=pad))


def test_float_mask_is_differentiable(device):
    layer = nn.MultiHeadAttention(4, 2, generator=rng(), dtype=np.float64)
    module_gradcheck(layer, rng(1).standard_normal((1, 3, 4)), rng(2).standard_normal((3, 3)),
                     device=device, call=lambda m, x, bias: m(x, attn_mask=bias))


@pytest.mark.parametrize("chunks", [[1, 1, 1, 1, 1], [2, 1, 2], [3, 2]])
def test_cached_decoding_equals_the_uncached_causal_pass(device, chunks):
    layer = mha(device)
    x = randn(device, B, T, D)
    full = layer(x, causal=True).numpy()
    cache, outputs, start = {}, [], 0
    with mt.no_grad():
        for n in chunks:
            outputs.append(layer(x[:, start:start + n], causal=True, cache=cache).numpy())
            start += n
            assert cache["k"].shape == (B, H, start, D // H) and not cache["static"]
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, atol=1e-12)


def test_cross_attention_cache_projects_the_memory_once(device):
    layer = mha(device)
    x, mem = randn(device, B, T, D), randn(device, B, 4, D, seed=2)
    full = layer(x, mem).numpy()
    cache = {}
    first = layer(x[:, :2], mem, cache=cache).numpy()
    assert cache["static"] and cache["k"].shape == (B, H, 4, D // H)
    keys = cache["k"]
    second = layer(x[:, 2:], mem, cache=cache).numpy()
    assert cache["k"] is keys
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, atol=1e-12)


def test_attention_dropout_follows_the_training_flag(device):
    layer = mha(device, dtype=np.float32, dropout=0.5)
    x = randn(device, B, T, D).astype(np.float32)
    train_a, train_b = layer(x).numpy(), layer(x).numpy()
    assert not np.allclose(train_a, train_b)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())


def test_bad_inputs(device):
    layer = mha(device)
    x = randn(device, B, T, D)
    with pytest.raises(ValueError, match=r"query must be \(B, T, 8\)"):
        layer(randn(device, T, D))
    with pytest.raises(ValueError, match="batch sizes differ"):
        layer(x, randn(device, B + 1, T, D))
    with pytest.raises(ValueError, match="value given without key"):
        layer(x, value=x)
    with pytest.raises(ValueError, match="same number of positions"):
        layer(x, x, randn(device, B, T + 1, D))


def test_a_mask_that_is_not_a_tensor_is_named(device):
    """PyTorch's forward is (query, key, value, key_padding_mask, need_weights, attn_mask):
    its need_weights, passed fifth, lands on minitx's attn_mask."""
    layer = mha(device)
    x = randn(device, B, T, D)
    with pytest.raises(TypeError, match=r"MultiHeadAttention: attn_mask must be None or a "
                                        r"Tensor.*got bool True.*need_weights"):
        layer(x, x, x, None, True)
    with pytest.raises(TypeError, match=r"key_padding_mask must be None or a Tensor.*got "
                                        r"ndarray.*minitx\.tensor"):
        layer(x, key_padding_mask=np.zeros((B, T), dtype=bool))


# ---- more batch axes, an additive bias, recorded weights ---------------------------------------

def test_extra_batch_axes_and_a_per_group_bias_equal_a_loop(device):
    """(B, W, T, D) input with a float attn_mask (W, h, T, T): each group w attends with its
    own bias, exactly as W separate calls on (B, T, D) with that group's bias."""
    layer, W = mha(device), 3
    x = randn(device, B, W, T, D)
    bias = randn(device, W, H, T, T, seed=2)  # e.g. Swin's relative position bias + shift mask
    out, weights = layer(x, attn_mask=bias, need_weights=True)
    assert out.shape == (B, W, T, D) and weights.shape == (B, W, H, T, T)
    for w in range(W):
        alone, alone_weights = layer(x[:, w], attn_mask=bias[w][None].broadcast_to((B, H, T, T)),
                                     need_weights=True)
        np.testing.assert_allclose(out.numpy()[:, w], alone.numpy(), atol=1e-12)
        np.testing.assert_allclose(weights.numpy()[:, w], alone_weights.numpy(), atol=1e-12)


def test_additive_bias_gets_gradients(device):
    layer = mha(device)
    x = randn(device, B, T, D)
    gradcheck(lambda b: layer(x, attn_mask=b), rng(3).standard_normal((1, H, T, T)),
              device=device)


def test_record_attention_gives_the_weights_of_the_last_call(device):
    enc = nn.TransformerEncoderLayer(D, H, 16, dropout=0.0, device=device, dtype=np.float64,
                                     generator=rng())
    x = randn(device, B, T, D)
    padding = mt.tensor(np.array([[False] * T, [False] * (T - 2) + [True] * 2]), device=device)
    with nn.record_attention(enc) as recorded:
        assert recorded == {"self_attn": None}
        out = enc(x, src_key_padding_mask=padding)
    _, expected = enc.self_attn(x, key_padding_mask=padding, need_weights=True)  # post-LN
    np.testing.assert_array_equal(recorded["self_attn"].numpy(), expected.numpy())
    np.testing.assert_array_equal(enc(x, src_key_padding_mask=padding).numpy(), out.numpy())
    assert enc.self_attn.weights_hook is None  # nothing is kept outside the block
    assert not any("weights" in name for name, _ in enc.named_buffers())
    with nn.record_attention(enc), pytest.raises(RuntimeError, match="already"):
        with nn.record_attention(enc.self_attn):
            pass


def test_attention_dropout_rate_may_differ_from_the_residual_rate():
    enc = nn.TransformerEncoderLayer(D, H, 16, dropout=0.3, attention_dropout=0.0)
    dec = nn.TransformerDecoderLayer(D, H, 16, dropout=0.3)
    assert enc.self_attn.dropout_p == 0.0 and enc.dropout1.p == 0.3
    assert dec.self_attn.dropout_p == dec.cross_attn.dropout_p == 0.3  # PyTorch's one rate
