"""Published checkpoints: read a Hugging Face ``transformers`` folder (or hub name) into minitx.

A published checkpoint is a folder of three kinds of files:

* ``config.json``: the architecture (widths, depths, heads, ...) and the class names
  (``id2label``). Each model family reads it with its own ``config_from_transformers``, which
  refuses fields it does not know or values minitx cannot reproduce (:func:`read_fields`).
* the weights: ``*.safetensors`` (read with the safetensors package: a JSON header and raw
  arrays, no code inside), or PyTorch's ``*.bin`` / ``*.pth`` pickles, read only through
  ``torch.load(weights_only=True)`` (which refuses anything but tensors) when PyTorch is
  installed. A sharded checkpoint lists its files in ``*.index.json``.
* ``preprocessor_config.json``: how an image becomes the model's input (resize, centre crop,
  rescale to [0, 1], normalise with the training set's mean and std): :func:`preprocess`.

Each family's ``from_transformers(state_dict, config)`` is a list of **rules**, (minitx name,
checkpoint name, transform), written next to its model; :func:`convert` applies them and checks
every tensor: a missing, unexpected, mis-shaped or non-finite tensor is an error that names it.
:func:`load_pretrained` puts it together: name or folder in, minitx model out.

A new family adds, next to its model (or in ``models/pretrained_<family>.py``):
``config_from_transformers(config)`` built on :func:`read_fields`, and
``from_transformers(state_dict, config, *, dtype, source)``, which builds the model, lists its
rules and loads ``convert(...)``'s result; then its config.json ``model_type`` goes into
:data:`FAMILIES`. The tests save a small random ``transformers`` model of the family and
compare outputs.

Fetching by hub name (``google/vit-base-patch16-224``) needs the optional ``huggingface_hub``
package and the network; a local folder works offline.
"""

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONFIG, PREPROCESSOR = "config.json", "preprocessor_config.json"
# model_type of config.json -> the module that holds the family's converter
FAMILIES = {"vit": "models.vit", "swin": "models.pretrained_swin", "clip": "models.pretrained_clip",
            "imagegpt": "models.pretrained_image_gpt"}
# timm's checkpoints name an architecture instead: its prefix -> the module with ``from_timm``
TIMM_FAMILIES = {"vit_": "models.pretrained_vit"}
# the files a hub download fetches (weights, configs, and a tokenizer's vocabulary)
HUB_FILES = ["*.json", "*.safetensors", "*.txt"]


class CheckpointError(ValueError):
    """A checkpoint does not fit the model: the message names the first offending tensor or
    config.json field."""


@dataclass
class Checkpoint:
    """What a checkpoint folder holds, as read from disk (nothing converted yet)."""

    folder: Path
    config: dict  # config.json
    preprocessor: dict  # preprocessor_config.json ({} when the folder has none)
    tensors: dict  # {checkpoint name: NumPy array}, in the file's order


# ---- reading ------------------------------------------------------------------------------------

def resolve(name_or_path):
    """Return the local folder of a checkpoint: `name_or_path` itself when it is a folder, else
    a hub name ("owner/model") downloaded (once, into huggingface_hub's cache)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists() or str(name_or_path).count("/") != 1:
        raise CheckpointError(f"{name_or_path}: not a checkpoint folder (expected a folder with "
                              f"config.json and weights, or a hub name such as "
                              f"google/vit-base-patch16-224)")
    try:
        import huggingface_hub  # optional: only a hub name needs it
    except ImportError:
        raise CheckpointError(f"{name_or_path}: fetching a hub name needs the optional package "
                              f"huggingface_hub (pip install huggingface_hub); or pass the path "
                              f"of a downloaded checkpoint folder") from None
    try:
        folder = huggingface_hub.snapshot_download(str(name_or_path), allow_patterns=HUB_FILES)
        if not any(Path(folder).glob("*.safetensors")):  # an older checkpoint: PyTorch only
            folder = huggingface_hub.snapshot_download(
                str(name_or_path), allow_patterns=HUB_FILES + ["pytorch_model*.bin"])
    except Exception as error:  # no network, unknown name, offline mode, ...
        raise CheckpointError(f"{name_or_path}: no such local folder, and could not fetch it "
                              f"from the Hugging Face hub ({type(error).__name__}: {error}). "
                              f"Without network, download the folder elsewhere and pass its "
                              f"path") from None
    return Path(folder)


def read_checkpoint(name_or_path):
    """Read a checkpoint folder (or hub name) into a :class:`Checkpoint`."""
    folder = resolve(name_or_path)
    if not (folder / CONFIG).exists():
        raise CheckpointError(f"{folder}: no {CONFIG} (the architecture) in the folder")
    config = json.loads((folder / CONFIG).read_text())
    pre = folder / PREPROCESSOR
    preprocessor = json.loads(pre.read_text()) if pre.exists() else {}
    return Checkpoint(folder, config, preprocessor, read_weights(folder))


def read_weights(folder):
    """Return {name: NumPy array} of every tensor in the folder's weight files: the safetensors
    files when there are any, else PyTorch's .bin/.pth."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors")) or sorted(
        [*folder.glob("*.bin"), *folder.glob("*.pth")])
    if not files:
        raise CheckpointError(f"{folder}: no weights (*.safetensors, *.bin or *.pth) in the folder")
    tensors = {}
    for file in files:
        tensors.update(read_tensor_file(file))
    return tensors


def read_tensor_file(path):
    """Return {name: NumPy array} of one weight file, without running code from it."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                return {name: f.get_tensor(name) for name in f.keys()}
        except Exception as error:  # a truncated or damaged file, or an unknown dtype
            raise CheckpointError(f"{path}: cannot read the safetensors file "
                                  f"({type(error).__name__}: {error})") from None
    try:
        import torch
    except ImportError:
        raise CheckpointError(f"{path}: a PyTorch pickle; reading it needs PyTorch (it is read "
                              f"with torch.load(weights_only=True)), or convert it to "
                              f".safetensors") from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: torch.load(weights_only=True) refused it "
                              f"({type(error).__name__}: {error})") from None
    state = state.get("state_dict", state.get("model", state))  # training scripts wrap it
    return {name: t.detach().float().numpy() if t.is_floating_point() else t.numpy()
            for name, t in state.items()}


def save_checkpoint(folder, tensors, config, preprocessor=None):
    """Write a checkpoint folder as the hub publishes them: model.safetensors, config.json and
    (when given) preprocessor_config.json. `tensors` and `config` come from a family's
    ``to_transformers``. Returns the folder."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    if preprocessor is not None:
        (folder / PREPROCESSOR).write_text(json.dumps(preprocessor, indent=2) + "\n")
    return folder


# ---- config.json --------------------------------------------------------------------------------

# Fields every transformers config may carry that do not describe the network (bookkeeping,
# text generation, export): read and ignored by every family.
GENERIC_FIELDS = frozenset("""
architectures model_type transformers_version id2label label2id num_labels torch_dtype dtype
problem_type return_dict output_attentions output_hidden_states torchscript use_bfloat16
chunk_size_feed_forward is_encoder_decoder is_decoder add_cross_attention tie_word_embeddings
tie_encoder_decoder pruned_heads finetuning_task tokenizer_class prefix task_specific_params
bos_token_id eos_token_id pad_token_id sep_token_id decoder_start_token_id
max_length min_length do_sample early_stopping num_beams num_beam_groups diversity_penalty
temperature top_k top_p typical_p repetition_penalty length_penalty no_repeat_ngram_size
encoder_no_repeat_ngram_size bad_words_ids num_return_sequences output_scores
return_dict_in_generate forced_bos_token_id forced_eos_token_id remove_invalid_values
exponential_decay_length_penalty suppress_tokens begin_suppress_tokens
cross_attention_hidden_size tf_legacy_loss
""".split())


def read_fields(config, family, renamed, fixed, ignored=()):
    """Translate config.json into the keyword arguments of a minitx config.

    Args:
        config: the config.json dict.
        family: the family's name, for messages ("ViT").
        renamed: {config.json field: (minitx field, transformers' default)}: copied across
            (the default when config.json leaves the field out).
        fixed: {config.json field: the only value minitx supports} (also transformers' default).
        ignored: fields that do not change the function the network computes (initialisation,
            stochastic depth, ...), beside :data:`GENERIC_FIELDS` and ``_private`` ones.
    Returns:
        {minitx field: value}.
    Raises:
        CheckpointError naming the first field minitx does not know or cannot reproduce.
    """
    for name, value in config.items():
        if name in fixed and value != fixed[name]:
            raise CheckpointError(f"{family} config.json: {name}={value!r} is not supported "
                                  f"(minitx's {family} has {name}={fixed[name]!r})")
        if not (name in renamed or name in fixed or name in ignored or name in GENERIC_FIELDS
                or name.startswith("_")):
            raise CheckpointError(f"{family} config.json: unknown field {name!r} (= {value!r}); "
                                  f"the converter knows {sorted([*renamed, *fixed])} and "
                                  f"ignores {sorted(ignored)}")
    return {ours: config.get(name, default) for name, (ours, default) in renamed.items()}


def label_names(config):
    """The class names of config.json's id2label (timm: label_names), in class order
    (["LABEL_0", ...] if absent)."""
    if config.get("label_names"):
        return list(config["label_names"])
    id2label = config.get("id2label") or {}
    if isinstance(id2label, list):  # written as a list of names, in class order
        id2label = dict(enumerate(id2label))
    if not isinstance(id2label, dict):
        raise CheckpointError(f"config.json: id2label must map class indices to names, got "
                              f"{type(id2label).__name__}")
    n = len(id2label) or config.get("num_labels", config.get("num_classes", 2))
    return [id2label.get(str(i), id2label.get(i, f"LABEL_{i}")) for i in range(n)]


# ---- tensors ------------------------------------------------------------------------------------

def conv_to_linear(kernel):
    """A Conv2d(C, D, P, stride=P) kernel (D, C, P, P) -> the patch Linear's weight (D, C·P·P).

    ``F.patchify`` flattens each patch in (C, P, P) order, the kernel's own order, so the
    convolution at one patch is exactly this matrix times the flattened patch."""
    return kernel.reshape(kernel.shape[0], -1)  # (D, C, P, P) -> (D, C·P·P)


def convert(tensors, rules, model, *, ignore=(), source="checkpoint"):
    """Rename and reshape checkpoint tensors into the state dict of `model`, checking each.

    Args:
        tensors: {checkpoint name: NumPy array}.
        rules: (minitx name, checkpoint name, transform or None) for every parameter of `model`;
            the transform maps the stored array to minitx's layout.
        model: the minitx model the result is for (its parameters give the shapes and dtypes).
        ignore: checkpoint names that may be left over (buffers minitx recomputes, heads it
            does not have), as suffixes.
        source: the checkpoint's name, for messages.
    Returns:
        {minitx name: array} in the parameters' dtypes, ready for ``model.load_state_dict``.
    Raises:
        CheckpointError naming the first tensor that is missing, has the wrong shape, holds a
        non-finite value, or is left over.
    """
    expected, out = model.state_dict(), {}
    for ours, theirs, transform in rules:
        if theirs not in tensors:
            raise CheckpointError(f"{source}: tensor {theirs!r} is missing (minitx's {ours})")
        stored = np.asarray(tensors[theirs])
        try:
            value = transform(stored) if transform is not None else stored
        except ValueError as error:
            raise CheckpointError(f"{source}: tensor {theirs!r} of shape {stored.shape} cannot be "
                                  f"converted for minitx's {ours}: {error}") from None
        want = expected[ours]
        if value.shape != want.shape:
            gives = f", which gives {value.shape}" if value.shape != stored.shape else ""
            raise CheckpointError(f"{source}: tensor {theirs!r} has shape {stored.shape}{gives}; "
                                  f"minitx's {ours} needs {want.shape}")
        if not np.isfinite(value).all():
            raise CheckpointError(f"{source}: tensor {theirs!r} holds "
                                  f"{int((~np.isfinite(value)).sum())} non-finite values "
                                  f"(a damaged file?)")
        out[ours] = np.ascontiguousarray(value, dtype=want.dtype)
    used = {theirs for _, theirs, _ in rules}
    for name in tensors:
        if name not in used and not name.endswith(tuple(ignore)):
            raise CheckpointError(f"{source}: unexpected tensor {name!r} (shape "
                                  f"{np.shape(tensors[name])}): the config describes a model "
                                  f"without it")
    return out


# ---- the whole way ------------------------------------------------------------------------------

def family_of(config):
    """The module of config.json's model family (see :data:`FAMILIES`)."""
    kind = config.get("model_type")
    if kind not in FAMILIES:
        raise CheckpointError(f"config.json: model_type={kind!r} has no converter; known: "
                              f"{sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[kind])


def load_pretrained(name_or_path, *, device="cpu", dtype=np.float32):
    """Read a checkpoint and return (minitx model in eval mode, :class:`Checkpoint`).

    >>> model, ckpt = load_pretrained("google/vit-base-patch16-224")  # doctest: +SKIP
    """
    ckpt = read_checkpoint(name_or_path)
    if "architecture" in ckpt.config and "model_type" not in ckpt.config:  # timm's layout
        name = str(ckpt.config["architecture"])
        prefix = next((p for p in TIMM_FAMILIES if name.startswith(p)), None)
        if prefix is None:
            raise CheckpointError(f"timm config.json: architecture {name!r} has no converter; "
                                  f"known: {sorted(TIMM_FAMILIES)}")
        module = importlib.import_module(TIMM_FAMILIES[prefix])
        build = module.from_timm
        ckpt.preprocessor = ckpt.preprocessor or module.timm_preprocessor(ckpt.config)
    else:
        build = family_of(ckpt.config).from_transformers
    model = build(ckpt.tensors, ckpt.config, dtype=dtype, source=str(ckpt.folder))
    model.to(device)
    model.eval()
    return model, ckpt


# ---- images -------------------------------------------------------------------------------------

def read_image(path):
    """An image file as a PIL RGB image (the decoder of the pillow package)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def _size(size, height, width):
    """The target (height, width) of a preprocessor "size" entry, for an image of that size."""
    if isinstance(size, int):  # older files: one number, a square
        return size, size
    if "height" in size:
        return size["height"], size["width"]
    if "shortest_edge" in size:  # the shorter side becomes S, the aspect ratio is kept
        s = size["shortest_edge"]
        short, long = min(height, width), max(height, width)
        other = int(s * long / short)
        return (s, other) if height <= width else (other, s)
    raise CheckpointError(f"{PREPROCESSOR}: size {size!r} is not understood")


def preprocess(images, preprocessor):
    """Turn PIL images into the model's input, as the checkpoint's preprocessor config says.

    In order: resize (PIL, with the config's ``resample`` filter: 2 bilinear, 3 bicubic),
    centre crop, rescale (×1/255 to [0, 1]), normalise ((x − mean) / std per channel).
    A centre crop larger than the (resized) image is an error.

    Args:
        images: a PIL image or a list of them (RGB).
        preprocessor: the preprocessor_config.json dict ({}: no resizing, mean 0.5, std 0.5).
    Returns:
        NumPy float32 (B, 3, H, W).
    """
    from PIL import Image

    images = images if isinstance(images, (list, tuple)) else [images]
    p = preprocessor
    out = []
    for image in images:
        resized = p.get("do_resize", True) and "size" in p
        if resized:
            h, w = _size(p["size"], image.height, image.width)
            image = image.resize((w, h), Image.Resampling(p.get("resample", 2)))
        x = np.asarray(image, dtype=np.float32)  # (H, W, 3) in [0, 255]
        if p.get("do_center_crop", False):
            crop = p.get("crop_size", p.get("size"))
            ch, cw = _size(crop, *x.shape[:2]) if not isinstance(crop, int) else (crop, crop)
            if ch > x.shape[0] or cw > x.shape[1]:  # the slice would be smaller, off centre
                hint = (" (after the resize); the size must cover the crop_size" if resized
                        else "; resize it first")
                raise ValueError(f"preprocess: the centre crop {ch}x{cw} is larger than the "
                                 f"image {x.shape[0]}x{x.shape[1]}{hint}")
            top, left = (x.shape[0] - ch) // 2, (x.shape[1] - cw) // 2
            x = x[top:top + ch, left:left + cw]
        if p.get("do_rescale", True):
            x = x * np.float32(p.get("rescale_factor", 1 / 255))
        if p.get("do_normalize", True):
            mean = np.asarray(p.get("image_mean", [0.5] * 3), dtype=np.float32)
            std = np.asarray(p.get("image_std", [0.5] * 3), dtype=np.float32)
            x = (x - mean) / std
        out.append(x.transpose(2, 0, 1))  # (H, W, 3) -> (3, H, W)
    return np.stack(out).astype(np.float32)  # (B, 3, H, W)
