"""Published CLIP and Image-GPT checkpoints load into minitx and compute the same function.

A small randomly initialised ``transformers`` model is saved as the hub publishes it
(model.safetensors + config.json), read back through models/hub.py and the family's name map;
CLIP's image and text embeddings and logits, and Image-GPT's logits, are compared with the
reference's in float32. Skipped where ``transformers`` (and PyTorch) are missing.
"""

import json

import numpy as np
import pytest

import minitx as mt
from models import hub
from models.clip import CLIP, normalize
from models.image_gpt import ImageGPT
from models.pretrained_clip import config_from_transformers as clip_config
from models.pretrained_image_gpt import config_from_transformers as igpt_config
from models.pretrained_image_gpt import image_tokens, token_images
from tests.nn.helpers import without_random_init

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

TEXT = dict(vocab_size=20, hidden_size=16, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=8, eos_token_id=19)
VISION = dict(hidden_size=24, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
              image_size=16, patch_size=4)
IGPT = dict(vocab_size=8, n_positions=16, n_embd=16, n_layer=2, n_head=2)  # 7 colours + [SOS]


def perturbed(reference):
    """Non-zero biases, LayerNorm affines and gains everywhere, so a swap would show."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return reference.eval()


def save_clip(folder, text=TEXT, vision=VISION):
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=12)
    reference = perturbed(transformers.CLIPModel(config))
    reference.save_pretrained(folder, safe_serialization=True)
    return reference


def save_igpt(folder, **config):
    config = transformers.ImageGPTConfig(**{**IGPT, **config})
    reference = perturbed(transformers.ImageGPTForCausalImageModeling(config))
    reference.save_pretrained(folder, safe_serialization=True)
    return reference


IDS = np.array([[5, 6, 19, 0, 0, 0, 0, 0], [7, 19, 19, 1, 0, 0, 0, 0],
                [8, 9, 10, 11, 12, 13, 14, 19]])


def test_clip_matches_transformers(tmp_path):
    reference = save_clip(tmp_path)
    model, _ = hub.load_pretrained(tmp_path)
    px = np.random.default_rng(5).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        out = reference(input_ids=torch.tensor(IDS), pixel_values=torch.tensor(px))
    with mt.no_grad():
        image = normalize(model.encode_image(mt.tensor(px))).numpy()
        text = normalize(model.encode_text(mt.tensor(IDS))).numpy()
        logits = model(mt.tensor(px), mt.tensor(IDS)).numpy()
    np.testing.assert_allclose(image, out.image_embeds.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(text, out.text_embeds.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits, out.logits_per_image.numpy(), atol=1e-5, rtol=1e-5)
    assert model.config.eot_token == 19 and model.config.embed_dim == 12


def test_clip_legacy_eos_id_2_takes_the_last_vocabulary_id(tmp_path):
    """Published OpenAI configs say eos_token_id=2: transformers then takes the argmax of the
    ids, which is the first V − 1, and so does minitx (eot_token = V − 1)."""
    reference = save_clip(tmp_path, text={**TEXT, "eos_token_id": 2, "hidden_act": "gelu"},
                          vision={**VISION, "hidden_act": "gelu"})
    model, _ = hub.load_pretrained(tmp_path)
    assert model.config.eot_token == 19 and not model.config.quick_gelu
    with torch.no_grad():
        theirs = reference.get_text_features(input_ids=torch.tensor(IDS))
    theirs = getattr(theirs, "pooler_output", theirs).numpy()  # a tensor in older versions
    with mt.no_grad():
        ours = model.encode_text(mt.tensor(IDS)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_image_gpt_matches_transformers(tmp_path):
    reference = save_igpt(tmp_path)
    model, _ = hub.load_pretrained(tmp_path)
    ids = np.random.default_rng(0).integers(0, 8, (3, 16))  # colours and [SOS] = 7
    with torch.no_grad():
        theirs = reference(torch.from_numpy(ids)).logits.numpy()  # (B, T, V)
    with mt.no_grad():
        ours = model(mt.tensor(ids)).numpy()
    assert ours.shape == (3, 16, 7)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_image_gpt_tokens_use_the_checkpoints_clusters():
    from PIL import Image

    clusters = np.random.default_rng(1).uniform(-1, 1, (7, 3)).round(4)
    pixels = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    settings = {"clusters": clusters.tolist(), "do_resize": True, "size": 8, "resample": 2}
    processor = getattr(transformers, "ImageGPTImageProcessorPil",
                        transformers.ImageGPTImageProcessor)
    theirs = processor(clusters=clusters, size={"height": 8, "width": 8})(
        image, return_tensors="np")["input_ids"]
    ours = image_tokens(image, settings)
    np.testing.assert_array_equal(ours, theirs)
    back = token_images(ours, settings, 8, 8)[0]  # each pixel's cluster, in [0, 255]
    np.testing.assert_array_equal(back, np.round((clusters[ours[0]] + 1) * 127.5).reshape(8, 8, 3))


def test_full_size_configs_have_the_published_parameter_counts():
    with without_random_init():  # transformers' defaults: CLIP ViT-B/32 and iGPT-S
        clip = CLIP(clip_config({"model_type": "clip", "text_config": {"eos_token_id": 2}}))
        igpt = ImageGPT(igpt_config({"model_type": "imagegpt"}))
    assert clip.num_parameters() == 151_277_313
    assert igpt.num_parameters() == 76_682_240
    assert clip.config.eot_token == 49407 and clip.config.context_length == 77


# ---- bad checkpoints --------------------------------------------------------------------------

def edit_weights(folder, edit):
    from safetensors.numpy import load_file, save_file

    path = folder / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


CLIP_NAME = "text_model.encoder.layers.1.self_attn.k_proj.weight"
IGPT_NAME = "transformer.h.1.attn.c_attn.weight"


@pytest.mark.parametrize("family, name, ours", [
    ("clip", CLIP_NAME, "text.blocks.1.self_attn.k_proj.weight"),
    ("igpt", IGPT_NAME, "blocks.1.attn.q_proj.weight")])
@pytest.mark.parametrize("edit, words", [
    (lambda t, n: t.pop(n), ["missing", "{ours}"]),
    (lambda t, n: t.__setitem__(n, t[n][:, :5]), ["shape", "(16, 5)"]),
    (lambda t, n: t.__setitem__("extra.weight", np.ones(3, np.float32)),
     ["unexpected", "extra.weight"]),
    (lambda t, n: t[n].__setitem__((0, 0), np.inf), ["non-finite"]),
])
def test_a_bad_checkpoint_names_the_offending_tensor(tmp_path, family, name, ours, edit, words):
    (save_clip if family == "clip" else save_igpt)(tmp_path)
    edit_weights(tmp_path, lambda t: edit(t, name))
    with pytest.raises(hub.CheckpointError) as info:
        hub.load_pretrained(tmp_path)
    message = str(info.value)
    for word in words:
        assert word.format(ours=ours) in message, message
    assert "extra.weight" in message or name in message


@pytest.mark.parametrize("family, edit, field", [
    ("clip", lambda c: c["vision_config"].update(hidden_act="relu"), "hidden_act"),
    ("clip", lambda c: c["text_config"].update(hidden_act="gelu"), "hidden_act"),
    ("clip", lambda c: c["text_config"].update(intermediate_size=50), "intermediate_size"),
    ("clip", lambda c: c["vision_config"].update(layers=[3, 4, 6, 3]), "ResNet"),
    ("clip", lambda c: c["vision_config"].update(layer_norm_eps=1e-6), "layer_norm_eps"),
    ("clip", lambda c: c.update(mystery=1), "mystery"),
    ("igpt", lambda c: c.update(activation_function="relu"), "activation_function"),
    ("igpt", lambda c: c.update(scale_attn_by_inverse_layer_idx=True),
     "scale_attn_by_inverse_layer_idx"),
    ("igpt", lambda c: c.update(n_inner=20), "n_inner"),
])
def test_unsupported_config_fields_are_named(tmp_path, family, edit, field):
    (save_clip if family == "clip" else save_igpt)(tmp_path)
    path = tmp_path / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))
    with pytest.raises(hub.CheckpointError, match=field):
        hub.load_pretrained(tmp_path)


def test_image_gpt_written_in_transformers_layout_is_read_by_both(tmp_path):
    from models.image_gpt import PRESETS
    from models.pretrained_image_gpt import to_transformers

    model = ImageGPT(PRESETS["tiny"], generator=np.random.default_rng(0))
    palette = np.linspace(0, 1, 17, dtype=np.float32)[:, None]  # 17 grey levels
    hub.save_checkpoint(tmp_path, *to_transformers(model, palette))
    reference = transformers.ImageGPTForCausalImageModeling.from_pretrained(tmp_path).eval()
    loaded, ckpt = hub.load_pretrained(tmp_path)
    ids = np.random.default_rng(1).integers(0, 18, (2, 64))
    with torch.no_grad():
        theirs = reference(torch.from_numpy(ids)).logits.numpy()
    with mt.no_grad():
        ours = model(mt.tensor(ids)).numpy()
        np.testing.assert_array_equal(loaded(mt.tensor(ids)).numpy(), ours)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    assert np.asarray(ckpt.preprocessor["clusters"]).shape == (17, 3)


def test_clip_image_settings_read_a_single_size_as_the_shorter_side():
    """OpenAI's CLIP preprocessor_config.json says "size": 224, "crop_size": 224: the shorter
    side becomes 224, then the centre 224 x 224, as CLIPImageProcessor reads it."""
    from PIL import Image

    from models.pretrained_clip import image_settings

    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (30, 45, 3), np.uint8))
    config = {"do_resize": True, "size": 20, "do_center_crop": True, "crop_size": 20,
              "resample": 3, "image_mean": [0.48, 0.46, 0.41], "image_std": [0.27, 0.26, 0.28]}
    processor = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    theirs = processor(**config)(image, return_tensors="np")["pixel_values"]
    ours = hub.preprocess(image, image_settings(config, 20))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert hub.preprocess(image, image_settings({}, 16)).shape == (1, 3, 16, 16)
