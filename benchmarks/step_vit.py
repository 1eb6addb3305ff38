"""One ViT training step in minitx and in PyTorch, for ``benchmarks/bench_models.py``.

    python -m benchmarks.bench_models --model vit [--threads 1] [--profile]

The step: 32x32x3 images, patch 4 (64 patches + [class]), D = 192, 6 layers, 3 heads, MLP 768,
10 classes, batch 64, float32; forward, cross-entropy, backward, AdamW (``PRESETS["bench"]`` of
``models/vit.py``). The PyTorch twin, :func:`torch_twin`, is the same network built from
``torch.nn.TransformerEncoderLayer`` and starts from the same weights, copied from the minitx
model (:func:`copy_weights`), so both contenders compute the same losses and gradients.

Interface for bench_models.py: ``NAME``, ``build_minitx(seed)`` and ``build_torch(seed)`` each
return ``(step, info)``, where ``step()`` runs one full training step and returns the loss (a
float) and ``info`` is a dict (``"model"``, ``"parameters"``, ``"description"``);
``build_torch`` returns None when PyTorch is not installed.
"""

import numpy as np

import minitx as mt
import minitx.functional as F
from benchmarks.common import TORCH_FFN_NAMES, copy_into_torch, training_step
from minitx import optim
from models.vit import PRESETS, ViT

NAME = "vit"
CONFIG = PRESETS["bench"]
BATCH = 64
LR = 1e-3
DESCRIPTION = (f"ViT {CONFIG.image_size}x{CONFIG.image_size}x{CONFIG.in_channels}, patch "
               f"{CONFIG.patch_size}, D {CONFIG.dim}, depth {CONFIG.depth}, {CONFIG.heads} heads, "
               f"MLP {CONFIG.mlp_dim}, {CONFIG.num_classes} classes, batch {BATCH}")


def make_batch(seed):
    """A fixed batch: images (B, C, H, W) float32 in [0, 1) and labels (B,) int64."""
    rng = np.random.default_rng(seed)
    c = CONFIG
    images = rng.random((BATCH, c.in_channels, c.image_size, c.image_size), dtype=np.float32)
    return images, rng.integers(0, c.num_classes, BATCH)


def build_minitx(seed=0):
    """Return (step, info) for minitx: one forward, backward and AdamW update per call."""
    model = ViT(CONFIG, generator=np.random.default_rng(seed))
    opt = optim.AdamW(model.parameters(), lr=LR)
    images, labels = make_batch(seed)
    x, y = mt.tensor(images), mt.tensor(labels)

    step = training_step(lambda: F.cross_entropy(model(x), y), opt)
    return step, {"model": model, "parameters": model.num_parameters(),
                  "description": DESCRIPTION}


def build_torch(seed=0):
    """Return (step, info) for the PyTorch twin with the same initial weights, or None."""
    try:
        import torch
    except ImportError:
        return None
    twin = copy_weights(ViT(CONFIG, generator=np.random.default_rng(seed)), torch_twin())
    opt = torch.optim.AdamW(twin.parameters(), lr=LR, weight_decay=1e-2)  # minitx's defaults
    images, labels = make_batch(seed)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)

    step = training_step(lambda: torch.nn.functional.cross_entropy(twin(x), y), opt)
    return step, {"model": twin, "parameters": sum(p.numel() for p in twin.parameters()),
                  "description": DESCRIPTION}


def torch_twin(config=CONFIG):
    """Build the PyTorch twin of ``ViT(config)``: same layers, same order, same maths.

    Same function as minitx's model when ``config.dropout == 0`` (the benchmark's case: the twin
    has no dropout after the position embeddings). The class is defined inside, so that this
    module imports without PyTorch.
    """
    import torch

    class _TorchViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            c, D = config, config.dim
            self.patch_embed = torch.nn.Linear(c.in_channels * c.patch_size ** 2, D)
            self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, D))
            self.pos_embed = torch.nn.Parameter(torch.zeros(1, c.num_patches + 1, D))
            self.blocks = torch.nn.ModuleList([
                torch.nn.TransformerEncoderLayer(
                    D, c.heads, c.mlp_dim, c.dropout, "gelu", layer_norm_eps=c.layer_norm_eps,
                    batch_first=True, norm_first=True)
                for _ in range(c.depth)])
            self.norm = torch.nn.LayerNorm(D, eps=c.layer_norm_eps)
            self.head = torch.nn.Linear(D, c.num_classes)

        def forward(self, images):  # (B, C, H, W)
            B, C, H, W = images.shape
            P, (gh, gw) = config.patch_size, config.grid
            x = images.reshape(B, C, gh, P, gw, P).permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, P, P)
            x = self.patch_embed(x.reshape(B, gh * gw, C * P * P))  # (B, N, D)
            x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1) + self.pos_embed
            for block in self.blocks:
                x = block(x)  # (B, T, D)
            return self.head(self.norm(x[:, 0]))  # (B, K)

    return _TorchViT()


def copy_weights(model, twin):
    """Copy a minitx ViT's parameters into its :func:`torch_twin` (in place); return the twin."""
    return copy_into_torch(model, twin, TORCH_FFN_NAMES)
