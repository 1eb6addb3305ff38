"""Saving and loading weights and whole training checkpoints: no pickle, atomic writes.

A file is an ordinary ``.npz`` (a zip archive of one ``.npy`` per array), so
``numpy.load(path, allow_pickle=False)`` reads it anywhere, without CuPy and without minitx.
Arrays are copied to the host before writing, and a model's ``load_state_dict`` moves them onto
its own device: a checkpoint saved on a GPU loads on a CPU-only machine, and the reverse. Up to
three members hold UTF-8 JSON (as uint8 arrays): ``__minitx__`` (format, version and kind,
checked on every load), ``__config__`` (the model's config and its class name) and
``__tree__`` (the skeleton of nested state such as an optimizer's, see
:func:`minitx._tree.flatten`). A path ending in ``.safetensors`` uses that format instead,
through the optional ``safetensors`` package (flat weights only; the JSON goes into its
metadata), so Hugging Face weights load too.

Why no pickle: unpickling runs whatever code the file asks for, so loading a downloaded
checkpoint could take over the machine. Why atomic: a crash or a full disk halfway through a
save must not destroy the last good checkpoint, so every file goes through
:func:`minitx.data.cache.atomic_write`. A zip archive keeps a CRC-32 per member and its table of
contents at the end, so a truncated or damaged file raises :class:`CheckpointError` instead of
giving wrong numbers. Typical use::

    save("runs/gpt/model.npz", model, config)             # weights + config
    state, config = load("runs/gpt/model.npz", model, config_cls=GPTConfig)
    save_checkpoint("runs/gpt/ckpt.npz", model=model, optimizer=opt, schedule=sched, step=step)
    step = load_checkpoint("runs/gpt/ckpt.npz", model=model, optimizer=opt, schedule=sched)["step"]
"""

import json
import operator
import os
import struct
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy_format

from minitx import random as mt_random
from minitx._tree import (
    RESERVED,
    CheckpointError,
    config_from_json,
    config_to_json,
    flat_arrays,
    flatten,
    unflatten,
)
from minitx.data.cache import atomic_write
from minitx.nn.state_dict import check_state_dict

FORMAT_VERSION = 1  # bump when the layout changes; loading refuses files from the future
_RESERVED = _HEADER, _CONFIG, _TREE = RESERVED  # the names of the JSON members
_LOADERS = {"state_dict": "load_state_dict", "model": "load",
            "checkpoint": "load_checkpoint"}  # the file's "kind" -> the function that reads it
_CHECKPOINT_PARTS = {"model", "optimizer", "schedule", "step", "rng", "extra"}
# What reading a damaged zip or .npy raises (a missing file's FileNotFoundError comes first).
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, RuntimeError,
           NotImplementedError, struct.error, OverflowError, MemoryError)
# .safetensors dtype names -> NumPy dtypes (little-endian). NumPy has no bfloat16: BF16 is read
# as the upper 16 bits of a float32, which holds every bfloat16 exactly.
_SAFETENSORS_DTYPES = {"BOOL": "?", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2",
                       "F16": "<f2", "U32": "<u4", "I32": "<i4", "F32": "<f4", "U64": "<u8",
                       "I64": "<i8", "F64": "<f8", "BF16": "<u2"}


# --------------------------------------------------------------------------------------------
# Weights and configs, and whole checkpoints
# --------------------------------------------------------------------------------------------

def save_state_dict(path, state):
    """Save a flat ``name -> array`` dict (any backend), atomically; TypeError for names that
    are not strings or arrays that hold objects."""
    _write_file(path, "state_dict", flat_arrays(state, "save_state_dict"))


def load_state_dict(path):
    """Load a flat ``name -> numpy.ndarray`` dict saved by :func:`save_state_dict` or :func:`save`;
    a plain ``.npz`` of ``numpy.savez`` loads too. CheckpointError for a damaged file."""
    return _read_file(path, "load_state_dict", ("state_dict", "model"))[1]


def save(path, model, config=None):
    """Save `model`'s weights (``model.state_dict()``, dotted names) and `config` in one file.

    `config` is a dataclass instance (typically the model's frozen config), a dict of JSON
    values, or None.
    """
    state = flat_arrays(_state_of(model, "save"), "save")
    _write_file(path, "model", state, config=config_to_json(config, "save"))


def load(path, model=None, config_cls=None, strict=True):
    """Load what :func:`save` saved; with `model`, load the weights into it.

    Args:
        path: the file to read.
        model: if given, receives the weights through ``model.load_state_dict(state, strict)``,
            which places them on the model's device. Every name of another shape or dtype, and
            with ``strict`` every name missing from the file or unexpected in it, is named in
            one ValueError (:func:`minitx.nn.state_dict.check_state_dict`) before anything changes.
        config_cls: the config's dataclass, to get the config back as an instance of it rather
            than as the stored dict (None when no config was saved).

    Returns:
        ``(state, config)``: the weights as ``{name: numpy.ndarray}`` and the config.
    """
    meta, state = _read_file(path, "load", ("model", "state_dict"))
    if model is not None:
        _check_names("load", path, model, state, strict)
        model.load_state_dict(state, strict=strict)
    return state, config_from_json(meta["config"], config_cls, "load")


def load_config(path, config_cls=None):
    """Read only the config stored by :func:`save` or :func:`save_checkpoint` (None if absent):
    build the model from it, then load the weights. No guessing from the weights' shapes."""
    meta, _ = _read_file(path, "load_config", ("model", "checkpoint"), names=())
    return config_from_json(meta["config"], config_cls, "load_config")


def save_checkpoint(path, *, model, optimizer=None, schedule=None, step=0, config=None,
                    extra=None, rngs=None):
    """Save everything training needs to resume bit-identically, in one atomic write.

    Args:
        path: the file to write; the previous one stays intact until this one is complete.
        model: anything with ``state_dict()``.
        optimizer, schedule: anything with ``state_dict()`` returning nested state, or None.
        step: the number of optimizer steps taken so far.
        config: the model's config, stored as in :func:`save`.
        extra: any further nested state (best loss, a data loader's position, ...).
        rngs: ``{name: numpy.random.Generator}`` whose states to store besides minitx's default
            generator, e.g. ``{"loader": loader_rng}``.
    """
    fn = "save_checkpoint"
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"{fn}: step must be an int, got {type(step).__name__}") from None
    tree = {"model": flat_arrays(_state_of(model, fn), fn),
            "optimizer": None if optimizer is None else optimizer.state_dict(),
            "schedule": None if schedule is None else schedule.state_dict(),
            "step": step,
            "rng": {"minitx": mt_random.get_state(),
                    "generators": {name: gen.bit_generator.state
                                   for name, gen in _generators(rngs, fn).items()}},
            "extra": extra}
    skeleton, arrays = flatten(tree, fn)
    _write_file(path, "checkpoint", arrays, config_to_json(config, fn), skeleton)


def load_checkpoint(path, *, model, optimizer=None, schedule=None, rngs=None, config_cls=None,
                    strict=True):
    """Restore a :func:`save_checkpoint` file into `model`, `optimizer`, `schedule`, minitx's
    default generator and the generators in `rngs`.

    Everything is checked first: a file that does not fit (the model's names with ``strict``,
    its shapes, the optimizer's or the schedule's class, groups and settings, a missing
    optimizer, schedule or generator state) raises ValueError and leaves the model, the
    optimizer and the schedule as they were. An optimizer or schedule is checked through its
    ``check_state_dict`` method (every minitx one has it; one without it loads unchecked). The
    optimizer places its arrays next to its parameters.

    Returns:
        ``{"step": int, "extra": ..., "config": ...}``; the config is an instance of
        `config_cls` when given, otherwise a dict (None when no config was saved).
    """
    fn = "load_checkpoint"
    tree, meta = _read_checkpoint(path, fn)
    generators, saved_rngs = _generators(rngs, fn), tree["rng"]["generators"]
    _check_names(fn, path, model, tree["model"], strict)
    for name, obj in (("optimizer", optimizer), ("schedule", schedule)):
        if obj is not None and tree[name] is None:
            raise ValueError(f"{fn}: {path} holds no {name} state (saved without {name}=)")
        check = getattr(obj, "check_state_dict", None)
        if check is not None:  # so that a schedule that does not fit stops the optimizer too
            check(tree[name])
    for name, gen in generators.items():
        kind = type(gen.bit_generator).__name__
        if saved_rngs.get(name, {}).get("bit_generator") != kind:
            raise ValueError(f"{fn}: {path} holds no {kind} state for generator {name!r}; it "
                             f"holds {sorted(saved_rngs)}")

    for name, obj in (("optimizer", optimizer), ("schedule", schedule)):
        if obj is not None:  # checked above (where it has check_state_dict): it fits
            obj.load_state_dict(tree[name])
    model.load_state_dict(tree["model"], strict=strict)  # checked above: it fits
    mt_random.set_state(tree["rng"]["minitx"])
    for name, gen in generators.items():
        gen.bit_generator.state = saved_rngs[name]
    return {"step": tree["step"], "extra": tree["extra"],
            "config": config_from_json(meta["config"], config_cls, fn)}


def read_checkpoint(path):
    """The whole content of a :func:`save_checkpoint` file as nested dicts of NumPy arrays,
    without a model to load it into: for inspecting a file or comparing two.

    Returns:
        ``{"model": {name: array}, "optimizer": ..., "schedule": ..., "step": int, "rng":
        ..., "extra": ...}``.
    """
    return _read_checkpoint(path, "read_checkpoint")[0]


def _read_checkpoint(path, fn):
    meta, arrays = _read_file(path, fn, ("checkpoint",))
    tree = _unflatten(path, meta["tree"], arrays)
    if not (isinstance(tree, dict) and _CHECKPOINT_PARTS <= set(tree)):
        raise CheckpointError(f"{fn}: {path} lacks parts of a minitx checkpoint")
    return tree, meta


def _state_of(model, fn):
    if not callable(getattr(model, "state_dict", None)):
        raise TypeError(f"{fn}: model must have a state_dict() method, got "
                        f"{type(model).__name__}; use save_state_dict for a plain dict")
    return model.state_dict()


def _unflatten(path, skeleton, arrays):
    try:
        if skeleton is None:
            raise ValueError(f"no {_TREE} member")
        return unflatten(skeleton, arrays)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a complete minitx checkpoint ({exc})") from exc


def _check_names(fn, path, model, state, strict):
    check_state_dict(model.state_dict(), state, strict,
                     f"{fn}: {path} does not fit {type(model).__name__}")


def _generators(rngs, fn):
    for name, gen in (rngs or {}).items():
        if not isinstance(gen, np.random.Generator):
            raise TypeError(f"{fn}: rngs[{name!r}] must be a numpy.random.Generator, got "
                            f"{type(gen).__name__}")
    return rngs or {}


# --------------------------------------------------------------------------------------------
# The file: .npz through numpy, .safetensors through the safetensors package
# --------------------------------------------------------------------------------------------

def _write_file(path, kind, arrays, config=None, skeleton=None):
    header = {"format": "minitx", "version": FORMAT_VERSION, "kind": kind}
    texts = {_HEADER: header, _CONFIG: config, _TREE: skeleton}
    members = {key: _json_array(value) for key, value in texts.items() if value is not None}
    members.update(arrays)
    if not os.fspath(path).lower().endswith(".safetensors"):
        atomic_write(path, lambda file: write_npz(file, members))
        return
    if skeleton is not None:
        raise ValueError(f"save_{kind}: a .safetensors file holds flat tensors only; save the "
                         f"{kind} to an .npz")
    data = _safetensors_bytes(members)  # checked and encoded before the file is touched
    atomic_write(path, lambda file: file.write(data))


def _read_file(path, fn, kinds, names=None):
    """Read a file's arrays (all, or `names` only) and check its header; return ``(meta,
    arrays)``, meta with "kind", "version", "config" and "tree" (None where absent)."""
    wanted = None if names is None else {*_RESERVED, *names}
    read = _read_safetensors if os.fspath(path).lower().endswith(".safetensors") else _read_npz
    arrays = read(path, wanted)
    try:
        meta = _from_json_array(arrays.pop(_HEADER)) if _HEADER in arrays else {
            "kind": "state_dict", "version": 0}  # a plain .npz from elsewhere: arrays only
        for key, member in (("config", _CONFIG), ("tree", _TREE)):
            meta[key] = _from_json_array(arrays.pop(member)) if member in arrays else None
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


def _json_array(obj):
    return np.frombuffer(json.dumps(obj, allow_nan=False).encode("utf-8"), dtype=np.uint8)


def _from_json_array(array):
    return json.loads(array.tobytes().decode("utf-8"))


def write_npz(file, arrays):
    """Write `arrays` (name -> NumPy array) to `file` as an .npz: one .npy member per name."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                npy_format.write_array(member, array, allow_pickle=False)


def _read_npz(path, names):
    """The arrays of an .npz (all, or those in `names`); each member's CRC-32 is checked as it
    is read, and numpy refuses an object array before reading any of it."""
    arrays, name = {}, None
    with open(path, "rb") as file:  # a missing file raises FileNotFoundError: it is no damage
        try:
            npz = np.load(file, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            for name in npz.files:
                if names is None or name in names:
                    arrays[name] = npz[name]
                    if not isinstance(arrays[name], np.ndarray):  # numpy gives bytes for those
                        raise ValueError(f"member {name!r} is not an .npy array")
        except _DAMAGE as exc:
            if "Object arrays cannot be loaded" in str(exc):
                raise CheckpointError(f"{path}: entry {name!r} holds Python objects, which only "
                                      f"pickle can read; minitx never unpickles") from exc
            if "pickled" in str(exc):  # not an archive at all; NumPy's hint would be to unpickle
                raise CheckpointError(f"{path} is not an .npz archive (NumPy can read it only as "
                                      f"pickled data, which minitx never loads)") from exc
            raise CheckpointError(f"{path} is not a complete minitx file (truncated or "
                                  f"corrupt: {type(exc).__name__}: {exc})") from exc
    return arrays


def _safetensors():
    try:
        import safetensors.numpy  # binds safetensors, and loads its NumPy part
    except ImportError:
        raise ImportError(".safetensors files need the safetensors package: pip install "
                          "'minitx[safetensors]', or save to an .npz") from None
    return safetensors


def _safetensors_bytes(members):
    """Encode the arrays as .safetensors; the JSON members go into its metadata."""
    st = _safetensors()
    writable = {np.dtype(t) for code, t in _SAFETENSORS_DTYPES.items() if code != "BF16"}
    metadata = {key: members.pop(key).tobytes().decode("utf-8")
                for key in _RESERVED if key in members}
    for name, array in members.items():
        members[name] = np.asarray(array, array.dtype.newbyteorder("<"), order="C")
        if members[name].dtype not in writable:
            raise TypeError(f"{name!r} has dtype {array.dtype}, which .safetensors cannot hold; "
                            f"save to an .npz instead")
    return st.numpy.save(members, metadata=metadata)


def _read_safetensors(path, names):
    st = _safetensors()
    with open(path, "rb") as file:  # a missing file raises FileNotFoundError: it is no damage
        data = file.read()
    try:
        tensors = st.deserialize(data)
        with st.safe_open(path, framework="numpy") as file:
            metadata = file.metadata() or {}
    except st.SafetensorError as exc:
        raise CheckpointError(f"{path} is not a complete .safetensors file (truncated or "
                              f"corrupt: {exc})") from exc
    arrays = {key: np.frombuffer(text.encode("utf-8"), np.uint8)
              for key, text in metadata.items() if key in _RESERVED}
    for name, tensor in tensors:
        code = tensor["dtype"]
        if names is not None and name not in names:
            continue
        if code not in _SAFETENSORS_DTYPES:
            raise CheckpointError(f"{path}: {name!r} has dtype {code}, which minitx cannot read")
        raw = np.frombuffer(tensor["data"], _SAFETENSORS_DTYPES[code])
        if code == "BF16":  # bfloat16 is the upper half of a float32's bits
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        arrays[name] = raw.astype(raw.dtype.newbyteorder("="), copy=False).reshape(
            tuple(tensor["shape"]))
    return arrays
