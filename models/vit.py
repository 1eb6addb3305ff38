"""Vision Transformer (ViT). Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for
Image Recognition at Scale", ICLR 2021, arXiv:2010.11929.

An image is cut into P×P patches; each patch, flattened, is one token. A learnable [class] token
goes in front, learnable position embeddings are added, a standard pre-LN Transformer encoder
mixes the tokens, and the encoder's output at the [class] position is classified.

Paper map:
    Eq. 1          -> ViT.embed            z₀ = [x_class; x_p¹E; ...; x_pᴺE] + E_pos
                      F.patchify           x (H, W, C) -> x_p (N, P²·C)
    Eq. 2-3        -> nn.TransformerEncoderLayer(norm_first=True)   z' = MSA(LN(z)) + z,
                                           z = MLP(LN(z')) + z'
    Eq. 4          -> ViT.forward          y = LN(z_L⁰), then the head
    §3.1 "head"    -> ViT.head             MLP with one hidden layer (pre-training: MLPHead) or
                                           a single Linear (fine-tuning)
    §3.2           -> ViT.reset_head       a zero-initialized D × K Linear for fine-tuning
                      ViT.resize_image     "2D interpolation of the pre-trained position
                      interpolate_pos_embed  embeddings, according to their location in the
                                           original image", to fine-tune at another resolution
    Table 1        -> PRESETS              ViT-B/16 (86M parameters), ViT-L/16, ViT-H/14
    Fig. 6, §D.8   -> ViT.attention_weights, attention_rollout   what the [class] token attends
                                           to (attention rollout, Abnar & Zuidema 2020), from
                                           the weights the blocks record (nn.record_attention)
    published weights -> from_transformers, to_transformers   transformers' layout (files read
                                           and checked by models/hub.py; timm's: pretrained_vit)

Shapes: B batch, C/H/W image channels/height/width, P patch side, gh = H/P and gw = W/P the
patch grid, N = gh·gw patches, T = N + 1 tokens, D width, h heads, K classes.
Loss: cross-entropy of the logits, ``F.cross_entropy`` (nothing model-specific).

Deviations from the paper (and its released code, github.com/google-research/vision_transformer):
    - DEVIATION: weights start from minitx's (PyTorch's) defaults: Linear kaiming-uniform,
      attention projections Xavier-uniform; the released code uses Xavier-uniform everywhere,
      biases N(0, 10⁻⁶) and a LeCun-normal patch projection. Position embeddings N(0, 0.02²)
      and a zero [class] token are as released.
    - The pre-training head's hidden layer uses tanh, as the released code's "pre_logits"
      layer does; the paper only says "MLP with one hidden layer".
    - Patches are flattened in (C, P, P) order, the layout of a PyTorch Conv2d(C, D, P,
      stride=P) kernel, so such a kernel loads by a reshape (the paper fixes no order).
    - The attention weights get no dropout (``attention_dropout = 0``, as in the released
      code); ``dropout`` acts after the position embeddings, on each sub-layer's output and
      inside the MLP (App. B.1).
    - Position embeddings are interpolated bilinearly between patch centres (PyTorch's
      align_corners=False); the released code uses scipy.ndimage.zoom(order=1), which aligns
      the grid's corners instead.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

import minitx as mt
from minitx import functional as F
from minitx import nn


@dataclass(frozen=True)
class ViTConfig:
    """The architecture of a ViT; field comments give the paper's symbol and ViT-B/16's value."""

    image_size: int = 32  # H = W (paper: 224 for pre-training, 384 for fine-tuning)
    patch_size: int = 4  # P (ViT-B/16: 16)
    in_channels: int = 3  # C
    dim: int = 192  # D, "Hidden size D" (Table 1; B: 768)
    depth: int = 6  # L, "Layers" (Table 1; B: 12)
    heads: int = 3  # h, "Heads" (Table 1; B: 12); head size D / h
    mlp_dim: int = 768  # "MLP size" (Table 1; B: 3072 = 4·D)
    num_classes: int = 10  # K
    head_hidden: int = 0  # §3.1: 0 = a single Linear (fine-tuning); > 0 = an MLP head with one
    #                       hidden layer of this width (pre-training; released code: D)
    dropout: float = 0.0  # after the position embeddings and in every block (App. B.1: 0.1)
    attention_dropout: float = 0.0  # on the attention weights (released code: 0)
    layer_norm_eps: float = 1e-6  # ε of every LayerNorm (released code)

    @property
    def grid(self):
        """(gh, gw): the patch grid."""
        return self.image_size // self.patch_size, self.image_size // self.patch_size

    @property
    def num_patches(self):
        """N = HW / P²."""
        return self.grid[0] * self.grid[1]


class ViT(nn.Module):
    """The Vision Transformer: images (B, C, H, W) -> class logits (B, K).

    Args:
        config: a :class:`ViTConfig`.
        device, dtype, generator: where and how the parameters are stored, and the
            ``np.random.Generator`` their initial values come from (default: minitx.random).

    >>> model = ViT(PRESETS["tiny-digits"])
    >>> model(mt.zeros((2, 1, 8, 8))).shape
    (2, 10)
    """

    def __init__(self, config, *, device="cpu", dtype=np.float32, generator=None):
        super().__init__()
        _check_config(config)
        self.config = config
        C, P, D = config.in_channels, config.patch_size, config.dim
        kw = dict(device=device, dtype=dtype, generator=generator)
        self.patch_embed = nn.Linear(C * P * P, D, **kw)  # E (Eq. 1), (P²·C) -> D
        self.cls_token = _parameter((1, 1, D), device, dtype)  # x_class (Eq. 1), zeros
        self.pos_embed = _parameter((1, config.num_patches + 1, D), device, dtype)  # E_pos
        nn.init.normal_(self.pos_embed, 0.0, 0.02, generator=generator)  # released code
        self.dropout = nn.Dropout(config.dropout, generator=generator)  # App. B.1
        self.blocks = nn.ModuleList([  # Eq. 2-3: pre-LN blocks, GELU MLP (§3.1)
            nn.TransformerEncoderLayer(
                D, config.heads, config.mlp_dim, config.dropout, "gelu",
                layer_norm_eps=config.layer_norm_eps, norm_first=True,
                attention_dropout=config.attention_dropout, **kw)
            for _ in range(config.depth)])
        self.norm = nn.LayerNorm(D, config.layer_norm_eps, device=device, dtype=dtype)  # Eq. 4
        if config.head_hidden:  # §3.1: pre-training head
            self.head = MLPHead(D, config.head_hidden, config.num_classes, **kw)
        else:  # §3.1: fine-tuning head
            self.head = nn.Linear(D, config.num_classes, **kw)

    def forward(self, images):  # (B, C, H, W)
        x = self.embed(images)  # (B, T, D)            Eq. 1
        for block in self.blocks:
            x = block(x)  # (B, T, D)                  Eq. 2-3
        y = self.norm(x[:, 0])  # (B, D)               Eq. 4: y = LN(z_L⁰), the [class] token
        return self.head(y)  # (B, K)                  §3.1

    def embed(self, images):  # (B, C, H, W)
        """Eq. 1: z₀ = [x_class; x_p¹E; ...; x_pᴺE] + E_pos, then dropout. -> (B, T, D)."""
        self._check_images(images)
        B, D = images.shape[0], self.config.dim
        patches = F.patchify(images, self.config.patch_size)  # (B, gh, gw, C·P·P)   x_p
        x = self.patch_embed(patches.reshape(B, self.config.num_patches, patches.shape[-1]))
        cls = self.cls_token.broadcast_to((B, 1, D))  # (B, 1, D)   one x_class per image
        x = F.concat([cls, x], axis=1)  # (B, T, D)
        return self.dropout(x + self.pos_embed)  # (B, T, D) + (1, T, D)   + E_pos

    def _check_images(self, images):
        c = self.config
        expected = (c.in_channels, c.image_size, c.image_size)
        if images.ndim != 4 or images.shape[1:] != expected:
            hint = ("; to fine-tune at another resolution call resize_image(new_size) first "
                    "(§3.2)" if images.ndim == 4 and images.shape[1] == c.in_channels else "")
            raise ValueError(f"ViT: expected images (B, C, H, W) with (C, H, W) = {expected}, "
                             f"got {images.shape}{hint}")

    # ---- fine-tuning (§3.2) --------------------------------------------------------------------
    def reset_head(self, num_classes):
        """§3.2: "remove the pre-trained prediction head and attach a zero-initialized D × K
        feedforward layer". Build the optimizer after this call (the head is new)."""
        if num_classes < 1:
            raise ValueError(f"ViT.reset_head: num_classes must be positive, got {num_classes}")
        D, like = self.config.dim, self.pos_embed
        self.head = nn.Linear(D, num_classes, device=like.device, dtype=like.dtype)  # (D -> K)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.config = dataclasses.replace(self.config, num_classes=num_classes, head_hidden=0)

    def resize_image(self, image_size):
        """§3.2: prepare the model for images of another side by interpolating E_pos in 2-D.

        The patch size stays, so the number of patches changes; the [class] token's embedding
        is kept as it is. Build the optimizer after this call (E_pos is a new Parameter).
        """
        if image_size < 1 or image_size % self.config.patch_size:
            raise ValueError(f"ViT.resize_image: image_size={image_size} must be a positive "
                             f"multiple of the patch size {self.config.patch_size}")
        new = dataclasses.replace(self.config, image_size=image_size)
        resized = interpolate_pos_embed(self.pos_embed.detach(), self.config.grid, new.grid)
        self.pos_embed = nn.Parameter(resized.data)  # (1, 1 + gh'·gw', D)
        self.config = new

    # ---- inspection (Fig. 6) -------------------------------------------------------------------
    def attention_weights(self, images):
        """Return the attention weights of every layer, a list of L arrays (B, h, T, T).

        One ordinary forward pass, without gradients and with dropout off, during which each
        block's self-attention records the weights it uses (:class:`nn.record_attention`).
        """
        was_training = self.training
        self.eval()
        with mt.no_grad(), nn.record_attention(self.blocks) as recorded:
            self(images)
        self.train(was_training)
        return [recorded[f"{i}.self_attn"].numpy() for i in range(len(self.blocks))]

    def extra_repr(self):
        c = self.config
        return (f"image_size={c.image_size}, patch_size={c.patch_size}, dim={c.dim}, "
                f"depth={c.depth}, heads={c.heads}")


class MLPHead(nn.Module):
    """§3.1: the pre-training head, an MLP with one hidden layer: K logits = W₂ tanh(W₁ y + b₁)
    + b₂ (tanh as in the released code's "pre_logits" layer).

    >>> MLPHead(4, 8, 3)(mt.ones((2, 4))).shape
    (2, 3)
    """

    def __init__(self, dim, hidden, num_classes, *, device="cpu", dtype=np.float32,
                 generator=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype, generator=generator)
        self.hidden = nn.Linear(dim, hidden, **kw)  # W₁, b₁
        self.out = nn.Linear(hidden, num_classes, **kw)  # W₂, b₂

    def forward(self, y):  # (B, D)
        return self.out(F.tanh(self.hidden(y)))  # (B, hidden) -> (B, K)


# ---- helpers ------------------------------------------------------------------------------------
def interpolate_pos_embed(pos_embed, old_grid, new_grid):
    """§3.2: resize position embeddings to another patch grid by bilinear interpolation.

    The [class] token's embedding is copied unchanged; the grid part (gh, gw, D) is resized
    in 2-D, each new patch taking the embedding at its centre's place in the old grid. At the
    same grid the result equals the input exactly (the interpolation matrices are identities).
    Differentiable, and works on any device.

    Args:
        pos_embed: Tensor (1, 1 + gh·gw, D).
        old_grid: (gh, gw); new_grid: (gh', gw').
    Returns:
        Tensor (1, 1 + gh'·gw', D).

    >>> pe = mt.arange(6, dtype=np.float32).reshape(1, 3, 2)  # [class], then a 1x2 grid (D = 2)
    >>> interpolate_pos_embed(pe, (1, 2), (1, 4)).numpy()[0]
    array([[0. , 1. ],
           [2. , 3. ],
           [2.5, 3.5],
           [3.5, 4.5],
           [4. , 5. ]], dtype=float32)
    """
    (gh, gw), (nh, nw) = tuple(old_grid), tuple(new_grid)
    if pos_embed.ndim != 3 or pos_embed.shape[:2] != (1, 1 + gh * gw) or min(nh, nw) < 1:
        raise ValueError(f"interpolate_pos_embed: expected pos_embed (1, 1 + gh·gw, D) with "
                         f"(gh, gw) = {(gh, gw)} and a positive new grid, got pos_embed "
                         f"{pos_embed.shape} and new_grid {(nh, nw)}")
    D = pos_embed.shape[2]
    like = dict(dtype=pos_embed.dtype, device=pos_embed.device)
    A_h = mt.tensor(linear_interpolation_matrix(gh, nh), **like)  # (gh', gh)
    A_w = mt.tensor(linear_interpolation_matrix(gw, nw), **like)  # (gw', gw)
    cls = pos_embed[:, :1]  # (1, 1, D)   kept as it is
    grid = pos_embed[0, 1:].reshape(gh, gw * D)  # (gh, gw·D)
    grid = A_h @ grid  # (gh', gh) @ (gh, gw·D) -> (gh', gw·D)   resize the rows
    grid = A_w @ grid.reshape(nh, gw, D)  # (gw', gw) @ (gh', gw, D) -> (gh', gw', D)   columns
    return F.concat([cls, grid.reshape(1, nh * nw, D)], axis=1)  # (1, 1 + gh'·gw', D)


def linear_interpolation_matrix(n_in, n_out):
    """Return the (n_out, n_in) float64 NumPy matrix A of 1-D linear interpolation: new = A old.

    Cell j of the new grid has its centre at (j + ½)/n_out of the side, which is position
    s = (j + ½)·n_in/n_out − ½ on the old grid of cell centres; it mixes its two neighbours
    ⌊s⌋ and ⌊s⌋ + 1 with weights 1 − (s − ⌊s⌋) and s − ⌊s⌋. Beyond the outermost centres the
    edge value is copied (s clipped to [0, n_in − 1]). This is PyTorch's
    ``F.interpolate(mode="bilinear", align_corners=False)`` along one axis. Index arithmetic
    only, hence NumPy on the host; the caller moves A to the data's device.

    >>> linear_interpolation_matrix(2, 4)
    array([[1.  , 0.  ],
           [0.75, 0.25],
           [0.25, 0.75],
           [0.  , 1.  ]])
    """
    s = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5  # new centres on the old grid
    s = np.clip(s, 0.0, n_in - 1.0)
    lo = np.floor(s).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = s - lo  # 0 when the grids coincide, so A = I exactly
    A = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(A, (rows, lo), 1.0 - frac)
    np.add.at(A, (rows, hi), frac)
    return A


def attention_rollout(weights):
    """Fig. 6 / App. D.8: how much the [class] token draws from each patch across all layers.

    Attention rollout (Abnar & Zuidema 2020, arXiv:2005.00928): average the heads, add the
    identity for the residual connection (Ã = ½A + ½I), renormalize the rows, and multiply the
    layers' matrices, R = Ã_L ··· Ã_1. Row 0 of R, without its own column, is the map.

    Args:
        weights: a list of L NumPy arrays (B, h, T, T), e.g. from :meth:`ViT.attention_weights`.
    Returns:
        NumPy (B, N): the [class] token's rollout over the patches, in raster order.

    >>> w = [np.full((1, 2, 3, 3), 1 / 3)] * 2          # uniform attention, 2 layers, T = 3
    >>> attention_rollout(w).round(3)
    array([[0.25, 0.25]])
    """
    rollout = None
    for A in weights:
        A = A.mean(axis=1)  # (B, T, T)   heads averaged
        A = 0.5 * A + 0.5 * np.eye(A.shape[-1])  # (B, T, T)   the residual path
        A = A / A.sum(axis=-1, keepdims=True)
        rollout = A if rollout is None else A @ rollout  # (B, T, T) @ (B, T, T) -> (B, T, T)
    return rollout[:, 0, 1:]  # (B, N)


def _parameter(shape, device, dtype):
    """A Parameter of zeros (the [class] token's initial value; E_pos is drawn afterwards)."""
    return nn.Parameter(mt.zeros(shape, dtype=dtype, device=device).data)


def _check_config(c):
    if not isinstance(c, ViTConfig):
        raise TypeError(f"ViT: expected a ViTConfig, got {type(c).__name__}")
    sizes = dict(image_size=c.image_size, patch_size=c.patch_size, in_channels=c.in_channels,
                 dim=c.dim, depth=c.depth, heads=c.heads, mlp_dim=c.mlp_dim,
                 num_classes=c.num_classes)
    bad = {k: v for k, v in sizes.items() if v < 1}
    if bad or c.head_hidden < 0:
        raise ValueError(f"ViT: sizes must be positive (head_hidden >= 0), got {bad or c}")
    if c.image_size % c.patch_size:
        raise ValueError(f"ViT: image_size={c.image_size} is not a multiple of "
                         f"patch_size={c.patch_size}")
    if c.dim % c.heads:
        raise ValueError(f"ViT: dim={c.dim} must be divisible by heads={c.heads}")


# ---- published checkpoints (models/hub.py reads the files) -----------------------------------
# config.json field of transformers' ViTConfig -> (ViTConfig field, transformers' default)
HF_FIELDS = {"image_size": ("image_size", 224), "patch_size": ("patch_size", 16),
             "num_channels": ("in_channels", 3), "hidden_size": ("dim", 768),
             "num_hidden_layers": ("depth", 12), "num_attention_heads": ("heads", 12),
             "intermediate_size": ("mlp_dim", 3072), "hidden_dropout_prob": ("dropout", 0.0),
             "attention_probs_dropout_prob": ("attention_dropout", 0.0),
             "layer_norm_eps": ("layer_norm_eps", 1e-12)}
HF_FIXED = {"hidden_act": "gelu", "qkv_bias": True}  # the only values this ViT computes
HF_IGNORED = {"initializer_range", "encoder_stride", "pooler_output_size", "pooler_act"}


def config_from_transformers(config):
    """A :class:`ViTConfig` from a transformers ViT config.json dict (K from its id2label)."""
    from models.hub import label_names, read_fields

    fields = read_fields(config, "ViT", HF_FIELDS, HF_FIXED, HF_IGNORED)
    return ViTConfig(**fields, num_classes=len(label_names(config)))


def transformers_rules(config, prefix="vit.", head=True):
    """(minitx name, checkpoint name, transform) for each tensor of transformers' ViT layout."""
    from models.hub import conv_to_linear

    p = prefix
    rules = [("patch_embed.weight", f"{p}embeddings.patch_embeddings.projection.weight",
              conv_to_linear),  # (D, C, P, P) kernel -> (D, C·P·P)
             ("patch_embed.bias", f"{p}embeddings.patch_embeddings.projection.bias", None),
             ("cls_token", f"{p}embeddings.cls_token", None),  # (1, 1, D)
             ("pos_embed", f"{p}embeddings.position_embeddings", None),  # (1, T, D)
             ("norm.weight", f"{p}layernorm.weight", None),  # Eq. 4
             ("norm.bias", f"{p}layernorm.bias", None)]
    pairs = {"norm1": "layernorm_before", "norm2": "layernorm_after",
             "self_attn.q_proj": "attention.attention.query",  # W^Q, separate there too
             "self_attn.k_proj": "attention.attention.key",
             "self_attn.v_proj": "attention.attention.value",
             "self_attn.out_proj": "attention.output.dense",  # W^O
             "ffn.linear1": "intermediate.dense", "ffn.linear2": "output.dense"}
    for i in range(config.depth):  # Linear weights are (out, in) in both: no transposes
        rules += [(f"blocks.{i}.{a}.{w}", f"{p}encoder.layer.{i}.{b}.{w}", None)
                  for a, b in pairs.items() for w in ("weight", "bias")]
    if head:
        rules += [("head.weight", "classifier.weight", None),
                  ("head.bias", "classifier.bias", None)]
    return rules


def from_transformers(state_dict, config, *, dtype=np.float32, source="checkpoint"):
    """Build a ViT from a transformers ``ViTForImageClassification`` (or ``ViTModel``) checkpoint.

    Args:
        state_dict: {checkpoint name: NumPy array}, e.g. ``hub.read_weights(folder)``.
        config: its config.json dict.
    Returns:
        The ViT with the checkpoint's weights. A ``ViTModel`` has no classifier: its head is
        a zero D × K Linear (as :meth:`ViT.reset_head` makes) and its pooler is not used.
    """
    from models.hub import convert

    model = ViT(config_from_transformers(config), dtype=dtype)
    prefix = "vit." if "vit.embeddings.cls_token" in state_dict else ""  # ViTModel: none
    head = "classifier.weight" in state_dict  # ViTForImageClassification
    if not head:
        model.reset_head(model.config.num_classes)  # ViTModel: a zero head to fine-tune
    rules = transformers_rules(model.config, prefix, head)
    weights = convert(state_dict, rules, model, source=source,
                      ignore=() if head else ("pooler.dense.weight", "pooler.dense.bias"))
    model.load_state_dict({**model.state_dict(), **weights})  # the zero head stays as it is
    return model


def to_transformers(model, labels=None):
    """The other way: (tensors, config.json dict) of `model` in transformers' layout, to save
    with ``hub.save_checkpoint`` (``ViTForImageClassification`` reads the folder)."""
    c = model.config
    if c.head_hidden:
        raise ValueError("to_transformers: transformers' ViT has no MLP head (head_hidden > 0)")
    state = {k: v.numpy() for k, v in model.named_parameters()}
    kernel = (c.dim, c.in_channels, c.patch_size, c.patch_size)  # back to the convolution's
    tensors = {theirs: state[ours].reshape(kernel) if transform else state[ours]
               for ours, theirs, transform in transformers_rules(c)}
    labels = labels or [f"LABEL_{i}" for i in range(c.num_classes)]
    config = {hf: getattr(c, ours) for hf, (ours, _) in HF_FIELDS.items()}
    config.update(HF_FIXED, model_type="vit", architectures=["ViTForImageClassification"],
                  id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    return tensors, config


# ---- presets ------------------------------------------------------------------------------------
PRESETS = {
    # Table 1 (ImageNet-1k head, 224x224): ViT-B 86M, ViT-L 307M, ViT-H 632M parameters.
    "ViT-B/16": ViTConfig(image_size=224, patch_size=16, dim=768, depth=12, heads=12,
                          mlp_dim=3072, num_classes=1000),
    "ViT-B/32": ViTConfig(image_size=224, patch_size=32, dim=768, depth=12, heads=12,
                          mlp_dim=3072, num_classes=1000),
    "ViT-L/16": ViTConfig(image_size=224, patch_size=16, dim=1024, depth=24, heads=16,
                          mlp_dim=4096, num_classes=1000),
    "ViT-H/14": ViTConfig(image_size=224, patch_size=14, dim=1280, depth=32, heads=16,
                          mlp_dim=5120, num_classes=1000),
    # Small models that train on 2 CPU cores in minutes: examples/vit_classify.py's defaults.
    "tiny-digits": ViTConfig(image_size=8, patch_size=2, in_channels=1, dim=96, depth=4,
                             heads=4, mlp_dim=192, num_classes=10),
    "tiny-mnist": ViTConfig(image_size=28, patch_size=7, in_channels=1, dim=64, depth=4,
                            heads=4, mlp_dim=128, num_classes=10),
    "tiny-shapes": ViTConfig(image_size=32, patch_size=8, in_channels=3, dim=64, depth=4,
                             heads=4, mlp_dim=128, num_classes=5),
    # The training-step benchmark (benchmarks/step_vit.py): CIFAR-sized images, ViT-Ti-like.
    "bench": ViTConfig(image_size=32, patch_size=4, in_channels=3, dim=192, depth=6, heads=3,
                       mlp_dim=768, num_classes=10),
}
