"""One Image-GPT training step in minitx and in PyTorch, for ``benchmarks/bench_models.py``.

    python -m benchmarks.bench_models --model image_gpt [--threads 1] [--profile]

The step: the GPT reference configuration (``PRESETS["bench"]`` of ``models/image_gpt.py``):
a 512-colour palette, 256 tokens (16x16 pixels), D = 256, 4 causal pre-norm blocks of 4 heads
with the released RMSNorm and x·σ(1.702x), an untied 512-way head, batch 16, float32; forward,
L_AR, backward, AdamW. The PyTorch twin, :func:`torch_twin`, is the same network written with
``torch.nn`` (its parameters carry the same names) and starts from the same weights, copied from
the minitx model, so both contenders compute the same losses and gradients.

Interface for bench_models.py: ``NAME``, ``build_minitx(seed)`` and ``build_torch(seed)`` each
return ``(step, info)`` (see ``benchmarks/step_vit.py``); ``build_torch`` returns None when
PyTorch is not installed.
"""

import numpy as np

import minitx as mt
from benchmarks.common import training_step
from minitx import optim
from models.image_gpt import PRESETS, ImageGPT, ar_inputs, ar_loss

NAME = "image_gpt"
CONFIG = PRESETS["bench"]
BATCH = 16
LR = 1e-3
DESCRIPTION = (f"Image-GPT palette {CONFIG.num_colors}, {CONFIG.seq_len} tokens, D {CONFIG.dim}, "
               f"depth {CONFIG.depth}, {CONFIG.heads} heads, causal, batch {BATCH}")


def make_batch(seed):
    """A fixed batch of pixel tokens (B, T) and the AR inputs [SOS, x₁ … x_{T−1}]."""
    tokens = np.random.default_rng(seed).integers(0, CONFIG.num_colors, (BATCH, CONFIG.seq_len))
    return tokens, ar_inputs(tokens, CONFIG.num_colors)


def build_minitx(seed=0):
    """Return (step, info) for minitx: one forward, backward and AdamW update per call."""
    model = ImageGPT(CONFIG, generator=np.random.default_rng(seed))
    opt = optim.AdamW(model.parameters(), lr=LR)
    tokens, inputs = make_batch(seed)
    ids = mt.tensor(inputs)

    step = training_step(lambda: ar_loss(model(ids), tokens), opt)
    return step, {"model": model, "parameters": model.num_parameters(),
                  "description": DESCRIPTION}


def build_torch(seed=0):
    """Return (step, info) for the PyTorch twin with the same initial weights, or None."""
    try:
        import torch
    except ImportError:
        return None
    model = ImageGPT(CONFIG, generator=np.random.default_rng(seed))
    twin = torch_twin()
    twin.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(value))
                          for name, value in model.state_dict().items()})
    opt = torch.optim.AdamW(twin.parameters(), lr=LR, weight_decay=1e-2)  # minitx's defaults
    tokens, inputs = make_batch(seed)
    ids, targets = torch.from_numpy(inputs), torch.from_numpy(tokens)

    def loss_fn():
        logits = twin(ids)  # (B, T, V)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, CONFIG.num_colors),
                                                 targets.reshape(-1))

    step = training_step(loss_fn, opt)
    return step, {"model": twin, "parameters": sum(p.numel() for p in twin.parameters()),
                  "description": DESCRIPTION}


def torch_twin(config=CONFIG):
    """Build the PyTorch twin of ``ImageGPT(config)`` (released norm and activation, causal,
    no dropout), with the same parameter names. Classes are defined inside, so that this module
    imports without PyTorch."""
    import torch
    from torch import nn

    D, h = config.dim, config.heads

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(D, D)
                                                                    for _ in range(4))

        def forward(self, x):  # (B, T, D)
            B, T, _ = x.shape
            q, k, v = (p(x).view(B, T, h, D // h).transpose(1, 2)  # (B, h, T, d)
                       for p in (self.q_proj, self.k_proj, self.v_proj))
            y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.out_proj(y.transpose(1, 2).reshape(B, T, D))  # (B, T, D)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(D, config.mlp_ratio * D)
            self.proj = nn.Linear(config.mlp_ratio * D, D)

        def forward(self, x):
            z = self.fc(x)
            return self.proj(z * torch.sigmoid(1.702 * z))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.norm2 = (nn.RMSNorm(D, eps=config.norm_eps) for _ in range(2))
            self.attn, self.mlp = Attention(), MLP()

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class TorchImageGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embed = nn.Embedding(config.num_colors + 1, D)
            self.pos_embed = nn.Embedding(config.seq_len, D)
            self.blocks = nn.ModuleList([Block() for _ in range(config.depth)])
            self.norm = nn.RMSNorm(D, eps=config.norm_eps)
            self.head = nn.Linear(D, config.num_colors, bias=False)

        def forward(self, ids):  # (B, T)
            x = self.token_embed(ids) + self.pos_embed.weight[:ids.shape[1]]  # (B, T, D)
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x))  # (B, T, V)

    return TorchImageGPT()
