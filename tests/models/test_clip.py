"""CLIP (models/clip.py, models/clip_resnet.py): the loss, the temperature, end-of-text pooling,
the zero-shot classifier, training on one batch, parameter counts, and equality with Hugging
Face's CLIPModel and with a PyTorch transcription of the released modified ResNet."""

import dataclasses
import math

import numpy as np
import pytest

import minitx as mt
from minitx import optim
from models.clip import (
    CLIP,
    PRESETS,
    CLIPConfig,
    contrastive_loss,
    hf_name_map,
    normalize,
    zero_shot_classifier,
    zero_shot_logits,
)

TINY = CLIPConfig(embed_dim=16, image_size=16, patch_size=4, vision_width=24, vision_layers=2,
                  vision_heads=2, context_length=8, vocab_size=20, text_width=16,
                  text_layers=2, text_heads=2, eot_token=2)


def tokens(rows, T=8):
    """Rows of ids padded with 0 after their [EOS] (id 2)."""
    return mt.tensor(np.array([r + [0] * (T - len(r)) for r in rows]))


def images(n, seed=0, size=16):
    return mt.tensor(np.random.default_rng(seed).standard_normal((n, 3, size, size))
                     .astype(np.float32))


# ---- the loss and the temperature -----------------------------------------------------------

def test_loss_is_symmetric_and_equals_the_hand_computed_value():
    z = np.array([[2.0, 0.5, -1.0], [0.0, 1.5, 0.3], [-0.7, 0.2, 3.0]])
    rows = [math.log(sum(math.exp(v) for v in z[i])) - z[i, i] for i in range(3)]
    cols = [math.log(sum(math.exp(z[j, i]) for j in range(3))) - z[i, i] for i in range(3)]
    expected = (sum(rows) / 3 + sum(cols) / 3) / 2
    assert contrastive_loss(mt.tensor(z)).item() == pytest.approx(expected, rel=1e-12)
    assert contrastive_loss(mt.tensor(z.T)).item() == pytest.approx(expected, rel=1e-12)


def test_loss_is_finite_at_huge_logits():
    z = mt.tensor(np.array([[1e4, -1e4], [3e4, 2e4]]), requires_grad=True)
    loss = contrastive_loss(z)
    loss.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(z.grad))
    assert loss.item() == pytest.approx((0 + 1e4 + 2e4 + 0) / 4)  # the losing margins


def test_temperature_starts_at_one_over_0_07_and_is_clipped_at_100():
    model = CLIP(TINY)
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-6)
    model.logit_scale.data[...] = 7.0  # exp(7) ≈ 1097
    assert model.scale().item() == pytest.approx(100.0, rel=1e-6)
    logits = model(images(3), tokens([[5, 2], [6, 7, 2], [8, 2]]))
    assert np.abs(logits.numpy()).max() <= 100.0 + 1e-4  # cosines in [−1, 1] times ≤ 100
    contrastive_loss(logits).backward()
    assert float(model.logit_scale.grad[0]) == 0.0  # past the clip, t gets no gradient


# ---- the text tower -------------------------------------------------------------------------

def test_padding_after_end_of_text_does_not_change_the_text_feature():
    model = CLIP(TINY).astype("float64")  # float64: shorter rows must agree beyond rounding
    a = model.encode_text(tokens([[5, 6, 7, 2], [9, 2]])).numpy()
    b = model.encode_text(mt.tensor(np.array([[5, 6, 7, 2, 13, 4, 11, 3],
                                              [9, 2, 19, 19, 19, 19, 19, 19]]))).numpy()
    c = model.encode_text(tokens([[5, 6, 7, 2], [9, 2]], T=5)).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    d = model.encode_text(tokens([[5, 6, 8, 2], [9, 2]])).numpy()  # a token before [EOS]
    assert not np.allclose(a[0], d[0], atol=1e-4)


def test_text_without_end_of_text_is_refused():
    with pytest.raises(ValueError, match=r"rows \[1\] have no end-of-text"):
        CLIP(TINY).encode_text(tokens([[5, 2], [6, 7]]))


# ---- zero-shot classification ---------------------------------------------------------------

def test_zero_shot_classifier_is_the_argmax_of_cosine_similarities():
    model = CLIP(TINY)
    ids = {"cat": 5, "dog": 6, "fox": 7}

    def tokenize(texts):  # "{name}" -> [id, EOS]
        return tokens([[ids[t]] + [2] for t in texts])
    weights = zero_shot_classifier(model, tokenize, list(ids), templates=("{}",))
    x = images(6, seed=3)
    image = model.encode_image(x).numpy()
    text = model.encode_text(tokenize(list(ids))).numpy()
    cos = (image / np.linalg.norm(image, axis=1, keepdims=True)) @ \
        (text / np.linalg.norm(text, axis=1, keepdims=True)).T
    np.testing.assert_allclose(zero_shot_logits(model, x, weights).numpy(), cos, atol=1e-5)
    np.testing.assert_array_equal(zero_shot_logits(model, x, weights).numpy().argmax(1),
                                  cos.argmax(1))


def test_prompt_ensemble_is_the_renormalised_mean_of_normalised_embeddings():
    model = CLIP(TINY)

    def tokenize(texts):  # each template gives a different token before the name
        first = {"A {}": 3, "B {}": 4}
        return tokens([[first[t[:1] + " {}"], 5 + ord(t[-1]) % 3, 2] for t in texts])
    w = zero_shot_classifier(model, tokenize, ["x", "y"], templates=("A {}", "B {}"))
    for k, name in enumerate(["x", "y"]):
        emb = normalize(model.encode_text(tokenize([f"A {name}", f"B {name}"]))).numpy()
        mean = emb.mean(0)
        np.testing.assert_allclose(w.numpy()[:, k], mean / np.linalg.norm(mean), atol=1e-6)


# ---- training -------------------------------------------------------------------------------

@pytest.mark.parametrize("encoder", ["vit", "resnet"])
def test_overfits_one_batch(encoder):
    config = dataclasses.replace(TINY, image_encoder=encoder, image_size=32 if
                                 encoder == "resnet" else 16, vision_width=8 if
                                 encoder == "resnet" else 24)
    model = CLIP(config, generator=np.random.default_rng(0))
    x = images(8, seed=1, size=config.image_size)
    t = tokens([[3 + i, 4 + (i % 5), 2] for i in range(8)])
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = None
    for _ in range(40):
        loss = contrastive_loss(model(x, t))
        loss.backward()
        opt.step()
        opt.zero_grad()
        first = loss.item() if first is None else first
    assert loss.item() < first / 4, (first, loss.item())


def test_runs_on_the_strict_device_with_the_same_numbers():
    model = CLIP(TINY, generator=np.random.default_rng(1))
    x, t = images(2), tokens([[5, 2], [6, 7, 2]])
    expected = model(x, t).numpy()
    model.to("strict")
    got = model(x.to("strict"), t.to("strict"))
    assert got.device == "strict"
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("change, message", [
    ({"vision_layers": -1}, r"sizes must be positive integers, got \{'vision_layers': -1\}"),
    ({"text_layers": 0, "context_length": 0}, "'context_length': 0, 'text_layers': 0"),
    ({"max_logit_scale": 0.0}, "max_logit_scale positive and finite"),
    ({"eot_token": 1000, "vocab_size": 1000}, "eot_token 1000 is not an id of the vocabulary"),
    ({"eot_token": -1}, "eot_token -1 is not an id"),
    ({"text_heads": 5}, "text_width 16 must be divisible by text_heads 5"),
    ({"image_encoder": "resnet", "image_size": 32, "resnet_layers": (1, 0, 1, 1)},
     "resnet_layers must be four positive block counts"),
])
def test_a_config_that_cannot_build_a_model_names_the_fields(change, message):
    with pytest.raises(ValueError, match=f"^CLIP: .*{message}"):
        CLIP(dataclasses.replace(TINY, **change))


def test_the_resnet_tower_names_the_image_size_it_expects():
    config = dataclasses.replace(TINY, image_encoder="resnet", image_size=32, vision_width=8,
                                 vision_heads=2)
    with pytest.raises(ValueError, match=r"ModifiedResNet: expected images \(B, 3, 32, 32\), "
                                         r"got \(2, 3, 64, 64\)"):
        CLIP(config).encode_image(mt.tensor(np.zeros((2, 3, 64, 64), np.float32)))


# ---- the released configurations ------------------------------------------------------------

@pytest.mark.parametrize("name, count", [("ViT-B/32", 151_277_313), ("RN50", 102_007_137)])
def test_parameter_counts_of_the_released_models(name, count):
    assert CLIP(PRESETS[name]).num_parameters() == count


# ---- Hugging Face's CLIPModel -------------------------------------------------------------

def test_vit_clip_equals_hugging_face_clip_model():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    text = dict(vocab_size=20, hidden_size=16, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=8, eos_token_id=2,
                hidden_act="quick_gelu")
    text["eos_token_id"] = 19  # not 2: HF treats id 2 as a legacy argmax convention
    vision = dict(hidden_size=24, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=2, image_size=16, patch_size=4, hidden_act="quick_gelu")
    hf = transformers.CLIPModel(transformers.CLIPConfig(
        text_config=text, vision_config=vision, projection_dim=16)).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights everywhere, LayerNorms included
        for p in hf.parameters():
            p.copy_(p + 0.1 * torch.randn(p.shape, generator=gen))
    config = dataclasses.replace(TINY, eot_token=19)
    model = CLIP(config)
    state = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    ours = {k: state[v] for k, v in hf_name_map(config).items()}
    ours["logit_scale"] = ours["logit_scale"].reshape(1)  # 0-d there, (1,) here
    model.load_state_dict(ours)
    px = np.random.default_rng(5).standard_normal((3, 3, 16, 16)).astype(np.float32)
    ids = np.array([[5, 6, 19, 0, 0, 0, 0, 0], [7, 19, 0, 0, 0, 0, 0, 0],
                    [8, 9, 10, 11, 12, 13, 14, 19]])
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(ids), pixel_values=torch.tensor(px))
    with mt.no_grad():
        image = normalize(model.encode_image(mt.tensor(px))).numpy()
        text_ = normalize(model.encode_text(mt.tensor(ids))).numpy()
        logits = model(mt.tensor(px), mt.tensor(ids)).numpy()
    np.testing.assert_allclose(image, out.image_embeds.numpy(), atol=1e-5)
    np.testing.assert_allclose(text_, out.text_embeds.numpy(), atol=1e-5)
    np.testing.assert_allclose(logits, out.logits_per_image.numpy(), rtol=1e-5, atol=1e-5)


# ---- the modified ResNet against a PyTorch transcription of the released code -------------

def _torch_modified_resnet(torch, layers, output_dim, heads, resolution, width):
    """The released ModifiedResNet (openai/CLIP, model.py), transcribed in plain PyTorch."""
    nn = torch.nn

    class Bottleneck(nn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 1, bias=False), \
                nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False), \
                nn.BatchNorm2d(planes)
            self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
            self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), \
                nn.BatchNorm2d(planes * 4)
            self.downsample = None
            if stride > 1 or inplanes != planes * 4:
                self.downsample = nn.Sequential(nn.AvgPool2d(stride),
                                                nn.Conv2d(inplanes, planes * 4, 1, bias=False),
                                                nn.BatchNorm2d(planes * 4))

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.pool(torch.relu(self.bn2(self.conv2(out))))
            out = self.bn3(self.conv3(out))
            return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

    class AttnPool(nn.Module):
        def __init__(self, spatial, D, heads, E):
            super().__init__()
            self.positional_embedding = nn.Parameter(torch.randn(spatial ** 2 + 1, D))
            self.q_proj, self.k_proj, self.v_proj = (nn.Linear(D, D) for _ in range(3))
            self.c_proj, self.heads = nn.Linear(D, E), heads

        def forward(self, x):
            x = x.flatten(2).permute(2, 0, 1)  # (HW, B, D)
            x = torch.cat([x.mean(0, keepdim=True), x]) + self.positional_embedding[:, None]
            out, _ = torch.nn.functional.multi_head_attention_forward(
                x[:1], x, x, x.shape[-1], self.heads, None,
                torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]), None, None,
                False, 0.0, self.c_proj.weight, self.c_proj.bias, use_separate_proj_weight=True,
                q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight,
                v_proj_weight=self.v_proj.weight, need_weights=False)
            return out[0]

    class ModifiedResNet(nn.Module):
        def __init__(self):
            super().__init__()
            w = width
            self.conv1, self.bn1 = nn.Conv2d(3, w // 2, 3, 2, 1, bias=False), \
                nn.BatchNorm2d(w // 2)
            self.conv2, self.bn2 = nn.Conv2d(w // 2, w // 2, 3, 1, 1, bias=False), \
                nn.BatchNorm2d(w // 2)
            self.conv3, self.bn3 = nn.Conv2d(w // 2, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w)
            inplanes, stages = w, []
            for i, n in enumerate(layers):
                blocks = []
                for b in range(n):
                    blocks.append(Bottleneck(inplanes, w * 2 ** i, 2 if i and not b else 1))
                    inplanes = w * 2 ** i * 4
                stages.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.attnpool = AttnPool(resolution // 32, w * 32, heads, output_dim)

        def forward(self, x):
            for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2),
                             (self.conv3, self.bn3)):
                x = torch.relu(bn(conv(x)))
            x = torch.nn.functional.avg_pool2d(x, 2)
            return self.attnpool(self.layer4(self.layer3(self.layer2(self.layer1(x)))))

    return ModifiedResNet()


def _ours_from_torch(name):
    """Released name -> ours: the attention pool's projections sit inside
    nn.MultiHeadAttention."""
    for proj in ("q_proj", "k_proj", "v_proj"):
        name = name.replace(f"attnpool.{proj}", f"attnpool.attn.{proj}")
    return name.replace("attnpool.c_proj", "attnpool.attn.out_proj")


@pytest.mark.parametrize("training", [False, True])
def test_modified_resnet_equals_a_transcription_of_the_released_code(training):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, image_encoder="resnet", image_size=64, vision_width=8,
                                 resnet_layers=(1, 2, 1, 1), vision_heads=4, embed_dim=12)
    theirs = _torch_modified_resnet(torch, config.resnet_layers, config.embed_dim,
                                    config.vision_heads, config.image_size, config.vision_width)
    with torch.no_grad():  # random weights and running statistics everywhere
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape) * 0.3)
        for name, b in theirs.named_buffers():
            if "running" in name:
                b.copy_(torch.rand(b.shape) + (0.5 if "var" in name else -0.5))
    theirs.train(training)
    ours = CLIP(config).visual
    ours.train(training)
    state = {_ours_from_torch(k): v.numpy() for k, v in theirs.state_dict().items()
             if "num_batches" not in k}
    ours.load_state_dict(state)
    x = np.random.default_rng(6).standard_normal((3, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    # in training, batch statistics of 12 values per channel (layer4) amplify float32 rounding
    # float32: 1e-5 apart with one BLAS thread; with several, the products' summation order
    # changes and single values of ~0.4 moved by 1.4e-5
    rtol = 1e-4 if training else 1e-5
    np.testing.assert_allclose(ours(mt.tensor(x)).numpy(), expected, rtol=rtol, atol=5e-5)
    # and in float64 the gradient with respect to the images is PyTorch's
    theirs.double()
    ours.astype("float64")
    g = np.random.default_rng(7).standard_normal(expected.shape)
    a, t = mt.tensor(x.astype(np.float64), requires_grad=True), \
        torch.tensor(x.astype(np.float64), requires_grad=True)
    ours(a).backward(g)
    theirs(t).backward(torch.tensor(g))
    np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_benchmark_twin_computes_the_same_loss_and_gradients():
    torch = pytest.importorskip("torch")
    from benchmarks.step_clip import copy_weights, torch_twin

    model = CLIP(TINY, generator=np.random.default_rng(0))
    twin = copy_weights(model, torch_twin(TINY))
    x = images(4).numpy()
    t = tokens([[5, 2], [6, 7, 2], [8, 9, 10, 2], [11, 2]]).numpy()
    loss = contrastive_loss(model(mt.tensor(x), mt.tensor(t)))
    loss.backward()
    logits = twin(torch.from_numpy(x), torch.from_numpy(t))
    labels = torch.arange(4)
    theirs = (torch.nn.functional.cross_entropy(logits, labels)
              + torch.nn.functional.cross_entropy(logits.T, labels)) / 2
    theirs.backward()
    assert loss.item() == pytest.approx(theirs.item(), rel=1e-5)
    ours = dict(model.named_parameters())
    for name, p in twin.named_parameters():
        if "in_proj" not in name:
            key = name.replace(".linear1.", ".ffn.linear1.").replace(".linear2.", ".ffn.linear2.")
            np.testing.assert_allclose(ours[key].grad, p.grad.numpy(), rtol=1e-3, atol=1e-5,
                                       err_msg=name)


@pytest.mark.parametrize("encoder", ["vit", "resnet"])
def test_gradients_through_both_towers_match_finite_differences(encoder):
    from minitx.testing import gradcheck

    config = dataclasses.replace(TINY, image_encoder=encoder, vision_width=8 if encoder ==
                                 "resnet" else 24, image_size=32 if encoder == "resnet" else 16)
    model = CLIP(config, generator=np.random.default_rng(2)).astype("float64")
    # BatchNorm over 3 values per channel (1x1 maps at the last stage) is too ill-conditioned
    # for finite differences in training mode; the test below compares that mode's gradients
    # with PyTorch's instead
    model.visual.train(encoder == "vit")
    t = tokens([[5, 2], [6, 7, 2], [8, 9, 10, 2]])
    x = np.random.default_rng(3).standard_normal((3, 3, config.image_size, config.image_size))
    gradcheck(lambda images: contrastive_loss(model(images, t)), x, directions=3)
