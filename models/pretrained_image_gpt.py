"""Image-GPT weights published in the Hugging Face ``transformers`` layout -> minitx.

The name map of ``ImageGPTForCausalImageModeling`` (Chen et al. 2020) onto
:class:`models.image_gpt.ImageGPT`; ``models/hub.py`` reads the files and checks every tensor.

Where the two layouts differ, and where they only seem to:

* **Conv1D**: GPT-2's code stores each Linear as (in, out), minitx as (out, in): every matrix
  of a block is transposed.
* **c_attn** stacks W^Q, W^K, W^V along its output axis, (D, 3D): columns 0..D, D..2D, 2D..3D
  are q, k and v.
* **vocabulary**: ``vocab_size`` is the V palette colours plus one start token [SOS] (id V) in
  both; the output head predicts only the V colours, (V, D), in both.
* **norms**: transformers' ``ImageGPTLayerNorm`` is x / √(mean(x²) + ε) · g, the released
  code's norm, which minitx calls RMSNorm (``norm="rms"``): the gains load as they are.
* **the palette** (§3.2): ``preprocessor_config.json`` carries ``clusters``, the V k-means
  colours (V, 3) in [−1, 1]; an image, resized and scaled to [−1, 1], becomes tokens by the
  nearest colour, in raster order (:func:`image_tokens`, with minitx's ``quantize``).
"""

import numpy as np

from models.hub import CheckpointError, convert, preprocess, read_fields
from models.image_gpt import ImageGPT, ImageGPTConfig, dequantize, quantize

# config.json field of transformers' ImageGPTConfig -> (ImageGPTConfig field, default)
HF_FIELDS = {"n_positions": ("seq_len", 1024), "n_embd": ("dim", 512),
             "n_layer": ("depth", 24), "n_head": ("heads", 8),
             "layer_norm_epsilon": ("norm_eps", 1e-5)}
# the only values minitx's Image-GPT computes: scores scaled by 1/√(d/h), not by the layer index
HF_FIXED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False}
# checked by hand below: the palette size, the MLP width and the activation
CHECKED_BELOW = {"vocab_size", "n_inner", "activation_function"}
# dropouts act in training only (minitx's eval mode never drops); the rest: initialisation,
# generation caches, and upcasting the scores to float32 (they are float32 here already)
HF_IGNORED = {"resid_pdrop", "embd_pdrop", "attn_pdrop", "initializer_range", "use_cache",
              "reorder_and_upcast_attn", "n_ctx", "summary_type", "summary_use_proj",
              "summary_activation", "summary_proj_to_labels", "summary_first_dropout"}
ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu"}  # activation_function -> ours


def config_from_transformers(config):
    """An :class:`ImageGPTConfig` (AR, released norm) from a transformers config.json dict."""
    fields = read_fields(config, "ImageGPT", HF_FIELDS, HF_FIXED, HF_IGNORED | CHECKED_BELOW)
    act = config.get("activation_function", "quick_gelu")
    if act not in ACTIVATIONS:
        raise CheckpointError(f"ImageGPT config.json: activation_function={act!r} is not "
                              f"supported (minitx's Image-GPT has {sorted(ACTIVATIONS)})")
    D, inner = fields["dim"], config.get("n_inner")
    if inner is not None and inner % D:
        raise CheckpointError(f"ImageGPT config.json: n_inner={inner} is not supported (minitx "
                              f"needs a multiple of n_embd={D})")
    return ImageGPTConfig(**fields, num_colors=config.get("vocab_size", 513) - 1,  # [SOS] last
                          mlp_ratio=inner // D if inner else 4, objective="ar", norm="rms",
                          activation=ACTIVATIONS[act])


def transformers_rules(config):
    """(minitx name, checkpoint name, transform) for each tensor of transformers' layout."""
    D, T = config.dim, lambda w: w.T  # Conv1D (in, out) -> Linear (out, in)
    rules = [("token_embed.weight", "transformer.wte.weight", None),  # (V + 1, D)
             ("pos_embed.weight", "transformer.wpe.weight", None),  # (n, D)
             ("norm.weight", "transformer.ln_f.weight", None),
             ("head.weight", "lm_head.weight", None)]  # (V, D), untied
    for i in range(config.depth):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        rules += [(ours + "norm1.weight", theirs + "ln_1.weight", None),
                  (ours + "norm2.weight", theirs + "ln_2.weight", None)]
        for j, name in enumerate("qkv"):  # c_attn (D, 3D): q, k, v side by side
            cols = slice(j * D, (j + 1) * D)
            rules += [(f"{ours}attn.{name}_proj.weight", theirs + "attn.c_attn.weight",
                       lambda w, cols=cols: w[:, cols].T),  # (D, D) columns -> (out, in)
                      (f"{ours}attn.{name}_proj.bias", theirs + "attn.c_attn.bias",
                       lambda b, cols=cols: b[cols])]
        for a, b in (("attn.out_proj", "attn.c_proj"), ("mlp.fc", "mlp.c_fc"),
                     ("mlp.proj", "mlp.c_proj")):
            rules += [(f"{ours}{a}.weight", f"{theirs}{b}.weight", T),
                      (f"{ours}{a}.bias", f"{theirs}{b}.bias", None)]
    return rules


def from_transformers(state_dict, config, *, dtype=np.float32, source="checkpoint"):
    """Build an Image-GPT from a transformers ``ImageGPTForCausalImageModeling`` checkpoint.
    Older files also store each block's causal mask (``attn.bias``, ``attn.masked_bias``):
    buffers minitx does not need."""
    model = ImageGPT(config_from_transformers(config), dtype=dtype)
    weights = convert(state_dict, transformers_rules(model.config), model, source=source,
                      ignore=(".attn.bias", ".attn.masked_bias"))
    model.load_state_dict(weights)
    return model


def palette(preprocessor):
    """The checkpoint's colour clusters (V, 3) in [−1, 1] (§3.2), from preprocessor_config."""
    if "clusters" not in preprocessor:
        raise CheckpointError("ImageGPT: preprocessor_config.json has no 'clusters' (the "
                              "palette that turns pixels into tokens)")
    return np.asarray(preprocessor["clusters"], dtype=np.float32)  # (V, 3)


def image_tokens(images, preprocessor):
    """PIL images -> tokens (B, H·W): resized as the preprocessor says, scaled to [−1, 1] (mean
    and std ½), each pixel replaced by its nearest cluster, in raster order."""
    x = preprocess(images, {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, **preprocessor})
    return quantize(x, palette(preprocessor))  # (B, 3, H, W) -> (B, H·W)


def token_images(tokens, preprocessor, height, width):
    """Tokens (B, H·W) -> uint8 RGB images (B, H, W, 3): each token's cluster colour."""
    x = dequantize(np.asarray(tokens), palette(preprocessor), height, width)  # (B, 3, H, W)
    return np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def to_transformers(model, palette):
    """The other way: (tensors, config.json dict, preprocessor dict) of an AR `model` with its
    `palette` (V, C) in [0, 1] (grey, C = 1, becomes three equal channels), in transformers'
    layout, to save with ``hub.save_checkpoint``."""
    c = model.config
    if c.objective != "ar" or c.norm != "rms" or c.num_classes:
        raise ValueError("to_transformers: transformers' ImageGPTForCausalImageModeling is an AR "
                         "model with the released norm and no classifier")
    state, tensors = {k: v.numpy() for k, v in model.named_parameters()}, {}
    for ours, theirs, transform in transformers_rules(c):
        value = state[ours]
        if theirs.endswith("c_attn.weight"):  # q, k, v: (out, in) each -> (in, 3·out) columns
            value = np.concatenate([state[ours.replace("q_proj", n)].T
                                    for n in ("q_proj", "k_proj", "v_proj")], axis=1)
        elif theirs.endswith("c_attn.bias"):
            value = np.concatenate([state[ours.replace("q_proj", n)]
                                    for n in ("q_proj", "k_proj", "v_proj")])
        elif transform is not None:  # Conv1D: (in, out)
            value = value.T
        tensors.setdefault(theirs, value)  # c_attn: the q rule comes first
    config = {hf: getattr(c, ours) for hf, (ours, _) in HF_FIELDS.items()}
    config.update(HF_FIXED, model_type="imagegpt", vocab_size=c.num_colors + 1,
                  n_inner=c.mlp_ratio * c.dim, activation_function=c.activation,
                  architectures=["ImageGPTForCausalImageModeling"])
    colours = np.asarray(palette, np.float64)
    colours = colours.repeat(3, axis=1) if colours.shape[1] == 1 else colours  # (V, 3)
    side = int(round(c.seq_len ** 0.5))
    preprocessor = {"clusters": (colours * 2 - 1).tolist(), "do_resize": True, "size": side,
                    "resample": 2, "do_normalize": True}
    return tensors, config, preprocessor
