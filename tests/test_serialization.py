"""Saving and loading: exact round trips, no pickle, strict names, atomic writes, resumable runs.

The model, optimizer and schedule below are small stand-ins that follow the interfaces of
``nn.Module``, ``optim`` and the schedules (``state_dict()`` / ``load_state_dict()``), so these
tests do not depend on those packages.
"""

import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import minitx as mt
from minitx import backend, serialization
from minitx.serialization import CheckpointError

REPO_ROOT = Path(__file__).resolve().parents[1]
try:
    import safetensors.numpy
except ImportError:
    safetensors = None
needs_safetensors = pytest.mark.skipif(safetensors is None, reason="safetensors not installed")


# --------------------------------------------------------------------------------------------
# Stand-ins
# --------------------------------------------------------------------------------------------

class TinyModel:
    """y = x @ W + b, plus an integer buffer; parameters are minitx Tensors on `device`."""

    def __init__(self, device="cpu", seed=0, names=("layer.weight", "layer.bias", "steps"),
                 width=3):
        rng = np.random.default_rng(seed)
        values = {"layer.weight": rng.standard_normal((4, width)).astype(np.float32),
                  "layer.bias": rng.standard_normal(width).astype(np.float32),
                  "steps": np.array(7, dtype=np.int64)}
        self.tensors = {}
        for name in names:
            value = values.get(name, np.zeros(2, np.float32))
            self.tensors[name] = mt.tensor(value, device=device,
                                           requires_grad=value.dtype == np.float32)

    def __call__(self, x):
        return x @ self.tensors["layer.weight"] + self.tensors["layer.bias"]

    def state_dict(self):
        return {name: t.data for name, t in self.tensors.items()}

    def load_state_dict(self, state, strict=True):
        if strict and set(state) != set(self.tensors):
            raise KeyError(f"names differ: {sorted(set(state) ^ set(self.tensors))}")
        for name, value in state.items():
            if name in self.tensors:  # copied onto the device the parameter lives on
                t = self.tensors[name]
                t.data = backend.to_device(backend.to_numpy(value).astype(t.dtype), t.device)


class Momentum:
    """SGD with momentum; its state is a tree with int keys, tuples, arrays and numbers."""

    def __init__(self, params, lr=0.05, momentum=0.9):
        self.params = list(params)
        self.param_groups = [{"lr": lr, "momentum": momentum, "betas": (0.9, 0.99),
                              "params": list(range(len(self.params))), "nesterov": False}]
        self.state = {}

    def step(self):
        group = self.param_groups[0]
        for i, p in enumerate(self.params):
            if p.grad is None:  # an integer buffer
                continue
            s = self.state.setdefault(i, {"momentum_buffer": p.grad * 0, "step": 0})
            s["momentum_buffer"] = group["momentum"] * s["momentum_buffer"] + p.grad
            s["step"] += 1
            p.data = p.data - group["lr"] * s["momentum_buffer"]
            p.grad = None

    def state_dict(self):
        return {"state": {i: dict(s) for i, s in self.state.items()},
                "param_groups": [dict(g) for g in self.param_groups]}

    def load_state_dict(self, state):  # places the arrays next to the parameters, as optim does
        self.state = {i: {k: backend.to_device(v, self.params[i].device) if isinstance(
            v, np.ndarray) else v for k, v in s.items()} for i, s in state["state"].items()}
        self.param_groups = [dict(g) for g in state["param_groups"]]


class StepSchedule:
    """Divide the learning rate by 10 at each milestone."""

    def __init__(self, optimizer, milestones=(2, 4)):
        self.optimizer, self.milestones, self.last_step = optimizer, list(milestones), 0

    def step(self):
        self.last_step += 1
        if self.last_step in self.milestones:
            self.optimizer.param_groups[0]["lr"] /= 10

    def state_dict(self):
        return {"last_step": self.last_step, "milestones": list(self.milestones)}

    def load_state_dict(self, state):
        self.last_step, self.milestones = state["last_step"], list(state["milestones"])


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    n_head: int = 2
    window: tuple[int, int] = (4, 4)


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    n_layer: int = 2
    d_model: int = 8
    dropout: float = 0.1
    activation: str = "gelu"
    image_size: tuple[int, ...] = (32, 32)
    patch: tuple[int, int] | None = (4, 4)
    attention: AttentionConfig = AttentionConfig()


def train(model, optimizer, schedule, loader_rng, steps, device):
    """A few steps whose data come from `loader_rng` and whose noise comes from minitx.random."""
    for _ in range(steps):
        x = mt.tensor(loader_rng.standard_normal((8, 4)).astype(np.float32), device=device)
        target = mt.randn(8, 3, device=device)  # drawn from minitx's default generator
        loss = ((model(x) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        schedule.step()


def host(state):
    return {name: backend.to_numpy(value) for name, value in state.items()}


def assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert type(b[name]) is np.ndarray, name
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), name  # bit-exact, NaN and -0.0 included


# --------------------------------------------------------------------------------------------
# Flat state dicts
# --------------------------------------------------------------------------------------------

def test_state_dict_round_trip_is_exact(tmp_path, device):
    rng = np.random.default_rng(0)
    state = {
        "blocks.3.attn.qkv.weight": rng.standard_normal((3, 5)).astype(np.float32),
        "tokens": rng.integers(-2**62, 2**62, size=(4,), dtype=np.int64),
        "specials": np.array([np.nan, np.inf, -np.inf, -0.0, 1e-310]),  # float64
        "mask": np.array([[True, False]]),
        "scale": np.array(0.5, dtype=np.float16),  # 0-d
        "empty": np.zeros((0, 3), np.float32),
        "transposed": np.arange(6, dtype=np.float32).reshape(2, 3).T,  # not C-contiguous
    }
    on_device = {name: backend.to_device(a, device) for name, a in state.items()}
    serialization.save_state_dict(tmp_path / "w.npz", on_device)
    loaded = serialization.load_state_dict(tmp_path / "w.npz")
    assert_same_arrays(state, loaded)
    with np.load(tmp_path / "w.npz", allow_pickle=False) as plain:  # NumPy alone reads it
        assert set(plain.files) == set(state) | {"__minitx__"}


def test_plain_npz_from_numpy_loads_as_a_state_dict(tmp_path):
    np.savez(tmp_path / "foreign.npz", w=np.ones((2, 2), np.float32), b=np.arange(3))
    loaded = serialization.load_state_dict(tmp_path / "foreign.npz")
    assert sorted(loaded) == ["b", "w"] and loaded["w"].dtype == np.float32
    with pytest.raises(CheckpointError, match="no minitx header"):
        serialization.load_checkpoint(tmp_path / "foreign.npz", model=TinyModel())


def test_object_arrays_are_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:  # unpickling this would create a folder: proof that code ran
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    path = tmp_path / "evil.npz"
    np.savez(path, weight=np.zeros(2), evil=np.array([Payload()], dtype=object))
    with pytest.raises(CheckpointError, match="only pickle can read; minitx never unpickles"):
        serialization.load_state_dict(path)
    pickle.dump({"weight": np.zeros(2)}, open(tmp_path / "plain.pkl", "wb"))
    with pytest.raises(CheckpointError, match="not an .npz archive .*minitx never loads"):
        serialization.load_state_dict(tmp_path / "plain.pkl")
    assert not marker.exists()
    with pytest.raises(TypeError, match="'evil'.*object"):
        serialization.save_state_dict(path, {"evil": np.array([Payload()], dtype=object)})


def test_loading_never_calls_pickle(tmp_path, monkeypatch):
    model, path = TinyModel(), tmp_path / "ckpt.npz"
    optimizer = Momentum(model.tensors.values())
    serialization.save_checkpoint(path, model=model, optimizer=optimizer, extra={"a": (1, 2)})

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was called")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    assert serialization.load_checkpoint(path, model=TinyModel(seed=1))["extra"] == {"a": (1, 2)}


def test_bad_input_is_named(tmp_path):
    unused = tmp_path / "unused.npz"
    with pytest.raises(TypeError, match="save_state_dict: names must be non-empty strings"):
        serialization.save_state_dict(unused, {3: np.zeros(2)})
    with pytest.raises(ValueError, match="reserved"):
        serialization.save_state_dict(unused, {"__config__": np.zeros(2)})
    with pytest.raises(TypeError, match="'w' must be an array, got list"):
        serialization.save_state_dict(unused, {"w": [1.0, 2.0]})
    with pytest.raises(TypeError, match="step must be an int"):
        serialization.save_checkpoint(unused, model=TinyModel(), step=1.5)
    with pytest.raises(TypeError, match=r"rngs\['loader'\] must be a numpy.random.Generator"):
        serialization.save_checkpoint(unused, model=TinyModel(), rngs={"loader": 1})
    with pytest.raises(TypeError, match="config cannot be written as JSON"):
        serialization.save(unused, TinyModel(), config={"f": np.zeros(2)})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Weights plus config; strict names
# --------------------------------------------------------------------------------------------

def test_config_round_trip(tmp_path):
    config = TinyConfig(n_layer=3, image_size=(28, 28, 1), patch=(7, 7),
                        attention=AttentionConfig(n_head=4, window=(2, 2)))
    path = tmp_path / "model.npz"
    serialization.save(path, TinyModel(), config)
    state, loaded = serialization.load(path, config_cls=TinyConfig)
    assert loaded == config and hash(loaded) == hash(config)  # tuples came back as tuples
    assert isinstance(loaded.attention, AttentionConfig)
    assert serialization.load_config(path, TinyConfig) == config
    assert serialization.load_config(path)["attention"] == {"n_head": 4, "window": [2, 2]}
    with np.load(path, allow_pickle=False) as plain:  # the config is readable JSON
        stored = json.loads(plain["__config__"].tobytes())
    assert stored["class"].endswith("TinyConfig") and stored["fields"]["n_layer"] == 3
    assert sorted(state) == ["layer.bias", "layer.weight", "steps"]


def test_config_with_unknown_fields_is_refused(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Smaller:
        n_layer: int = 2

    serialization.save(tmp_path / "m.npz", TinyModel(), TinyConfig())
    with pytest.raises(ValueError, match="'activation'.*Smaller does not define"):
        serialization.load(tmp_path / "m.npz", config_cls=Smaller)


def test_load_into_model_with_strict_names(tmp_path):
    path = tmp_path / "model.npz"
    source = TinyModel(seed=0)
    serialization.save(path, source, TinyConfig())
    target = TinyModel(seed=1, names=("layer.weight", "layer.bias", "extra.scale"), width=5)
    before = host(target.state_dict())
    with pytest.raises(ValueError) as info:
        serialization.load(path, target)
    message = str(info.value)
    assert message.startswith(f"load: {path} does not fit TinyModel")
    assert "missing keys: ['extra.scale']" in message
    assert "unexpected keys: ['steps']" in message
    assert "layer.weight: checkpoint (4, 3) float32, model (4, 5) float32" in message
    assert "layer.bias: checkpoint (3,) float32, model (5,) float32" in message
    assert_same_arrays(before, host(target.state_dict()))  # nothing was changed

    fitting = TinyModel(seed=1)
    serialization.load(path, fitting)
    assert_same_arrays(host(source.state_dict()), host(fitting.state_dict()))
    partial = TinyModel(seed=1, names=("layer.weight",))
    serialization.load(path, partial, strict=False)  # the model decides what to do
    np.testing.assert_array_equal(partial.state_dict()["layer.weight"],
                                  source.state_dict()["layer.weight"])


def test_saved_from_device_loads_as_numpy_and_onto_device(tmp_path, device):
    """The stand-in for "saved on a GPU, loaded on a CPU-only machine, and the reverse"."""
    path = tmp_path / "model.npz"
    source = TinyModel(device=device, seed=0)
    serialization.save(path, source)
    state, config = serialization.load(path)
    assert config is None and all(type(a) is np.ndarray for a in state.values())
    for target_device in ("cpu", "strict"):
        target = TinyModel(device=target_device, seed=1)
        serialization.load(path, target)
        assert all(backend.device_of(a) == target_device for a in target.state_dict().values())
        assert_same_arrays(host(source.state_dict()), host(target.state_dict()))


# --------------------------------------------------------------------------------------------
# Nested trees (they travel as a checkpoint's `extra`, as optimizer states do)
# --------------------------------------------------------------------------------------------

def save_tree(path, tree):
    serialization.save_checkpoint(path, model=TinyModel(names=()), extra=tree)


def load_tree(path):
    return serialization.load_checkpoint(path, model=TinyModel(names=()))["extra"]


def test_tree_round_trip(tmp_path, device):
    tree = {
        "state": {0: {"exp_avg": backend.to_device(np.arange(3, dtype=np.float32), device),
                      "step": np.int64(5)},
                  7: {"exp_avg": np.ones((2, 2)), "step": np.float32(0.5)}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 7],
                          "amsgrad": False, "foreach": None, "name": "decay"}],
        1: "int key", "1": "str key", "a/b": np.zeros(1), "a": {"b": np.ones(1)},
        "floats": [float("inf"), -float("inf"), -0.0, 2**70, np.float64(0.1), np.bool_(True)],
        "nested": [[np.array([True]), ()], (1, [2, {"x": None}])],
        "tensor": mt.tensor([1.0, 2.0], device=device),
    }
    save_tree(tmp_path / "tree.npz", tree)
    loaded = load_tree(tmp_path / "tree.npz")
    assert list(loaded) == list(tree) and loaded[1] == "int key" and loaded["1"] == "str key"
    assert list(loaded["state"]) == [0, 7]
    assert loaded["param_groups"] == tree["param_groups"]
    assert loaded["floats"] == tree["floats"] and str(loaded["floats"][2]) == "-0.0"
    assert [type(x) for x in loaded["floats"][-2:]] == [np.float64, np.bool_]
    assert loaded["nested"][1] == (1, [2, {"x": None}]) and loaded["nested"][0][1] == ()
    step = loaded["state"][7]["step"]
    assert type(step) is np.float32 and step == np.float32(0.5)
    assert type(loaded["state"][0]["step"]) is np.int64
    exp_avg = loaded["state"][0]["exp_avg"]
    assert type(exp_avg) is np.ndarray and exp_avg.dtype == np.float32
    np.testing.assert_array_equal(exp_avg, [0, 1, 2])
    np.testing.assert_array_equal(loaded["a/b"], [0])  # a key holding "/" does not collide
    np.testing.assert_array_equal(loaded["a"]["b"], [1])  # with the deeper path a -> b
    np.testing.assert_array_equal(loaded["tensor"], [1.0, 2.0])
    nan_tree = {"nan": float("nan")}
    save_tree(tmp_path / "nan.npz", nan_tree)
    assert np.isnan(load_tree(tmp_path / "nan.npz")["nan"])


def test_tree_refuses_what_needs_pickle(tmp_path):
    with pytest.raises(TypeError, match="cannot store a set at 'extra/state/0'"):
        save_tree(tmp_path / "t.npz", {"state": [{1, 2}]})
    with pytest.raises(TypeError, match="dict keys must be str or int, got tuple"):
        save_tree(tmp_path / "t.npz", {"state": {(1, 2): 3}})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Atomic writes, truncated and damaged files, versions
# --------------------------------------------------------------------------------------------

def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    model = TinyModel(seed=0)
    serialization.save_checkpoint(path, model=model, step=3)
    good = path.read_bytes()
    real_write = serialization.write_npz

    def crash_halfway(file, arrays):  # the disk fills up in the middle of the file
        real_write(file, arrays)
        file.truncate(len(good) // 2)
        raise OSError("No space left on device")

    def crash_before_rename(source, target):
        raise OSError("killed before the rename")

    monkeypatch.setattr(serialization, "write_npz", crash_halfway)
    with pytest.raises(OSError, match="No space left"):
        serialization.save_checkpoint(path, model=TinyModel(seed=1), step=6)
    monkeypatch.undo()
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["ckpt.npz"]  # no temp files
    assert serialization.load_checkpoint(path, model=TinyModel(seed=2))["step"] == 3

    monkeypatch.setattr(os, "replace", crash_before_rename)
    with pytest.raises(OSError, match="before the rename"):
        serialization.save_checkpoint(path, model=TinyModel(seed=1), step=6)
    monkeypatch.undo()
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["ckpt.npz"]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process ids are POSIX")
def test_killed_writer_keeps_checkpoint_and_next_save_removes_its_temporary(tmp_path):
    """A real crash: SIGKILL in the middle of a write, so no cleanup code runs. The previous
    checkpoint stays loadable; the next save of that file removes the dead writer's temporary
    and leaves alone those of live writers and of other files."""
    path = tmp_path / "ckpt.npz"
    serialization.save_checkpoint(path, model=TinyModel(seed=0), step=3)
    script = textwrap.dedent(f"""
        import sys, time
        import numpy.lib.format as npy_format
        from minitx import serialization
        from tests.test_serialization import TinyModel
        real_write_array = npy_format.write_array
        def stall_after_first_array(*args, **kwargs):
            real_write_array(*args, **kwargs)
            print("mid-write", flush=True)
            time.sleep(600)  # killed here, with the temporary half written
        npy_format.write_array = stall_after_first_array
        serialization.save_checkpoint({str(path)!r}, model=TinyModel(seed=1), step=6)
    """)
    writer = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "mid-write\n"
    finally:
        writer.kill()  # SIGKILL: no except, no finally runs in the writer
        writer.wait(timeout=60)
    assert writer.returncode == -signal.SIGKILL
    stale = [p for p in tmp_path.iterdir() if p != path]
    assert len(stale) == 1 and stale[0].name.startswith(f"ckpt.npz.{writer.pid}-")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        serialization.load_checkpoint(stale[0], model=TinyModel())
    restored = TinyModel(seed=2)
    assert serialization.load_checkpoint(path, model=restored)["step"] == 3
    assert_same_arrays(host(TinyModel(seed=0).state_dict()), host(restored.state_dict()))

    live = tmp_path / f"ckpt.npz.{os.getppid()}-0123abcd.tmp"  # a writer that still runs
    abandoned = tmp_path / f"ckpt.npz.{os.getppid()}-89abcdef.tmp"  # its pid reused long after
    other_target = tmp_path / f"other.npz.{writer.pid}-0123abcd.tmp"  # another file's writer
    for temp in (live, abandoned, other_target):
        temp.write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(abandoned, (two_days_ago, two_days_ago))
    serialization.save_checkpoint(path, model=TinyModel(seed=1), step=6)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["ckpt.npz", live.name, other_target.name])
    assert serialization.load_checkpoint(path, model=TinyModel(seed=2))["step"] == 6


def test_truncated_checkpoint_gives_clear_error_and_previous_is_intact(tmp_path):
    previous, latest = tmp_path / "step3.npz", tmp_path / "step6.npz"
    model = TinyModel(seed=0)
    optimizer = Momentum(model.tensors.values())
    serialization.save_checkpoint(previous, model=model, optimizer=optimizer, step=3)
    serialization.save_checkpoint(latest, model=TinyModel(seed=1), optimizer=optimizer, step=6)
    data = latest.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 1):
        latest.write_bytes(data[:size])  # e.g. an interrupted copy to another machine
        with pytest.raises(CheckpointError) as info:
            serialization.load_checkpoint(latest, model=TinyModel(), optimizer=optimizer)
        assert str(info.value).startswith(f"{latest} is not a complete minitx file "
                                          f"(truncated or corrupt")
        assert not isinstance(info.value.__cause__, CheckpointError)  # the cause is attached
    restored = TinyModel(seed=2)
    assert serialization.load_checkpoint(previous, model=restored)["step"] == 3
    assert_same_arrays(host(model.state_dict()), host(restored.state_dict()))
    with pytest.raises(FileNotFoundError):  # a missing file is not "corrupt"
        serialization.load_checkpoint(tmp_path / "nope.npz", model=restored)


def test_damaged_bytes_never_load_silently(tmp_path):
    """Flip bytes all over a checkpoint: it either fails clearly or loads exactly (the byte was
    a timestamp or padding); the CRC-32 of each member catches damaged data."""
    path, damaged = tmp_path / "ckpt.npz", tmp_path / "damaged.npz"
    tree = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "meta": {3: (1.5, None)}}
    save_tree(path, tree)
    data, reference = path.read_bytes(), repr(load_tree(path))
    failures = 0
    for position in range(0, len(data), 4):
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        damaged.write_bytes(bytes(flipped))
        try:
            assert repr(load_tree(damaged)) == reference, position
        except CheckpointError:
            failures += 1
    assert failures > len(data) // 8


def test_format_version_and_kind_are_checked(tmp_path, monkeypatch):
    model_file = tmp_path / "model.npz"
    serialization.save(model_file, TinyModel())
    with pytest.raises(CheckpointError, match="holds a 'model', expected 'checkpoint'; load it"):
        serialization.load_checkpoint(model_file, model=TinyModel())
    monkeypatch.setattr(serialization, "FORMAT_VERSION", 99)
    serialization.save(tmp_path / "future.npz", TinyModel())
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="format version 99; this minitx reads versions"):
        serialization.load(tmp_path / "future.npz")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        serialization.save_state_dict(tmp_path / "w.npz", {"w": np.zeros(2)})
    finally:
        os.umask(old)
    assert (tmp_path / "w.npz").stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------------------------
# Checkpoints: resuming is bit-identical
# --------------------------------------------------------------------------------------------

def test_checkpoint_resume_is_bit_identical(tmp_path, device):
    path = tmp_path / "runs" / "tiny" / "ckpt.npz"  # folders are created
    mt.random.seed(0)
    model = TinyModel(device=device, seed=0)
    optimizer = Momentum(model.tensors.values())
    schedule = StepSchedule(optimizer)
    loader_rng = np.random.default_rng(1)
    train(model, optimizer, schedule, loader_rng, 3, device)
    serialization.save_checkpoint(path, model=model, optimizer=optimizer, schedule=schedule,
                                  step=3, config=TinyConfig(), extra={"best_loss": 0.25},
                                  rngs={"loader": loader_rng})
    train(model, optimizer, schedule, loader_rng, 3, device)
    uninterrupted = host(model.state_dict())

    mt.random.seed(1234)  # a fresh process: other weights, other generator states
    resumed = TinyModel(device=device, seed=5)
    optimizer2 = Momentum(resumed.tensors.values(), lr=1.0)
    schedule2 = StepSchedule(optimizer2, milestones=())
    loader_rng2 = np.random.default_rng(99)
    info = serialization.load_checkpoint(path, model=resumed, optimizer=optimizer2,
                                         schedule=schedule2, rngs={"loader": loader_rng2},
                                         config_cls=TinyConfig)
    assert info == {"step": 3, "extra": {"best_loss": 0.25}, "config": TinyConfig()}
    assert serialization.load_config(path, TinyConfig) == TinyConfig()
    assert optimizer2.param_groups[0]["betas"] == (0.9, 0.99)
    assert list(optimizer2.state) == [0, 1]  # int keys came back as ints
    for s in optimizer2.state.values():  # placed next to the parameters
        assert backend.device_of(s["momentum_buffer"]) == backend.normalize_device(device)
    train(resumed, optimizer2, schedule2, loader_rng2, 3, device)
    assert_same_arrays(uninterrupted, host(resumed.state_dict()))


def test_rng_state_round_trip(tmp_path):
    path = tmp_path / "ckpt.npz"
    mt.random.seed(5)
    loader_rng = np.random.default_rng(7)
    mt.random.default_generator().random(3)  # advance both a little first
    loader_rng.integers(0, 10, size=5)
    serialization.save_checkpoint(path, model=TinyModel(), rngs={"loader": loader_rng})
    expected = (mt.randn(4).numpy(), loader_rng.permutation(10))
    mt.random.seed(0)
    other = np.random.default_rng(0)
    serialization.load_checkpoint(path, model=TinyModel(), rngs={"loader": other})
    np.testing.assert_array_equal(mt.randn(4).numpy(), expected[0])
    np.testing.assert_array_equal(other.permutation(10), expected[1])


def test_load_checkpoint_checks_before_changing_anything(tmp_path):
    path = tmp_path / "ckpt.npz"
    serialization.save_checkpoint(path, model=TinyModel(seed=0), step=3,
                                  rngs={"loader": np.random.default_rng(0)})
    model = TinyModel(seed=1)
    before = host(model.state_dict())
    optimizer = Momentum(model.tensors.values())
    with pytest.raises(ValueError, match="holds no optimizer state"):
        serialization.load_checkpoint(path, model=model, optimizer=optimizer)
    philox = np.random.Generator(np.random.Philox(0))
    with pytest.raises(ValueError, match="holds no Philox state for generator 'loader'"):
        serialization.load_checkpoint(path, model=model, rngs={"loader": philox})
    with pytest.raises(ValueError, match="generator 'shuffle'; it holds \\['loader'\\]"):
        serialization.load_checkpoint(path, model=model,
                                      rngs={"shuffle": np.random.default_rng(0)})
    assert_same_arrays(before, host(model.state_dict()))


# --------------------------------------------------------------------------------------------
# .safetensors, through the safetensors package (optional: these tests skip without it)
# --------------------------------------------------------------------------------------------

def test_safetensors_without_the_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    for call in (lambda: serialization.save_state_dict(tmp_path / "w.safetensors",
                                                       {"w": np.zeros(2)}),
                 lambda: serialization.load_state_dict(tmp_path / "w.safetensors")):
        with pytest.raises(ImportError, match=r"pip install 'minitx\[safetensors\]'"):
            call()
    assert list(tmp_path.iterdir()) == []


@needs_safetensors
def test_safetensors_round_trip(tmp_path, device):
    rng = np.random.default_rng(0)
    state = {"blocks.0.attn.qkv.weight": rng.standard_normal((3, 5)).astype(np.float32),
             "tokens": np.arange(-3, 3, dtype=np.int64), "mask": np.array([True, False]),
             "half": np.array([1.5, -0.0, np.inf], np.float16), "scale": np.array(2.0),
             "bytes": np.arange(5, dtype=np.uint8), "empty": np.zeros((0, 2), np.int32),
             "transposed": np.arange(6, dtype=np.float32).reshape(2, 3).T}
    path = tmp_path / "w.safetensors"
    serialization.save_state_dict(path, {n: backend.to_device(a, device) for n, a in state.items()})
    assert_same_arrays(state, serialization.load_state_dict(path))
    with safetensors.safe_open(path, framework="numpy") as file:  # the minitx header rides in
        assert json.loads(file.metadata()["__minitx__"])["kind"] == "state_dict"  # the metadata

    serialization.save(tmp_path / "m.safetensors", TinyModel(), TinyConfig(n_layer=5))
    restored = TinyModel(seed=3)
    _, config = serialization.load(tmp_path / "m.safetensors", restored, config_cls=TinyConfig)
    assert config == TinyConfig(n_layer=5)
    assert_same_arrays(host(TinyModel().state_dict()), host(restored.state_dict()))


@needs_safetensors
def test_safetensors_refuses_what_it_cannot_hold(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(ValueError, match="holds flat tensors only; save the checkpoint to an"):
        serialization.save_checkpoint(path, model=TinyModel())
    with pytest.raises(TypeError, match="'z' has dtype complex128, which .safetensors cannot"):
        serialization.save_state_dict(path, {"z": np.zeros(2, complex)})
    assert list(tmp_path.iterdir()) == []  # the failed write left no temp file


@needs_safetensors
def test_truncated_safetensors_gives_clear_error(tmp_path):
    path = tmp_path / "w.safetensors"
    serialization.save_state_dict(path, {"w": np.ones((4, 4), np.float32)})
    data = path.read_bytes()
    for size in (0, 5, 8, 40, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match="not a complete .safetensors file"):
            serialization.load_state_dict(path)


@needs_safetensors
def test_safetensors_from_elsewhere_with_bfloat16(tmp_path):
    """A hand-made file as Hugging Face writes them: bfloat16 weights, foreign metadata."""
    values = np.array([1.0, -2.5, 0.15625, 2.0**100], np.float32)  # exact in bfloat16
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")  # the upper half of each float32
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "wte.weight": {"dtype": "BF16", "shape": [2, 2],
                                        "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bf16.tobytes())
    loaded = serialization.load_state_dict(path)
    assert list(loaded) == ["wte.weight"] and loaded["wte.weight"].dtype == np.float32
    np.testing.assert_array_equal(loaded["wte.weight"], values.reshape(2, 2))


@needs_safetensors
def test_safetensors_agrees_with_the_reference_package(tmp_path):
    st = safetensors.numpy
    state = {"a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
             "b": np.array([1, -2], np.int64), "c": np.array([True, False])}
    serialization.save_state_dict(tmp_path / "ours.safetensors", state)
    assert_same_arrays(state, st.load_file(str(tmp_path / "ours.safetensors")))
    st.save_file(state, str(tmp_path / "theirs.safetensors"), metadata={"format": "np"})
    assert_same_arrays(state, serialization.load_state_dict(tmp_path / "theirs.safetensors"))


def test_checkpoint_of_another_optimizer_class_changes_nothing(tmp_path):
    """AdamW's state offered to SGD is refused, naming both, before the weights change."""
    from minitx import optim

    path, source = tmp_path / "ckpt.npz", TinyModel(seed=0)
    adamw = optim.AdamW([source.tensors["layer.weight"], source.tensors["layer.bias"]])
    serialization.save_checkpoint(path, model=source, optimizer=adamw, step=1)
    model = TinyModel(seed=1)
    before = host(model.state_dict())
    sgd = optim.SGD([model.tensors["layer.weight"], model.tensors["layer.bias"]], lr=0.1)
    with pytest.raises(ValueError, match="saved by AdamW, not by SGD"):
        serialization.load_checkpoint(path, model=model, optimizer=sgd)
    assert_same_arrays(before, host(model.state_dict()))
    assert sgd.param_groups[0]["lr"] == 0.1 and "betas" not in sgd.param_groups[0]


def test_a_file_that_is_no_archive_is_named_without_advice_to_unpickle(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(serialization.CheckpointError, match="is not an .npz archive") as info:
        serialization.read_checkpoint(path)
    assert "allow_pickle" not in str(info.value)


def _adamw_and_cosine(model, lr=0.01):
    from minitx import optim

    adamw = optim.AdamW([model.tensors["layer.weight"], model.tensors["layer.bias"]], lr=lr)
    return adamw, optim.WarmupCosineSchedule(adamw, warmup_steps=2, total_steps=10)


def _train_for_real(model, optimizer, schedule, loader_rng, steps):
    """`train` for minitx's optimizers, which keep the gradients until zero_grad()."""
    for _ in range(steps):
        train(model, optimizer, schedule, loader_rng, 1, "cpu")
        optimizer.zero_grad()


def test_checkpoint_with_minitx_optimizer_and_schedule_resumes_bit_identically(tmp_path):
    path = tmp_path / "ckpt.npz"
    mt.random.seed(0)
    model, loader_rng = TinyModel(seed=0), np.random.default_rng(1)
    optimizer, schedule = _adamw_and_cosine(model)
    _train_for_real(model, optimizer, schedule, loader_rng, 3)
    serialization.save_checkpoint(path, model=model, optimizer=optimizer, schedule=schedule,
                                  step=3, rngs={"loader": loader_rng})
    _train_for_real(model, optimizer, schedule, loader_rng, 4)
    uninterrupted = host(model.state_dict())

    mt.random.seed(1234)
    resumed, loader_rng2 = TinyModel(seed=5), np.random.default_rng(99)
    optimizer2, schedule2 = _adamw_and_cosine(resumed, lr=1.0)
    serialization.load_checkpoint(path, model=resumed, optimizer=optimizer2, schedule=schedule2,
                                  rngs={"loader": loader_rng2})
    _train_for_real(resumed, optimizer2, schedule2, loader_rng2, 4)
    assert_same_arrays(uninterrupted, host(resumed.state_dict()))


def test_checkpoint_whose_schedule_does_not_fit_changes_nothing(tmp_path):
    """The schedule's state is checked before the optimizer (or anything else) is loaded."""
    from minitx import optim

    path = tmp_path / "ckpt.npz"
    source = TinyModel(seed=0)
    optimizer, schedule = _adamw_and_cosine(source)
    _train_for_real(source, optimizer, schedule, np.random.default_rng(1), 2)
    serialization.save_checkpoint(path, model=source, optimizer=optimizer, schedule=schedule)

    model = TinyModel(seed=1)
    adamw, _ = _adamw_and_cosine(model, lr=0.5)
    step = optim.StepSchedule(adamw, step_size=3)
    before = (host(model.state_dict()), [dict(g) for g in adamw.param_groups], vars(step).copy())
    with pytest.raises(ValueError, match="saved by WarmupCosineSchedule, not by StepSchedule"):
        serialization.load_checkpoint(path, model=model, optimizer=adamw, schedule=step)
    assert_same_arrays(before[0], host(model.state_dict()))
    assert [dict(g) for g in adamw.param_groups] == before[1] and adamw.state == {}
    assert vars(step) == before[2]
