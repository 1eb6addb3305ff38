"""Published ViT and Swin checkpoints load into minitx and compute the same function.

A small randomly initialised ``transformers`` model is saved as the hub publishes it
(model.safetensors + config.json), read back through models/hub.py and the family's name map,
and its logits, final features and every layer's attention weights are compared with the
reference's in float32. Skipped where ``transformers`` (and PyTorch) are missing.
"""

import json

import numpy as np
import pytest

import minitx as mt
from minitx import nn
from models import hub
from models.pretrained_swin import config_from_transformers as swin_config
from models.swin import (
    SWIN_PRESETS,
    PatchMerging,
    SwinTransformer,
    relative_position_index,
)
from models.vit import PRESETS, ViT, config_from_transformers
from tests.nn.helpers import without_random_init

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
           image_size=16, patch_size=4, num_labels=5)
SWIN = dict(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2], num_heads=[2, 4],
            window_size=4, num_labels=3, drop_path_rate=0.0)  # stages of 16x16 and 8x8 tokens


def saved(tmp_path, model_cls, config_cls, **config):
    """Save a seeded random transformers model as safetensors + config.json; return it."""
    torch.manual_seed(0)
    reference = model_cls(config_cls(**config, attn_implementation="eager")).eval()
    with torch.no_grad():  # non-zero biases and LayerNorm affines, so a swap would show
        for p in reference.parameters():
            p.add_(0.02 * torch.randn_like(p))
    reference.save_pretrained(tmp_path, safe_serialization=True)
    return reference


def images(shape):
    return np.random.default_rng(1).normal(size=shape).astype(np.float32)


def test_vit_matches_transformers(tmp_path):
    reference = saved(tmp_path, transformers.ViTForImageClassification, transformers.ViTConfig,
                      **VIT)
    model, ckpt = hub.load_pretrained(tmp_path)
    x = images((2, 3, 16, 16))
    with torch.no_grad():
        out = reference(torch.from_numpy(x), output_attentions=True)
    with mt.no_grad(), nn.record_attention(model.blocks) as recorded:
        logits = model(mt.tensor(x)).numpy()
    np.testing.assert_allclose(logits, out.logits.numpy(), atol=1e-5, rtol=1e-5)
    for i, theirs in enumerate(out.attentions):  # (B, h, T, T) per layer
        np.testing.assert_allclose(recorded[f"{i}.self_attn"].numpy(), theirs.numpy(),
                                   atol=1e-5, rtol=1e-5)
    assert model.config.layer_norm_eps == 1e-12  # read from config.json, not minitx's default
    assert hub.label_names(ckpt.config) == [f"LABEL_{i}" for i in range(5)]


def test_vit_model_without_head_loads_with_a_zero_head(tmp_path):
    reference = saved(tmp_path, transformers.ViTModel, transformers.ViTConfig, **VIT)
    model, _ = hub.load_pretrained(tmp_path)
    x = images((2, 3, 16, 16))
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x)).last_hidden_state[:, 0].numpy()  # LN'd [class]
    with mt.no_grad():
        z = model.embed(mt.tensor(x))
        for block in model.blocks:
            z = block(z)
        ours = model.norm(z[:, 0]).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)
    assert not model.head.weight.numpy().any()


def test_swin_matches_transformers(tmp_path):
    reference = saved(tmp_path, transformers.SwinForImageClassification,
                      transformers.SwinConfig, **SWIN)
    model, _ = hub.load_pretrained(tmp_path)
    x = images((2, 3, 32, 32))
    theirs = []  # every block's weights: hooks on the self-attention modules, in call order
    for module in reference.modules():
        if type(module).__name__ == "SwinAttention":  # returns (output, weights)
            module.register_forward_hook(lambda m, i, o: theirs.append(o[1].numpy()))
    with torch.no_grad():
        out = reference(torch.from_numpy(x), output_attentions=True)
    blocks = [b for stage in model.stages for b in stage.blocks]
    with mt.no_grad(), nn.record_attention(model) as recorded:
        logits = model(mt.tensor(x)).numpy()
    np.testing.assert_allclose(logits, out.logits.numpy(), atol=1e-5, rtol=1e-5)
    ours = [w.numpy() for w in recorded.values()]
    assert len(ours) == len(theirs) == len(blocks) == 4
    for a, b in zip(ours, theirs):  # (B, nW, h, N, N) vs (B·nW, h, N, N), shifts too
        np.testing.assert_allclose(a.reshape(b.shape), b, atol=1e-5, rtol=1e-5)


def test_swin_model_without_head_gives_the_same_features(tmp_path):
    reference = saved(tmp_path, transformers.SwinModel, transformers.SwinConfig, **SWIN)
    model, _ = hub.load_pretrained(tmp_path)
    x = images((2, 3, 32, 32))
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x)).pooler_output.numpy()  # LN, average pool
    with mt.no_grad():
        ours = model.norm(model.features(mt.tensor(x))[-1]).mean(axis=(1, 2)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)
    assert not model.head.weight.numpy().any()


def test_swin_conventions_agree_with_transformers():
    """The relative-position index and the patch-merging order, checked directly."""
    from transformers.models.swin import modeling_swin

    bias = modeling_swin.SwinRelativePositionBias(2, (4, 4))
    index = bias.relative_position_index.reshape(16, 16)  # stored flat
    np.testing.assert_array_equal(index.numpy(), relative_position_index(4))
    merge = modeling_swin.SwinPatchMerging(3)
    x = np.random.default_rng(2).normal(size=(1, 4, 4, 3)).astype(np.float32)
    with torch.no_grad():  # their concatenation: the LayerNorm's input, read by a hook
        seen = []
        merge.norm.register_forward_hook(lambda m, i, o: seen.append(i[0].numpy()))
        merge(torch.from_numpy(x).reshape(1, 16, 3), (4, 4))
    ours, captured = PatchMerging(3), []
    ours.norm = lambda y: (captured.append(y.numpy()), y)[1]  # its concatenation, read off
    ours(mt.tensor(x))
    np.testing.assert_array_equal(captured[0].reshape(-1), seen[0].reshape(-1))


def test_full_size_configs_have_the_published_parameter_counts():
    vit_json = {"model_type": "vit", "id2label": {str(i): str(i) for i in range(1000)}}
    swin_json = {"model_type": "swin", "id2label": {str(i): str(i) for i in range(1000)}}
    with without_random_init():  # transformers' defaults are ViT-B/16 and Swin-T at 224²
        vit = ViT(config_from_transformers(vit_json))
        swin = SwinTransformer(swin_config(swin_json))
    assert sum(p.size for p in vit.parameters()) == 86_567_656
    assert sum(p.size for p in swin.parameters()) == 28_288_354
    assert config_from_transformers(vit_json) == PRESETS["ViT-B/16"].__class__(
        **{**PRESETS["ViT-B/16"].__dict__, "layer_norm_eps": 1e-12})
    assert swin_config(swin_json) == SWIN_PRESETS["swin_t"]


# ---- bad checkpoints --------------------------------------------------------------------------

def edit_weights(folder, edit):
    from safetensors.numpy import load_file, save_file

    path = folder / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


@pytest.fixture
def vit_folder(tmp_path):
    saved(tmp_path, transformers.ViTForImageClassification, transformers.ViTConfig, **VIT)
    return tmp_path


NAME = "vit.encoder.layer.1.attention.attention.key.weight"


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.pop(NAME), [NAME, "missing", "blocks.1.self_attn.k_proj.weight"]),
    (lambda t: t.__setitem__(NAME, t[NAME][:, :16]), [NAME, "(32, 16)", "(32, 32)"]),
    (lambda t: t.__setitem__("vit.extra.weight", np.ones(3, np.float32)),
     ["unexpected", "vit.extra.weight"]),
    (lambda t: t[NAME].__setitem__((0, 0), np.nan), [NAME, "non-finite"]),
])
def test_a_bad_checkpoint_names_the_offending_tensor(vit_folder, edit, words):
    edit_weights(vit_folder, edit)
    with pytest.raises(hub.CheckpointError) as info:
        hub.load_pretrained(vit_folder)
    for word in words:
        assert word in str(info.value)


def test_a_truncated_file_is_refused_with_its_name(vit_folder):
    path = vit_folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(hub.CheckpointError, match="model.safetensors"):
        hub.load_pretrained(vit_folder)


@pytest.mark.parametrize("field, value", [("hidden_act", "relu"), ("qkv_bias", False),
                                          ("use_mask_token", True)])
def test_unsupported_or_unknown_config_fields_are_named(vit_folder, field, value):
    path = vit_folder / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, field: value}))
    with pytest.raises(hub.CheckpointError, match=field):
        hub.load_pretrained(vit_folder)


def test_swin_fields_minitx_cannot_compute_are_refused():
    for field, value in (("use_absolute_embeddings", True), ("layer_norm_eps", 1e-6),
                         ("mlp_ratio", 2.5)):
        with pytest.raises(hub.CheckpointError, match=field):
            swin_config({"model_type": "swin", field: value})


def test_pytorch_bin_files_load_through_weights_only(tmp_path):
    reference = saved(tmp_path, transformers.ViTForImageClassification,
                      transformers.ViTConfig, **VIT)
    from safetensors.torch import load_file

    path = tmp_path / "model.safetensors"  # the published names, as a PyTorch pickle
    torch.save(load_file(path), tmp_path / "pytorch_model.bin")
    path.unlink()
    model, _ = hub.load_pretrained(tmp_path)
    x = images((1, 3, 16, 16))
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x)).logits.numpy()
    np.testing.assert_allclose(model(mt.tensor(x)).numpy(), theirs, atol=1e-5, rtol=1e-5)


def test_hub_names_without_the_package_or_the_network_get_a_clear_message(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(hub.CheckpointError, match="pip install huggingface_hub"):
        hub.resolve("google/vit-base-patch16-224")
    monkeypatch.undo()
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network: fail at once, not after a timeout
    with pytest.raises(hub.CheckpointError, match="(?s)no such local folder.*pass its path"):
        hub.resolve("google/vit-base-patch16-224")


def test_preprocessing_matches_the_reference_processor():
    from PIL import Image

    pixels = np.random.default_rng(3).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    configs = [  # ViT's (a square resize), Swin's (bicubic) and CLIP's (resize and crop)
        {"do_resize": True, "size": {"height": 24, "width": 24}, "resample": 2,
         "image_mean": [0.5] * 3, "image_std": [0.5] * 3},
        {"do_resize": True, "size": 24, "resample": 3, "image_mean": [0.485, 0.456, 0.406],
         "image_std": [0.229, 0.224, 0.225]},
        {"do_resize": True, "size": {"shortest_edge": 24}, "resample": 3,
         "do_center_crop": True, "crop_size": {"height": 20, "width": 20},
         "image_mean": [0.48, 0.46, 0.41], "image_std": [0.27, 0.26, 0.28]}]
    processors = [transformers.ViTImageProcessor, transformers.ViTImageProcessor,
                  transformers.CLIPImageProcessor]
    for config, processor in zip(configs, processors):
        theirs = processor(**config)(image, return_tensors="np")["pixel_values"]
        np.testing.assert_allclose(hub.preprocess(image, config), theirs, atol=1e-5)


def test_timm_layout_fused_qkv_gives_the_same_function(tmp_path):
    """timm's names, with q, k and v fused into one (3D x D) Linear as timm stores them, made
    from a transformers reference (timm itself is not needed): the same logits."""
    from safetensors.numpy import load_file, save_file

    config = dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3,
                  intermediate_size=768, image_size=32, patch_size=8, num_labels=4,
                  layer_norm_eps=1e-6)  # timm's ViT-Ti sizes, on 32x32 images
    reference = saved(tmp_path / "hf", transformers.ViTForImageClassification,
                      transformers.ViTConfig, **config)
    hf = load_file(tmp_path / "hf" / "model.safetensors")
    timm = {"cls_token": hf["vit.embeddings.cls_token"],
            "pos_embed": hf["vit.embeddings.position_embeddings"],
            "norm.weight": hf["vit.layernorm.weight"], "norm.bias": hf["vit.layernorm.bias"],
            "head.weight": hf["classifier.weight"], "head.bias": hf["classifier.bias"]}
    for w in ("weight", "bias"):
        timm[f"patch_embed.proj.{w}"] = hf[f"vit.embeddings.patch_embeddings.projection.{w}"]
        for i in range(12):
            a, b = f"vit.encoder.layer.{i}.", f"blocks.{i}."
            timm[f"{b}attn.qkv.{w}"] = np.concatenate(
                [hf[f"{a}attention.attention.{n}.{w}"] for n in ("query", "key", "value")])
            for ours, theirs in (("attn.proj", "attention.output.dense"),
                                 ("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                                 ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
                timm[f"{b}{ours}.{w}"] = hf[f"{a}{theirs}.{w}"]
    folder = tmp_path / "timm"
    folder.mkdir()
    save_file(timm, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({
        "architecture": "vit_tiny_patch8_32", "num_classes": 4, "global_pool": "token",
        "label_names": ["a", "b", "c", "d"],
        "pretrained_cfg": {"input_size": [3, 32, 32], "crop_pct": 0.875,
                           "interpolation": "bicubic", "mean": [0.5] * 3, "std": [0.5] * 3}}))
    model, ckpt = hub.load_pretrained(folder)
    x = images((2, 3, 32, 32))
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x)).logits.numpy()
    np.testing.assert_allclose(model(mt.tensor(x)).numpy(), theirs, atol=1e-5, rtol=1e-5)
    assert hub.label_names(ckpt.config) == ["a", "b", "c", "d"]
    assert ckpt.preprocessor["size"] == {"shortest_edge": 36}  # 32 / 0.875, then crop 32
    assert ckpt.preprocessor["crop_size"] == {"height": 32, "width": 32}


def test_a_stored_relative_position_index_is_checked(tmp_path):
    saved(tmp_path, transformers.SwinForImageClassification, transformers.SwinConfig, **SWIN)
    name = "swin.encoder.layers.1.blocks.0.attention.self.relative_position_index"
    edit_weights(tmp_path, lambda t: t.__setitem__(name, relative_position_index(4)))
    hub.load_pretrained(tmp_path)  # older files store minitx's very index: accepted
    edit_weights(tmp_path, lambda t: t.__setitem__(name, relative_position_index(4).T.copy()))
    with pytest.raises(hub.CheckpointError, match=name):
        hub.load_pretrained(tmp_path)


def test_label_names_from_a_mapping_a_list_or_nothing():
    assert hub.label_names({"id2label": {"1": "dog", "0": "cat"}}) == ["cat", "dog"]
    assert hub.label_names({"id2label": ["cat", "dog"]}) == ["cat", "dog"]
    assert hub.label_names({"num_labels": 2}) == ["LABEL_0", "LABEL_1"]
    with pytest.raises(hub.CheckpointError, match="id2label must map class indices to names"):
        hub.label_names({"id2label": 5})
