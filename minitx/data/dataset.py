"""Datasets and the DataLoader that batches them.

A dataset is anything with ``__len__`` and ``__getitem__`` that returns NumPy arrays (or tuples
of them). The loader turns one into an iterator of batches: it draws a permutation of the indices
from a seeded ``numpy.random.Generator``, slices it into batches, and stacks the samples with a
``collate`` function. Data stays NumPy here; it moves to a device inside the training loop, where
the reader can see it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Dataset(Protocol):
    """Anything indexable by ``0 <= i < len(ds)`` that returns arrays or tuples of arrays."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


class ArrayDataset:
    """Wrap equally long arrays; sample ``i`` is the tuple of their ``i``-th rows.

    Args:
        *arrays: one or more arrays with the same length along axis 0.

    Example:
        >>> ds = ArrayDataset(np.zeros((5, 2)), np.arange(5))
        >>> len(ds), int(ds[3][1])
        (5, 3)
    """

    def __init__(self, *arrays: np.ndarray):
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array, got none")
        self.arrays = tuple(np.asarray(a) for a in arrays)
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"ArrayDataset arrays must have equal length, got lengths {lengths}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        # Always a tuple, even for one array, so `x, = sample` works the same everywhere.
        return tuple(a[index] for a in self.arrays)


def default_collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples into one batch.

    Arrays and scalars are stacked along a new axis 0; tuples (and lists) are collated field by
    field into a tuple; dicts key by key. Strings become a NumPy string array.

    Args:
        samples: the samples of one batch, all with the same structure.

    Returns:
        The batch, with the structure of one sample and a leading batch axis on each array.

    Example:
        >>> x, y = default_collate([(np.ones(3), 0), (np.zeros(3), 1)])
        >>> x.shape, y.tolist()
        ((2, 3), [0, 1])
    """
    if len(samples) == 0:
        raise ValueError("default_collate got an empty list of samples")
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(default_collate([s[k] for s in samples]) for k in range(len(first)))
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    return np.stack([np.asarray(s) for s in samples])


class DataLoader:
    """Iterate over a dataset in batches, optionally shuffled with a seeded generator.

    Each pass (epoch) over the loader draws a fresh permutation from the same generator, so the
    order differs between epochs while the whole sequence of epochs is fixed by the seed.

    Args:
        dataset: a `Dataset` (``__len__`` and ``__getitem__``).
        batch_size: samples per batch, a positive integer.
        shuffle: draw a new random order at the start of every epoch.
        drop_last: drop the final batch when it is smaller than ``batch_size``.
        rng: an integer seed or a ``numpy.random.Generator``; ``None`` seeds from the OS, so
            pass a seed for reproducible runs.
        collate: turns a list of samples into a batch (default: `default_collate`).

    Example:
        >>> loader = DataLoader(ArrayDataset(np.arange(10)), batch_size=4, shuffle=True, rng=0)
        >>> len(loader), [len(x) for (x,) in loader]
        (3, [4, 4, 2])
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        rng: int | np.random.Generator | None = None,
        collate: Callable[[list[Any]], Any] = default_collate,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        # One generator for the loader's lifetime: epoch k continues where epoch k-1 stopped.
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.collate = collate

    def __len__(self) -> int:
        """Return the number of batches in one epoch."""
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)  # ceiling division

    def __iter__(self) -> Iterator[Any]:
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            indices = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.collate([self.dataset[int(i)] for i in indices])
