"""Seeded, reproducible splits of index ranges into train/validation/test parts.

Every split here is a pure function of its arguments: the same seed gives the same indices on
every machine, because the permutation comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def split_indices(n: int, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Shuffle ``range(n)`` with a seed and cut it into disjoint parts.

    Part i ends at ``floor(n · (f₁ + … + fᵢ))`` and the last part takes the rest, so the parts
    always cover all ``n`` indices exactly once. 1e-9 is added before flooring, so that a sum
    which floats leave just below a whole number (0.7 + 0.1 is 0.7999...) is not cut one short:
    1,000 split (0.7, 0.1, 0.2) gives 700, 100 and 200.

    Args:
        n: number of items.
        fractions: positive fractions that sum to 1, e.g. ``(0.8, 0.1, 0.1)``.
        seed: seed of the permutation.

    Returns:
        One int64 index array per fraction, in shuffled order.

    Example:
        >>> train, test = split_indices(10, (0.8, 0.2), seed=0)
        >>> len(train), len(test), sorted(train.tolist() + test.tolist()) == list(range(10))
        (8, 2, True)
    """
    fractions = [float(f) for f in fractions]
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if not fractions or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    cuts = np.floor(np.cumsum(fractions[:-1]) * n + 1e-9).astype(int)
    return np.split(order, cuts)


def stratified_split(
    labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into train and test so that every class keeps its share in both.

    Within each class, ``round(test_fraction * count)`` randomly chosen items go to the test
    part. Both parts are returned in a seeded random order, so a dataset stored sorted by class
    does not arrive sorted by class.

    Args:
        labels: (N,) integer class labels.
        test_fraction: share of each class held out, strictly between 0 and 1.
        seed: seed of the generator.

    Returns:
        ``(train_indices, test_indices)``, int64 arrays that together cover ``range(N)`` once.

    Example:
        >>> train, test = stratified_split(np.repeat([0, 1], 5), test_fraction=0.2, seed=0)
        >>> len(train), len(test), sorted(np.repeat([0, 1], 5)[test].tolist())
        (8, 2, [0, 1])
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    if labels.size == 0:
        raise ValueError("stratified_split: no labels to split")
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(members)))
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train = rng.permutation(np.concatenate(train_parts)).astype(np.int64)
    test = rng.permutation(np.concatenate(test_parts)).astype(np.int64)
    return train, test


def select_split(
    split: str, labels: np.ndarray, test_fraction: float, seed: int
) -> np.ndarray | None:
    """Return the indices of ``split`` ("train" or "test"), or None for "all".

    A shared helper of the embedded loaders, so all of them accept the same ``split`` names.
    """
    if split == "all":
        return None
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    train, test = stratified_split(labels, test_fraction, seed)
    return train if split == "train" else test
