"""Python values <-> NumPy arrays plus JSON: the encoding that lets a file avoid pickle.

Pickle would store an optimizer's nested state in one call, and would also run any code that a
crafted file asks for when it is loaded. :mod:`minitx.serialization` stores only arrays of
numbers and JSON text; this module turns Python values into those two and back: flat state
dicts (:func:`flat_arrays`), nested state (:func:`flatten`, :func:`unflatten`) and configs
(:func:`config_to_json`, :func:`config_from_json`).
"""

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping

import numpy as np

from minitx import backend
from minitx.tensor import Tensor

RESERVED = ("__minitx__", "__config__", "__tree__")  # the names of a file's JSON members


class CheckpointError(ValueError):
    """A file that cannot be loaded: truncated, corrupt, of the wrong kind or of a newer format."""


def host_array(value, name, fn):
    """`value` (an array of any backend, a NumPy scalar or a Tensor) as a NumPy array of
    numbers: an object array would need pickle, and text belongs in the JSON."""
    value = np.asarray(value) if isinstance(value, np.generic) else value
    value = value.data if isinstance(value, Tensor) else value
    if not backend.is_array(value):
        raise TypeError(f"{fn}: {name!r} must be an array, got {type(value).__name__}")
    array = backend.to_numpy(value)
    if array.dtype.kind not in "biufc":
        raise TypeError(f"{fn}: {name!r} has dtype {array.dtype}; only bool, integer, float and "
                        f"complex arrays can be saved (an object array would need pickle)")
    return array


def flat_arrays(state, fn):
    """Check a flat ``name -> array`` dict and copy its arrays to the host."""
    if not isinstance(state, Mapping):
        raise TypeError(f"{fn}: expected a dict of name -> array, got {type(state).__name__}")
    for name in state:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{fn}: names must be non-empty strings, got {name!r}")
        if name in RESERVED:
            raise ValueError(f"{fn}: the name {name!r} is reserved for the file's metadata")
    return {name: host_array(value, name, fn) for name, value in state.items()}


def flatten(tree, fn):
    """Split nested state into ``(skeleton, arrays)``: JSON values, and ``{path: array}``.

    `tree` holds dicts (str or int keys), lists, tuples, arrays of any backend, Tensors, NumPy
    scalars, None, bools, ints, floats and strings; anything else is a TypeError that names its
    path and starts with `fn`, the public function called. Each array is named by its path,
    e.g. ``"optimizer/state/3/exp_avg"``. JSON has no tuples, int keys, NaN or arrays, so the
    skeleton writes those as one-key objects (a plain JSON object never occurs in it):
    ``{"dict": [[key, node], ...]}`` (keeps int keys and the order), ``{"tuple": [node, ...]}``,
    ``{"array": path}``, ``{"scalar": path}`` (a NumPy scalar, stored as a 0-d array) and
    ``{"float": "nan"}`` (also "inf" and "-inf").
    """
    arrays, taken = {}, set(RESERVED)

    def store(node, path, tag):
        name = base = "/".join(path) or "root"
        number = 0
        while name in taken:  # a key holding "/" can collide with a deeper path: number it
            number += 1
            name = f"{base}#{number}"
        taken.add(name)
        arrays[name] = host_array(node, name, fn)
        return {tag: name}

    def encode(node, path):
        if isinstance(node, np.generic):  # before float: np.float64 is a float subclass
            return store(node, path, "scalar")
        if isinstance(node, float) and not math.isfinite(node):
            return {"float": repr(node)}
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, dict):
            for key in node:
                if not isinstance(key, (str, int)):
                    raise TypeError(f"{fn}: dict keys must be str or int, got "
                                    f"{type(key).__name__} {key!r} at {'/'.join(path)!r}")
            return {"dict": [[k, encode(v, [*path, str(k)])] for k, v in node.items()]}
        if isinstance(node, (list, tuple)):
            items = [encode(value, [*path, str(i)]) for i, value in enumerate(node)]
            return items if isinstance(node, list) else {"tuple": items}
        if isinstance(node, Tensor) or backend.is_array(node):
            return store(node, path, "array")
        raise TypeError(f"{fn}: cannot store a {type(node).__name__} at {'/'.join(path)!r}; "
                        f"supported are dicts, lists, tuples, arrays, numbers, strings and None")

    return encode(tree, []), arrays


def unflatten(skeleton, arrays):
    """Rebuild the tree that :func:`flatten` split; ValueError for a damaged skeleton."""
    if isinstance(skeleton, list):
        return [unflatten(node, arrays) for node in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if len(skeleton) != 1:
        raise ValueError(f"malformed skeleton node {skeleton!r}")
    (tag, payload), = skeleton.items()
    if tag == "dict":
        return {key: unflatten(node, arrays) for key, node in payload}
    if tag == "tuple":
        return tuple(unflatten(node, arrays) for node in payload)
    if tag == "float":
        return float(payload)
    if tag not in ("array", "scalar"):
        raise ValueError(f"unknown skeleton tag {tag!r}")
    if payload not in arrays:
        raise ValueError(f"the skeleton refers to array {payload!r}, which is missing")
    return arrays[payload] if tag == "array" else arrays[payload][()]


def config_to_json(config, fn):
    """``{"class": "module.Name", "fields": dataclasses.asdict(config)}``, or None."""
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


def config_from_json(stored, cls, fn):
    """``cls(**fields)`` (or the fields as a dict without `cls`), turning back what JSON
    changed: tuples became lists and nested dataclasses dicts. The type hints say which."""
    if stored is None or cls is None:
        return None if stored is None else stored["fields"]
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{fn}: config_cls must be a dataclass, got {cls!r}")
    fields = stored["fields"]
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls) if f.init})
    if unknown:
        raise ValueError(f"{fn}: the saved config has fields {unknown} that {cls.__name__} "
                         f"does not define")
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # unresolvable annotations: take the values as stored
        hints = {}
    return cls(**{name: _coerce(hints.get(name), value, fn) for name, value in fields.items()})


def _coerce(hint, value, fn):
    """Give a JSON value the type that its annotation `hint` asks for: a tuple or a dataclass
    (also as an option of ``X | None``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # the first option that changes the value
        return next((c for c in (_coerce(a, value, fn) for a in args) if c is not value), value)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_json({"fields": value}, hint, fn)
    if (hint is tuple or origin is tuple) and isinstance(value, list):
        if args[-1:] == (Ellipsis,):  # tuple[int, ...]
            args = args[:1] * len(value)
        hints = args if len(args) == len(value) else (None,) * len(value)
        return tuple(_coerce(h, v, fn) for h, v in zip(hints, value))
    return value
