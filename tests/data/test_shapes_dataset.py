"""ShapesDataset: determinism, captions that match the labels, masks that match the image."""

import numpy as np
import pytest

from minitx.data import ShapesDataset, caption, load_shapes
from minitx.data.shapes import COLORS, POSITIONS, SHAPES, SIZES


@pytest.fixture(scope="module")
def data():
    return load_shapes(300, seed=5)


def test_samples_depend_only_on_seed_and_index():
    a, b = ShapesDataset(10, seed=3), ShapesDataset(10, seed=3)
    late = b[7]  # drawn first here, last below: the order must not matter
    for i in range(10):
        for x, y in zip(a[i], b[i], strict=True):
            np.testing.assert_array_equal(x, y)
    for x, y in zip(a[7], late, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(ShapesDataset(10, seed=4)[0][0], a[0][0])
    assert not np.array_equal(a[0][0], a[1][0])


def test_load_shapes_matches_the_dataset(data):
    ds = ShapesDataset(300, seed=5)
    image, mask, labels = ds[42]
    np.testing.assert_array_equal(data["images"][42], image)
    np.testing.assert_array_equal(data["masks"][42], mask)
    assert [data[k][42] for k in ("shape", "color", "size", "position")] == labels.tolist()
    assert data["captions"][42] == ds.caption(42)


def test_types_ranges_and_label_coverage(data):
    assert data["images"].shape == (300, 3, 32, 32) and data["images"].dtype == np.float32
    assert data["images"].min() >= 0.0 and data["images"].max() <= 1.0
    assert data["masks"].dtype == np.int64
    names_of = {"shape": SHAPES, "color": COLORS, "size": SIZES, "position": POSITIONS}
    for key, names in names_of.items():
        assert data[key].dtype == np.int64
        assert set(data[key].tolist()) == set(range(len(names)))


def test_caption_matches_labels(data):
    assert caption(0, 0, 0, 0) == "a small red circle at the top left"
    assert caption(1, 2, 1, 4) == "a large blue square in the center"
    for i in range(50):
        text = str(data["captions"][i])
        size, color = SIZES[data["size"][i]], COLORS[data["color"][i]]
        assert text.startswith(f"a {size} {color} {SHAPES[data['shape'][i]]} ")
        assert text.endswith(POSITIONS[data["position"][i]])


def test_mask_is_non_empty_and_labelled_with_the_shape(data):
    for i in range(len(data["masks"])):
        mask = data["masks"][i]
        assert set(np.unique(mask).tolist()) == {0, data["shape"][i] + 1}
        assert (mask > 0).sum() >= 10


def test_mask_sits_in_the_named_grid_cell(data):
    for i in range(len(data["masks"])):
        rows, cols = np.nonzero(data["masks"][i])
        row, col = divmod(int(data["position"][i]), 3)
        assert int(rows.mean() // (32 / 3)) == row
        assert int(cols.mean() // (32 / 3)) == col


def test_large_shapes_are_larger_and_the_shape_is_brighter_than_the_background(data):
    area = (data["masks"] > 0).sum(axis=(1, 2))
    for s in range(len(SHAPES)):
        small = area[(data["shape"] == s) & (data["size"] == 0)]
        large = area[(data["shape"] == s) & (data["size"] == 1)]
        assert small.max() < large.min()
    for i in range(50):
        on = data["masks"][i] > 0
        image = data["images"][i]
        assert image[:, on].max(axis=0).mean() > image[:, ~on].max(axis=0).mean() + 0.3


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must"):
        ShapesDataset(-1)
    with pytest.raises(IndexError):
        ShapesDataset(3)[3]
