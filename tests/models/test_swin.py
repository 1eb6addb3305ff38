"""Swin Transformer (models/swin.py, models/swin_segment.py): windows, the shift mask, the
relative position bias, patch merging, the parameter count, training, the examples."""


import numpy as np
import pytest

import minitx as mt
import minitx.functional as F
from minitx import nn, optim
from models.swin import (
    SWIN_PRESETS,
    PatchMerging,
    SwinBlock,
    SwinConfig,
    SwinTransformer,
    WindowAttention,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from models.swin_segment import SwinSegmenter, mean_iou, pixel_shuffle, upsample_nearest
from tests.nn.helpers import module_gradcheck, without_random_init

TINY = SwinConfig(image_size=16, patch_size=2, in_channels=3, embed_dim=8, depths=(2, 2),
                  num_heads=(2, 4), window_size=4, num_classes=3)


def randn(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---- windows ---------------------------------------------------------------------------------

@pytest.mark.parametrize("B, H, W, C, M", [(2, 8, 8, 3, 4), (1, 12, 8, 2, 4), (3, 6, 9, 1, 3)])
def test_window_partition_then_reverse_is_the_identity(device, B, H, W, C, M):
    x = mt.tensor(randn(B, H, W, C), device=device)
    windows = window_partition(x, M)  # (B·nW, M, M, C)
    assert windows.shape == (B * (H // M) * (W // M), M, M, C)
    np.testing.assert_array_equal(window_reverse(windows, M, H, W).numpy(), x.numpy())
    # and window b·nW + i·(W/M) + j is the block at row i, column j of image b
    host, nW, i, j = x.numpy(), (H // M) * (W // M), H // M - 1, 1
    np.testing.assert_array_equal(windows.numpy()[(B - 1) * nW + i * (W // M) + j],
                                  host[B - 1, i * M:(i + 1) * M, j * M:(j + 1) * M])


def test_window_partition_rejects_maps_the_window_does_not_tile():
    with pytest.raises(ValueError, match="window_partition"):
        window_partition(mt.ones((1, 6, 8, 2)), 4)


def wrapped(H, W, M, s):
    """Independently of the model: for each window of the map rolled by −s, which tokens came
    across the bottom / right edge. Two tokens may attend iff they agree on both."""
    r, c = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")  # rolled coordinates
    side = 2 * (r + s >= H) + (c + s >= W)  # (H, W): 0..3, original position wrapped or not
    return side.reshape(H // M, M, W // M, M).transpose(0, 2, 1, 3).reshape(-1, M * M)


@pytest.mark.parametrize("H, M", [(8, 4), (12, 4), (6, 3)])
def test_no_token_attends_across_its_shifted_region(device, H, M):
    block = SwinBlock(8, H, 2, M, M // 2).to(device)
    x = mt.tensor(randn(2, H, H, 8), device=device)
    s = block.shift_size
    with nn.record_attention(block) as recorded:  # the weights of an ordinary forward pass
        block(x)
    weights = recorded["attn"].numpy()  # (B, nW, h, N, N)
    assert weights.shape == (2, (H // M) ** 2, 2, M * M, M * M)
    side = wrapped(H, H, M, s)  # (nW, N)
    same = side[:, :, None] == side[:, None, :]  # (nW, N, N)
    blocked = np.broadcast_to(~same[None, :, None], weights.shape)
    assert (weights[blocked] == 0).all()  # exactly zero, not just small
    assert (weights[~blocked] > 0).all()
    np.testing.assert_allclose(weights.sum(-1), 1, rtol=1e-5)
    assert blocked.any()  # the test does test something


def test_shifted_block_output_depends_only_on_its_region():
    """d out[p] / d x[q] is zero unless q shares p's shifted window and region (or q = p)."""
    H, M, s = 8, 4, 2
    block = SwinBlock(4, H, 1, M, s)
    x = mt.tensor(randn(1, H, H, 4), requires_grad=True)
    out = block(x)
    p = (7, 0)  # bottom-left: its shifted window wraps around the top and the right
    g = np.zeros(out.shape, np.float32)
    g[0, p[0], p[1]] = 1
    out.backward(mt.tensor(g))
    reached = np.abs(x.grad[0]).sum(-1) > 0  # (H, W)
    rolled = lambda i: (i - s) % H  # noqa: E731  position after the roll by −s
    same_window = lambda q: all(rolled(q[k]) // M == rolled(p[k]) // M  # noqa: E731
                                for k in range(2))
    same_side = lambda q: all((rolled(q[k]) + s >= H) == (rolled(p[k]) + s >= H)  # noqa: E731
                              for k in range(2))
    expected = np.array([[same_window((i, j)) and same_side((i, j)) for j in range(H)]
                         for i in range(H)])
    np.testing.assert_array_equal(reached, expected)
    assert expected.sum() == 4  # rows {6, 7} x columns {0, 1}: a 2x2 piece of a window


def test_shift_mask_matches_the_wrapped_regions():
    for H, M in [(8, 4), (16, 4), (14, 7)]:
        mask = shifted_window_mask(H, H, M, M // 2)  # (nW, N, N)
        side = wrapped(H, H, M, M // 2)
        np.testing.assert_array_equal(mask == 0, side[:, :, None] == side[:, None, :])
        assert np.isneginf(mask[mask != 0]).all()


def test_small_maps_get_one_unshifted_window():
    block = SwinBlock(8, 4, 2, 7, 3)  # a 4x4 map with M = 7: one 4x4 window, no shift
    assert (block.window_size, block.shift_size, block.attn_mask) == (4, 0, None)
    assert block(mt.ones((2, 4, 4, 8))).shape == (2, 4, 4, 8)


# ---- relative position bias ----------------------------------------------------------------

@pytest.mark.parametrize("M", [1, 2, 3, 7])
def test_relative_position_index_matches_the_definition(M):
    index = relative_position_index(M)
    assert index.shape == (M * M, M * M)
    for i in range(M * M):
        for j in range(M * M):
            (yi, xi), (yj, xj) = divmod(i, M), divmod(j, M)
            assert index[i, j] == (yi - yj + M - 1) * (2 * M - 1) + (xi - xj + M - 1)
    assert index.min() == 0 and index.max() == (2 * M - 1) ** 2 - 1
    assert len(np.unique(index)) == (2 * M - 1) ** 2  # every offset is used


def test_bias_is_gathered_from_the_table_and_gets_summed_gradients(device):
    attn = WindowAttention(6, 3, 2).to(device)
    bias = attn.relative_position_bias()  # (h, N, N)
    table, index = attn.relative_position_bias_table.numpy(), relative_position_index(3)
    np.testing.assert_array_equal(bias.numpy(), table[index].transpose(2, 0, 1))
    bias.sum().backward()
    counts = np.bincount(index.reshape(-1), minlength=25)  # pairs sharing each offset
    grad = mt.backend.to_numpy(attn.relative_position_bias_table.grad)  # (25, h)
    np.testing.assert_allclose(grad, counts[:, None] * np.ones((1, 2)))


def test_window_attention_gradients_with_mask(device):
    attn = WindowAttention(4, 2, 2).astype(np.float64)
    mask = shifted_window_mask(4, 4, 2, 1)  # (4, 4, 4)
    x = randn(2, 4, 4, 4, dtype=np.float64)  # B = 2 images of nW = 4 windows
    module_gradcheck(attn, x, device=device,
                     call=lambda m, t: m(t, mask=mt.tensor(mask, device=t.device)))


def test_window_attention_macs_are_eq_2():
    C, M, h, windows = 12, 4, 3, 5
    with mt.count_macs() as counter:
        WindowAttention(C, M, h)(mt.ones((windows, M * M, C)))
    assert counter.macs == windows * (4 * M * M * C * C + 2 * M ** 4 * C)


# ---- patch merging, the whole model -----------------------------------------------------------

def test_patch_merging_shape_and_order(device):
    merge = PatchMerging(3).to(device)
    x = mt.tensor(randn(2, 4, 6, 3), device=device)
    out = merge(x)
    assert out.shape == (2, 2, 3, 6)
    h = x.numpy()  # the paper's / official order: (0, 0), (1, 0), (0, 1), (1, 1) offsets
    cat = np.concatenate([h[:, 0::2, 0::2], h[:, 1::2, 0::2], h[:, 0::2, 1::2],
                          h[:, 1::2, 1::2]], axis=-1)  # (2, 2, 3, 12)
    expected = merge.reduction(merge.norm(mt.tensor(cat, device=device)))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, count, millions", [
    ("swin_t", 28_288_354, 28), ("swin_s", 49_606_258, 50), ("swin_b", 87_768_224, 88),
    ("swin_l", 196_532_476, 197)])
def test_every_paper_preset_has_the_official_parameter_count(name, count, millions):
    # §3.3 (depths 2-2-6-2 for T, 2-2-18-2 for S, B and L) and Table 1 (28M, 50M, 88M; L is
    # given in §3.3 only). The exact counts of the official models, 224², ImageNet-1K head
    # (relative position indices and masks are buffers, not parameters); L at window 7.
    with without_random_init():  # shapes only: the full model, its values never drawn
        model = SwinTransformer(SWIN_PRESETS[name])
    assert model.num_parameters() == count
    assert round(count / 1e6) == millions


def test_stage_features_and_bad_inputs():
    model = SwinTransformer(TINY)
    maps = model.features(mt.ones((2, 3, 16, 16)))
    assert [m.shape for m in maps] == [(2, 8, 8, 8), (2, 4, 4, 16)]
    assert model(mt.ones((2, 3, 16, 16))).shape == (2, 3)
    with pytest.raises(ValueError, match="SwinTransformer"):
        model(mt.ones((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="divisible by window_size"):
        SwinTransformer(SwinConfig(image_size=24, patch_size=2, depths=(2,), num_heads=(3,),
                                   window_size=5))


def test_same_function_on_every_device(device):
    model = SwinTransformer(TINY, generator=np.random.default_rng(0))
    x = randn(2, 3, 16, 16)
    expected = model(mt.tensor(x)).numpy()
    got = model.to(device)(mt.tensor(x, device=device))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_overfits_one_batch():
    model = SwinTransformer(TINY, generator=np.random.default_rng(0))
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    x, y = mt.tensor(randn(6, 3, 16, 16)), mt.tensor(np.arange(6) % 3)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 20, losses


def test_matches_the_pytorch_twin_forward_and_backward():
    torch = pytest.importorskip("torch")
    from benchmarks.step_swin import copy_weights, torch_swin
    config = SwinConfig(image_size=16, patch_size=2, embed_dim=8, depths=(2, 2, 2),
                        num_heads=(2, 2, 4), window_size=2, num_classes=3)
    model = SwinTransformer(config, generator=np.random.default_rng(0))
    twin = torch_swin(config)
    copy_weights(model, twin)
    x, y = randn(3, 3, 16, 16), np.array([0, 2, 1])
    loss = F.cross_entropy(model(mt.tensor(x)), mt.tensor(y))
    loss.backward()
    twin_loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)),
                                                  torch.from_numpy(y))
    twin_loss.backward()
    assert abs(loss.item() - twin_loss.item()) < 1e-5
    theirs = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.reshape(theirs[name].shape), theirs[name].grad.numpy(),
                                   rtol=1e-3, atol=1e-5, err_msg=name)


# ---- segmentation ----------------------------------------------------------------------------

def test_upsampling_and_pixel_shuffle():
    x = mt.tensor(randn(2, 3, 4, 5), requires_grad=True)
    up = upsample_nearest(x, 2)  # (2, 6, 8, 5)
    np.testing.assert_array_equal(up.numpy(), x.numpy().repeat(2, 1).repeat(2, 2))
    up.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(x.shape, 4.0))  # four copies of each pixel
    logits = randn(1, 2, 2, 2 * 2 * 3)  # (B, h, w, P·P·K)
    pixels = pixel_shuffle(mt.tensor(logits), 2).numpy()  # (1, 4, 4, 3)
    np.testing.assert_array_equal(pixels[0, 2 + 1, 0 + 0], logits[0, 1, 0, 2 * 3:3 * 3])


def test_segmenter_shapes_and_miou():
    model = SwinSegmenter(TINY, num_classes=4, decoder_dim=8)
    assert model(mt.ones((2, 3, 16, 16))).shape == (2, 16, 16, 4)
    perfect = np.diag([5, 3, 2])
    assert mean_iou(perfect)[0] == 1.0
    assert np.isnan(mean_iou(np.diag([5, 0]))[1][1])  # an absent class is left out
