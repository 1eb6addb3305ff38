"""Record reference outputs and gradients of every model and Transformer layer.

Run ``python -m tests.models.make_reference_outputs`` to (re)write ``reference_outputs.npz``.
For each case below it stores, in float64 and for a fixed input: the parameters, the outputs
(and, where a model draws figures from its attention, those weights) and the gradient of a
fixed random projection of the outputs with respect to every parameter and input.
``test_reference_outputs.py`` loads the stored parameters into a freshly built model and
checks that a refactoring leaves all of these unchanged to 1e-12.

Rewrite the file only when a change is meant to alter what a model computes.
"""

import json
import pathlib
from dataclasses import replace

import numpy as np

import minitx as mt
from minitx import nn
from models import swin, swin_segment, transformer, vit

PATH = pathlib.Path(__file__).with_name("reference_outputs.npz")
F64 = np.float64


def _rng(seed):
    return np.random.default_rng(seed)


def _x(seed, *shape):
    return mt.tensor(_rng(seed).standard_normal(shape), dtype=F64, requires_grad=True)


def _mha(rec):
    m = rec.add("main", nn.MultiHeadAttention(8, 2, kdim=6, vdim=5, dtype=F64,
                                              generator=_rng(1)))
    q, k, v = _x(2, 2, 4, 8), _x(3, 2, 5, 6), _x(4, 2, 5, 5)
    padding = mt.tensor(np.array([[False] * 5, [False, False, False, True, True]]))
    bias = mt.tensor(_rng(5).standard_normal((4, 5)), dtype=F64)
    out, w = m(q, k, v, key_padding_mask=padding, attn_mask=bias, need_weights=True)
    self_attn = rec.add("self", nn.MultiHeadAttention(8, 2, dtype=F64, generator=_rng(6)))
    figures = {"weights": w.numpy()}
    return {"out": out, "self_out": self_attn(q, causal=True)}, figures, [q, k, v]


def _encoder(norm_first):
    def build(rec):
        m = rec.add("main", nn.TransformerEncoderLayer(
            8, 2, 16, dropout=0.0, activation="gelu", norm_first=norm_first, dtype=F64,
            generator=_rng(7)))
        x = _x(8, 2, 5, 8)
        padding = mt.tensor(np.array([[False] * 5, [False] * 3 + [True] * 2]))
        return {"out": m(x, src_key_padding_mask=padding, is_causal=True)}, {}, [x]
    return build


def _decoder(norm_first):
    def build(rec):
        m = rec.add("main", nn.TransformerDecoderLayer(
            8, 2, 16, dropout=0.0, norm_first=norm_first, dtype=F64, generator=_rng(9)))
        x, memory = _x(10, 2, 4, 8), _x(11, 2, 6, 8)
        padding = mt.tensor(np.array([[False] * 6, [False] * 4 + [True] * 2]))
        out = m(x, memory, memory_key_padding_mask=padding, tgt_is_causal=True)
        return {"out": out}, {}, [x, memory]
    return build


def _transformer(norm_first):
    def build(rec):
        cfg = replace(transformer.PRESETS["tiny"], src_vocab_size=11, tgt_vocab_size=13,
                      d_model=8, num_heads=2, d_ff=16, dropout=0.0, norm_first=norm_first)
        m = rec.add("main", transformer.Transformer(cfg, dtype=F64, generator=_rng(12)))
        src = mt.tensor(np.array([[5, 6, 7, 2, 0], [3, 4, 8, 9, 10]]))
        tgt = mt.tensor(np.array([[1, 8, 9], [1, 4, 12]]))
        figure = transformer.cross_attention_weights(m, src, tgt)
        return {"logits": m(src, tgt)}, {"cross_attention": figure.numpy()}, []
    return build


def _vit(rec):
    cfg = vit.ViTConfig(image_size=8, patch_size=2, in_channels=3, dim=8, depth=2, heads=2,
                        mlp_dim=16, num_classes=5, head_hidden=6)
    m = rec.add("main", vit.ViT(cfg, dtype=F64, generator=_rng(13)))
    x = _x(14, 2, 3, 8, 8)
    weights = m.attention_weights(mt.tensor(x.numpy()))
    figures = {f"attention_{i}": w for i, w in enumerate(weights)}
    figures["rollout"] = vit.attention_rollout(weights)
    return {"logits": m(x)}, figures, [x]


SWIN = swin.SwinConfig(image_size=32, patch_size=2, in_channels=3, embed_dim=4,
                       depths=(2, 2, 2), num_heads=(2, 2, 4), window_size=4, num_classes=3)


def _swin(rec):
    m = rec.add("main", swin.SwinTransformer(SWIN, dtype=F64, generator=_rng(15)))
    x = _x(16, 1, 3, 32, 32)
    outputs = {"logits": m(x)}
    outputs.update({f"stage_{i}": f for i, f in enumerate(m.features(x))})
    return outputs, {}, [x]


def _segmenter(rec):
    cfg = replace(SWIN, depths=(2, 2), num_heads=(2, 2), image_size=16)
    m = rec.add("main", swin_segment.SwinSegmenter(cfg, num_classes=3, decoder_dim=8,
                                                   dtype=F64, generator=_rng(17)))
    x = _x(18, 1, 3, 16, 16)
    return {"logits": m(x)}, {}, [x]


CASES = {
    "mha": _mha,
    "encoder_post": _encoder(False), "encoder_pre": _encoder(True),
    "decoder_post": _decoder(False), "decoder_pre": _decoder(True),
    "transformer_post": _transformer(False), "transformer_pre": _transformer(True),
    "vit": _vit, "swin": _swin, "swin_segment": _segmenter,
}

# Parameters renamed on purpose since the file was recorded: {old name: new name}.
RENAMED = {}


class Recorder:
    """Collects a case's modules; loads stored parameters into each one as it is added."""

    def __init__(self, state=None):
        self.modules, self.state = {}, state

    def add(self, name, module):
        if self.state is not None:
            prefix = name + "."
            module.load_state_dict({k[len(prefix):]: v for k, v in self.state.items()
                                    if k.startswith(prefix)})
        self.modules[name] = module
        return module

    def named_parameters(self):
        for name, module in self.modules.items():
            yield from module.named_parameters(prefix=name)


def run(name, state=None):
    """Run case `name` (with the parameters `state`, {"main.<name>": array}, if given) and
    return {key: array}: parameters "param/...", outputs "out/...", figures "fig/...",
    gradients "grad/..." (parameters) and "grad_input/i" (inputs)."""
    rec = Recorder(state)
    outputs, figures, inputs = CASES[name](rec)
    record = {f"param/{k}": p.numpy().copy() for k, p in rec.named_parameters()}
    loss = 0.0
    for i, (key, y) in enumerate(sorted(outputs.items())):  # a fixed random projection
        loss = loss + (y * mt.tensor(_rng(100 + i).standard_normal(y.shape), dtype=F64)).sum()
        record[f"out/{key}"] = y.numpy().copy()
    loss.backward()
    for k, p in rec.named_parameters():
        if p.grad is not None:  # None: the parameter does not reach the outputs
            record[f"grad/{k}"] = np.asarray(p.grad).copy()
    for i, x in enumerate(inputs):
        record[f"grad_input/{i}"] = np.asarray(x.grad).copy()
    record.update({f"fig/{k}": np.asarray(w).copy() for k, w in figures.items()})
    return record


def load():
    """Return {case: {key: array}} from the stored file, with RENAMED applied."""
    with np.load(PATH) as data:
        keys, shapes, values = data["keys"], data["shapes"], data["values"]
    stored, start = {}, 0
    for full_key, shape in zip(keys, shapes):
        shape = tuple(json.loads(shape))
        size = int(np.prod(shape))
        name, key = str(full_key).split(":", 1)
        kind, _, rest = key.partition("/")
        key = f"{kind}/{RENAMED.get(rest, rest)}" if kind in ("param", "grad") else key
        stored.setdefault(name, {})[key] = values[start:start + size].reshape(shape)
        start += size
    return stored


def main():
    arrays = {f"{name}:{k}": v for name in CASES for k, v in run(name).items()}
    # One flat float64 array and an index keep the file small (no per-array zip entries).
    np.savez_compressed(PATH, keys=np.array(list(arrays)),
                        shapes=np.array([json.dumps(v.shape) for v in arrays.values()]),
                        values=np.concatenate([v.reshape(-1) for v in arrays.values()]))
    print(f"wrote {PATH} ({PATH.stat().st_size / 1024:.0f} KiB, {len(arrays)} arrays)")


if __name__ == "__main__":
    main()
