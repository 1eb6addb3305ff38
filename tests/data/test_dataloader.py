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
        (3, 4, False, [3]),
    ],
)
def test_len_and_drop_last(n, batch_size, drop_last, sizes):
    ds = ArrayDataset(np.arange(n))
    loader = DataLoader(ds, batch_size, shuffle=True, drop_last=drop_last, rng=0)
    assert len(loader) == len(sizes)
    assert [len(x) for (x,) in loader] == sizes


@pytest.mark.parametrize("n, drop_last", [(3, True), (0, False), (0, True)])
def test_an_epoch_without_a_batch_is_refused_instead_of_looping_forever(n, drop_last):
    loader = DataLoader(ArrayDataset(np.arange(n)), 4, shuffle=True, drop_last=drop_last, rng=0)
    assert len(loader) == 0
    with pytest.raises(ValueError, match=f"no batch .*dataset of {n} samples, batch_size=4"):
        next(iter(loader))
    with pytest.raises(ValueError, match="no batch"):
        next(loader.forever())  # a `while step < steps` loop fails at once, not never


def take(batches, k):
    return [x.tolist() for (x,) in (next(batches) for _ in range(k))]


@pytest.mark.parametrize("shuffle, drop_last", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("k", [0, 1, 3, 4, 5, 9])  # 4 batches per epoch: mid-epoch and at ends
def test_state_dict_resumes_the_batch_sequence_exactly(k, shuffle, drop_last):
    ds = ArrayDataset(np.arange(30))
    kw = dict(shuffle=shuffle, drop_last=drop_last)
    reference = take(DataLoader(ds, 7, rng=5, **kw).forever(), k + 10)
    first = DataLoader(ds, 7, rng=5, **kw)
    batches = first.forever()
    assert take(batches, k) == reference[:k]
    state, rng_state = first.state_dict(), first.rng.bit_generator.state
    second = DataLoader(ds, 7, rng=99, **kw)  # another seed: everything comes from the state
    second.load_state_dict(state)
    second.rng.bit_generator.state = rng_state
    assert take(second.forever(), 10) == reference[k:]


def test_state_dict_counts_epochs_and_a_plain_pass_after_loading_continues_the_epoch():
    ds = ArrayDataset(np.arange(10))
    loader = DataLoader(ds, 4, shuffle=True, rng=0)
    whole = [x.tolist() for (x,) in DataLoader(ds, 4, shuffle=True, rng=0)]
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    assert (state["epoch"], state["done"], state["sizes"].tolist()) == (1, 1, [4, 4, 2])
    again = DataLoader(ds, 4, shuffle=True, rng=1)
    again.load_state_dict(state)
    assert [x.tolist() for (x,) in again] == whole[1:]  # the rest of epoch 1
    assert sorted(np.concatenate([x for (x,) in again]).tolist()) == list(range(10))  # epoch 2


def test_load_state_dict_refuses_a_state_of_another_dataset():
    loader = DataLoader(ArrayDataset(np.arange(50)), 8, shuffle=True, rng=0)
    next(iter(loader))
    with pytest.raises(ValueError, match="dataset has 20"):
        DataLoader(ArrayDataset(np.arange(20)), 8).load_state_dict(loader.state_dict())
    with pytest.raises(ValueError, match="expected a dict"):
        DataLoader(ArrayDataset(np.arange(20)), 8).load_state_dict({"epoch": 1})


def test_batch_sampler_makes_each_epochs_batches_and_is_resumable():
    def by_parity(rng):  # two batches per epoch, their order drawn from the generator
        batches = [np.arange(0, 10, 2), np.arange(1, 10, 2)]
        return [batches[i] for i in rng.permutation(2)]

    ds = ArrayDataset(np.arange(10))
    reference = take(DataLoader(ds, 1, rng=3, batch_sampler=by_parity).forever(), 6)
    assert all(len(set(b) & set(range(0, 10, 2))) in (0, 5) for b in reference)
    first = DataLoader(ds, 1, rng=3, batch_sampler=by_parity)
    batches = first.forever()
    take(batches, 3)
    second = DataLoader(ds, 1, rng=0, batch_sampler=by_parity)
    second.load_state_dict(first.state_dict())
    second.rng.bit_generator.state = first.rng.bit_generator.state
    assert take(second.forever(), 3) == reference[3:]
    with pytest.raises(TypeError, match="batch_sampler"):
        len(first)


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


@pytest.mark.parametrize("samples, message", [
    ([(1, 2), (3, 4, 5)], "sample 1 has 3 fields, sample 0 has 2"),
    ([(1, 2), (3,)], "sample 1 has 1 fields, sample 0 has 2"),
    ([{"a": 1}, {"a": 2, "b": 3}], r"sample 1 has keys \['a', 'b'\], sample 0 has \['a'\]"),
    ([{"a": 1, "b": 2}, {"a": 2, "c": 3}], r"sample 1 has keys \['a', 'c'\], sample 0 has"),
    ([(1, 2), (3, 4), 5], "sample 2 is int, sample 0 is tuple"),
    ([1, (2, 3)], "sample 1 is tuple, sample 0 is int"),
    ([{"x": (1, 2)}, {"x": (1, 2)}, {"x": (1,)}], r"sample 2 has 1 fields at \['x'\], sample 0 "
                                                  r"has 2"),
])
def test_default_collate_refuses_samples_of_different_structure(samples, message):
    """The first sample's structure must not decide alone: a field or key that only a later
    sample has would be dropped without a word."""
    with pytest.raises(ValueError, match="default_collate: " + message):
        default_collate(samples)


def test_default_collate_stacks_cpu_tensors_into_a_numpy_batch():
    import minitx as mt

    x, y = default_collate([(mt.ones(3), 0), (mt.zeros(3), 1)])
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (2, 3)
    np.testing.assert_array_equal(x, [[1, 1, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match="default_collate: sample 0 is a Tensor on strict"):
        default_collate([mt.ones(3, device="strict"), mt.ones(3, device="strict")])


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


def test_two_passes_side_by_side_each_see_every_batch():
    loader = DataLoader(ArrayDataset(np.arange(6)), 2)
    outer = []
    for i, (x,) in enumerate(loader):
        outer.append(x.tolist())
        if i == 0:
            assert sum(1 for _ in loader) == 3  # an inner pass, e.g. an evaluation
    assert outer == [[0, 1], [2, 3], [4, 5]]
    assert [(a[0].tolist(), b[0].tolist()) for a, b in zip(loader, loader)] == [
        ([0, 1], [0, 1]), ([2, 3], [2, 3]), ([4, 5], [4, 5])]


def test_the_state_follows_the_pass_started_last():
    loader = DataLoader(ArrayDataset(np.arange(8)), 2, shuffle=True, rng=0)
    first = iter(loader)
    next(first)
    second = iter(loader)
    next(second), next(second)
    next(first)  # the older pass moves on; the saved position is the newer one's
    assert loader.state_dict()["done"] == 2


def test_split_sizes_are_not_cut_short_by_float_sums():
    assert [len(p) for p in split_indices(1000, (0.7, 0.1, 0.2))] == [700, 100, 200]
    assert [len(p) for p in split_indices(100, (0.29, 0.71))] == [29, 71]


def test_stratified_split_of_nothing_is_named():
    with pytest.raises(ValueError, match="stratified_split: no labels to split"):
        stratified_split(np.zeros(0, np.int64))
