"""The Optimizer base class: parameter groups, per-parameter state, zero_grad, state_dict.

An optimizer holds a list of *parameter groups*. Each group is a plain dict with the key
``"params"`` (a list of Tensors) and one key per hyper-parameter (``"lr"``, ``"weight_decay"``,
...), filled from the optimizer's defaults where the group does not set it. Groups let one model
use different settings for different tensors, e.g. no weight decay on biases and LayerNorm gains::

    decay = [p for name, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for name, p in model.named_parameters() if p.ndim < 2]
    opt = AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=3e-4)

A learning-rate schedule changes ``group["lr"]`` between steps; ``step()`` reads it each time.

``self.state`` maps each parameter (the Tensor itself, hashed by identity) to a dict of that
parameter's optimizer state (a step count, moment arrays on the parameter's device), created
lazily on its first update. :meth:`Optimizer.state_dict` flattens all of this into plain nested
dicts keyed by each parameter's position in the groups, as PyTorch does, so that a checkpoint can
be written without pickle and training resumes bit-identically after :meth:`load_state_dict`.
"""

import numbers

from minitx import backend
from minitx.tensor import Tensor

# State entries that count updates (Adam's t). They stay Python ints: cast to a float32
# parameter's dtype, a count stops growing at 2**24, where 2**24 + 1 rounds back down.
_COUNTS = ("step",)


class Optimizer:
    """Base class of the optimizers: holds the parameter groups and the per-parameter state.

    Subclasses pass their hyper-parameter ``defaults``, implement :meth:`step`, and may override
    :meth:`check_group` to reject bad hyper-parameters (calling ``super().check_group(group)``,
    which checks ``lr``, first).

    Args:
        params: an iterable of Tensors, or of dicts (parameter groups) each with a ``"params"``
            key and optional per-group hyper-parameters.
        defaults: the hyper-parameters a group gets when it does not set them.
    """

    def __init__(self, params, defaults):
        name = type(self).__name__
        if isinstance(params, (Tensor, set, frozenset, dict)):
            raise TypeError(f"{name}: params must be an ordered iterable (list, generator) of "
                            f"Tensors or of dicts, got {type(params).__name__}")
        self.defaults = dict(defaults)
        self.state = {}          # parameter Tensor -> dict of its state, filled by step()
        self.param_groups = []   # list of dicts: {"params": [...], "lr": ..., ...}
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group of parameters with its own hyper-parameters (e.g. when unfreezing layers).

        Args:
            param_group: a dict with a ``"params"`` key (a Tensor or an iterable of Tensors);
                missing hyper-parameters are taken from the optimizer's defaults.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group: a parameter group is a dict, got "
                            f"{type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}.add_param_group: the group has no 'params' key, only "
                             f"{sorted(param_group)}")
        params = param_group["params"]
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}.add_param_group: params must be ordered (a list), not a set: "
                            f"state_dict() identifies parameters by their position")
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameters must be minitx Tensors, got "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: cannot optimize a non-leaf tensor of shape {p.shape} "
                                 f"(it was computed from others; optimize those, or detach it)")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if len({id(p) for p in params}) != len(params) or seen & {id(p) for p in params}:
            raise ValueError(f"{name}: a parameter appears twice (in one group or in two groups)")
        group = {**self.defaults, **param_group, "params": params}
        self.check_group(group)
        self.param_groups.append(group)

    def check_group(self, group):
        """Raise for a bad hyper-parameter in `group`: TypeError for one that is no number,
        ValueError for one out of range. The base class checks ``lr``, the one setting every
        optimizer has; subclasses add their own after ``super().check_group(group)``."""
        if "lr" in group:
            check_nonnegative(type(self).__name__, "lr", group["lr"])

    def step(self, closure=None):
        """Update every parameter that has a gradient; subclasses implement the update rule."""
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    def zero_grad(self, set_to_none=True):
        """Forget the gradients before the next backward pass.

        Args:
            set_to_none: drop ``p.grad`` (the default, as in PyTorch: the next backward allocates
                fresh arrays). With False the arrays are zeroed in place, which is safe because
                the engine gives every leaf its own gradient array.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad[...] = 0

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self):
        """Return the optimizer's state as plain nested dicts (no Tensors, no pickle needed).

        Returns:
            ``{"optimizer": class name, "state": {index: {name: value}}, "param_groups":
            [{"lr": ..., "params": [indices]}]}``. Parameters are numbered by their position
            across the groups in order; state values are Python numbers or raw arrays of the
            parameter's device (the live arrays, not copies: save them before stepping again).
        """
        index = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            groups.append({**group, "params": [index[id(p)] for p in group["params"]]})
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"optimizer": type(self).__name__, "state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a state from :meth:`state_dict` onto the current parameters.

        The state must come from the same optimizer class (Adam's moments mean nothing to
        SGD), the groups must match in number and size and every state array must have its
        parameter's shape; everything is checked (:meth:`check_state_dict`) before anything
        changes. Arrays are copied onto each parameter's device and cast to its dtype, so a
        checkpoint saved on one device resumes on another; step counts become Python ints.
        """
        self.check_state_dict(state_dict)  # raises before anything below changes
        params = [p for group in self.param_groups for p in group["params"]]
        state = {}
        for i, saved in state_dict["state"].items():
            p = params[int(i)]  # keys may come back as strings from a JSON/npz checkpoint
            state[p] = {key: _restore(key, value, p) for key, value in saved.items()}
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = state

    def check_state_dict(self, state_dict):
        """Raise if :meth:`load_state_dict` would refuse `state_dict`; change nothing.

        :func:`minitx.serialization.load_checkpoint` calls it for the optimizer and the
        schedule before it loads either, so a checkpoint that does not fit leaves both alone.
        """
        name = f"{type(self).__name__}.load_state_dict"
        saved_class, saved_groups = state_dict.get("optimizer"), state_dict["param_groups"]
        if saved_class is not None and saved_class != type(self).__name__:
            raise ValueError(f"{name}: the state was saved by {saved_class}, not by "
                             f"{type(self).__name__}; build a {saved_class} to resume it")
        for i, saved in enumerate(saved_groups):  # a state saved before the class was recorded
            lacking = sorted(set(self.defaults) - set(saved))
            if lacking:
                raise ValueError(f"{name}: saved group {i} lacks {lacking}: the state was saved "
                                 f"by another optimizer class than {type(self).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the state has {len(saved_groups)} parameter groups, this "
                             f"optimizer has {len(self.param_groups)}")
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = [len(g["params"]) for g in saved_groups]
        if sizes != saved_sizes:
            raise ValueError(f"{name}: the saved groups hold {saved_sizes} parameters, this "
                             f"optimizer's groups hold {sizes}")
        for group, saved in zip(self.param_groups, saved_groups):  # the saved settings
            self.check_group({**group, **saved, "params": group["params"]})
        params = [p for group in self.param_groups for p in group["params"]]
        for i, saved in state_dict["state"].items():
            i = int(i)  # keys may come back as strings from a JSON/npz checkpoint
            if not 0 <= i < len(params):
                raise ValueError(f"{name}: state for parameter {i}, but there are only "
                                 f"{len(params)} parameters")
            for key, value in saved.items():
                _check_saved(key, value, params[i], f"{name}: state[{i}][{key!r}]")

    def state_of(self, p):
        """Parameter `p`'s state dict (empty at first), its arrays on p's device and in p's
        dtype: a model moved with ``Module.to`` or cast with ``Module.astype`` after some steps
        takes its optimizer's moments along at the next step (both keep the parameters
        themselves, so the optimizer still holds the right ones)."""
        state = self.state.setdefault(p, {})
        for key, value in state.items():
            if backend.is_array(value) and backend.device_of(value) != p.device:
                value = state[key] = backend.to_device(backend.to_numpy(value), p.device)
            if backend.is_array(value) and value.dtype != p.dtype and value.dtype.kind == "f":
                state[key] = value.astype(p.dtype)
        return state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} tensors, {settings}")
        return "\n".join([*lines, ")"])


def is_number(value):
    """True for a real number (int, float, NumPy scalar); False for None, strings and bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_nonnegative(where, name, value):
    """Raise unless `value`, the argument `name` of `where` (a class or function), is a number
    >= 0: TypeError for no number at all (None, a string), ValueError for a negative or NaN."""
    if not is_number(value):
        raise TypeError(f"{where}: {name} must be a number >= 0, got {value!r} (a "
                        f"{type(value).__name__})")
    if not value >= 0:  # `not >=` also catches NaN
        raise ValueError(f"{where}: {name} must be >= 0, got {value}")


def _check_saved(key, value, p, where):
    """Raise ValueError if one saved state value cannot be restored onto parameter p."""
    if key in _COUNTS:
        count = value.item() if backend.is_array(value) and value.ndim == 0 else value
        if not (is_number(count) and float(count).is_integer() and count >= 0):
            raise ValueError(f"{where} must be a whole number >= 0 (a step count), got {value!r}")
    elif backend.is_array(value) and not (value.ndim == 0 and p.ndim > 0):
        if tuple(value.shape) != p.shape:
            raise ValueError(f"{where} has shape {tuple(value.shape)}, but its parameter has "
                             f"shape {p.shape}")


def _restore(key, value, p):
    """Copy one saved state value (checked by _check_saved) onto parameter p's device and
    dtype; step counts become Python ints, other numbers pass through."""
    if key in _COUNTS:  # also a 0-d array, as a checkpoint converted from PyTorch holds it
        return int(value.item() if backend.is_array(value) else value)
    if not backend.is_array(value):
        return value
    if value.ndim == 0 and p.ndim > 0:  # a number saved as a 0-d array by a checkpoint writer
        return value.item()
    return backend.to_device(value.astype(p.dtype), p.device)  # astype copies: no sharing
