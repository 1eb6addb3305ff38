"""DataLoader, ArrayDataset, default_collate and the seeded splits."""

import numpy as np
import pytest

from minitx.data import (
    ArrayDataset,
    DataLoader,
    Dataset,
    default_collate,
    split_indices,
    stratified_split,
)


def epoch_orders(loader, epochs):
    """The sample order of each epoch, read back from a dataset of indices."""
    return [np.concatenate([x for (x,) in loader]).tolist() for _ in range(epochs)]


def test_shuffle_is_reproducible_from_the_seed():
    ds = ArrayDataset(np.arange(50))
    first = epoch_orders(DataLoader(ds, 8, shuffle=True, rng=123), epochs=3)
    again = epoch_orders(DataLoader(ds, 8, shuffle=True, rng=123), epochs=3)
    other = epoch_orders(DataLoader(ds, 8, shuffle=True, rng=124), epochs=3)
    assert first == again
    assert first != other


def test_each_epoch_draws_a_new_permutation_of_all_samples():
    orders = epoch_orders(DataLoader(ArrayDataset(np.arange(50)), 8, shuffle=True, rng=0), 3)
    for order in orders:
        assert sorted(order) == list(range(50))
    assert orders[0] != orders[1] != orders[2]
    assert orders[0] != list(range(50))


def test_a_generator_can_be_passed_instead_of_a_seed():
    ds = ArrayDataset(np.arange(20))
    a = epoch_orders(DataLoader(ds, 5, shuffle=True, rng=np.random.default_rng(7)), 2)
    b = epoch_orders(DataLoader(ds, 5, shuffle=True, rng=7), 2)
    assert a == b


def test_without_shuffle_the_order_is_kept():
    assert epoch_orders(DataLoader(ArrayDataset(np.arange(10)), 3), 1)[0] == list(range(10))


@pytest.mark.parametrize(
    "n, batch_size, drop_last, sizes",
    [
        (10, 4, False, [4, 4, 2]),
        (10, 4, True, [4, 4]),
        (8, 4, True, [4, 4]),
        (3, 4, True, []),
        (3, 4, False, [3]),
        (0, 4, False, []),
    ],
)
def test_len_and_drop_last(n, batch_size, drop_last, sizes):
    ds = ArrayDataset(np.arange(n))
    loader = DataLoader(ds, batch_size, shuffle=True, drop_last=drop_last, rng=0)
    assert len(loader) == len(sizes)
    assert [len(x) for (x,) in loader] == sizes


def test_batches_of_tuples_are_tuples_of_stacked_arrays():
    images = np.random.default_rng(0).random((10, 3, 4, 4)).astype(np.float32)
    labels = np.arange(10, dtype=np.int64)
    x, y = next(iter(DataLoader(ArrayDataset(images, labels), batch_size=4)))
    assert x.shape == (4, 3, 4, 4) and x.dtype == np.float32
    assert y.shape == (4,) and y.dtype == np.int64
    np.testing.assert_array_equal(x, images[:4])


def test_default_collate_handles_dicts_strings_and_scalars():
    batch = default_collate([{"a": np.ones(2), "t": "hi"}, {"a": np.zeros(2), "t": "yo"}])
    assert batch["a"].shape == (2, 2)
    assert batch["t"].tolist() == ["hi", "yo"]
    assert default_collate([1.5, 2.5]).tolist() == [1.5, 2.5]


def test_custom_collate_and_any_dataset_protocol():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array(i * i)

    assert isinstance(Squares(), Dataset)
    loader = DataLoader(Squares(), 2, collate=lambda samples: sum(int(s) for s in samples))
    assert list(loader) == [1, 13, 16]


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="equal length"):
        ArrayDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ArrayDataset(np.zeros(3)), 0)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ArrayDataset(np.zeros(3)), 2.5)


def test_split_indices_are_disjoint_cover_everything_and_are_seeded():
    parts = split_indices(101, (0.8, 0.1, 0.1), seed=3)
    assert [len(p) for p in parts] == [80, 10, 11]
    assert sorted(np.concatenate(parts).tolist()) == list(range(101))
    again = split_indices(101, (0.8, 0.1, 0.1), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices(10, (0.5, 0.4))


def test_stratified_split_keeps_each_class_share():
    labels = np.repeat(np.arange(4), 25)  # sorted by class, as mnist_5k is
    train, test = stratified_split(labels, test_fraction=0.2, seed=0)
    assert np.bincount(labels[test]).tolist() == [5, 5, 5, 5]
    assert np.bincount(labels[train]).tolist() == [20, 20, 20, 20]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    assert not np.all(np.diff(labels[train]) >= 0)  # handed back shuffled, not by class
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(labels, test_fraction=1.0)
