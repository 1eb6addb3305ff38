"""Containers: Sequential, ModuleList and ModuleDict.

A container stores its i-th module as the attribute named ``"i"`` (or a ModuleDict's module under
its key), so the ``vars(self)`` walk of :class:`~minitx.nn.Module` names the parameters
``blocks.3.attn.q_proj.weight``, exactly as PyTorch does. A plain Python list of modules works
too (``self.blocks = [Block(), ...]`` gives the same names); the containers add indexing,
``append`` and, for Sequential, a ``forward``.
"""

from minitx.nn.module import Module


class ModuleList(Module):
    """A list of modules: index it, iterate over it, append to it.

    >>> from minitx import nn
    >>> blocks = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    >>> len(blocks), type(blocks[-1]).__name__
    (2, 'ReLU')
    """

    def __init__(self, modules=()):
        super().__init__()
        self._size = 0
        self.extend(modules)

    def append(self, module):
        """Add `module` at the end; return self."""
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.append: expected a Module, got "
                            f"{type(module).__name__}")
        setattr(self, str(self._size), module)
        self._size += 1
        return self

    def extend(self, modules):
        """Append every module of `modules`; return self."""
        for module in modules:
            self.append(module)
        return self

    def __len__(self):
        return self._size

    def __iter__(self):
        return (getattr(self, str(i)) for i in range(self._size))

    def _position(self, index):
        if not -self._size <= index < self._size:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for "
                             f"{self._size} modules")
        return str(index % self._size)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self)[index])
        return getattr(self, self._position(index))

    def __setitem__(self, index, module):
        if isinstance(index, slice):
            raise TypeError(f"{type(self).__name__}: assign one module at a time "
                            f"(l[i] = module); slices are not supported")
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: items must be Modules, got "
                            f"{type(module).__name__}")
        setattr(self, self._position(index), module)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("a ModuleList has no forward: loop over it in your forward()")


class Sequential(ModuleList):
    """Modules applied one after the other: ``Sequential(a, b, c)(x) = c(b(a(x)))``.

    >>> import minitx as mt
    >>> from minitx import nn
    >>> mlp = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> mlp(mt.ones((4, 3))).shape
    (4, 1)
    """

    def __init__(self, *modules):
        super().__init__(modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*list(self)[index])
        return super().__getitem__(index)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class ModuleDict(Module):
    """A dict of modules, in insertion order; each is named by its key.

    Keys must be non-empty strings without dots, and must not hide an attribute of the class
    (``"forward"``, ``"keys"``, ``"training"``, ...).

    >>> from minitx import nn
    >>> heads = nn.ModuleDict({"cls": nn.Linear(4, 10), "box": nn.Linear(4, 4)})
    >>> list(heads.keys())
    ['cls', 'box']
    """

    def __init__(self, modules=None):
        super().__init__()
        self._keys = []
        for key, module in (modules or {}).items():
            self[key] = module

    def __setitem__(self, key, module):
        if not isinstance(key, str) or not key or "." in key:
            raise ValueError(f"ModuleDict: keys must be non-empty strings without '.', "
                             f"got {key!r}")
        if key not in self._keys and (hasattr(type(self), key) or key in vars(self)):
            raise ValueError(f"ModuleDict: key {key!r} would hide the attribute of the same "
                             f"name; choose another key")
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: values must be Modules, got {type(module).__name__}")
        if key not in self._keys:
            self._keys.append(key)
        setattr(self, key, module)

    def __getitem__(self, key):
        if key not in self._keys:
            raise KeyError(f"ModuleDict has no key {key!r}; keys: {self._keys}")
        return getattr(self, key)

    def __contains__(self, key):
        return key in self._keys

    def __len__(self):
        return len(self._keys)

    def __iter__(self):
        return iter(list(self._keys))

    def keys(self):
        return list(self._keys)

    def values(self):
        return [getattr(self, key) for key in self._keys]

    def items(self):
        return [(key, getattr(self, key)) for key in self._keys]

    def forward(self, *args, **kwargs):
        raise NotImplementedError("a ModuleDict has no forward: pick a module by key")
