"""CLIP weights published in the Hugging Face ``transformers`` layout -> minitx.

The name map of ``CLIPModel`` (ViT image tower, Radford et al. 2021, §2.4) onto
:class:`models.clip.CLIP`; ``models/hub.py`` reads the files and checks every tensor, and
``models/clip_tokenizer.py`` reads the checkpoint's ``vocab.json`` and ``merges.txt``.

Where the two layouts differ, and where they only seem to:

* **config.json** nests the towers: ``text_config`` and ``vision_config``, each a small
  transformers config of its own; ``projection_dim`` (E) and ``logit_scale_init_value`` sit at
  the top. Both towers use one activation in minitx (``quick_gelu``, the released x·σ(1.702x),
  or the exact ``gelu``) and an MLP of 4·D.
* **patch embedding**: a bias-free Conv2d(3, D, P, stride=P) in both (``conv1`` here, as the
  released code names it): stored as it is.
* **q, k, v**: three separate Linears in both (the released code fuses them into one
  ``in_proj``); Linear weights are (out, in) in both, so nothing is transposed.
* **t**, the temperature's logarithm (§2.5): 0-d there, a (1,) vector here (minitx's
  optimizers update arrays with at least one axis).
* **[EOS]**: minitx takes the first position of ``eot_token``. transformers does the same with
  the text config's ``eos_token_id``, except that the value 2 (which older files, the published
  OpenAI ones among them, carry) makes it take the argmax of the ids, as the released code
  does; there <|endoftext|> is the last id of the vocabulary, V − 1, and the argmax is the
  first V − 1 of the row: ``eot_token`` is then V − 1.
"""

import numpy as np

from models.clip import CLIP, CLIPConfig
from models.hub import CheckpointError, convert, read_fields

# config.json fields of transformers' CLIP towers -> (CLIPConfig field, transformers' default)
VISION_FIELDS = {"hidden_size": ("vision_width", 768), "num_hidden_layers": ("vision_layers", 12),
                 "num_attention_heads": ("vision_heads", 12), "image_size": ("image_size", 224),
                 "patch_size": ("patch_size", 32)}
TEXT_FIELDS = {"hidden_size": ("text_width", 512), "num_hidden_layers": ("text_layers", 12),
               "num_attention_heads": ("text_heads", 8), "vocab_size": ("vocab_size", 49408),
               "max_position_embeddings": ("context_length", 77)}
# checked by hand below: the MLP width (4·D) and the activation (one for both towers)
CHECKED_BELOW = {"intermediate_size", "hidden_act"}
# the only values minitx's CLIP computes
TOWER_FIXED = {"layer_norm_eps": 1e-5, "dropout": 0.0, "attention_dropout": 0.0}
VISION_FIXED = {**TOWER_FIXED, "num_channels": 3}
# initialisation, the projection width (read at the top), training switches
TOWER_IGNORED = {"initializer_range", "initializer_factor", "projection_dim",
                 "gradient_checkpointing", "model_type"}
TOP_FIELDS = {"projection_dim": ("embed_dim", 512),
              "logit_scale_init_value": ("logit_scale_init", 2.6592)}
# the towers (read on their own); older files repeat them as *_dict
TOP_IGNORED = {"text_config", "vision_config", "text_config_dict", "vision_config_dict",
               "initializer_factor"}
ACTIVATIONS = {"quick_gelu": True, "gelu": False}  # hidden_act -> CLIPConfig.quick_gelu


def config_from_transformers(config):
    """A :class:`CLIPConfig` (ViT image tower) from a transformers CLIP config.json dict."""
    fields = read_fields(config, "CLIP", TOP_FIELDS, {}, TOP_IGNORED)
    vision, text = config.get("vision_config") or {}, config.get("text_config") or {}
    resnet = isinstance(vision.get("layers"), (list, tuple))  # open_clip's RN50: [3, 4, 6, 3]
    if resnet or vision.get("model_type", "clip_vision_model") != "clip_vision_model":
        raise CheckpointError("CLIP config.json: vision_config describes a ResNet (or another) "
                              "image tower; transformers' CLIPModel and this converter know the "
                              "ViT tower only (models/clip_resnet.py has no published map)")
    acts = []
    for name, tower, known, fixed, width in (
            ("vision_config", vision, VISION_FIELDS, VISION_FIXED, "vision_width"),
            ("text_config", text, TEXT_FIELDS, TOWER_FIXED, "text_width")):
        got = read_fields(tower, f"CLIP {name}", known, fixed, TOWER_IGNORED | CHECKED_BELOW)
        act, D = tower.get("hidden_act", "quick_gelu"), got[width]
        if act not in ACTIVATIONS:
            raise CheckpointError(f"CLIP config.json: {name}.hidden_act={act!r} is not "
                                  f"supported (minitx's CLIP has {sorted(ACTIVATIONS)})")
        if tower.get("intermediate_size", 4 * D) != 4 * D:
            raise CheckpointError(f"CLIP config.json: {name}.intermediate_size="
                                  f"{tower['intermediate_size']} is not supported (minitx's "
                                  f"CLIP has an MLP of 4·hidden_size = {4 * D})")
        acts.append(act)
        fields.update(got)
    if acts[0] != acts[1]:
        raise CheckpointError(f"CLIP config.json: hidden_act differs between the towers "
                              f"({acts[0]!r} and {acts[1]!r}); minitx's CLIP uses one for both")
    eos = text.get("eos_token_id", 49407)
    eot = fields["vocab_size"] - 1 if eos == 2 else eos  # 2: the argmax convention (above)
    return CLIPConfig(**fields, image_encoder="vit", eot_token=eot,
                      quick_gelu=ACTIVATIONS[acts[0]])


def transformers_rules(config):
    """(minitx name, checkpoint name, transform) for each tensor of ``CLIPModel``."""
    v, t = "vision_model.", "text_model."
    rules = [("logit_scale", "logit_scale", lambda a: a.reshape(1)),  # 0-d there, (1,) here
             ("visual.conv1.weight", f"{v}embeddings.patch_embedding.weight", None),  # (D,3,P,P)
             ("visual.class_embedding", f"{v}embeddings.class_embedding", None),  # (D,)
             ("visual.positional_embedding", f"{v}embeddings.position_embedding.weight", None),
             ("visual.proj.weight", "visual_projection.weight", None),  # W_i (E, D)
             ("text.token_embedding.weight", f"{t}embeddings.token_embedding.weight", None),
             ("text.positional_embedding", f"{t}embeddings.position_embedding.weight", None),
             ("text.proj.weight", "text_projection.weight", None)]  # W_t (E, D)
    for ours, theirs in (("visual.ln_pre", f"{v}pre_layrnorm"),  # (sic: their spelling)
                         ("visual.ln_post", f"{v}post_layernorm"),
                         ("text.ln_final", f"{t}final_layer_norm")):
        rules += [(f"{ours}.{w}", f"{theirs}.{w}", None) for w in ("weight", "bias")]
    block = {"norm1": "layer_norm1", "norm2": "layer_norm2",
             "self_attn.q_proj": "self_attn.q_proj", "self_attn.k_proj": "self_attn.k_proj",
             "self_attn.v_proj": "self_attn.v_proj", "self_attn.out_proj": "self_attn.out_proj",
             "ffn.linear1": "mlp.fc1", "ffn.linear2": "mlp.fc2"}
    for tower, theirs, layers in (("visual", v, config.vision_layers),
                                  ("text", t, config.text_layers)):
        for i in range(layers):
            rules += [(f"{tower}.blocks.{i}.{a}.{w}", f"{theirs}encoder.layers.{i}.{b}.{w}", None)
                      for a, b in block.items() for w in ("weight", "bias")]
    return rules


def from_transformers(state_dict, config, *, dtype=np.float32, source="checkpoint"):
    """Build a CLIP from a transformers ``CLIPModel`` checkpoint: `state_dict` {name: NumPy
    array}, `config` its config.json dict. The stored ``position_ids`` (0, 1, 2, ...) are
    buffers minitx does not need."""
    model = CLIP(config_from_transformers(config))
    weights = convert(state_dict, transformers_rules(model.config), model,
                      ignore=("position_ids",), source=source)
    model.load_state_dict(weights)
    for p in model.parameters():  # CLIP builds in float32
        p.data = p.data.astype(dtype, copy=False)
    return model


def image_settings(preprocessor, image_size):
    """The checkpoint's preprocessor config as ``hub.preprocess`` reads it. CLIP's older files
    (OpenAI's among them) give ``size`` as one number meaning the *shorter side* (then a centre
    crop), where ViT's one number means a square: it is spelled out here. None: resize to the
    model's size, with CLIP's mean and std (the released code's constants)."""
    if not preprocessor:
        return {"size": {"shortest_edge": image_size}, "do_center_crop": True,
                "crop_size": image_size, "resample": 3,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711]}
    size = preprocessor.get("size")
    if isinstance(size, int):
        return {**preprocessor, "size": {"shortest_edge": size}}
    return dict(preprocessor)
