"""The encoder-decoder Transformer (models/transformer.py): masks, training, decoding, caching,
and a smoke run of examples/translate.py."""

import dataclasses

import numpy as np
import pytest

import minitx as mt
from minitx import serialization
from models.transformer import (
    PRESETS,
    Transformer,
    TransformerConfig,
    beam_search,
    cross_attention_weights,
    greedy_decode,
    make_optimizer,
    new_cache,
    transformer_loss,
)
from tests.nn.helpers import spied_weights

PAD, BOS, EOS = 0, 1, 2


def config(**changes):
    """A very small model: D 16, 2 heads, 2 + 2 layers, no dropout, 11 -> 13 tokens."""
    small = dict(src_vocab_size=11, tgt_vocab_size=13, d_model=16, num_heads=2, d_ff=32,
                 num_encoder_layers=2, num_decoder_layers=2, dropout=0.0, max_len=32,
                 share_embeddings=False)
    return dataclasses.replace(TransformerConfig(), **{**small, **changes})


def model(device="cpu", dtype=np.float64, seed=0, **changes):
    net = Transformer(config(**changes), dtype=dtype, generator=np.random.default_rng(seed))
    return net.to(device).eval()


def ids(device, *rows):
    return mt.tensor(np.array(rows, dtype=np.int64), device=device)


def random_batch(seed, B=3, S=7, T=5, src_vocab=11, tgt_vocab=13):
    rng = np.random.default_rng(seed)
    src = rng.integers(3, src_vocab, size=(B, S))  # (B, S), no padding
    tgt_in = np.concatenate([np.full((B, 1), BOS), rng.integers(3, tgt_vocab, (B, T - 1))], 1)
    return src, tgt_in


# ---- the architecture ---------------------------------------------------------------------------

def test_shapes_presets_and_tying():
    net = model()
    src, tgt_in = random_batch(0)
    assert net(mt.tensor(src), mt.tensor(tgt_in)).shape == (3, 5, 13)  # (B, T, V)
    assert net.out_proj.weight is net.tgt_embed.weight  # §3.4 tying
    names = [n for n, _ in net.named_parameters()]
    assert "out_proj.weight" not in names and len(names) == len(set(names))
    shared = model(src_vocab_size=13, share_embeddings=True)
    assert shared.src_embed is shared.tgt_embed
    base = PRESETS["base"]
    assert (base.d_model, base.num_heads, base.d_ff, base.num_encoder_layers,
            base.num_decoder_layers, base.dropout, base.label_smoothing) == (
        512, 8, 2048, 6, 6, 0.1, 0.1)  # Table 3, §5.4
    for name in ("small", "tiny"):
        cfg = dataclasses.replace(PRESETS[name], src_vocab_size=9, tgt_vocab_size=9)
        assert Transformer(cfg)(mt.tensor([[3, 4]]), mt.tensor([[1]])).shape == (1, 1, 9)


def test_embedding_is_scaled_and_positions_added():
    net = model(positional="learned")
    tokens = ids("cpu", [3, 4, 5])
    x = net.embed(net.src_embed, net.src_positions, tokens).numpy()  # eval: no dropout
    expected = net.src_embed.weight.numpy()[[3, 4, 5]] * 4.0 + net.src_positions.weight.numpy()[:3]
    np.testing.assert_allclose(x[0], expected, atol=1e-12)  # E·√16 + P, §3.4-3.5


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="divisible"):
        Transformer(config(num_heads=3))
    with pytest.raises(ValueError, match="share_embeddings"):
        Transformer(config(share_embeddings=True))
    with pytest.raises(ValueError, match="positional"):
        Transformer(config(positional="rotary"))
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model(), ids("cpu", [3, 4]), BOS, EOS, beam_size=0)


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_mask_future_target_tokens_never_change_earlier_outputs(device, norm_first):
    net = model(device, norm_first=norm_first)
    src, tgt_in = random_batch(1)
    before = net(mt.tensor(src, device=device), mt.tensor(tgt_in, device=device)).numpy()
    for t in range(1, tgt_in.shape[1]):
        changed = tgt_in.copy()
        changed[:, t:] = (changed[:, t:] + 1 - 3) % 10 + 3  # every token from t on
        after = net(mt.tensor(src, device=device), mt.tensor(changed, device=device)).numpy()
        np.testing.assert_allclose(after[:, :t], before[:, :t], atol=1e-12)
        assert not np.allclose(after[:, t], before[:, t])  # position t does see token t


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_padding_the_source_never_changes_the_output(device, positional):
    net = model(device, positional=positional)
    src, tgt_in = random_batch(2)
    tgt = mt.tensor(tgt_in, device=device)
    plain = net(mt.tensor(src, device=device), tgt).numpy()
    padded = np.concatenate([src, np.full((3, 4), PAD)], axis=1)  # 4 padding columns
    np.testing.assert_allclose(net(mt.tensor(padded, device=device), tgt).numpy(), plain,
                               atol=1e-12)
    # a short sentence gives the same output alone and padded in a batch with a longer one
    short = src[0, :3]
    alone = net(mt.tensor(short[None], device=device), tgt[:1]).numpy()
    batch = np.stack([np.concatenate([short, [PAD] * 4]), src[1]])  # (2, 7)
    together = net(mt.tensor(batch, device=device), tgt[:2]).numpy()
    np.testing.assert_allclose(together[0], alone[0], atol=1e-12)


def test_cross_attention_weights_ignore_padding():
    net = model()
    src = np.array([[3, 4, 5, PAD, PAD], [6, 7, 8, 9, 10]])
    weights = cross_attention_weights(net, mt.tensor(src), mt.tensor([[BOS, 4], [BOS, 5]]))
    w = weights.numpy()
    assert w.shape == (2, 2, 2, 5)  # (B, h, T, S)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(w[0, ..., 3:] == 0.0)
    for norm_first in (False, True):  # matches the layer's own computation: same final output
        net = model(norm_first=norm_first, num_decoder_layers=1)
        assert cross_attention_weights(net, mt.tensor(src), mt.tensor([[BOS], [BOS]])).shape == (
            2, 2, 1, 5)


def test_cross_attention_figure_is_the_layers_own_under_either_norm_placement():
    """The figure reads the weights the decoder layer itself uses, also after its LayerNorm
    placement is switched (post-LN <-> pre-LN) on a built model."""
    src = mt.tensor(np.array([[3, 4, 5, PAD, PAD], [6, 7, 8, 9, 10]]))
    tgt_in = mt.tensor(np.array([[BOS, 4, 5], [BOS, 5, 6]]))
    for norm_first in (False, True):
        net = model(norm_first=norm_first)
        for layer in net.decoder:
            layer.norm_first = not norm_first  # a placement the model was not built with
        with spied_weights(net.decoder[0].cross_attn) as seen:
            net.eval()
            net(src, tgt_in)
        figure = cross_attention_weights(net, src, tgt_in, layer=0).numpy()
        np.testing.assert_array_equal(figure, seen[0])


# ---- training -----------------------------------------------------------------------------------

def reversal_batch(seed, B=16, S=6):
    """Reverse a sequence of tokens 3..10: a task that needs attention to positions."""
    rng = np.random.default_rng(seed)
    src = rng.integers(3, 11, size=(B, S))
    tgt = np.concatenate([np.full((B, 1), BOS), src[:, ::-1], np.full((B, 1), EOS)], axis=1)
    return mt.tensor(src), mt.tensor(tgt[:, :-1]), mt.tensor(tgt[:, 1:])


def train(net, batches, steps, warmup=20, lr_scale=0.4):
    opt, sched = make_optimizer(net, warmup_steps=warmup, lr_scale=lr_scale)
    assert opt.param_groups[0]["betas"] == (0.9, 0.98) and opt.param_groups[0]["eps"] == 1e-9
    net.train()
    losses = []
    for step in range(steps):
        src, tgt_in, tgt_out = batches[step % len(batches)]
        loss = transformer_loss(net(src, tgt_in), tgt_out, net.config)
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
        losses.append(loss.item())
    return losses


def small_model(**changes):
    """One encoder and one decoder layer, float32: fast enough to train in a test."""
    return model(dtype=np.float32, num_encoder_layers=1, num_decoder_layers=1, **changes)


@pytest.fixture(scope="module")
def overfitted():
    """A model trained on one batch of 8 reversals (no dropout, no smoothing), and its losses."""
    net = small_model(label_smoothing=0.0)
    batch = reversal_batch(0, B=8)
    return net.eval(), batch, train(net, [batch], steps=150, warmup=30, lr_scale=0.3)


def test_one_batch_is_overfitted_to_near_zero_loss(overfitted):
    _, _, losses = overfitted
    assert losses[-1] < 0.02, losses[::15]


@pytest.mark.parametrize("norm_first", [False, True])
def test_post_ln_and_pre_ln_both_train(norm_first):
    net = small_model(norm_first=norm_first, dropout=0.1)  # the paper's dropout and ε_ls
    losses = train(net, [reversal_batch(seed, B=8) for seed in range(2)], steps=60)
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8]), (losses[:8], losses[-8:])
    assert np.all(np.isfinite(losses))


def test_label_smoothing_and_padding_in_the_loss():
    net = model()
    src, tgt_in, tgt_out = reversal_batch(3, B=2)
    logits = net(src, tgt_in)
    padded = tgt_out.numpy().copy()
    padded[:, -2:] = PAD  # ignored positions
    smooth = transformer_loss(logits, mt.tensor(padded), net.config).item()
    log_p = logits.log_softmax(-1).numpy()[:, :-2]  # (B, T - 2, V)
    picked = np.take_along_axis(log_p, padded[:, :-2, None], axis=-1)[..., 0]
    expected = np.mean(-(0.9 * picked + 0.1 * log_p.mean(-1)))  # ε_ls spread over V, §5.4
    np.testing.assert_allclose(smooth, expected, rtol=1e-10)


# ---- decoding -----------------------------------------------------------------------------------

@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoder_equals_uncached(device, norm_first):
    net = model(device, norm_first=norm_first)
    src, tgt_in = random_batch(4, T=6)
    src = np.concatenate([src, np.full((3, 2), PAD)], axis=1)
    src[0, 4:] = PAD  # rows of different lengths
    src_t = mt.tensor(src, device=device)
    padding = net.padding_mask(src_t)
    memory = net.encode(src_t, padding)
    full = net.decode(mt.tensor(tgt_in, device=device), memory, padding).numpy()  # (B, T, V)
    cache = new_cache(net)
    for t in range(tgt_in.shape[1]):  # one token at a time
        step = net.decode(mt.tensor(tgt_in[:, t:t + 1], device=device), memory, padding,
                          cache=cache, offset=t).numpy()  # (B, 1, V)
        np.testing.assert_allclose(step[:, 0], full[:, t], atol=1e-10)
    assert cache[0]["self"]["k"].shape == (3, 2, 6, 8)  # (B, h, T, d)
    greedy = [greedy_decode(net, src_t, BOS, EOS, 6, use_cache=c) for c in (True, False)]
    assert np.array_equal(*greedy)
    beams = [beam_search(net, src_t[:2], BOS, EOS, beam_size=3, max_len=6, use_cache=c)
             for c in (True, False)]
    assert np.array_equal(*beams)


@pytest.mark.parametrize("seed", [0, 1])
def test_beam_search_with_beam_1_equals_greedy(device, seed, overfitted):
    if seed:
        net = model(device, seed=seed)
    else:  # a copy of the trained model (the fixture stays on the CPU)
        net = small_model().to(device).eval()
        net.load_state_dict(overfitted[0].state_dict())
    src = mt.tensor(np.random.default_rng(seed).integers(3, 11, size=(5, 6)), device=device)
    greedy = greedy_decode(net, src, BOS, EOS, max_len=9)
    for alpha in (0.0, 0.6, 1.0):
        beam = beam_search(net, src, BOS, EOS, beam_size=1, length_penalty=alpha, max_len=9)
        assert np.array_equal(beam, greedy)


def test_decoders_take_an_empty_batch(device):
    net = model(device)
    src = mt.tensor(np.zeros((0, 6), np.int64), device=device)
    assert greedy_decode(net, src, BOS, EOS, max_len=5).shape == (0, 1)
    assert beam_search(net, src, BOS, EOS, beam_size=3, max_len=5).shape == (0, 1)


def test_decoders_reproduce_the_learned_batch_and_restore_mode(overfitted):
    net, (src, _, tgt_out), _ = overfitted
    net.train()
    greedy = greedy_decode(net, src, BOS, EOS, max_len=8)
    assert net.training  # decoding switched to eval mode and back
    net.eval()
    expected = tgt_out.numpy()  # the reversed sources, then <eos>
    assert np.array_equal(greedy[:, :7], expected)
    beam = beam_search(net, src, BOS, EOS, beam_size=4, max_len=8)
    assert np.array_equal(beam[:, :7], expected)
    finished = greedy[:, 6] == EOS
    assert np.all(greedy[finished, 7:] == PAD)  # after <eos>: padding


def test_save_and_load_give_the_same_outputs(tmp_path):
    net = model(positional="learned")
    src, tgt_in = random_batch(5)
    expected = net(mt.tensor(src), mt.tensor(tgt_in)).numpy()
    serialization.save(tmp_path / "t.npz", net, net.config)
    cfg = serialization.load_config(tmp_path / "t.npz", TransformerConfig)
    loaded = Transformer(cfg, dtype=np.float64, generator=np.random.default_rng(7)).eval()
    serialization.load(tmp_path / "t.npz", loaded)
    assert loaded.out_proj.weight is loaded.tgt_embed.weight  # tying survives loading
    np.testing.assert_allclose(loaded(mt.tensor(src), mt.tensor(tgt_in)).numpy(), expected)


def test_the_benchmark_twin_in_pytorch_computes_the_same_function():
    torch = pytest.importorskip("torch")
    from benchmarks.step_transformer import copy_weights, torch_twin

    net = model(dtype=np.float32)
    twin = copy_weights(net, torch_twin(net.config)).eval()
    src, tgt_in = random_batch(6)
    src[0, 4:] = PAD
    expected = net(mt.tensor(src), mt.tensor(tgt_in)).numpy()
    with torch.no_grad():
        got = twin(torch.from_numpy(src), torch.from_numpy(tgt_in)).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)
