"""Parsers for the raw file formats of MNIST, Fashion-MNIST and CIFAR-10.

Both formats are plain bytes, read with ``numpy.frombuffer``; nothing is unpickled.

IDX (LeCun et al., http://yann.lecun.com/exdb/mnist/, section "FILE FORMATS"):
    bytes 0-1  zero
    byte 2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
               0x0E float64
    byte 3     number of dimensions d
    then d big-endian uint32 sizes, then the elements, big-endian, in C (row-major) order.

CIFAR-10 binary version (Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
2009; https://www.cs.toronto.edu/~kriz/cifar.html): each record is 1 label byte followed by
3,072 pixel bytes, the 1,024 red values of the 32x32 image row by row, then green, then blue.
"""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import numpy as np

# IDX type byte -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

CIFAR_IMAGE_SHAPE = (3, 32, 32)
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def parse_idx(data: bytes) -> np.ndarray:
    """Decode the bytes of one (uncompressed) IDX file.

    Args:
        data: the whole file.

    Returns:
        The array with the stored shape, in native byte order.

    Example:
        >>> header = bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
        >>> parse_idx(header + bytes(range(6))).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"not an IDX file: the first bytes are {data[:4]!r}, expected 00 00 ..")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        raise ValueError(
            f"unknown IDX element type 0x{type_code:02X}, expected one of "
            f"{[f'0x{t:02X}' for t in IDX_DTYPES]}"
        )
    dtype = IDX_DTYPES[type_code]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"IDX header declares {ndim} dimensions, file has only {len(data)} bytes")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"IDX file of shape {shape} should have {expected} bytes, has {len(data)}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gunzipping it first when its name ends in ``.gz``."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return parse_idx(f.read())


def parse_cifar_binary(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode CIFAR-10 binary records.

    Args:
        data: the bytes of one batch file (e.g. ``data_batch_1.bin``), a whole number of records.

    Returns:
        ``(images, labels)``: images (N, 3, 32, 32) uint8 in channel-first order, labels (N,)
        int64 in 0..9.
    """
    if len(data) % CIFAR_RECORD_BYTES != 0:
        raise ValueError(
            f"CIFAR-10 binary data must be a multiple of {CIFAR_RECORD_BYTES} bytes, "
            f"got {len(data)}"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if len(labels) and labels.max() >= len(CIFAR10_CLASSES):
        raise ValueError(f"CIFAR-10 labels must be 0..9, got {np.unique(labels).tolist()}")
    images = records[:, 1:].reshape((-1,) + CIFAR_IMAGE_SHAPE).copy()
    return images, labels


def read_cifar_tar(
    path: str | os.PathLike, member_names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate CIFAR-10 binary batches from ``cifar-10-binary.tar.gz``.

    Members are matched by file name (``data_batch_1.bin``...), whatever folder they sit in, and
    read straight from the archive: nothing is extracted to disk.

    Args:
        path: the ``.tar.gz`` archive.
        member_names: the batch file names to read, in this order.

    Returns:
        ``(images, labels)`` as in `parse_cifar_binary`, batches concatenated.
    """
    found: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name in member_names:
                found[name] = archive.extractfile(member).read()
    missing = [n for n in member_names if n not in found]
    if missing:
        raise ValueError(f"{path} lacks the CIFAR-10 batches {missing}")
    parts = [parse_cifar_binary(found[n]) for n in member_names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
