"""Saving and loading weights and whole training checkpoints: no pickle, atomic writes.

Every file written here is an ordinary ``.npz``, a zip archive with one ``.npy`` file per array,
so ``numpy.load(path, allow_pickle=False)`` reads it anywhere, without CuPy and without minitx.
Device arrays are copied to the host before writing, loading gives NumPy arrays, and a model's
``load_state_dict`` moves them onto its own device: a checkpoint saved on a GPU loads on a
CPU-only machine, and the reverse. Next to the arrays, a file holds up to three members of UTF-8
JSON, each stored as a uint8 array:

* ``__minitx__``: ``{"format": "minitx", "version": 1, "kind": ...}``, checked on every load;
* ``__config__``: the model's config (``dataclasses.asdict``) and the name of its class;
* ``__tree__``: the skeleton of nested state such as an optimizer's (see :mod:`minitx._tree`).

Why no pickle: unpickling runs whatever code the file asks for, so loading a downloaded
checkpoint could take over the machine. Arrays are read with ``allow_pickle=False``; the rest
is JSON. A path ending in ``.safetensors`` uses that format instead (flat weights only, the JSON
in its ``__metadata__``), so Hugging Face weights load with :func:`load_state_dict`.

Why atomic: a crash or a full disk halfway through a save must not destroy the last good
checkpoint. Each file is written under a temporary name in the same folder, forced to disk with
``fsync``, and renamed over the target with ``os.replace``, which is atomic: a reader sees the
old file or the new one, never half of one. A zip archive keeps its table of contents at the
end and a CRC-32 per member, so a truncated or damaged file fails to load with
:class:`CheckpointError` instead of giving wrong numbers. Typical use::

    save("runs/gpt/model.npz", model, config)             # weights + config
    state, config = load("runs/gpt/model.npz", model, config_cls=GPTConfig)
    save_checkpoint("runs/gpt/ckpt.npz", model=model, optimizer=opt, schedule=sched, step=step)
    step = load_checkpoint("runs/gpt/ckpt.npz", model=model, optimizer=opt, schedule=sched)["step"]
"""

import operator
import os

import numpy as np

from minitx import backend
from minitx import random as mt_random
from minitx._tree import (
    CheckpointError,
    config_from_json,
    config_to_json,
    flat_arrays,
    flatten,
    json_array,
    json_from_array,
    map_arrays,
    read_npz,
    read_safetensors,
    unflatten,
    write_npz,
    write_safetensors,
)
from minitx.data.cache import atomic_write
from minitx.tensor import Tensor

FORMAT_VERSION = 1  # bump when the layout changes; loading refuses files from the future
_HEADER, _CONFIG, _TREE = "__minitx__", "__config__", "__tree__"
_RESERVED = (_HEADER, _CONFIG, _TREE)
_LOADERS = {"state_dict": "load_state_dict", "model": "load", "tree": "load_tree",
            "checkpoint": "load_checkpoint"}  # the file's "kind" -> the function that reads it


# --------------------------------------------------------------------------------------------
# Flat state dicts: name -> array
# --------------------------------------------------------------------------------------------

def save_state_dict(path, state):
    """Save a flat ``name -> array`` dict (any backend) as an ``.npz``, atomically.

    Args:
        path: the file to write; its folder is created if needed. A previous file of that name
            is replaced only once the new one is complete.
        state: ``{"blocks.0.attn.qkv.weight": array, ...}``; arrays of numbers or bools.

    Raises:
        TypeError: `state` is not a dict of str -> array, or an array holds objects.
    """
    _write_file(path, "state_dict", flat_arrays(state, "save_state_dict", _RESERVED))


def load_state_dict(path):
    """Load a flat ``name -> numpy.ndarray`` dict saved by :func:`save_state_dict` or :func:`save`.

    A plain ``.npz`` written by ``numpy.savez`` loads too, so weights converted elsewhere can
    come in. Nothing is ever unpickled.

    Raises:
        CheckpointError: the file is truncated, corrupt, holds object arrays, or is a checkpoint
            (use :func:`load_checkpoint` for those).
    """
    return _read_file(path, "load_state_dict", ("state_dict", "model"))[1]


# --------------------------------------------------------------------------------------------
# A model's weights plus its config
# --------------------------------------------------------------------------------------------

def save(path, model, config=None):
    """Save `model`'s weights under their dotted names, plus `config` as JSON, in one ``.npz``.

    Args:
        path: the file to write, atomically.
        model: anything with ``state_dict() -> {name: array}`` (an ``nn.Module``).
        config: a dataclass instance (typically the model's frozen config) or a dict of JSON
            values; None to store no config.
    """
    _write_file(path, "model", flat_arrays(_state_of(model, "save"), "save", _RESERVED),
                config=config_to_json(config, "save"))


def load(path, model=None, config_cls=None, strict=True):
    """Load weights and config saved by :func:`save`; with `model`, load the weights into it.

    Args:
        path: the file to read.
        model: if given, receives the weights through ``model.load_state_dict(state, strict)``,
            which places them on the model's device.
        config_cls: the config's dataclass; if given, the config comes back as an instance of it,
            otherwise as the stored dict (None when no config was saved).
        strict: with a model, require the file's names to match the model's exactly.

    Returns:
        ``(state, config)``: the weights as ``{name: numpy.ndarray}`` and the config.

    Raises:
        ValueError: with ``strict``, names missing from the file or unexpected in it, or shapes
            that differ; every such name is listed.
        CheckpointError: the file is truncated, corrupt, or not a minitx model file.
    """
    meta, state = _read_file(path, "load", ("model", "state_dict"))
    config = config_from_json(meta["config"], config_cls, "load")
    if model is not None:
        if strict:
            _check_names("load", path, model, state)
        model.load_state_dict(state, strict=strict)
    return state, config


def load_config(path, config_cls=None):
    """Read only the config stored by :func:`save` or :func:`save_checkpoint` (None if absent).

    Build the model from it first, then load the weights: the config travels with the weights,
    so it never has to be guessed from their shapes.
    """
    meta, _ = _read_file(path, "load_config", ("model", "checkpoint"), names=())
    return config_from_json(meta["config"], config_cls, "load_config")


# --------------------------------------------------------------------------------------------
# Nested state and whole training checkpoints
# --------------------------------------------------------------------------------------------

def save_tree(path, tree):
    """Save nested state (dicts with str or int keys, lists, tuples, arrays, numbers, strings,
    bools, None) without pickle: arrays as ``.npy`` members, the rest as a JSON skeleton."""
    skeleton, arrays = flatten(tree, "save_tree", reserved=_RESERVED)
    _write_file(path, "tree", arrays, skeleton=skeleton)


def load_tree(path):
    """Load what :func:`save_tree` saved; int keys come back as ints, arrays as NumPy arrays."""
    meta, arrays = _read_file(path, "load_tree", ("tree", "checkpoint"))
    return _unflatten(path, meta["tree"], arrays)


def save_checkpoint(path, *, model, optimizer=None, schedule=None, step=0, config=None,
                    extra=None, rngs=None):
    """Save everything training needs to resume bit-identically, in one atomic write.

    Args:
        path: the file to write. The previous checkpoint there stays intact until this one is
            complete on disk.
        model: anything with ``state_dict()``.
        optimizer, schedule: anything with ``state_dict()`` returning nested state, or None.
        step: the number of optimizer steps taken so far.
        config: the model's config, stored as in :func:`save`.
        extra: any further nested state (best loss, a data loader's position, ...).
        rngs: ``{name: numpy.random.Generator}`` whose states to store besides minitx's default
            generator, e.g. ``{"loader": loader_rng}``.

    Raises:
        TypeError: a state holds a value that cannot be stored without pickle, or `step` is
            not an integer.
    """
    fn = "save_checkpoint"
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"{fn}: step must be an int, got {type(step).__name__}") from None
    tree = {
        "model": flat_arrays(_state_of(model, fn), fn, _RESERVED),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "schedule": None if schedule is None else schedule.state_dict(),
        "step": step,
        "rng": {"minitx": mt_random.get_state(),
                "generators": {name: gen.bit_generator.state
                               for name, gen in _generators(rngs, fn).items()}},
        "extra": extra,
    }
    skeleton, arrays = flatten(tree, fn, reserved=_RESERVED)
    _write_file(path, "checkpoint", arrays, config=config_to_json(config, fn), skeleton=skeleton)


def load_checkpoint(path, *, model, optimizer=None, schedule=None, rngs=None, config_cls=None,
                    strict=True):
    """Restore a checkpoint of :func:`save_checkpoint` into `model`, `optimizer`, `schedule`,
    minitx's default generator and the generators in `rngs`.

    Everything is checked before anything is changed: a file that does not fit leaves the
    objects as they were. The optimizer's arrays are placed on the model's device.

    Returns:
        ``{"step": int, "extra": ..., "config": ...}``; the config is an instance of
        `config_cls` when given, otherwise a dict (None when no config was saved).

    Raises:
        ValueError: the model's names or shapes do not match (with ``strict``), or the file
            lacks the optimizer, schedule or generator state asked for.
        CheckpointError: the file is truncated, corrupt, or not a minitx checkpoint.
    """
    fn = "load_checkpoint"
    meta, arrays = _read_file(path, fn, ("checkpoint",))
    tree = _unflatten(path, meta["tree"], arrays)
    if not (isinstance(tree, dict) and {"model", "optimizer", "schedule", "step", "rng",
                                         "extra"} <= set(tree)):
        raise CheckpointError(f"{fn}: {path} lacks parts of a minitx checkpoint")
    generators, saved_rngs = _generators(rngs, fn), tree["rng"]["generators"]
    if strict:
        _check_names(fn, path, model, tree["model"])
    for name, obj in (("optimizer", optimizer), ("schedule", schedule)):
        if obj is not None and tree[name] is None:
            raise ValueError(f"{fn}: {path} holds no {name} state (saved without {name}=)")
    for name, gen in generators.items():
        kind = type(gen.bit_generator).__name__
        if saved_rngs.get(name, {}).get("bit_generator") != kind:
            raise ValueError(f"{fn}: {path} holds no {kind} state for generator {name!r}; it "
                             f"holds {sorted(saved_rngs)}")

    model.load_state_dict(tree["model"], strict=strict)
    if optimizer is not None:  # optimizer state lives next to the parameters it updates
        device = _device_of(model)
        optimizer.load_state_dict(map_arrays(tree["optimizer"],
                                             lambda a: backend.to_device(a, device)))
    if schedule is not None:
        schedule.load_state_dict(tree["schedule"])
    mt_random.set_state(tree["rng"]["minitx"])
    for name, gen in generators.items():
        gen.bit_generator.state = saved_rngs[name]
    return {"step": tree["step"], "extra": tree["extra"],
            "config": config_from_json(meta["config"], config_cls, fn)}


# --------------------------------------------------------------------------------------------
# Checking what goes in and what comes out
# --------------------------------------------------------------------------------------------

def _state_of(model, fn):
    if not callable(getattr(model, "state_dict", None)):
        raise TypeError(f"{fn}: model must have a state_dict() method, got "
                        f"{type(model).__name__}; use save_state_dict for a plain dict")
    return model.state_dict()


def _check_names(fn, path, model, state):
    """Raise ValueError naming every missing, unexpected and wrongly shaped entry."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{name} (file {tuple(state[name].shape)}, model {tuple(expected[name].shape)})"
              for name in sorted(set(expected) & set(state))
              if tuple(state[name].shape) != tuple(expected[name].shape)]
    problems = [f"{label}: {', '.join(names)}" for label, names in (
        ("missing keys (in the model, not in the file)", missing),
        ("unexpected keys (in the file, not in the model)", unexpected),
        ("shape mismatches", shapes)) if names]
    if problems:
        raise ValueError(f"{fn}: {path} does not fit {type(model).__name__}; "
                         + "; ".join(problems))


def _device_of(model):
    """The device of the model's first array ("cpu" for a model without any)."""
    for array in model.state_dict().values():
        return backend.device_of(array.data if isinstance(array, Tensor) else array)
    return "cpu"


def _generators(rngs, fn):
    rngs = {} if rngs is None else rngs
    for name, gen in rngs.items():
        if not isinstance(gen, np.random.Generator):
            raise TypeError(f"{fn}: rngs[{name!r}] must be a numpy.random.Generator, got "
                            f"{type(gen).__name__}")
    return rngs


def _unflatten(path, skeleton, arrays):
    if skeleton is None:
        raise CheckpointError(f"{path} has no {_TREE} member (the nested state); the file is "
                              f"damaged")
    try:
        return unflatten(skeleton, arrays)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a complete minitx checkpoint ({exc})") from exc


# --------------------------------------------------------------------------------------------
# The file itself: written atomically, its header checked when it is read
# --------------------------------------------------------------------------------------------

def _write_file(path, kind, arrays, config=None, skeleton=None):
    if _is_safetensors(path) and skeleton is not None:
        raise ValueError(f"save_{kind}: a .safetensors file holds flat tensors only; save the "
                         f"{kind} to an .npz")
    members = {_HEADER: json_array({"format": "minitx", "version": FORMAT_VERSION,
                                    "kind": kind})}
    if config is not None:
        members[_CONFIG] = json_array(config)
    if skeleton is not None:
        members[_TREE] = json_array(skeleton)
    members.update(arrays)
    _atomic_write(path, members)


def _atomic_write(path, arrays):
    """Write the members through the package's one atomic writer (see minitx.data.cache)."""
    if _is_safetensors(path):
        atomic_write(path, lambda file: write_safetensors(file, arrays, metadata=_RESERVED))
    else:
        atomic_write(path, lambda file: write_npz(file, arrays))


def _read_file(path, fn, kinds, names=None):
    """Read a minitx file (all arrays, or only `names`) and check its header.

    Returns:
        ``(meta, arrays)``: meta holds "kind", "version", "config" and "tree" (None if absent).
    """
    wanted = None if names is None else {_HEADER, _CONFIG, _TREE, *names}
    if _is_safetensors(path):
        arrays = read_safetensors(path, wanted, metadata=_RESERVED)
    else:
        arrays = read_npz(path, wanted)
    meta = {"kind": "state_dict", "version": 0}  # a plain .npz from elsewhere: arrays only
    try:
        if _HEADER in arrays:
            meta = json_from_array(arrays.pop(_HEADER))
        for key, member in (("config", _CONFIG), ("tree", _TREE)):
            meta[key] = json_from_array(arrays.pop(member)) if member in arrays else None
        kind, version = meta["kind"], meta["version"]
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{fn}: {path} has a damaged minitx header ({exc})") from exc
    if version == 0 and "state_dict" not in kinds:
        raise CheckpointError(f"{fn}: {path} has no minitx header; it was not written by "
                              f"minitx.serialization")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{fn}: {path} has format version {version!r}; this minitx "
                              f"reads versions up to {FORMAT_VERSION} (upgrade minitx)")
    if kind not in kinds:
        raise CheckpointError(f"{fn}: {path} holds a {kind!r}, expected "
                              f"{' or '.join(map(repr, kinds))}; load it with {_LOADERS.get(kind)}")
    return meta, arrays


def _is_safetensors(path):
    return os.fspath(path).endswith(".safetensors")
