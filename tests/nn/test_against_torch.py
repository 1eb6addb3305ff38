"""minitx.nn against torch.nn with copied weights (skipped when torch is not installed).

The weights go through ``load_state_dict``, so these tests also check that minitx's parameter
names map one-to-one onto PyTorch's: PyTorch packs W^Q, W^K, W^V into one ``in_proj_weight``
(3D, D), which is split into ``q_proj``, ``k_proj`` and ``v_proj`` here.
"""

import numpy as np
import pytest

import minitx as mt
from minitx import nn

torch = pytest.importorskip("torch")

B, T, S, D, H, FF = 2, 5, 4, 8, 2, 16
RENAMES = {"multihead_attn": "cross_attn", "linear1": "ffn.linear1", "linear2": "ffn.linear2"}


def convert(torch_state):
    """PyTorch's state dict -> minitx's names (NumPy arrays)."""
    out = {}
    for name, value in torch_state.items():
        array = value.detach().numpy()
        first, dot, rest = name.partition(".")
        name = RENAMES.get(first, first) + dot + rest
        base, _, leaf = name.rpartition(".")
        prefix = base + "." if base else ""
        if leaf in ("in_proj_weight", "in_proj_bias"):  # (3D, ...) = [W^Q; W^K; W^V]
            kind = leaf.rpartition("_")[2]
            for letter, part in zip("qkv", np.split(array, 3)):
                out[f"{prefix}{letter}_proj.{kind}"] = part
        elif leaf in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):  # kdim/vdim != D
            out[f"{prefix}{leaf[0]}_proj.weight"] = array
        else:
            out[name] = array
    return out


def ours(x, device):
    return mt.tensor(x.numpy() if isinstance(x, torch.Tensor) else x, device=device)


def randn(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


def padding_mask(batch, length, seed):
    """A random bool (batch, length) mask, True = padding, that keeps position 0."""
    mask = np.random.default_rng(seed).random((batch, length)) < 0.4
    mask[:, 0] = False
    return torch.from_numpy(mask)


@pytest.mark.parametrize("use_masks", [False, True])
def test_self_attention_outputs_and_weights(device, use_masks):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(D, H, batch_first=True, dtype=torch.float64)
    mine = nn.MultiHeadAttention(D, H, dtype=np.float64)
    assert mine.load_state_dict(convert(theirs.state_dict())) == ([], [])
    mine.to(device)
    x = randn(B, T, D)
    kpm = padding_mask(B, T, 1) if use_masks else None
    attn = torch.from_numpy(np.triu(np.ones((T, T), bool), 2)) if use_masks else None
    expected, per_head = theirs(x, x, x, key_padding_mask=kpm, attn_mask=attn,
                                average_attn_weights=False)
    _, averaged = theirs(x, x, x, key_padding_mask=kpm, attn_mask=attn)
    masks = {} if not use_masks else dict(key_padding_mask=ours(kpm, device),
                                          attn_mask=ours(attn, device))
    out, weights = mine(ours(x, device), need_weights=True, **masks)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(weights.numpy(), per_head.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(weights.numpy().mean(1), averaged.detach().numpy(), atol=1e-12)


def test_cross_attention_with_other_key_and_value_widths_and_a_float_mask(device):
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(D, H, kdim=3, vdim=5, batch_first=True,
                                         dtype=torch.float64)
    mine = nn.MultiHeadAttention(D, H, kdim=3, vdim=5, dtype=np.float64)
    mine.load_state_dict(convert(theirs.state_dict()))
    mine.to(device)
    q, k, v = randn(B, T, D, seed=1), randn(B, S, 3, seed=2), randn(B, S, 5, seed=3)
    bias = randn(T, S, seed=4)
    kpm = padding_mask(B, S, 5)
    float_kpm = torch.zeros(B, S, dtype=torch.float64).masked_fill(kpm, -torch.inf)
    expected, _ = theirs(q, k, v, key_padding_mask=float_kpm, attn_mask=bias)  # one mask type
    out = mine(ours(q, device), ours(k, device), ours(v, device), attn_mask=ours(bias, device),
               key_padding_mask=ours(kpm, device))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=1e-12)


def test_causal_flag_equals_torch_with_a_causal_mask(device):
    torch.manual_seed(2)
    theirs = torch.nn.MultiheadAttention(D, H, batch_first=True, dtype=torch.float64)
    mine = nn.MultiHeadAttention(D, H, dtype=np.float64)
    mine.load_state_dict(convert(theirs.state_dict()))
    x = randn(B, T, D, seed=3)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
    expected, _ = theirs(x, x, x, attn_mask=causal, is_causal=True)
    out = mine.to(device)(ours(x, device), causal=True)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer(device, norm_first, activation):
    torch.manual_seed(3)
    theirs = torch.nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, activation=activation,
                                              batch_first=True, norm_first=norm_first,
                                              dtype=torch.float64).train()  # no fast path
    mine = nn.TransformerEncoderLayer(D, H, FF, 0.0, activation, norm_first=norm_first,
                                      dtype=np.float64)
    mine.load_state_dict(convert(theirs.state_dict()))
    mine.to(device)
    x, kpm = randn(B, T, D, seed=4), padding_mask(B, T, 5)
    expected = theirs(x, src_key_padding_mask=kpm)
    out = mine(ours(x, device), src_key_padding_mask=ours(kpm, device))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer(device, norm_first):
    torch.manual_seed(4)
    theirs = torch.nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, batch_first=True,
                                              norm_first=norm_first,
                                              dtype=torch.float64).train()
    mine = nn.TransformerDecoderLayer(D, H, FF, 0.0, norm_first=norm_first, dtype=np.float64)
    mine.load_state_dict(convert(theirs.state_dict()))
    mine.to(device)
    tgt, memory = randn(B, T, D, seed=5), randn(B, S, D, seed=6)
    tgt_kpm, mem_kpm = padding_mask(B, T, 7), padding_mask(B, S, 8)
    causal = torch.from_numpy(np.triu(np.ones((T, T), bool), 1))  # True = NOT allowed
    expected = theirs(tgt, memory, tgt_mask=causal, tgt_is_causal=True,
                      tgt_key_padding_mask=tgt_kpm, memory_key_padding_mask=mem_kpm)
    out = mine(ours(tgt, device), ours(memory, device), tgt_is_causal=True,
               tgt_key_padding_mask=ours(tgt_kpm, device),
               memory_key_padding_mask=ours(mem_kpm, device))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=1e-12)
    with_mask = mine(ours(tgt, device), ours(memory, device), tgt_mask=ours(causal, device),
                     tgt_key_padding_mask=ours(tgt_kpm, device),
                     memory_key_padding_mask=ours(mem_kpm, device))
    np.testing.assert_allclose(with_mask.numpy(), expected.detach().numpy(), atol=1e-12)


def test_linear_layer_norm_and_embedding(device):
    torch.manual_seed(5)
    for theirs, mine, x in [
        (torch.nn.Linear(4, 3, dtype=torch.float64), nn.Linear(4, 3, dtype=np.float64),
         randn(2, 4)),
        (torch.nn.LayerNorm(4, eps=1e-6, dtype=torch.float64),
         nn.LayerNorm(4, eps=1e-6, dtype=np.float64), randn(2, 3, 4)),
        (torch.nn.Embedding(6, 3, dtype=torch.float64), nn.Embedding(6, 3, dtype=np.float64),
         torch.tensor([[0, 5, 2]])),
    ]:
        with torch.no_grad():
            for p in theirs.parameters():
                p.add_(torch.randn_like(p))
        mine.load_state_dict(convert(theirs.state_dict()))
        np.testing.assert_allclose(mine.to(device)(ours(x, device)).numpy(),
                                   theirs(x).detach().numpy(), atol=1e-12)
