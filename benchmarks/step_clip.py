"""One CLIP training step in minitx and in PyTorch, for ``benchmarks/bench_models.py``.

    python -m benchmarks.bench_models --model clip [--threads 1] [--profile]

The step (the reference configuration, ``CLIPConfig()`` of ``models/clip.py``): a ViT image
tower on 32x32x3 images, patch 4 (64 patches + [class]), width 192, 4 layers, 3 heads; a causal
text tower of width 192, 4 layers, 3 heads, context 32, vocabulary 1000; embedding 128; batch
128 image-caption pairs; forward, the symmetric contrastive loss, backward, AdamW. The PyTorch
twin (:func:`torch_twin`) is the same network from ``torch.nn`` layers and starts from the same
weights (:func:`copy_weights`), so both compute the same losses and gradients.

Interface: ``NAME``, ``build_minitx(seed)`` and ``build_torch(seed)``, as in ``step_vit.py``.
"""

import math

import numpy as np

import minitx as mt
from benchmarks.common import TORCH_FFN_NAMES, copy_into_torch, training_step
from minitx import optim
from models.clip import CLIP, CLIPConfig, contrastive_loss

NAME = "clip"
CONFIG = CLIPConfig()
BATCH = 128
LR = 1e-3
DESCRIPTION = (f"CLIP ViT {CONFIG.image_size}x{CONFIG.image_size} patch {CONFIG.patch_size} "
               f"D {CONFIG.vision_width} x{CONFIG.vision_layers}; text D {CONFIG.text_width} "
               f"x{CONFIG.text_layers} T {CONFIG.context_length} V {CONFIG.vocab_size}; "
               f"E {CONFIG.embed_dim}; batch {BATCH}")


def make_batch(seed):
    """Images (B, 3, H, W) in [0, 1) and captions (B, T) of random length ending in [EOS]."""
    rng = np.random.default_rng(seed)
    c = CONFIG
    images = rng.random((BATCH, 3, c.image_size, c.image_size), dtype=np.float32)
    tokens = rng.integers(3, c.vocab_size, (BATCH, c.context_length))
    ends = rng.integers(4, c.context_length, BATCH)
    tokens[np.arange(BATCH), ends] = c.eot_token
    return images, tokens


def build_minitx(seed=0):
    model = CLIP(CONFIG, generator=np.random.default_rng(seed))
    opt = optim.AdamW(model.parameters(), lr=LR)
    images, tokens = make_batch(seed)
    x, t = mt.tensor(images), mt.tensor(tokens)
    step = training_step(lambda: contrastive_loss(model(x, t)), opt)
    return step, {"model": model, "parameters": model.num_parameters(),
                  "description": DESCRIPTION}


def build_torch(seed=0):
    try:
        import torch
    except ImportError:
        return None
    twin = copy_weights(CLIP(CONFIG, generator=np.random.default_rng(seed)), torch_twin())
    opt = torch.optim.AdamW(twin.parameters(), lr=LR, weight_decay=1e-2)  # minitx's defaults
    images, tokens = make_batch(seed)
    x, t = torch.from_numpy(images), torch.from_numpy(tokens)
    labels = torch.arange(BATCH)

    def loss():
        logits = twin(x, t)
        return (torch.nn.functional.cross_entropy(logits, labels)
                + torch.nn.functional.cross_entropy(logits.T, labels)) / 2
    step = training_step(loss, opt)
    return step, {"model": twin, "parameters": sum(p.numel() for p in twin.parameters()),
                  "description": DESCRIPTION}


def torch_twin(config=CONFIG):
    """The same CLIP written with torch.nn (defined inside: this module imports without
    PyTorch)."""
    import torch
    nn = torch.nn

    def quick_gelu(x):
        return x * torch.sigmoid(1.702 * x)

    def blocks(D, h, n):
        return nn.ModuleList([nn.TransformerEncoderLayer(D, h, 4 * D, 0.0, quick_gelu,
                                                         batch_first=True, norm_first=True)
                              for _ in range(n)])

    class Visual(nn.Module):
        def __init__(self):
            super().__init__()
            c, D = config, config.vision_width
            N = (c.image_size // c.patch_size) ** 2
            self.conv1 = nn.Conv2d(3, D, c.patch_size, c.patch_size, bias=False)
            self.class_embedding = nn.Parameter(torch.zeros(D))
            self.positional_embedding = nn.Parameter(torch.zeros(N + 1, D))
            self.ln_pre = nn.LayerNorm(D)
            self.blocks = blocks(D, c.vision_heads, c.vision_layers)
            self.ln_post = nn.LayerNorm(D)
            self.proj = nn.Linear(D, c.embed_dim, bias=False)

        def forward(self, x):
            x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, N, D)
            cls = self.class_embedding.expand(x.shape[0], 1, -1)
            x = self.ln_pre(torch.cat([cls, x], 1) + self.positional_embedding)
            for block in self.blocks:
                x = block(x)
            return self.proj(self.ln_post(x[:, 0]))

    class Text(nn.Module):
        def __init__(self):
            super().__init__()
            c, D = config, config.text_width
            self.token_embedding = nn.Embedding(c.vocab_size, D)
            self.positional_embedding = nn.Parameter(torch.zeros(c.context_length, D))
            self.blocks = blocks(D, c.text_heads, c.text_layers)
            self.ln_final = nn.LayerNorm(D)
            self.proj = nn.Linear(D, c.embed_dim, bias=False)

        def forward(self, t):
            T = t.shape[1]
            mask = nn.Transformer.generate_square_subsequent_mask(T)
            x = self.token_embedding(t) + self.positional_embedding[:T]
            for block in self.blocks:
                x = block(x, src_mask=mask, is_causal=True)
            eot = (t == config.eot_token).int().argmax(1)
            return self.proj(self.ln_final(x)[torch.arange(len(t)), eot])

    class TorchCLIP(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual, self.text = Visual(), Text()
            self.logit_scale = nn.Parameter(torch.full((1,), math.log(1 / 0.07)))

        def forward(self, images, tokens):
            i = torch.nn.functional.normalize(self.visual(images), dim=-1)
            t = torch.nn.functional.normalize(self.text(tokens), dim=-1)
            scale = self.logit_scale.clamp(max=math.log(config.max_logit_scale)).exp()
            return scale * i @ t.T

    return TorchCLIP()


def copy_weights(model, twin):
    """Copy a minitx CLIP's parameters into its :func:`torch_twin`; return the twin."""
    return copy_into_torch(model, twin, TORCH_FFN_NAMES)
