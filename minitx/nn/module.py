"""Module and Parameter: the bookkeeping every layer shares.

A :class:`Module` is a plain Python object. Its state is whatever you assign to ``self``:

* a :class:`Parameter` (a Tensor that requires grad) is a *parameter*: trained, saved in
  :meth:`Module.state_dict`;
* another Module is a *child*, and its parameters are named ``child.weight``;
* any other :class:`~minitx.tensor.Tensor` is a *buffer*: moved by :meth:`Module.to`, listed by
  :meth:`Module.named_buffers`, but NOT saved in the state dict. Buffers in minitx are things a
  layer recomputes from its configuration (the sinusoidal table of a positional encoding, a
  causal mask), so a checkpoint needs only the parameters and the config;
* lists, tuples and dicts are looked into, item by item, so ``self.blocks = [Block(), ...]``
  names its parameters ``blocks.3.attn.q_proj.weight``.

There is no ``__setattr__`` hook and no registry: every method below finds the state by walking
``vars(self)`` in the order the attributes were assigned. What you see in ``__init__`` is all
there is.

>>> from minitx import nn
>>> class TwoLayer(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.layers = [nn.Linear(3, 4), nn.Linear(4, 2)]
>>> [name for name, _ in TwoLayer().named_parameters()]
['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']
"""

import numpy as np

from minitx import backend

# StateDictError and check_state_dict, which serialization shares, live in nn/state_dict.py
from minitx.nn.state_dict import StateDictError as StateDictError
from minitx.nn.state_dict import check_state_dict
from minitx.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: a floating-point leaf with ``requires_grad=True``.

    Args:
        data: a raw array of any backend, or a Tensor (its array is shared, not copied).
        requires_grad: False freezes it (it stays a parameter and stays in the state dict).

    >>> import numpy as np
    >>> Parameter(np.zeros(2, dtype=np.float32)).requires_grad
    True
    """

    def __init__(self, data, requires_grad=True):
        data = data.data if isinstance(data, Tensor) else data
        if not backend.is_array(data):
            raise TypeError(f"Parameter wraps an array or a Tensor, got {type(data).__name__}")
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter: parameters are floating point, got dtype {data.dtype}; "
                            f"keep integer tables as buffers (plain Tensors) instead")
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Statistic(Parameter):
    """A Parameter that is saved and loaded with the weights but never trained: a running
    statistic such as BatchNorm's mean and variance (PyTorch's buffers). Its ``requires_grad``
    stays False: :meth:`Module.requires_grad_` passes it over, and setting it to True is an
    error (a gradient step would move the statistics the layer keeps itself)."""

    def __init__(self, data):
        super().__init__(data, requires_grad=False)

    @property
    def requires_grad(self):
        return False

    @requires_grad.setter
    def requires_grad(self, value):
        if value:
            raise ValueError("Statistic: a running statistic is never trained; it cannot "
                             "require grad")


def _members(name, value):
    """Yield (dotted name, value) for each Module or Tensor in `value`, looking into lists,
    tuples and dicts (but not into Modules: the caller decides whether to recurse)."""
    if isinstance(value, (Module, Tensor)):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _members(f"{name}.{i}", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            members = list(_members(f"{name}.{key}", item))
            if members and "." in str(key):  # "a.b" would read as a path in the names
                raise ValueError(f"Module: the key {key!r} of {name!r} holds a module or tensor "
                                 f"and has a dot, which would make its state-dict names "
                                 f"ambiguous; use a key without dots")
            yield from members
    elif isinstance(value, (set, frozenset)) and any(
            isinstance(item, (Module, Tensor)) for item in value):
        raise TypeError(f"Module: {name!r} is a set of modules or tensors, which has no order "
                        f"to name them by; use a list")


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


class Module:
    """Base class of every layer and model: subclass it, assign the parts in ``__init__`` and
    write ``forward``. Calling the module calls ``forward``.

    ``training`` is this module's own flag (True after construction): :meth:`train` and
    :meth:`eval` set it on every module of the tree, and layers whose behaviour depends on it
    (dropout) pass ``training=self.training`` to the functional op explicitly.
    """

    training = True  # also a class default, so a subclass that skips super().__init__() works

    def __init__(self):
        self.training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- walking the tree --------------------------------------------------------------------
    def _own_members(self):
        """Yield (name, value) for each Module, Parameter and buffer assigned to self."""
        for name, value in vars(self).items():
            yield from _members(name, value)

    def named_children(self):
        """Yield (name, module) for the direct child modules, in assignment order."""
        seen = set()
        for name, value in self._own_members():
            if isinstance(value, Module) and id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self):
        """Yield the direct child modules."""
        for _, module in self.named_children():
            yield module

    def _walk(self, prefix, seen):
        """Yield (dotted name, value) for every Module and Tensor below this module, depth
        first in assignment order; `seen` holds the ids of the modules met so far."""
        for name, value in self._own_members():
            name = _join(prefix, name)
            if isinstance(value, Module):
                if id(value) in seen:
                    continue
                seen.add(id(value))
                yield name, value
                yield from value._walk(name, seen)
            else:
                yield name, value

    def named_modules(self, prefix=""):
        """Yield (name, module) for this module ("") and every module below it, depth first.

        A module reachable by two paths (shared, or a reference back up the tree) is visited
        once, under the first name met.
        """
        yield prefix, self
        for name, value in self._walk(prefix, {id(self)}):
            if isinstance(value, Module):
                yield name, value

    def modules(self):
        """Yield this module and every module below it."""
        for _, module in self.named_modules():
            yield module

    def _named_tensors(self, want_parameters, prefix=""):
        seen = set()
        for name, value in self._walk(prefix, {id(self)}):
            if (isinstance(value, Tensor) and isinstance(value, Parameter) == want_parameters
                    and id(value) not in seen):
                seen.add(id(value))
                yield name, value

    def named_parameters(self, prefix=""):
        """Yield (dotted name, Parameter) for every parameter of the tree, depth first in
        assignment order.

        A parameter shared by two modules (tied embeddings) appears once, under its first name.
        """
        yield from self._named_tensors(want_parameters=True, prefix=prefix)

    def parameters(self):
        """Yield every Parameter of the tree once (what an optimizer needs)."""
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix=""):
        """Yield (dotted name, Tensor) for every buffer: a Tensor attribute that is not a
        Parameter. Buffers move with :meth:`to` but are not saved by :meth:`state_dict`."""
        yield from self._named_tensors(want_parameters=False, prefix=prefix)

    def buffers(self):
        """Yield every buffer of the tree once."""
        for _, b in self.named_buffers():
            yield b

    def num_parameters(self):
        """Return the number of scalar parameters in the tree (shared ones counted once).

        >>> from minitx import nn
        >>> nn.Linear(3, 4).num_parameters()
        16
        """
        return sum(p.size for p in self.parameters())

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self):
        """Return {dotted name: raw array} for every parameter, in assignment order.

        The arrays are the parameters' own ``.data`` (not copies), on their devices: save or
        copy them before training further. Buffers are not included (they are recomputed from
        the config when the model is built). A shared parameter appears once, under the name
        :meth:`named_parameters` gives it.
        """
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state, strict=True):
        """Copy arrays from `state` into the parameters of the same names.

        Each value may be a raw array of any backend or a Tensor; it must have the parameter's
        shape and dtype, and is copied onto the parameter's current device (explicitly, with
        ``backend.to_device``), into the parameter's own array: the Parameter objects stay the
        same, so an optimizer built on them stays valid. Nothing is copied unless everything
        fits.

        Args:
            state: a mapping from dotted names to arrays, e.g. from :meth:`state_dict`.
            strict: if True, keys missing from `state` and keys the model does not have are
                errors; if False they are only returned. Wrong shapes and dtypes are always
                errors.
        Returns:
            (missing, unexpected): lists of key names.
        Raises:
            StateDictError: one error listing every missing, unexpected and mismatched key.
        """
        params = dict(self.named_parameters())
        missing, unexpected = check_state_dict(
            params, state, strict, f"load_state_dict into {type(self).__name__} failed")
        for name, p in params.items():
            if name in state:
                value = state[name]
                array = value.data if isinstance(value, Tensor) else value
                p.data[...] = backend.to_device(array, p.device)  # in place: same object
        return missing, unexpected

    # ---- modes, devices, dtypes, gradients ---------------------------------------------------
    def train(self, mode=True):
        """Set ``training = mode`` on this module and every module below it; return self."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self):
        """Switch the tree to evaluation mode (``train(False)``): dropout becomes the identity."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter of the tree (running statistics, which
        are never trained, stay as they are); return self."""
        for p in self.parameters():
            if not isinstance(p, Statistic):
                p.requires_grad = requires_grad
        return self

    def to(self, device):
        """Move every parameter (with its gradient) and buffer to `device` in place; return self.

        The Parameter and buffer objects stay the same, only their arrays move, so an
        optimizer built before the move still holds the right parameters.
        """
        device = backend.normalize_device(device)
        backend.xp_for(device)  # a clear error now if the device cannot be used
        for t in [*self.parameters(), *self.buffers()]:
            t.data = backend.to_device(t.data, device)
            if t.grad is not None:
                t.grad = backend.to_device(t.grad, device)
        return self

    def astype(self, dtype):
        """Cast every floating-point parameter (with its gradient) and buffer to `dtype` in
        place, e.g. ``np.float64`` for a gradient check; return self."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Module.astype: parameters are floating point, got dtype {dtype}")
        for t in [*self.parameters(), *self.buffers()]:
            if t.dtype.kind == "f":
                t.data = t.data.astype(dtype)
                t.grad = None if t.grad is None else t.grad.astype(dtype)
        return self

    def zero_grad(self):
        """Forget every parameter's gradient (set ``.grad`` to None, as PyTorch does by
        default: the next backward then writes fresh gradients instead of adding zeros)."""
        for p in self.parameters():
            p.grad = None

    def apply(self, fn):
        """Call ``fn(module)`` on every module of the tree (e.g. a custom init); return self."""
        for module in self.modules():
            fn(module)
        return self

    # ---- repr --------------------------------------------------------------------------------
    def extra_repr(self):
        """Return the configuration shown inside the parentheses of the repr; layers override
        it (Linear: ``in_features=3, out_features=4, bias=True``)."""
        return ""

    def __repr__(self):
        """Return a tree like PyTorch's, with the parameter count of every module that has any.

        Runs of identical children named ``blocks.0``, ``blocks.1``, ... are folded into one
        line ``(blocks.0-5): 6 x Block(...)``.
        """
        return self._tree_repr(ancestors={id(self)})

    def _tree_repr(self, ancestors):
        n = self.num_parameters()
        count = f"  # {n:,} parameter{'s' if n != 1 else ''}" if n else ""
        children = []
        for name, child in self.named_children():
            if id(child) in ancestors:  # a reference back up the tree: do not loop forever
                children.append((name, f"<{type(child).__name__}, a reference up the tree>"))
            else:
                children.append((name, child._tree_repr(ancestors | {id(child)})))
        if not children:
            return f"{type(self).__name__}({self.extra_repr()}){count}"
        lines = [f"{type(self).__name__}({count}"]
        if self.extra_repr():
            lines.append("  " + self.extra_repr())
        for first, last, times, text in _fold_repeats(children):
            label = first if times == 1 else f"{first}-{last.rpartition('.')[2]}"
            text = text if times == 1 else f"{times} x {text}"
            lines.append(f"  ({label}): " + text.replace("\n", "\n  "))
        return "\n".join(lines + [")"])


def _fold_repeats(named_texts):
    """Group consecutive (name, text) pairs with equal text and consecutive indices, such as
    ("blocks.0", t), ("blocks.1", t), into [first name, last name, count, text]."""
    groups = []
    for name, text in named_texts:
        if groups and groups[-1][3] == text and _is_next_index(groups[-1][1], name):
            groups[-1][1] = name
            groups[-1][2] += 1
        else:
            groups.append([name, name, 1, text])
    return groups


def _is_next_index(previous, name):
    base_a, _, index_a = previous.rpartition(".")
    base_b, _, index_b = name.rpartition(".")
    return (base_a == base_b and index_a.isdigit() and index_b.isdigit()
            and int(index_b) == int(index_a) + 1)
