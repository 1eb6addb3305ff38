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
    field into a tuple; dicts key by key. Strings become a NumPy string array. Tensors on the
    CPU (minitx's, or any with a ``.numpy()`` method) are stacked like arrays, by their values
    (no gradient): the batch is NumPy either way, and moves to a device in the training loop.

    Args:
        samples: the samples of one batch, all with the same structure: tuples of one length,
            dicts with the same keys, at every level.

    Returns:
        The batch, with the structure of one sample and a leading batch axis on each array.

    Raises:
        ValueError: a sample's structure differs from the first one's (naming the sample and
            what differs), or a sample holds a Tensor on a device other than the CPU.

    Example:
        >>> x, y = default_collate([(np.ones(3), 0), (np.zeros(3), 1)])
        >>> x.shape, y.tolist()
        ((2, 3), [0, 1])
    """
    if len(samples) == 0:
        raise ValueError("default_collate got an empty list of samples")
    return _collate(samples, "")


def _collate(samples: Sequence[Any], path: str) -> Any:
    """default_collate below `path`, the place of these values inside a sample (e.g. "[0]")."""
    _check_same_structure(samples, path)
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(_collate([s[k] for s in samples], f"{path}[{k}]") for k in range(len(first)))
    if isinstance(first, dict):
        return {key: _collate([s[key] for s in samples], f"{path}[{key!r}]") for key in first}
    return np.stack([_host_array(s, i, path) for i, s in enumerate(samples)])


def _kind(sample: Any) -> str:
    if isinstance(sample, (tuple, list)):
        return "tuple"  # a list collates as a tuple does
    return "dict" if isinstance(sample, dict) else "value"


def _check_same_structure(samples: Sequence[Any], path: str) -> None:
    """A ValueError unless every sample has the first one's kind, length and keys: the first
    sample alone would otherwise decide which fields of the others are kept."""
    first, where = samples[0], f" at {path}" if path else ""
    for i, sample in enumerate(samples[1:], start=1):
        if _kind(sample) != _kind(first):
            differs = f"is {type(sample).__name__}{where}, sample 0 is {type(first).__name__}"
        elif _kind(first) == "tuple" and len(sample) != len(first):
            differs = f"has {len(sample)} fields{where}, sample 0 has {len(first)}"
        elif _kind(first) == "dict" and set(sample) != set(first):
            differs = f"has keys {list(sample)}{where}, sample 0 has {list(first)}"
        else:
            continue
        raise ValueError(f"default_collate: sample {i} {differs}; every sample of a batch "
                         f"needs the same structure")


def _host_array(sample: Any, index: int, path: str) -> np.ndarray:
    """A sample's value as a NumPy array. A tensor (a minitx Tensor, or anything else with a
    .numpy() method, such as PyTorch's; this package imports neither) gives its values, provided
    it is on the CPU."""
    if isinstance(sample, np.ndarray) or not callable(getattr(sample, "numpy", None)):
        return np.asarray(sample)
    device = str(getattr(sample, "device", "cpu"))
    if device != "cpu":
        raise ValueError(f"default_collate: sample {index} is a Tensor on {device}"
                         f"{f' at {path}' if path else ''}; a dataset returns NumPy arrays "
                         f"(or CPU Tensors), and the training loop moves each batch to the "
                         f"device")
    return np.asarray(sample.numpy())


class DataLoader:
    """Iterate over a dataset in batches, optionally shuffled with a seeded generator.

    Each pass (epoch) over the loader draws a fresh permutation from the same generator, so the
    order differs between epochs while the whole sequence of epochs is fixed by the seed.

    The loader remembers where the current epoch stands (its order of samples and the batches
    handed out so far): :meth:`state_dict` returns that, :meth:`load_state_dict` puts it back,
    and the next pass then continues the interrupted epoch instead of starting a new one. Saved
    in a training checkpoint together with the generator's state, it lets a resumed run see
    exactly the batches the uninterrupted run would have seen, even in the middle of an epoch.

    Args:
        dataset: a `Dataset` (``__len__`` and ``__getitem__``).
        batch_size: samples per batch, a positive integer.
        shuffle: draw a new random order at the start of every epoch.
        drop_last: drop the final batch when it is smaller than ``batch_size``.
        rng: an integer seed or a ``numpy.random.Generator``; ``None`` seeds from the OS, so
            pass a seed for reproducible runs.
        collate: turns a list of samples into a batch (default: `default_collate`).
        batch_sampler: a function ``rng -> list of index arrays`` that makes the batches of one
            epoch, replacing the shuffled slices (e.g. batches of sentences of similar length);
            `batch_size`, `shuffle` and `drop_last` are then not used to form batches.

    Raises:
        ValueError: on iteration, when an epoch would yield no batch at all (an empty dataset,
            or fewer samples than ``batch_size`` with ``drop_last``): a training loop that waits
            for the next batch would otherwise wait forever.

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
        batch_sampler: Callable[[np.random.Generator], list[np.ndarray]] | None = None,
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
        self.batch_sampler = batch_sampler
        self.epoch = 0  # epochs started
        self._batches: list[np.ndarray] = []  # the index batches of the current epoch
        self._done = 0  # how many of them were handed out
        self._resume = False  # the next pass continues the current epoch (after loading)
        self._pass = None  # the pass started last, whose position state_dict reports

    def __len__(self) -> int:
        """Return the number of batches in one epoch."""
        if self.batch_sampler is not None:
            raise TypeError("len(DataLoader) is unknown with a batch_sampler: the sampler "
                            "decides each epoch's batches")
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)  # ceiling division

    def __iter__(self) -> Iterator[Any]:
        """One pass (epoch). Each pass keeps its own position, so two passes may run side by
        side (an evaluation pass inside a training epoch, ``zip(loader, loader)``) and each
        sees all of its batches; :meth:`state_dict` follows the pass started last."""
        if self._resume and self._done < len(self._batches):  # continue the loaded epoch
            batches, done = self._batches, self._done
        else:
            batches, done = self._epoch_batches(), 0
            self.epoch += 1
        self._resume = False
        self._batches, self._done = batches, done
        self._pass = this_pass = object()
        while done < len(batches):
            indices = batches[done]
            done += 1  # counted before the yield: a state saved now resumes after it
            if self._pass is this_pass:
                self._done = done
            yield self.collate([self.dataset[int(i)] for i in indices])

    def forever(self) -> Iterator[Any]:
        """Yield batches epoch after epoch without end (each epoch reshuffled), for a loop that
        counts optimizer steps rather than epochs: ``batch = next(batches)``."""
        while True:
            yield from self

    def _epoch_batches(self) -> list[np.ndarray]:
        """Draw the order of a new epoch and cut it into batches of indices."""
        n = len(self.dataset)
        if self.batch_sampler is not None:
            batches = [np.asarray(b, dtype=np.int64) for b in self.batch_sampler(self.rng)]
        else:
            order = self.rng.permutation(n) if self.shuffle else np.arange(n)
            batches = [order[b * self.batch_size:(b + 1) * self.batch_size]
                       for b in range(len(self))]
        if not batches:
            raise ValueError(
                f"DataLoader: an epoch of this loader yields no batch (dataset of {n} samples, "
                f"batch_size={self.batch_size}, drop_last={self.drop_last}"
                + (", batch_sampler" if self.batch_sampler is not None else "")
                + "); use a smaller batch_size or more data")
        return batches

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Return where the current epoch stands: ``{"epoch", "done", "order", "sizes"}``.

        ``order`` holds the indices of the epoch's batches one after the other and ``sizes``
        their lengths, so the batches still to come are known exactly; ``done`` counts those
        handed out. The generator's state is not included: save it beside (e.g. with the
        ``rngs=`` of :func:`minitx.serialization.save_checkpoint`).
        """
        sizes = np.array([len(b) for b in self._batches], dtype=np.int64)
        order = (np.concatenate(self._batches).astype(np.int64) if self._batches
                 else np.zeros(0, dtype=np.int64))
        return {"epoch": self.epoch, "done": self._done, "order": order, "sizes": sizes}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s position: the next pass continues that epoch."""
        name = "DataLoader.load_state_dict"
        if not (isinstance(state, dict) and {"epoch", "done", "order", "sizes"} <= set(state)):
            raise ValueError(f"{name}: expected a dict with epoch, done, order and sizes, got "
                             f"{state!r:.200}")
        order = np.asarray(state["order"], dtype=np.int64)
        sizes = np.asarray(state["sizes"], dtype=np.int64)
        done, n = int(state["done"]), len(self.dataset)
        if sizes.sum() != len(order) or not 0 <= done <= len(sizes):
            raise ValueError(f"{name}: inconsistent state: {len(order)} indices in batches of "
                             f"{sizes.sum()} samples, {done} of {len(sizes)} batches done")
        if len(order) and (order.min() < 0 or order.max() >= n):
            raise ValueError(f"{name}: the state indexes samples up to {order.max()}, but the "
                             f"dataset has {n}; was it saved with another dataset?")
        self._batches = np.split(order, np.cumsum(sizes)[:-1]) if len(sizes) else []
        self._done = done
        self.epoch = int(state["epoch"])
        self._resume = True
