"""The cost formulas of the lecture (Swin, Liu et al. 2021, Eq. 1-2), counted with mt.count_macs:

    Ω(MSA)   = 4hwC² + 2(hw)²C      global self-attention over an h×w grid of tokens (ViT)
    Ω(W-MSA) = 4hwC² + 2M²hwC       self-attention inside M×M windows (Swin)

Convention (the paper's): a multiply-add is one product-and-sum of a matrix product; only the
forward pass counts. 4hwC² is the four projections Q, K, V and the output, each (hw, C) @ (C, C)
(their bias additions are not multiply-adds); 2(hw)²C is Q Kᵀ, h heads of (hw, d) @ (d, hw)
with h·d = C, plus the weights times V, the same size again. Softmax, scaling, LayerNorm and the
relative position bias are not matrix products and do not count.

``mt.count_macs`` counts every matrix product made with ``minitx.ops.matmul`` and the two
inside the fused ``F.scaled_dot_product_attention`` (Q Kᵀ and P V), which ViT's attention module
(``nn.MultiHeadAttention``) calls; a test checks that the fused op reports exactly the products
of its composite definition (:mod:`minitx.composites`, made of ``ops.matmul``).
"""

import numpy as np
import pytest

import minitx as mt
from minitx import composites, nn


@pytest.fixture
def swin():
    """models/swin.py, where Swin's W-MSA lives (written alongside this file)."""
    return pytest.importorskip("models.swin")


def msa_formula(h, w, C):
    return 4 * h * w * C ** 2 + 2 * (h * w) ** 2 * C  # Ω(MSA), Swin Eq. 1


def wmsa_formula(h, w, C, M):
    return 4 * h * w * C ** 2 + 2 * M ** 2 * h * w * C  # Ω(W-MSA), Swin Eq. 2


def composite_attention(q, k, v, mask=None, causal=False, dropout_p=0.0, training=True,
                        scale=None, return_weights=False, generator=None):
    """F.scaled_dot_product_attention written with ops.matmul (no dropout, no weights)."""
    assert dropout_p == 0.0 and not return_weights  # what these tests use
    return composites.scaled_dot_product_attention(q, k, v, mask, causal, scale)


def tokens(B, h, w, C, seed=0):
    rng = np.random.default_rng(seed)
    return mt.tensor(rng.standard_normal((B, h, w, C)).astype(np.float32))  # (B, h, w, C)


@pytest.mark.parametrize("h, w, C, heads", [(4, 4, 8, 2), (6, 8, 12, 3), (8, 8, 16, 4)])
def test_global_msa_counts_the_formula_exactly(h, w, C, heads):
    msa = nn.MultiHeadAttention(C, heads)  # the attention module of every ViT block
    x = tokens(1, h, w, C).reshape(1, h * w, C)  # (1, hw, C): one image, hw tokens
    with mt.count_macs() as counter:
        msa(x)
    assert counter.macs == msa_formula(h, w, C)


@pytest.mark.parametrize("h, w, C, heads, M", [(4, 4, 8, 2, 2), (8, 12, 12, 3, 4),
                                               (14, 14, 16, 4, 7)])
def test_window_msa_counts_the_formula_exactly(swin, h, w, C, heads, M):
    attention = swin.WindowAttention(C, M, heads)
    windows = swin.window_partition(tokens(1, h, w, C), M)  # (nW, M, M, C)
    windows = windows.reshape(-1, M * M, C)  # (nW, M², C)
    with mt.count_macs() as counter:
        attention(windows)
    assert counter.macs == wmsa_formula(h, w, C, M)


def test_both_scale_with_the_batch_and_windows_win_once_hw_exceeds_m_squared(swin):
    B, h, w, C, heads, M = 3, 8, 8, 8, 2, 4
    msa, wmsa = nn.MultiHeadAttention(C, heads), swin.WindowAttention(C, M, heads)
    x = tokens(B, h, w, C)
    with mt.count_macs() as global_count:
        msa(x.reshape(B, h * w, C))
    with mt.count_macs() as window_count:
        wmsa(swin.window_partition(x, M).reshape(-1, M * M, C))
    assert global_count.macs == B * msa_formula(h, w, C)
    assert window_count.macs == B * wmsa_formula(h, w, C, M)
    # the two differ only in the attention term: 2(hw)²C against 2M²hwC, a factor hw / M²
    assert (global_count.macs - B * 4 * h * w * C ** 2) == (h * w // M ** 2) * (
        window_count.macs - B * 4 * h * w * C ** 2)


def test_a_vit_block_counts_msa_plus_its_mlp():
    h = w = 4
    C, heads, mlp = 8, 2, 32
    block = nn.TransformerEncoderLayer(C, heads, mlp, 0.0, "gelu", norm_first=True)
    with mt.count_macs() as counter:
        block(tokens(1, h, w, C).reshape(1, h * w, C))
    assert counter.macs == msa_formula(h, w, C) + 2 * h * w * C * mlp  # MSA + two MLP layers


def test_the_fused_attention_counts_the_products_of_its_composite(monkeypatch):
    h, w, C = 4, 6, 8
    x = tokens(2, h, w, C).reshape(2, h * w, C)
    msa = nn.MultiHeadAttention(C, 2)
    with mt.count_macs() as fused:
        msa(x)
    monkeypatch.setattr(mt.functional, "scaled_dot_product_attention", composite_attention)
    with mt.count_macs() as composite:
        msa(x)
    assert fused.macs == composite.macs == 2 * msa_formula(h, w, C)
