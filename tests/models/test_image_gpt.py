"""Image-GPT (models/image_gpt.py): causality, the two objectives, palette, sampling, the BERT
ensemble, overfitting, the parameter count and Hugging Face parity."""

import dataclasses

import numpy as np
import pytest

import minitx as mt
import minitx.functional as F
from minitx import optim, serialization
from models.image_gpt import (
    BITS_PER_NAT,
    PRESETS,
    ImageGPT,
    ImageGPTConfig,
    apply_mask,
    ar_inputs,
    ar_loss,
    bert_loss,
    bert_mask,
    dequantize,
    ensemble_probabilities,
    fit_palette,
    from_huggingface,
    quantize,
    sample,
)

SMALL = ImageGPTConfig(num_colors=7, seq_len=12, dim=16, depth=2, heads=2)


def small_model(dtype=np.float64, seed=0, **changes):
    config = dataclasses.replace(SMALL, **changes)
    return ImageGPT(config, dtype=dtype, generator=np.random.default_rng(seed))


def test_igpt_s_has_76_682_240_parameters():
    # §3.2: "iGPT-S ... 76M"; the released norm has a gain and no bias
    assert ImageGPT(PRESETS["igpt-s"]).num_parameters() == 76_682_240


def test_layernorm_variant_adds_one_bias_per_norm():
    rms, layer = small_model(), small_model(norm="layer")
    norms = 2 * SMALL.depth + 1  # two per block and the final one
    assert layer.num_parameters() - rms.num_parameters() == norms * SMALL.dim


@pytest.mark.parametrize("changes", [{}, {"norm": "layer", "activation": "gelu"}])
def test_ar_model_is_causal(changes):
    model = small_model(**changes)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 8, (2, 12))
    base = model(mt.tensor(ids)).numpy()  # (B, T, V)
    for t in range(11):
        changed = ids.copy()
        changed[:, t + 1:] = (changed[:, t + 1:] + 3) % 8  # every token after t
        out = model(mt.tensor(changed)).numpy()
        np.testing.assert_array_equal(out[:, :t + 1], base[:, :t + 1])
        assert np.abs(out[:, t + 1] - base[:, t + 1]).max() > 1e-6  # t + 1 itself does change


def test_bert_model_sees_both_directions():
    model = small_model(objective="bert")
    ids = np.random.default_rng(2).integers(0, 8, (1, 12))
    changed = ids.copy()
    changed[0, -1] = (changed[0, -1] + 1) % 8
    diff = model(mt.tensor(changed)).numpy()[0, 0] - model(mt.tensor(ids)).numpy()[0, 0]
    assert np.abs(diff).max() > 1e-6


def test_bert_loss_counts_only_masked_positions_and_matches_a_hand_computation():
    logits = np.array([[[1.0, 2.0, 0.0], [0.5, 0.5, 0.5], [3.0, -1.0, 0.0], [0.0, 0.0, 9.0]]])
    tokens = np.array([[1, 0, 2, 2]])
    mask = np.array([[True, False, True, False]])
    # −log softmax at the masked positions 0 (target 1) and 2 (target 2), averaged over 2
    p0 = np.exp(2.0) / (np.exp(1.0) + np.exp(2.0) + 1.0)
    p2 = 1.0 / (np.exp(3.0) + np.exp(-1.0) + 1.0)
    expected = -(np.log(p0) + np.log(p2)) / 2
    loss = bert_loss(mt.tensor(logits), tokens, mask)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    other = logits.copy()
    other[:, ~mask[0]] = np.random.default_rng(0).normal(size=(2, 3)) * 5  # unmasked rows
    np.testing.assert_allclose(bert_loss(mt.tensor(other), tokens, mask).item(), expected,
                               rtol=1e-12)


def test_bert_mask_rate_and_mask_token():
    rng = np.random.default_rng(0)
    mask = bert_mask((200, 64), rng)
    assert abs(mask.mean() - 0.15) < 0.01
    tokens = rng.integers(0, 7, (200, 64))
    masked = apply_mask(tokens, mask, 7)
    assert (masked[mask] == 7).all() and (masked[~mask] == tokens[~mask]).all()


def test_ar_inputs_shift_right_behind_sos_and_bits_per_dimension():
    tokens = np.array([[4, 5, 6]])
    np.testing.assert_array_equal(ar_inputs(tokens, 9), [[9, 4, 5]])
    uniform = mt.tensor(np.zeros((1, 3, 8)))  # a uniform guess over 8 colours: 3 bits
    np.testing.assert_allclose(ar_loss(uniform, tokens).item() * BITS_PER_NAT, 3.0)


def test_palette_round_trip():
    rng = np.random.default_rng(0)
    true = np.array([[0.9, 0.1, 0.1], [0.1, 0.1, 0.9], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    images = true[rng.integers(0, 4, (20, 5, 6))].transpose(0, 3, 1, 2)  # (N, C, H, W)
    noisy = images + rng.normal(0, 0.01, images.shape)
    palette = fit_palette(noisy.transpose(0, 2, 3, 1).reshape(-1, 3), 4, seed=0)
    np.testing.assert_allclose(np.sort(palette.sum(1)), np.sort(true.sum(1)), atol=0.01)
    tokens = quantize(noisy, palette, chunk=7)  # (N, H·W), raster order
    assert tokens.shape == (20, 30)
    back = dequantize(tokens, palette, 5, 6)  # (N, C, H, W)
    np.testing.assert_allclose(back, images, atol=0.01)
    np.testing.assert_array_equal(quantize(back, palette), tokens)
    # raster order: token r·W + c is pixel (r, c)
    assert tokens[3, 2 * 6 + 4] == np.argmin(((palette - noisy[3, :, 2, 4]) ** 2).sum(1))


@pytest.mark.parametrize("top_k,temperature", [(0, 1.0), (3, 0.7)])
def test_cached_sampling_equals_uncached(top_k, temperature):
    model = small_model()
    prefix = np.random.default_rng(3).integers(0, 7, (3, 4))
    runs = [sample(model, 3, 12, np.random.default_rng(5), prefix=prefix, top_k=top_k,
                   temperature=temperature, use_cache=cached) for cached in (True, False)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0][:, :4], prefix)
    assert runs[0].shape == (3, 12) and runs[0].max() < 7


def test_top_k_keeps_only_the_k_most_likely_colours():
    model = small_model()
    tokens = sample(model, 50, 2, np.random.default_rng(0), top_k=1)  # greedy
    with mt.no_grad():
        first = model(mt.tensor(np.full((1, 1), 7))).numpy()[0, 0].argmax()
    assert (tokens[:, 0] == first).all()


def test_temperature_zero_is_greedy_and_bad_arguments_are_named():
    model = small_model()
    greedy = sample(model, 4, 3, np.random.default_rng(0), temperature=0)
    np.testing.assert_array_equal(greedy, sample(model, 4, 3, np.random.default_rng(9), top_k=1))
    for kwargs, message in [({"temperature": -1.0}, "temperature must be >= 0"),
                            ({"top_k": 8}, r"top_k must be in 0..7"),
                            ({"prefix": np.zeros((4, 5), np.int64)}, "t <= length 3"),
                            ({"prefix": np.full((4, 1), 7)}, r"colours must lie in \[0, 7\)")]:
        with pytest.raises(ValueError, match=message):
            sample(model, 4, 3, np.random.default_rng(0), **kwargs)
    assert model.training  # put back as it was, also after an error
    for kwargs, message in [({"prefix": np.full((4, 1), 1.7)}, "prefix must hold integer"),
                            ({"top_k": 2.5}, "top_k must be an int")]:
        with pytest.raises(TypeError, match=message):
            sample(model, 4, 3, np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize("temperature", [1e-30, 1e-38, 1e-320])
def test_a_tiny_temperature_is_greedy_in_the_limit_without_overflow(temperature):
    model = small_model()
    model.head.weight.data[...] *= 50  # confident logits: divided by 1e-38 they overflow
    with np.errstate(invalid="raise"):  # ∞ − ∞ would be NaN
        tokens = sample(model, 4, 3, np.random.default_rng(0), temperature=temperature)
    np.testing.assert_array_equal(tokens, sample(model, 4, 3, np.random.default_rng(0),
                                                 temperature=0))


def test_ensemble_averages_probabilities_over_independent_masks():
    seen, outputs = [], [np.array([[5.0, 0.0]]), np.array([[-1.0, 0.0]])]

    def class_logits(ids):
        seen.append(ids.copy())
        return mt.tensor(outputs[len(seen) - 1])

    probs = ensemble_probabilities(class_logits, np.zeros((1, 400), np.int64),
                                   np.random.default_rng(0), mask_id=9, masks=2)
    softmax = [np.exp(o) / np.exp(o).sum() for o in outputs]
    np.testing.assert_allclose(probs, (softmax[0] + softmax[1]) / 2)
    mean_logits = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()  # not the average of logits
    assert not np.allclose(probs[0], mean_logits)
    assert (seen[0] != seen[1]).any()  # a fresh mask each time
    assert all(abs((s == 9).mean() - 0.15) < 0.06 for s in seen)


@pytest.mark.parametrize("objective", ["ar", "bert"])
def test_overfit_one_batch(objective):
    model = small_model(dtype=np.float32, objective=objective)
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 7, (4, 12))
    mask = bert_mask(tokens.shape, rng, p=0.3)
    losses = []
    for _ in range(60):
        if objective == "ar":
            loss = ar_loss(model(mt.tensor(ar_inputs(tokens, 7))), tokens)
        else:
            loss = bert_loss(model(mt.tensor(apply_mask(tokens, mask, 7))), tokens, mask)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses[::10]


def test_features_classifier_and_checkpoint_round_trip(tmp_path):
    model = small_model(num_classes=3)
    ids = mt.tensor(np.random.default_rng(0).integers(0, 7, (2, 12)))
    features = model.layer_features(ids)
    assert len(features) == SMALL.depth + 1 and all(f.shape == (2, 16) for f in features)
    logits, class_logits = model.classify(ids)
    np.testing.assert_allclose(logits.numpy(), model(ids).numpy())
    n_L = model.trunk(ids).numpy().mean(axis=1)  # f^L, the average-pooled final features
    np.testing.assert_allclose(features[-1].numpy(), n_L, rtol=1e-12)
    assert class_logits.shape == (2, 3)
    (F.cross_entropy(class_logits, mt.tensor(np.array([0, 2]))) + ar_loss(logits, ids.numpy())
     ).backward()
    assert model.token_embed.weight.grad is not None and model.classifier.weight.grad is not None
    path = tmp_path / "igpt.npz"
    serialization.save(path, model, model.config)
    rebuilt = ImageGPT(serialization.load_config(path, ImageGPTConfig), dtype=np.float64)
    serialization.load(path, rebuilt)
    np.testing.assert_array_equal(rebuilt(ids).numpy(), model(ids).numpy())


def test_bad_config_and_input_raise():
    with pytest.raises(ValueError, match="objective"):
        ImageGPT(dataclasses.replace(SMALL, objective="mae"))
    with pytest.raises(ValueError, match="divisible"):
        ImageGPT(dataclasses.replace(SMALL, heads=3))
    with pytest.raises(ValueError, match="seq_len"):
        small_model()(mt.tensor(np.zeros((1, 13), np.int64)))
    with pytest.raises(ValueError, match="AR model"):
        sample(small_model(objective="bert"), 1, 3, np.random.default_rng(0))


def test_matches_huggingface_imagegpt_from_copied_weights():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.ImageGPTConfig(
        vocab_size=SMALL.num_colors + 1, n_positions=SMALL.seq_len, n_embd=SMALL.dim,
        n_layer=SMALL.depth, n_head=SMALL.heads, attn_pdrop=0.0, resid_pdrop=0.0,
        embd_pdrop=0.0)
    hf = transformers.ImageGPTForCausalImageModeling(hf_config).eval()
    with torch.no_grad():
        for p in hf.parameters():  # random everything (the norms' gains included)
            p.normal_(0.0, 0.3)
    state = {k: v.numpy() for k, v in hf.state_dict().items()}
    model = ImageGPT(dataclasses.replace(SMALL))  # float32, the released norm and activation
    model.load_state_dict(from_huggingface(state, SMALL))
    ids = np.random.default_rng(0).integers(0, SMALL.num_colors + 1, (3, SMALL.seq_len))
    with torch.no_grad():
        expected = hf(torch.from_numpy(ids)).logits.numpy()  # (B, T, V)
    np.testing.assert_allclose(model(mt.tensor(ids)).numpy(), expected, atol=1e-5, rtol=0)


def test_benchmark_twin_matches_outputs_and_gradients():
    torch = pytest.importorskip("torch")
    from benchmarks.step_image_gpt import torch_twin

    model = small_model(dtype=np.float32)
    twin = torch_twin(SMALL)
    twin.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                          for k, v in model.state_dict().items()})
    tokens = np.random.default_rng(0).integers(0, 7, (3, 12))
    inputs = ar_inputs(tokens, 7)
    loss = ar_loss(model(mt.tensor(inputs)), tokens)
    loss.backward()
    theirs = torch.nn.functional.cross_entropy(twin(torch.from_numpy(inputs)).reshape(-1, 7),
                                               torch.from_numpy(tokens).reshape(-1))
    theirs.backward()
    np.testing.assert_allclose(loss.item(), theirs.item(), rtol=1e-5)
    ours = dict(model.named_parameters())
    for name, p in twin.named_parameters():
        np.testing.assert_allclose(ours[name].grad, p.grad.numpy(), atol=1e-5, err_msg=name)
