"""Python values <-> NumPy arrays plus JSON <-> an .npz: the encoding that avoids pickle.

Pickle would store an optimizer's nested state in one call, and would also run any code that a
crafted file asks for when it is loaded. :mod:`minitx.serialization` stores only NumPy arrays of
numbers and JSON text instead. This module turns Python values into those two things and back,
and writes and reads the file that holds them; serialization.py decides what goes in a file and
writes it atomically.

* :func:`flat_arrays`: a flat state dict ``name -> array`` (any backend) -> host NumPy arrays;
* :func:`flatten` / :func:`unflatten`: a nested tree (an optimizer's ``state_dict()``) -> a flat
  dict of its arrays, named by path (``"optimizer/state/3/exp_avg"``), plus a JSON *skeleton*
  of everything else, in which each array's place holds its name;
* :func:`config_to_json` / :func:`config_from_json`: a frozen config dataclass -> JSON and back;
* :func:`write_npz` / :func:`read_npz`: flat arrays (JSON rides along as uint8 arrays, see
  :func:`json_array`) -> an ``.npz`` file and back. An ``.npz`` is a zip archive of ``.npy``
  files; each member's header (dtype, shape) is checked before its data is read, object arrays
  are refused, and damage surfaces as :class:`CheckpointError`, never as wrong numbers.

JSON has no tuples, no integer keys and no NaN, so the skeleton tags what it cannot say directly.
A JSON object in the skeleton is always one such tag::

    {"dict": [[key, node], ...]}   a dict; the pairs keep int keys ints, and the order
    {"tuple": [node, ...]}         a tuple (a JSON list is a list)
    {"array": "name"}              a numpy.ndarray, stored under "name"
    {"scalar": "name"}             a NumPy scalar such as np.float32(0.5), stored as a 0-d array
    {"float": "nan"}               a float that JSON cannot write: nan, inf or -inf

None, bools, ints, finite floats and strings are written as themselves.
"""

import dataclasses
import json
import math
import os
import struct
import types
import typing
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np
from numpy.lib import format as npy_format

from minitx import backend
from minitx.tensor import Tensor

# What the zip and .npy readers raise on a damaged file. A missing file is not damage, and its
# FileNotFoundError is raised before these are caught.
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
           NotImplementedError, struct.error, OverflowError)

ARRAY_KINDS = "biufc"  # bool, signed and unsigned int, float, complex: what files may hold


class CheckpointError(ValueError):
    """A file that cannot be loaded: truncated, corrupt, of the wrong kind or of a newer format."""


def host_array(value, name, fn):
    """Return `value` (an array of any backend, a NumPy scalar or a Tensor) as a NumPy array.

    Args:
        value: the array to store. Device arrays are copied to the host explicitly, so the file
            never needs CuPy to be read.
        name: where the array sits, for error messages.
        fn: the public function that was called, for error messages.

    Raises:
        TypeError: `value` is not an array, or holds something other than numbers and bools
            (object arrays would need pickle; strings belong in the JSON part).
    """
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not backend.is_array(value):
        raise TypeError(f"{fn}: {name!r} must be an array, got {type(value).__name__}")
    array = backend.to_numpy(value)
    if array.dtype.kind not in ARRAY_KINDS:
        raise TypeError(f"{fn}: {name!r} has dtype {array.dtype}; only bool, integer, float and "
                        f"complex arrays can be saved (an object array would need pickle)")
    return array


def flat_arrays(state, fn, reserved=()):
    """Check a flat ``name -> array`` dict and copy its arrays to the host."""
    if not isinstance(state, Mapping):
        raise TypeError(f"{fn}: expected a dict of name -> array, got {type(state).__name__}")
    arrays = {}
    for name, value in state.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{fn}: names must be non-empty strings, got {name!r}")
        if name in reserved:
            raise ValueError(f"{fn}: the name {name!r} is reserved for the file's metadata")
        arrays[name] = host_array(value, name, fn)
    return arrays


def flatten(tree, fn, reserved=()):
    """Split `tree` into a JSON-able skeleton and a flat dict of its NumPy arrays.

    Args:
        tree: nested dicts (str or int keys), lists, tuples, arrays of any backend, Tensors,
            NumPy scalars, None, bools, ints, floats and strings.
        fn: the public function that was called, for error messages.
        reserved: array names that are already taken (the file's own members).

    Returns:
        ``(skeleton, arrays)``: the skeleton is made of JSON values only; ``arrays`` maps each
        array's name (its path, e.g. ``"optimizer/state/3/exp_avg"``) to a NumPy array.

    Raises:
        TypeError: a leaf or dict key of an unsupported type; the message names its path.
    """
    arrays = {}
    taken = set(reserved)

    def new_name(path):
        base = name = "/".join(path) or "root"
        number = 1
        while name in taken:  # a key containing "/" can collide with a deeper path: number it
            name, number = f"{base}#{number}", number + 1
        taken.add(name)
        return name

    def encode(node, path):
        if isinstance(node, np.generic):  # before float: np.float64 is a float subclass
            name = new_name(path)
            arrays[name] = host_array(node, name, fn)
            return {"scalar": name}
        if node is None or isinstance(node, (bool, int, str)):
            return node
        if isinstance(node, float):
            return node if math.isfinite(node) else {"float": repr(node)}
        if isinstance(node, dict):
            pairs = []
            for key, value in node.items():
                if not isinstance(key, (str, int)):
                    raise TypeError(f"{fn}: dict keys must be str or int, got "
                                    f"{type(key).__name__} {key!r} at {'/'.join(path)!r}")
                pairs.append([key, encode(value, path + [str(key)])])
            return {"dict": pairs}
        if isinstance(node, (list, tuple)):
            items = [encode(value, path + [str(i)]) for i, value in enumerate(node)]
            return items if isinstance(node, list) else {"tuple": items}
        if isinstance(node, Tensor) or backend.is_array(node):
            name = new_name(path)
            arrays[name] = host_array(node, name, fn)
            return {"array": name}
        raise TypeError(f"{fn}: cannot store a {type(node).__name__} at {'/'.join(path)!r}; "
                        f"supported are dicts, lists, tuples, arrays, numbers, strings and None")

    return encode(tree, []), arrays


def unflatten(skeleton, arrays):
    """Rebuild the tree that :func:`flatten` split into `skeleton` and `arrays`.

    Raises:
        ValueError: the skeleton is malformed or names an array that is not in `arrays`
            (a damaged file).
    """

    def decode(node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [decode(value) for value in node]
        if not (isinstance(node, dict) and len(node) == 1):
            raise ValueError(f"malformed skeleton node {node!r}")
        (tag, payload), = node.items()
        if tag == "dict":
            return {key: decode(value) for key, value in payload}
        if tag == "tuple":
            return tuple(decode(value) for value in payload)
        if tag == "float":
            return float(payload)
        if tag in ("array", "scalar"):
            if payload not in arrays:
                raise ValueError(f"the skeleton refers to array {payload!r}, which is missing")
            return arrays[payload] if tag == "array" else arrays[payload][()]
        raise ValueError(f"unknown skeleton tag {tag!r}")

    return decode(skeleton)


def map_arrays(tree, fn):
    """Return a copy of `tree` with `fn` applied to every ``numpy.ndarray`` leaf."""
    if isinstance(tree, dict):
        return {key: map_arrays(value, fn) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(map_arrays(value, fn) for value in tree)
    return fn(tree) if isinstance(tree, np.ndarray) else tree


# --------------------------------------------------------------------------------------------
# Configs <-> JSON
# --------------------------------------------------------------------------------------------

def config_to_json(config, fn):
    """Return ``{"class": "module.Name", "fields": dataclasses.asdict(config)}`` (or None)."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        cls = type(config)
        stored = {"class": f"{cls.__module__}.{cls.__qualname__}",
                  "fields": dataclasses.asdict(config)}
    elif isinstance(config, Mapping):
        stored = {"class": None, "fields": dict(config)}
    else:
        raise TypeError(f"{fn}: config must be a dataclass instance or a dict, got "
                        f"{type(config).__name__}")
    try:
        json.dumps(stored, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{fn}: the config cannot be written as JSON ({exc}); its fields must "
                        f"be numbers, strings, bools, None, lists, tuples or dicts") from exc
    return stored


def config_from_json(stored, config_cls, fn):
    """Rebuild a config as `config_cls` or, without a class, return its fields as a dict."""
    if stored is None or config_cls is None:
        return None if stored is None else stored["fields"]
    return _build_config(config_cls, stored["fields"], fn)


def _build_config(cls, fields, fn):
    """``cls(**fields)``, turning back what JSON changed: tuples became lists, and nested
    dataclasses became dicts. The class's type hints say which is which."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{fn}: config_cls must be a dataclass, got {cls!r}")
    known = {field.name for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{fn}: the saved config has fields {unknown} that {cls.__name__} "
                         f"does not define")
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # unresolvable annotations: take the values as stored
        hints = {}
    return cls(**{name: _coerce(hints.get(name), value, fn) for name, value in fields.items()})


def _coerce(hint, value, fn):
    """Give a JSON value the type that the annotation `hint` asks for (tuple or dataclass)."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return _build_config(hint, value, fn)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if (hint is tuple or origin is tuple) and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[int, ...]
            args = (args[0],) * len(value)
        hints = args if len(args) == len(value) else (None,) * len(value)
        return tuple(_coerce(h, v, fn) for h, v in zip(hints, value))
    if origin is list and isinstance(value, list) and args:
        return [_coerce(args[0], v, fn) for v in value]
    for option in args if origin in (typing.Union, types.UnionType) else ():
        coerced = _coerce(option, value, fn)  # Optional[tuple[int, int]] and friends
        if coerced is not value:
            return coerced
    return value


# --------------------------------------------------------------------------------------------
# JSON and arrays <-> an .npz file, read without pickle
# --------------------------------------------------------------------------------------------

def json_array(obj):
    """Encode `obj` as UTF-8 JSON in a uint8 array, so that it can sit in an .npz."""
    return np.frombuffer(json.dumps(obj, allow_nan=False).encode("utf-8"), dtype=np.uint8)


def json_from_array(array):
    """Decode what :func:`json_array` encoded."""
    return json.loads(array.tobytes().decode("utf-8"))


def write_npz(file, arrays):
    """Write `arrays` (name -> NumPy array) to `file` as an .npz: one .npy member per name."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                npy_format.write_array(member, array, allow_pickle=False)


def read_npz(path, names=None):
    """Read the arrays of an .npz (all of them, or those in `names`), never unpickling."""
    arrays = {}
    with open(path, "rb") as file:  # a missing file raises FileNotFoundError, as it should
        try:
            with zipfile.ZipFile(file) as archive:  # the table of contents sits at the end
                for info in archive.infolist():
                    if not info.filename.endswith(".npy"):
                        raise ValueError(f"member {info.filename!r} is not an .npy array")
                    name = info.filename[:-len(".npy")]
                    if names is None or name in names:
                        arrays[name] = _read_member(path, archive, info)
        except CheckpointError:
            raise
        except _DAMAGE as exc:
            raise CheckpointError(f"{path} is not a complete minitx file (truncated or "
                                  f"corrupt: {type(exc).__name__}: {exc})") from exc
    return arrays


def _read_member(path, archive, info):
    """Read one .npy member; its header is checked before any data is touched."""
    with archive.open(info) as member:
        version = npy_format.read_magic(member)
        read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                       else npy_format.read_array_header_2_0)
        shape, _, dtype = read_header(member)
        if dtype.hasobject:
            raise CheckpointError(f"{path}: entry {info.filename!r} holds Python objects "
                                  f"(dtype {dtype}), which only pickle can read; minitx never "
                                  f"unpickles")
        size = member.tell() + math.prod(shape) * dtype.itemsize
        if size != info.file_size:  # a damaged shape: stop before allocating for it
            raise ValueError(f"member {info.filename!r} has {info.file_size} bytes, but its "
                             f"header describes {size}")
        member.seek(0)
        return npy_format.read_array(member, allow_pickle=False)  # the CRC is checked at EOF


# --------------------------------------------------------------------------------------------
# Arrays <-> a .safetensors file, written and read here without the safetensors package
# --------------------------------------------------------------------------------------------
# The format (github.com/huggingface/safetensors): an 8-byte little-endian length N, N bytes of
# JSON giving each tensor's dtype, shape and [begin, end) byte offsets (plus "__metadata__", a
# dict of strings), then the tensors' raw little-endian bytes in C order. No CRC: unlike an .npz,
# a flipped bit in the data goes unnoticed; a truncated file is caught by its size.
SAFETENSORS_DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16,
                      "I16": np.int16, "F16": np.float16, "U32": np.uint32, "I32": np.int32,
                      "F32": np.float32, "U64": np.uint64, "I64": np.int64, "F64": np.float64}


def write_safetensors(file, arrays, metadata=()):
    """Write `arrays` as .safetensors; the uint8 JSON arrays named in `metadata` (the file's
    header and config) go into its ``"__metadata__"`` as strings."""
    codes = {np.dtype(t).newbyteorder("<"): code for code, t in SAFETENSORS_DTYPES.items()}
    header, tensors, offset = {"__metadata__": {}}, [], 0
    for name, array in arrays.items():
        if name in metadata:
            header["__metadata__"][name] = array.tobytes().decode("utf-8")
            continue
        little = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
        if little.dtype not in codes:
            raise TypeError(f"{name!r} has dtype {array.dtype}, which .safetensors cannot hold; "
                            f"save to an .npz instead")
        header[name] = {"dtype": codes[little.dtype], "shape": list(little.shape),
                        "data_offsets": [offset, offset + little.nbytes]}
        tensors.append(little)
        offset += little.nbytes
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad with spaces so that the data starts 8-byte aligned
    file.write(struct.pack("<Q", len(text)) + text)
    for tensor in tensors:
        file.write(tensor.tobytes())


def read_safetensors(path, names=None, metadata=()):
    """Read the tensors of a .safetensors file (all, or those in `names`) as NumPy arrays.

    The ``"__metadata__"`` strings named in `metadata` come back as uint8 JSON arrays, as
    :func:`read_npz` would return them. BF16 tensors are widened to float32 exactly.
    """
    arrays = {}
    with open(path, "rb") as file:
        try:
            size = os.fstat(file.fileno()).st_size
            (length,) = struct.unpack("<Q", file.read(8))
            if length > size - 8:
                raise ValueError(f"the header claims {length} bytes; the file has {size}")
            header = json.loads(file.read(length))
            for key, text in (header.pop("__metadata__", None) or {}).items():
                if key in metadata:
                    arrays[key] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
            entries, end = {}, 0
            for name, entry in header.items():
                code, shape, (begin, stop) = entry["dtype"], entry["shape"], entry["data_offsets"]
                dtype = np.dtype(np.uint16 if code == "BF16" else SAFETENSORS_DTYPES[code])
                if stop - begin != math.prod(shape) * dtype.itemsize:
                    raise ValueError(f"{name!r}: offsets [{begin}, {stop}) do not fit {shape}")
                entries[name], end = (code, shape, begin, dtype), max(end, stop)
            if 8 + length + end != size:
                raise ValueError(f"the data should end at byte {8 + length + end}; the file "
                                 f"has {size} bytes")
            for name, (code, shape, begin, dtype) in entries.items():
                if names is None or name in names:
                    file.seek(8 + length + begin)
                    raw = np.fromfile(file, dtype.newbyteorder("<"), math.prod(shape))
                    if code == "BF16":  # bfloat16 is the upper half of a float32's bits
                        raw = (raw.astype(np.uint32) << 16).view(np.float32)
                    native = raw.dtype.newbyteorder("=")
                    arrays[name] = raw.astype(native, copy=False).reshape(tuple(shape))
        except (*_DAMAGE, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path} is not a complete .safetensors file (truncated or "
                                  f"corrupt: {type(exc).__name__}: {exc})") from exc
    return arrays
