"""Swin Transformer weights published in the Hugging Face ``transformers`` layout -> minitx.

The name map of ``SwinForImageClassification`` (and ``SwinModel``, without head) onto
:class:`models.swin.SwinTransformer`; ``models/hub.py`` reads the files and checks every tensor.

Where the two layouts differ, and where they only seem to:

* **patch embedding**: a Conv2d(3, C, P, stride=P) there, a Linear on ``F.patchify``'s
  (C, P, P)-ordered patches here: the kernel (C, 3, P, P) is reshaped to (C, 3·P·P).
* **patch merging**: transformers keeps it at the *end* of stage i (``layers.i.downsample``),
  minitx at the *start* of stage i + 1 (``stages.{i+1}.merge``), as Fig. 3 draws it. Both
  concatenate the 2 x 2 neighbours in the official code's order x[0::2, 0::2], x[1::2, 0::2],
  x[0::2, 1::2], x[1::2, 1::2] (down the column first, then across), so the (2C x 4C)
  reduction and the 4C LayerNorm load unpermuted. The paper does not fix an order; had minitx
  taken the raster order (across first), columns C..2C and 2C..3C would have to swap.
* **relative position bias**: the table B̂ is ((2M−1)², h) in both, rows indexed by
  (Δy + M − 1)·(2M − 1) + (Δx + M − 1) in both (:func:`models.swin.relative_position_index`).
  Older files also store that index; it is compared with minitx's and otherwise unused.
* **q, k, v**: three separate Linears in both (the official code fuses them into one
  (3C x C) ``qkv``: the timm layout, not read here). Linear weights are (out, in) in both.
* the shift mask: transformers adds −100, minitx −inf; after the softmax both weights are 0
  in float32 (e^−100 is below float32's smallest normal number).
"""

import numpy as np

from models.hub import CheckpointError, conv_to_linear, convert, label_names, read_fields
from models.swin import SwinConfig, SwinTransformer, relative_position_index

# config.json field of transformers' SwinConfig -> (SwinConfig field, transformers' default)
HF_FIELDS = {"image_size": ("image_size", 224), "patch_size": ("patch_size", 4),
             "num_channels": ("in_channels", 3), "embed_dim": ("embed_dim", 96),
             "depths": ("depths", [2, 2, 6, 2]), "num_heads": ("num_heads", [3, 6, 12, 24]),
             "window_size": ("window_size", 7), "mlp_ratio": ("mlp_ratio", 4.0)}
# the only values minitx's Swin computes: exact GELU, biased q/k/v, LayerNorm ε of 1e-5, no
# absolute position embedding, no dropout
HF_FIXED = {"hidden_act": "gelu", "qkv_bias": True, "layer_norm_eps": 1e-5,
            "use_absolute_embeddings": False, "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0}
# drop_path_rate: stochastic depth, training only (minitx has none); the rest describe
# initialisation, derived widths or the backbone outputs (path_norm: a misspelt field some
# published files carry)
HF_IGNORED = {"drop_path_rate", "initializer_range", "encoder_stride", "num_layers",
              "hidden_size", "stage_names", "out_features", "out_indices", "path_norm"}


def config_from_transformers(config):
    """A :class:`SwinConfig` from a transformers Swin config.json dict (K from id2label)."""
    fields = read_fields(config, "Swin", HF_FIELDS, HF_FIXED, HF_IGNORED)
    ratio = fields["mlp_ratio"]
    if ratio != int(ratio):
        raise CheckpointError(f"Swin config.json: mlp_ratio={ratio} is not supported (minitx's "
                              f"Swin needs a whole number)")
    fields.update(mlp_ratio=int(ratio), depths=tuple(fields["depths"]),
                  num_heads=tuple(fields["num_heads"]))
    return SwinConfig(**fields, num_classes=len(label_names(config)))


def from_transformers(state_dict, config, *, dtype=np.float32, source="checkpoint"):
    """Build a Swin Transformer from a transformers ``SwinForImageClassification`` (or
    ``SwinModel``) checkpoint: `state_dict` {name: NumPy array}, `config` its config.json dict.
    A ``SwinModel`` has no classifier: the head is then a zero Linear, to fine-tune."""
    model = SwinTransformer(config_from_transformers(config), dtype=dtype)
    p = "swin." if "swin.embeddings.norm.weight" in state_dict else ""  # SwinModel: no prefix
    rules = [("patch_embed.proj.weight", f"{p}embeddings.patch_embeddings.projection.weight",
              conv_to_linear),  # (C, 3, P, P) kernel -> (C, 3·P·P)
             ("patch_embed.proj.bias", f"{p}embeddings.patch_embeddings.projection.bias", None)]
    rules += _same("patch_embed.norm", f"{p}embeddings.norm", "weight", "bias")
    for i, depth in enumerate(model.config.depths):
        hf = f"{p}encoder.layers.{i}."
        if i > 0:  # merging at the end of stage i − 1 there, at the start of stage i here
            before = f"{p}encoder.layers.{i - 1}.downsample"
            rules += _same(f"stages.{i}.merge.norm", f"{before}.norm", "weight", "bias")
            rules += _same(f"stages.{i}.merge.reduction", f"{before}.reduction", "weight")
        for j in range(depth):
            ours, theirs = f"stages.{i}.blocks.{j}.", f"{hf}blocks.{j}."
            pairs = {"norm1": "layernorm_before", "norm2": "layernorm_after",
                     "attn.q_proj": "attention.self.query", "attn.k_proj": "attention.self.key",
                     "attn.v_proj": "attention.self.value",
                     "attn.out_proj": "attention.output.dense",
                     "mlp.linear1": "intermediate.dense", "mlp.linear2": "output.dense"}
            for a, b in pairs.items():
                rules += _same(ours + a, theirs + b, "weight", "bias")
            rules.append((f"{ours}attn.relative_position_bias_table",
                          f"{theirs}attention.self.relative_position_bias_table", None))
            _check_index(state_dict, f"{theirs}attention.self.relative_position_index",
                         model.stages[i].blocks[j].attn.window_size, source)
    rules += _same("norm", f"{p}layernorm", "weight", "bias")
    head = "classifier.weight" in state_dict  # SwinForImageClassification
    if head:
        rules += _same("head", "classifier", "weight", "bias")
    else:  # SwinModel: a zero head, as ViT.reset_head makes
        model.head.weight.data[...] = 0
        model.head.bias.data[...] = 0
    weights = convert(state_dict, rules, model, ignore=("relative_position_index",),
                      source=source)
    model.load_state_dict({**model.state_dict(), **weights})
    return model


def _same(ours, theirs, *leaves):
    """Rules for tensors stored as they are: (ours.leaf, theirs.leaf, None) per leaf."""
    return [(f"{ours}.{leaf}", f"{theirs}.{leaf}", None) for leaf in leaves]


def _check_index(state_dict, name, M, source):
    """Older files store the relative position index: it must be minitx's (§3.2)."""
    ours = relative_position_index(M).reshape(-1)  # (M², M²), flattened: some files store it so
    if name in state_dict and not np.array_equal(np.reshape(state_dict[name], -1), ours):
        raise CheckpointError(f"{source}: tensor {name!r} orders the relative positions "
                              f"differently from minitx's relative_position_index({M})")
