"""One training step of Swin, in minitx and in a PyTorch twin, for ``benchmarks.bench_models``.

The benchmark model of the issue: 32x32x3 images, patch 2, C = 96, depths 2-2-2, heads 3-6-12,
window 4, batch 64, float32; a step is forward, cross-entropy, backward, AdamW update.

Interface (what ``bench_models`` imports):

- ``NAME``: the row's name;
- ``build_minitx(seed)`` -> (step_fn, info): step_fn() runs one full training step and returns
  the loss as a float; info is a dict (``"model"``, ``"description"``, ``"parameters"``);
- ``build_torch(seed)`` -> (step_fn, info) for the PyTorch twin, starting from the same weights
  (copied from the minitx model of the same seed), or None without torch.

The twin (:func:`torch_swin`) is the same network written with ``torch.nn`` (no timm): a
stride-P Conv2d for the patch embedding (what the official code does; the minitx Linear on
flattened patches is the same map), ``F.scaled_dot_product_attention`` with the relative
position bias and the shift mask as one additive float mask (what timm does today), and the same
window, shift and mask helpers from :mod:`models.swin`. :func:`copy_weights` loads the minitx
weights into it, so the tests can check that both compute the same function.
"""

import numpy as np

import minitx as mt
import minitx.functional as F
from benchmarks.common import training_step
from minitx import optim
from models.swin import (
    SWIN_PRESETS,
    SwinTransformer,
    relative_position_index,
    shifted_window_mask,
)

NAME = "swin"
CONFIG = SWIN_PRESETS["swin_cifar"]  # 32x32x3, patch 2, C 96, depths 2-2-2, heads 3-6-12, M 4
BATCH = 64
LR, WEIGHT_DECAY = 1e-3, 0.05  # §4.1: AdamW, weight decay 0.05


def batch(seed):
    """A fixed random batch: images (B, 3, 32, 32) float32 and labels (B,) int64."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((BATCH, CONFIG.in_channels, CONFIG.image_size,
                                  CONFIG.image_size)).astype(np.float32)
    return images, rng.integers(0, CONFIG.num_classes, BATCH)


def describe(model_parameters):
    return {"model": "Swin", "parameters": model_parameters,
            "description": f"Swin 32x32x3, patch 2, C 96, depths 2-2-2, heads 3-6-12, window 4, "
                           f"10 classes, batch {BATCH}"}


def build_minitx(seed=0):
    """Return (step_fn, info) for the minitx model."""
    model = SwinTransformer(CONFIG, generator=np.random.default_rng(seed))
    opt = optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    images, labels = batch(seed + 1)
    x, y = mt.tensor(images), mt.tensor(labels)

    step = training_step(lambda: F.cross_entropy(model(x), y), opt)
    return step, describe(model.num_parameters())


def build_torch(seed=0):
    """Return (step_fn, info) for the PyTorch twin, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    model = torch_swin(CONFIG)
    copy_weights(SwinTransformer(CONFIG, generator=np.random.default_rng(seed)), model)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    images, labels = batch(seed + 1)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)

    step = training_step(lambda: torch.nn.functional.cross_entropy(model(x), y), opt)
    return step, describe(sum(p.numel() for p in model.parameters()))


def torch_swin(config):
    """Build the PyTorch twin of ``SwinTransformer(config)`` (same parameter names)."""
    import torch
    from torch import nn
    from torch.nn import functional as TF

    class WindowAttention(nn.Module):
        def __init__(self, dim, M, heads):
            super().__init__()
            self.heads, self.d = heads, dim // heads
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (
                nn.Linear(dim, dim) for _ in range(4))
            self.relative_position_bias_table = nn.Parameter(
                torch.randn((2 * M - 1) ** 2, heads) * 0.02)
            self.register_buffer("index", torch.from_numpy(relative_position_index(M)))

        def forward(self, x, mask):  # (B·nW, N, C)
            Bw, N, C = x.shape
            q, k, v = (p(x).view(Bw, N, self.heads, self.d).transpose(1, 2)
                       for p in (self.q_proj, self.k_proj, self.v_proj))  # (B·nW, h, N, d)
            bias = self.relative_position_bias_table[self.index].permute(2, 0, 1)  # (h, N, N)
            if mask is not None:  # (nW, N, N): view the windows as (B, nW, h, N, d)
                nW = mask.shape[0]
                q, k, v = (t.reshape(Bw // nW, nW, self.heads, N, self.d) for t in (q, k, v))
                bias = bias + mask[:, None]  # (nW, h, N, N)
            out = TF.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            return self.out_proj(out.reshape(Bw, self.heads, N, self.d).transpose(1, 2)
                                 .reshape(Bw, N, C))

    class Block(nn.Module):
        def __init__(self, dim, res, heads, M, shift):
            super().__init__()
            self.M, self.s = min(M, res), 0 if res <= M else shift
            self.norm1 = nn.LayerNorm(dim)  # parameters in the order of the minitx model
            self.attn = WindowAttention(dim, self.M, heads)
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = nn.Module()
            self.mlp.linear1 = nn.Linear(dim, config.mlp_ratio * dim)
            self.mlp.linear2 = nn.Linear(config.mlp_ratio * dim, dim)
            mask = shifted_window_mask(res, res, self.M, self.s) if self.s else None
            self.register_buffer("mask", None if mask is None else
                                 torch.from_numpy(mask.astype(np.float32)))

        def forward(self, x):  # (B, H, W, C)
            B, H, W, C = x.shape
            M, s = self.M, self.s
            y = torch.roll(self.norm1(x), (-s, -s), (1, 2)) if s else self.norm1(x)
            y = y.view(B, H // M, M, W // M, M, C).transpose(2, 3).reshape(-1, M * M, C)
            y = self.attn(y, self.mask)  # (B·nW, N, C)
            y = y.view(B, H // M, W // M, M, M, C).transpose(2, 3).reshape(B, H, W, C)
            x = x + (torch.roll(y, (s, s), (1, 2)) if s else y)
            mlp = self.mlp
            return x + mlp.linear2(TF.gelu(mlp.linear1(self.norm2(x))))

    class Merge(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.norm = nn.LayerNorm(4 * dim)
            self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

        def forward(self, x):  # (B, H, W, C)
            B, H, W, C = x.shape
            x = x.view(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5)
            return self.reduction(self.norm(x.reshape(B, H // 2, W // 2, 4 * C)))

    class Stage(nn.Module):
        def __init__(self, i, res):
            super().__init__()
            dim, M = config.embed_dim * 2 ** i, config.window_size
            self.merge = Merge(dim // 2) if i else None
            self.blocks = nn.Sequential(*[Block(dim, res, config.num_heads[i], M,
                                                j % 2 * (M // 2)) for j in range(config.depths[i])])

        def forward(self, x):
            return self.blocks(x if self.merge is None else self.merge(x))

    class Swin(nn.Module):
        def __init__(self):
            super().__init__()
            P, C = config.patch_size, config.embed_dim
            self.patch_embed = nn.Module()
            self.patch_embed.proj = nn.Conv2d(config.in_channels, C, P, stride=P)
            self.patch_embed.norm = nn.LayerNorm(C)
            side = config.image_size // P
            self.stages = nn.Sequential(*[Stage(i, side // 2 ** i)
                                          for i in range(len(config.depths))])
            self.norm = nn.LayerNorm(C * 2 ** (len(config.depths) - 1))
            self.head = nn.Linear(self.norm.normalized_shape[0], config.num_classes)

        def forward(self, images):  # (B, 3, H, W)
            embed = self.patch_embed
            x = embed.norm(embed.proj(images).permute(0, 2, 3, 1))  # (B, H/P, W/P, C)
            x = self.norm(self.stages(x)).mean(dim=(1, 2))  # (B, 8C)
            return self.head(x)

    return Swin()


def copy_weights(model, twin):
    """Load the parameters of a minitx SwinTransformer into its twin (the names are the same)."""
    import torch
    theirs = dict(twin.named_parameters())
    ours = dict(model.named_parameters())
    if sorted(ours) != sorted(theirs):
        raise ValueError(f"copy_weights: names differ: {sorted(set(ours) ^ set(theirs))[:5]}")
    with torch.no_grad():
        for name, p in theirs.items():
            p.copy_(torch.from_numpy(ours[name].numpy().reshape(tuple(p.shape))))
