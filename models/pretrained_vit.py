"""ViT weights in timm's layout (PyTorch Image Models, github.com/huggingface/pytorch-image-models)
-> minitx. The transformers layout is read by ``models/vit.py: from_transformers``.

A timm checkpoint folder holds ``model.safetensors`` and a config.json that names the
architecture (``"architecture": "vit_base_patch16_224"``) instead of listing its sizes, and
keeps the pre-processing in ``pretrained_cfg`` (input size, crop fraction, filter, mean, std).
What differs from minitx's names:

* q, k and v are one fused Linear, ``attn.qkv`` with a (3D x D) weight: rows 0..D are W^Q,
  D..2D W^K and 2D..3D W^V (each with the heads side by side, as in minitx), so the split is
  three row slices;
* the patch embedding is a Conv2d kernel (D, C, P, P): reshaped to (D, C·P·P), as for
  transformers;
* timm's LayerNorms use ε = 1e-6, the released code's value (minitx's ViTConfig default).
"""

import re

import numpy as np

from models.hub import CheckpointError, conv_to_linear, convert
from models.vit import ViT, ViTConfig

# timm's ViT sizes (Touvron et al. 2021 for tiny and small; Dosovitskiy et al. Table 1): D, L, h
SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12),
         "large": (1024, 24, 16)}
ARCHITECTURE = re.compile(r"vit_(tiny|small|base|large)_patch(\d+)_(\d+)$")


def config_from_timm(config):
    """A :class:`ViTConfig` from a timm config.json dict (sizes from its architecture name)."""
    name = config.get("architecture", "")
    match = ARCHITECTURE.match(name)
    if not match:
        raise CheckpointError(f"timm config.json: architecture {name!r} is not supported "
                              f"(expected vit_<tiny|small|base|large>_patch<P>_<size>)")
    if config.get("global_pool", "token") != "token":
        raise CheckpointError(f"timm config.json: global_pool={config['global_pool']!r} is not "
                              f"supported (minitx's ViT classifies the [class] token)")
    D, L, h = SIZES[match[1]]
    return ViTConfig(image_size=int(match[3]), patch_size=int(match[2]), dim=D, depth=L,
                     heads=h, mlp_dim=4 * D, num_classes=config.get("num_classes", 1000),
                     layer_norm_eps=1e-6)


def timm_preprocessor(config):
    """timm's pretrained_cfg as a preprocessor_config.json dict for ``hub.preprocess``: resize
    the shorter side to size / crop_pct, centre-crop to size, normalise."""
    pre = config.get("pretrained_cfg", {})
    size = pre.get("input_size", [3, 224, 224])[-1]
    return {"do_resize": True, "size": {"shortest_edge": int(size / pre.get("crop_pct", 0.9))},
            "resample": {"bilinear": 2, "bicubic": 3}.get(pre.get("interpolation"), 3),
            "do_center_crop": True, "crop_size": {"height": size, "width": size},
            "image_mean": pre.get("mean", [0.5] * 3), "image_std": pre.get("std", [0.5] * 3)}


def from_timm(state_dict, config, *, dtype=np.float32, source="checkpoint"):
    """Build a ViT from a timm ``VisionTransformer`` checkpoint: `state_dict` {name: array},
    `config` its config.json dict."""
    model = ViT(config_from_timm(config), dtype=dtype)
    D = model.config.dim
    rules = [("patch_embed.weight", "patch_embed.proj.weight", conv_to_linear),  # kernel
             ("patch_embed.bias", "patch_embed.proj.bias", None),
             ("cls_token", "cls_token", None), ("pos_embed", "pos_embed", None),
             ("norm.weight", "norm.weight", None), ("norm.bias", "norm.bias", None),
             ("head.weight", "head.weight", None), ("head.bias", "head.bias", None)]
    for i in range(model.config.depth):
        b = f"blocks.{i}."
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):  # the fused qkv, split
            rows = slice(j * D, (j + 1) * D)  # W^Q, W^K or W^V: D rows of the (3D x D) matrix
            rules += [(f"{b}self_attn.{proj}.weight", f"{b}attn.qkv.weight", _rows(rows, 2)),
                      (f"{b}self_attn.{proj}.bias", f"{b}attn.qkv.bias", _rows(rows, 1))]
        pairs = {"self_attn.out_proj": "attn.proj", "norm1": "norm1", "norm2": "norm2",
                 "ffn.linear1": "mlp.fc1", "ffn.linear2": "mlp.fc2"}
        rules += [(f"{b}{a}.{w}", f"{b}{t}.{w}", None)
                  for a, t in pairs.items() for w in ("weight", "bias")]
    weights = convert(state_dict, rules, model, source=source)
    model.load_state_dict(weights)
    return model


def _rows(rows, ndim):
    """A transform taking `rows` of a fused (3D, D) weight or (3D,) bias; refuses other ranks."""
    def take(fused):
        if fused.ndim != ndim or fused.shape[0] % 3:
            raise ValueError(f"expected a fused q/k/v array of {ndim} axes and 3D rows")
        return fused[rows]
    return take
