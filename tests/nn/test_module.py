"""Module bookkeeping: registration, names, state dicts, modes, devices, repr, containers."""

import numpy as np
import pytest

import minitx as mt
from minitx import backend, nn


def rng(seed=0):
    return np.random.default_rng(seed)


class Block(nn.Module):
    def __init__(self, generator=None):
        super().__init__()
        self.attn = nn.Linear(2, 2, generator=generator)
        self.scale = nn.Parameter(np.ones(2, dtype=np.float32))


class Zoo(nn.Module):
    """Parameters and modules in every place the walk looks: attributes, lists, tuples, dicts."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 2, generator=rng())
        self.blocks = [Block(rng(1)), Block(rng(2))]
        self.heads = {"cls": nn.Linear(2, 5, generator=rng(3)),
                      "extra": [nn.Parameter(np.zeros(4, dtype=np.float32))]}
        self.pair = (nn.Parameter(np.zeros(1, dtype=np.float32)), nn.ReLU())
        self.table = mt.arange(4)  # a buffer
        self.size, self.name, self.raw = 3, "zoo", np.zeros(3)  # neither

    def forward(self, x):
        return x


def test_names_follow_assignment_order_through_lists_dicts_and_tuples():
    names = [name for name, _ in Zoo().named_parameters()]
    assert names == [
        "embed.weight", "embed.bias",
        "blocks.0.attn.weight", "blocks.0.attn.bias", "blocks.0.scale",
        "blocks.1.attn.weight", "blocks.1.attn.bias", "blocks.1.scale",
        "heads.cls.weight", "heads.cls.bias", "heads.extra.0",
        "pair.0",
    ]


def test_children_modules_and_buffers():
    zoo = Zoo()
    assert [n for n, _ in zoo.named_children()] == ["embed", "blocks.0", "blocks.1",
                                                    "heads.cls", "pair.1"]
    assert [n for n, _ in zoo.named_modules()] == [
        "", "embed", "blocks.0", "blocks.0.attn", "blocks.1", "blocks.1.attn", "heads.cls",
        "pair.1"]
    assert [n for n, _ in zoo.named_buffers()] == ["table"]
    assert len(list(zoo.modules())) == 8 and len(list(zoo.children())) == 5
    assert zoo.num_parameters() == 8 + 2 * (6 + 2) + 15 + 4 + 1


def test_a_shared_parameter_and_a_cycle_are_visited_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(5, 3)
            self.head = nn.Linear(3, 5, bias=False)
            self.head.weight = self.embed.weight  # weight tying: (5, 3) both
            self.head.parent = self  # a reference back up the tree

    tied = Tied()
    assert [n for n, _ in tied.named_parameters()] == ["embed.weight"]
    assert tied.num_parameters() == 15
    assert [n for n, _ in tied.named_modules()] == ["", "embed", "head"]
    assert "(parent): <Tied, a reference up the tree>" in repr(tied)


def small_model(seed, device="cpu"):
    g = rng(seed)
    return nn.Sequential(nn.Linear(3, 8, generator=g), nn.GELU(), nn.LayerNorm(8),
                         nn.Linear(8, 2, generator=g)).to(device)


def test_state_dict_round_trip(device):
    model, other = small_model(0, device), small_model(1, device)
    x = mt.tensor(rng(5).standard_normal((4, 3)).astype(np.float32), device=device)
    assert not np.allclose(model(x).numpy(), other(x).numpy())
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"]
    assert all(backend.device_of(a) == device for a in state.values())
    params_before = list(other.parameters())
    assert other.load_state_dict(state) == ([], [])
    np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())
    assert all(a is b for a, b in zip(other.parameters(), params_before))
    # the values were copied, not shared: changing the source leaves the copy alone
    model[0].weight.data *= 2
    assert not np.allclose(other[0].weight.numpy(), model[0].weight.numpy())


def test_load_accepts_host_arrays_and_tensors_onto_the_parameters_device(device):
    model = small_model(0, device)
    host = {k: backend.to_numpy(v) for k, v in small_model(1).state_dict().items()}
    model.load_state_dict(host)
    assert all(p.device == device for p in model.parameters())
    np.testing.assert_array_equal(model[3].bias.numpy(), host["3.bias"])
    model.load_state_dict({k: mt.tensor(v) for k, v in host.items()})
    np.testing.assert_array_equal(model[0].weight.numpy(), host["0.weight"])


def test_strict_load_names_missing_unexpected_and_wrong_shaped_keys():
    model = small_model(0)
    before = model[0].weight.numpy()
    state = dict(small_model(1).state_dict())
    del state["2.bias"]
    state["4.weight"] = np.zeros((2, 2), np.float32)
    state["3.weight"] = np.zeros((3, 8), np.float32)
    with pytest.raises(nn.StateDictError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "missing keys: ['2.bias']" in message
    assert "unexpected keys: ['4.weight']" in message
    assert "3.weight: checkpoint (3, 8)" in message and "model (2, 8)" in message
    assert info.value.missing == ["2.bias"] and info.value.unexpected == ["4.weight"]
    np.testing.assert_array_equal(model[0].weight.numpy(), before)  # nothing was loaded


def test_non_strict_load_returns_the_keys_but_still_refuses_wrong_shapes_and_dtypes():
    model, source = small_model(0), small_model(1)
    state = dict(source.state_dict())
    del state["3.bias"]
    state["extra"] = np.zeros(1, np.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert (missing, unexpected) == (["3.bias"], ["extra"])
    np.testing.assert_array_equal(model[0].weight.numpy(), source[0].weight.numpy())
    with pytest.raises(nn.StateDictError, match="0.bias"):
        model.load_state_dict({"0.bias": np.zeros(9, np.float32)}, strict=False)
    with pytest.raises(nn.StateDictError, match="float64"):
        model.load_state_dict({"0.bias": np.zeros(8, np.float64)}, strict=False)
    with pytest.raises(TypeError, match="0.bias"):
        model.load_state_dict({"0.bias": [0.0] * 8}, strict=False)


def test_loading_a_torch_state_dict_names_torch_tensor_and_the_conversion():
    """A PyTorch model's state_dict holds torch.Tensors; the message must not read "must be an
    array or a Tensor, got Tensor", and says how to convert."""
    torch = pytest.importorskip("torch")
    layer = nn.Linear(3, 2)
    state = torch.nn.Linear(3, 2).state_dict()
    with pytest.raises(TypeError, match=r"state\['weight'\] must be an array or a minitx "
                                        r"Tensor, got torch\.Tensor; convert it with "
                                        r"\.numpy\(\) \(\.detach\(\)\.cpu\(\)\.numpy\(\)"):
        layer.load_state_dict(state)
    layer.load_state_dict({k: v.detach().cpu().numpy() for k, v in state.items()})  # the fix
    np.testing.assert_array_equal(layer.weight.numpy(), state["weight"].numpy())


def test_buffers_move_but_are_not_saved(device):
    pe = nn.SinusoidalPositionalEncoding(4, max_len=8)
    assert pe.state_dict() == {} and [n for n, _ in pe.named_buffers()] == ["pe"]
    buffer = pe.pe
    assert pe.to(device) is pe and pe.pe is buffer and buffer.device == device


def test_train_and_eval_are_recursive_and_eval_dropout_is_the_identity(device):
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Dropout(0.5), nn.ReLU())).to(device)
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    x = mt.tensor(rng().standard_normal((3, 4)).astype(np.float32), device=device)
    dropout = model[1][0]
    assert dropout(x) is x
    model.train()
    assert all(m.training for m in model.modules())
    y = dropout(x).numpy()
    kept = y != 0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(y[kept], 2 * x.numpy()[kept], rtol=1e-6)


def test_to_keeps_the_parameter_objects_and_moves_gradients(device):
    model = small_model(0)
    params = list(model.parameters())
    x = mt.tensor(np.ones((2, 3), np.float32))
    model(x).sum().backward()
    assert model.to(device) is model
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert all(p.device == device and backend.device_of(p.grad) == device for p in params)
    model(x.to(device)).sum().backward()  # still usable after the move
    with pytest.raises(ValueError, match="unknown device"):
        model.to("tpu")


def test_zero_grad_sets_gradients_to_none():
    model = small_model(0)
    model(mt.ones((2, 3))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_astype_requires_grad_and_apply(device):
    model = small_model(0, device).astype(np.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model(mt.tensor(np.ones((1, 3)), device=device)).dtype == np.float64
    assert not any(p.requires_grad for p in model.requires_grad_(False).parameters())
    with pytest.raises(TypeError, match="floating point"):
        model.astype(np.int32)
    names = []
    model.apply(lambda m: names.append(type(m).__name__))
    assert names == ["Sequential", "Linear", "GELU", "LayerNorm", "Linear"]


def test_repr_shows_the_tree_extra_info_and_parameter_counts():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 4))
    text = repr(model)
    assert text.splitlines() == [
        "Sequential(  # 56 parameters",
        "  (0): Linear(in_features=3, out_features=4, bias=True)  # 16 parameters",
        "  (1): ReLU()",
        "  (2-3): 2 x Linear(in_features=4, out_features=4, bias=True)  # 20 parameters",
        ")",
    ]
    nested = repr(nn.ModuleDict({"enc": nn.TransformerEncoderLayer(8, 2, 16)}))
    assert "(enc): TransformerEncoderLayer(  # 600 parameters" in nested
    assert "    (self_attn): MultiHeadAttention(  # 288 parameters" in nested
    assert "      embed_dim=8, num_heads=2, dropout=0.1" in nested
    assert "      (q_proj): Linear(in_features=8, out_features=8, bias=True)" in nested


def test_parameter_is_a_float_leaf_that_requires_grad():
    p = nn.Parameter(np.zeros((2, 3), np.float32))
    assert isinstance(p, mt.Tensor) and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor(")
    t = mt.tensor([1.0, 2.0])
    assert nn.Parameter(t).data is t.data
    with pytest.raises(TypeError, match="floating point"):
        nn.Parameter(np.zeros(3, np.int64))
    with pytest.raises(TypeError):
        nn.Parameter([1.0, 2.0])


def test_module_list_and_sequential(device):
    blocks = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    blocks.append(nn.Linear(2, 3))
    assert len(blocks) == 3 and isinstance(blocks[-1], nn.Linear) and blocks[-1] is blocks[2]
    assert [type(m).__name__ for m in blocks] == ["Linear", "ReLU", "Linear"]
    assert [n for n, _ in blocks.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                         "2.bias"]
    assert len(blocks[1:]) == 2 and isinstance(blocks[1:], nn.ModuleList)
    blocks[1] = nn.GELU()
    assert isinstance(blocks[1], nn.GELU)
    with pytest.raises(IndexError):
        blocks[3]
    with pytest.raises(TypeError):
        blocks.append(np.zeros(2))
    with pytest.raises(NotImplementedError):
        blocks(1)
    seq = nn.Sequential(*list(blocks)).to(device)
    x = mt.tensor(np.ones((5, 2), np.float32), device=device)
    expected = blocks[2](blocks[1](blocks[0](x)))
    np.testing.assert_array_equal(seq(x).numpy(), expected.numpy())
    assert isinstance(seq[:2], nn.Sequential) and seq[:2](x).shape == (5, 2)


def test_module_dict():
    heads = nn.ModuleDict({"cls": nn.Linear(2, 3)})
    heads["box"] = nn.Linear(2, 4)
    assert heads.keys() == ["cls", "box"] and list(heads) == ["cls", "box"] and "box" in heads
    assert [n for n, _ in heads.named_parameters()] == ["cls.weight", "cls.bias", "box.weight",
                                                        "box.bias"]
    assert heads["box"].out_features == 4 and len(heads) == 2
    assert [k for k, _ in heads.items()] == heads.keys() and len(heads.values()) == 2
    for bad in ("a.b", "", "forward", "keys", "training", "_keys"):
        with pytest.raises(ValueError):
            heads[bad] = nn.ReLU()
    with pytest.raises(KeyError, match="cls"):
        heads["nope"]


def test_forward_must_be_written():
    class Empty(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="Empty"):
        Empty()(1)


def test_containers_that_cannot_name_their_modules_are_refused():
    class Holder(nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

    with pytest.raises(ValueError, match="key 'x.y' of 'value' .* has a dot"):
        list(Holder({"x.y": nn.Linear(2, 2)}).parameters())
    with pytest.raises(TypeError, match="'value' is a set of modules or tensors"):
        list(Holder({nn.Linear(2, 2)}).parameters())
    assert list(Holder({"a.b": 1}).parameters()) == []  # a dotted key of plain settings is fine
    with pytest.raises(TypeError, match="assign one module at a time"):
        nn.ModuleList([nn.Linear(2, 2)])[0:1] = nn.Linear(2, 2)
