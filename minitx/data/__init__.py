"""Data for minitx: datasets, the DataLoader, tokenizers, embedded and downloadable datasets.

Pure NumPy; nothing here imports the rest of minitx, so data can be prepared before (and
without) the autograd engine. Embedded datasets come first (no network needed), downloads second.
"""

from minitx.data.cache import cache_root
from minitx.data.dataset import ArrayDataset, DataLoader, Dataset, default_collate
from minitx.data.download import (
    FASHION_MNIST_CLASSES,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
)
from minitx.data.embedded import load_digits, load_mnist_5k
from minitx.data.formats import CIFAR10_CLASSES, parse_cifar_binary, parse_idx, read_idx
from minitx.data.number_words import load_number_words
from minitx.data.shapes import ShapesDataset, caption, load_shapes
from minitx.data.splits import split_indices, stratified_split
from minitx.data.tokenizers import CharTokenizer

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "ArrayDataset",
    "CharTokenizer",
    "DataLoader",
    "Dataset",
    "ShapesDataset",
    "cache_root",
    "caption",
    "default_collate",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_5k",
    "load_number_words",
    "load_shapes",
    "parse_cifar_binary",
    "parse_idx",
    "read_idx",
    "split_indices",
    "stratified_split",
]
