"""models/vit.py: shapes, the paper's parameter count, position-embedding interpolation (§3.2),
an overfit-one-batch check, save/load, PyTorch's twin, and smoke runs of the example."""

import contextlib
import dataclasses

import numpy as np
import pytest

import minitx as mt
import minitx.functional as F
from minitx import backend, nn, optim, serialization
from models.vit import (
    PRESETS,
    ViT,
    ViTConfig,
    attention_rollout,
    interpolate_pos_embed,
    linear_interpolation_matrix,
)
from tests.nn.helpers import spied_weights, without_random_init

TINY = ViTConfig(image_size=8, patch_size=2, in_channels=3, dim=16, depth=2, heads=2,
                 mlp_dim=32, num_classes=5)


def images(n=2, config=TINY, seed=0):
    c = config
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c.in_channels, c.image_size, c.image_size)).astype(np.float32)


def test_forward_shapes_and_backward(device):
    model = ViT(TINY, device=device, generator=np.random.default_rng(0))
    x = mt.tensor(images(3), device=device)
    assert model.embed(x).shape == (3, TINY.num_patches + 1, TINY.dim)  # (B, T, D), Eq. 1
    logits = model(x)
    assert logits.shape == (3, TINY.num_classes)
    assert logits.device == backend.normalize_device(device)
    F.cross_entropy(logits, mt.tensor(np.array([0, 1, 2]), device=device)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name


def test_patchify_order_is_raster_and_channels_first():
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)  # (B, C, H, W)
    patches = F.patchify(mt.tensor(x), 2).numpy()  # (B, gh, gw, C·P·P)
    assert patches.shape == (2, 2, 3, 12)
    patches = patches.reshape(2, 6, 12)  # (B, N, C·P·P)
    for b in range(2):
        for i in range(2):
            for j in range(3):  # patch (i, j) is number i·gw + j, flattened as (C, P, P)
                expected = x[b, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(-1)
                np.testing.assert_array_equal(patches[b, 3 * i + j], expected)


def test_vit_b16_has_the_papers_86m_parameters():
    c = PRESETS["ViT-B/16"]
    D, P, N, L, mlp, K = c.dim, c.patch_size, c.num_patches, c.depth, c.mlp_dim, c.num_classes
    assert (c.image_size, N, K) == (224, 196, 1000)
    block = 2 * 2 * D + 4 * (D * D + D) + (D * mlp + mlp) + (mlp * D + D)  # 2 LN, MSA, MLP
    expected = ((3 * P * P * D + D) + D + (N + 1) * D  # E, x_class, E_pos (Eq. 1)
                + L * block + 2 * D + (D * K + K))  # blocks, final LN, linear head
    assert expected == 86_567_656
    with without_random_init():  # shapes only: the full model, its values never drawn
        model = ViT(c)
    assert model.num_parameters() == expected
    assert int(model.num_parameters() / 1e6) == 86  # Table 1: "86M"


@pytest.mark.parametrize("name, trunk, millions", [
    ("ViT-B/32", 87_455_232, 88), ("ViT-L/16", 303_301_632, 304),
    ("ViT-H/14", 630_764_800, 632)])
def test_every_paper_preset_has_the_reference_parameter_count(name, trunk, millions):
    """`trunk`: the count without the classification head, as timm's ViTs built with
    num_classes=0 (the published ImageNet-21k ViT-H/14 comes so; B/32 by the formula of the
    B/16 test); the presets add a linear 1000-class head, D·1000 + 1000 (ViT-L/16 with it:
    304,326,632, timm's count). Table 1 rounds H to 632M, and gives 307M for L."""
    c = PRESETS[name]
    with without_random_init():  # ViT-H would take 2.5 GB of drawn float32 values
        model = ViT(c)
    assert model.num_parameters() == trunk + c.dim * 1000 + 1000
    assert round(model.num_parameters() / 1e6) == millions


def test_linear_interpolation_matrix_rows_sum_to_one_and_match_torch():
    for n_in, n_out in [(4, 4), (4, 7), (7, 4), (3, 12), (5, 1)]:
        A = linear_interpolation_matrix(n_in, n_out)
        np.testing.assert_allclose(A.sum(axis=1), 1.0)
    assert np.array_equal(linear_interpolation_matrix(5, 5), np.eye(5))
    torch = pytest.importorskip("torch")
    grid = np.random.default_rng(0).standard_normal((3, 4, 6))  # (gh, gw, D)
    for new in [(5, 7), (2, 3), (6, 8)]:
        ours = interpolate_pos_embed(
            mt.tensor(np.concatenate([np.zeros((1, 6)), grid.reshape(12, 6)])[None]),
            (3, 4), new).numpy()[0, 1:].reshape(*new, 6)
        theirs = torch.nn.functional.interpolate(
            torch.from_numpy(grid.transpose(2, 0, 1)[None]), size=new, mode="bilinear",
            align_corners=False)[0].numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_interpolation_keeps_class_token_and_is_exact_at_the_same_size(device):
    pe = np.random.default_rng(1).standard_normal((1, 1 + 4 * 3, 8)).astype(np.float32)
    same = interpolate_pos_embed(mt.tensor(pe, device=device), (4, 3), (4, 3))
    assert np.array_equal(same.numpy(), pe)  # bit for bit
    bigger = interpolate_pos_embed(mt.tensor(pe, device=device), (4, 3), (8, 6)).numpy()
    assert bigger.shape == (1, 1 + 8 * 6, 8)
    assert np.array_equal(bigger[0, 0], pe[0, 0])  # [class] kept as it is
    corners = bigger[0, 1:].reshape(8, 6, 8)[[0, 0, -1, -1], [0, -1, 0, -1]]
    grid = pe[0, 1:].reshape(4, 3, 8)
    np.testing.assert_allclose(corners, grid[[0, 0, -1, -1], [0, -1, 0, -1]], rtol=1e-6)


def test_interpolation_reproduces_a_linear_ramp_inside_the_grid():
    gh, gw = 4, 6
    r, c = np.meshgrid((np.arange(gh) + 0.5) / gh, (np.arange(gw) + 0.5) / gw, indexing="ij")
    grid = np.stack([r, c, 2 * r - 3 * c], axis=-1)  # a linear function of the position
    pe = np.concatenate([np.full((1, 3), 7.0), grid.reshape(-1, 3)])[None]  # (1, 1 + N, 3)
    out = interpolate_pos_embed(mt.tensor(pe), (gh, gw), (8, 12)).numpy()[0, 1:]
    R, C = np.meshgrid((np.arange(8) + 0.5) / 8, (np.arange(12) + 0.5) / 12, indexing="ij")
    expected = np.stack([R, C, 2 * R - 3 * C], axis=-1).reshape(-1, 3)
    inside = ((R > 0.5 / gh) & (R < 1 - 0.5 / gh) & (C > 0.5 / gw) & (C < 1 - 0.5 / gw))
    np.testing.assert_allclose(out[inside.reshape(-1)], expected[inside.reshape(-1)],
                               atol=1e-12)


def test_resize_image_fine_tunes_at_another_resolution():
    model = ViT(TINY, generator=np.random.default_rng(0))
    old = model.pos_embed.numpy()
    with pytest.raises(ValueError, match="resize_image"):
        model(mt.tensor(images(config=ViTConfig(image_size=12, patch_size=2))))
    model.resize_image(8)  # same size: nothing changes
    assert np.array_equal(model.pos_embed.numpy(), old)
    model.resize_image(12)  # (4x4) -> (6x6) grid
    assert model.pos_embed.shape == (1, 37, TINY.dim) and model.config.image_size == 12
    assert np.array_equal(model.pos_embed.numpy()[0, 0], old[0, 0])
    x = images(2, dataclasses.replace(TINY, image_size=12))
    assert model(mt.tensor(x)).shape == (2, TINY.num_classes)
    assert any(p is model.pos_embed for p in model.parameters())
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model.resize_image(13)


def test_heads_pretraining_mlp_and_zero_initialized_fine_tuning_head():
    pre = ViT(dataclasses.replace(TINY, head_hidden=24), generator=np.random.default_rng(0))
    assert pre.head.hidden.weight.shape == (24, TINY.dim)  # §3.1: one hidden layer
    assert pre(mt.tensor(images())).shape == (2, TINY.num_classes)
    pre.reset_head(3)  # §3.2: zero-initialized D x K
    assert isinstance(pre.head, nn.Linear) and pre.config.num_classes == 3
    logits = pre(mt.tensor(images())).numpy()
    assert logits.shape == (2, 3) and not logits.any()


def test_attention_weights_and_rollout():
    model = ViT(TINY, generator=np.random.default_rng(0))
    weights = model.attention_weights(mt.tensor(images(3)))
    T = TINY.num_patches + 1
    assert len(weights) == TINY.depth and weights[0].shape == (3, TINY.heads, T, T)
    np.testing.assert_allclose(weights[0].sum(-1), 1.0, rtol=1e-5)
    rollout = attention_rollout(weights)  # (B, N)
    assert rollout.shape == (3, TINY.num_patches) and (rollout > 0).all()
    assert (rollout.sum(-1) < 1).all()  # the [class] token keeps a share for itself
    assert model.training  # restored


@pytest.mark.parametrize("norm_first", [True, False])
def test_attention_figure_is_the_blocks_own_under_either_norm_placement(norm_first):
    """ViT.attention_weights returns the weights each block uses, whatever its LayerNorm
    placement (the blocks are switched to post-LN here, which ViT never builds)."""
    model = ViT(TINY, generator=np.random.default_rng(0)).astype(np.float64)
    for block in model.blocks:
        block.norm_first = norm_first
    x = mt.tensor(images(2).astype(np.float64))
    model.eval()
    with contextlib.ExitStack() as stack:
        seen = [stack.enter_context(spied_weights(b.self_attn)) for b in model.blocks]
        model(x)
    weights = model.attention_weights(x)
    for layer_weights, spied in zip(weights, seen):
        np.testing.assert_array_equal(layer_weights, spied[0])


def test_attention_dropout_is_its_own_field_and_zero_by_default():
    model = ViT(dataclasses.replace(TINY, dropout=0.1))  # App. B.1's dropout
    for block in model.blocks:
        assert block.self_attn.dropout_p == 0.0  # the released code: no attention dropout
        assert block.dropout1.p == block.ffn.dropout.p == 0.1
    model = ViT(dataclasses.replace(TINY, attention_dropout=0.2))
    assert all(block.self_attn.dropout_p == 0.2 for block in model.blocks)


def test_overfit_one_batch():
    model = ViT(TINY, generator=np.random.default_rng(0))
    x = mt.tensor(images(8))
    y = mt.tensor(np.arange(8) % TINY.num_classes)
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 20, losses[::5]


def test_save_load_round_trip(tmp_path):
    model = ViT(TINY, generator=np.random.default_rng(0))
    x = mt.tensor(images())
    serialization.save(tmp_path / "vit.npz", model, TINY)
    other = ViT(TINY, generator=np.random.default_rng(1))
    _, config = serialization.load(tmp_path / "vit.npz", other, config_cls=ViTConfig)
    assert config == TINY
    model.eval()
    other.eval()
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())


def test_matches_the_pytorch_twin_outputs_and_gradients():
    torch = pytest.importorskip("torch")
    from benchmarks.step_vit import copy_weights, torch_twin

    config = dataclasses.replace(TINY, layer_norm_eps=1e-5)
    model = ViT(config, generator=np.random.default_rng(0))
    twin = copy_weights(model, torch_twin(config))
    x, y = images(4, config), np.array([0, 1, 2, 3])
    loss = F.cross_entropy(model(mt.tensor(x)), mt.tensor(y))
    loss.backward()
    theirs = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
    theirs.backward()
    np.testing.assert_allclose(loss.item(), theirs.item(), rtol=1e-5)
    ours = dict(model.named_parameters())
    for name, p in twin.named_parameters():
        if name.endswith("in_proj_weight"):
            grad = np.concatenate([ours[name.replace("in_proj_weight", f"{q}_proj.weight")].grad
                                   for q in "qkv"])
        elif "in_proj" in name:
            continue
        else:
            grad = ours[name.replace(".linear", ".ffn.linear")].grad
        np.testing.assert_allclose(grad, p.grad.numpy(), atol=2e-5, rtol=1e-3, err_msg=name)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ViT(ViTConfig(image_size=10, patch_size=4))
    with pytest.raises(ValueError, match="divisible by heads"):
        ViT(ViTConfig(dim=10, heads=3))
    with pytest.raises(TypeError, match="ViTConfig"):
        ViT({"dim": 8})
    model = ViT(TINY)
    with pytest.raises(ValueError, match=r"\(C, H, W\) = \(3, 8, 8\)"):
        model(mt.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="interpolate_pos_embed"):
        interpolate_pos_embed(mt.zeros((1, 10, 4)), (3, 4), (2, 2))
