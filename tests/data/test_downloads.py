"""IDX and CIFAR-10 parsers and the checked download path, on files written here: no network.

Downloads go through pooch; the tests that download replace its HTTP downloader with one that
serves the files they wrote (or point the mirrors at a closed port on this machine).
"""

import gzip
import hashlib
import io
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

import minitx.data.download as dl
from minitx.data import load_cifar10, load_fashion_mnist, load_mnist, parse_cifar_binary, parse_idx

try:
    import pooch
except ImportError:
    pooch = None
needs_pooch = pytest.mark.skipif(pooch is None, reason="pooch not installed")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Make any real download attempt fail loudly; tests that fake a server replace this."""
    if pooch is not None:
        monkeypatch.setattr(pooch, "HTTPDownloader", FakeServer(lambda url: None, []))


class FakeServer:
    """Stands in for ``pooch.HTTPDownloader``: ``serve(url)`` returns the bytes or raises."""

    def __init__(self, serve, requested):
        self.serve, self.requested = serve, requested

    def __call__(self, **kwargs):  # pooch.HTTPDownloader(timeout=...) builds a downloader
        return self.download

    def download(self, url, output_file, pooch_instance):
        self.requested.append(url)
        data = self.serve(url)
        if data is None:
            raise AssertionError("tests must not touch the network")
        with open(output_file, "wb") as file:
            file.write(data)


def idx_bytes(array):
    """Encode an array in the IDX format (type byte from the dtype, big-endian data)."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    code = codes[array.dtype.str[1:]]
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist_files(folder, n_train=12, n_test=5, seed=0):
    """Write the four gzipped IDX files; return the arrays and each file's SHA-256."""
    rng = np.random.default_rng(seed)
    arrays, digests = {}, {}
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[prefix] = (
            rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, size=n, dtype=np.uint8),
        )
        for kind, array in zip(("images-idx3", "labels-idx1"), arrays[prefix], strict=True):
            name = f"{prefix}-{kind}-ubyte.gz"
            data = gzip.compress(idx_bytes(array))
            (folder / name).write_bytes(data)
            digests[name] = hashlib.sha256(data).hexdigest()
    return arrays, digests


def cifar_records(n, rng):
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    data = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1).tobytes()
    return images, labels, data


def write_cifar_archive(path, per_batch=3, seed=0):
    """Write cifar-10-binary.tar.gz with the real member names; return (train, test) arrays."""
    rng = np.random.default_rng(seed)
    train, test = [], None
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
        for name in names:
            images, labels, data = cifar_records(per_batch, rng)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
            if name == "test_batch.bin":
                test = (images, labels)
            else:
                train.append((images, labels))
    train = (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]))
    return train, test


def test_parse_idx_round_trips_every_type():
    rng = np.random.default_rng(0)
    for dtype in ("u1", "i1", "i2", "i4", "f4", "f8"):
        array = (rng.random((2, 3, 4)) * 100).astype(dtype)
        np.testing.assert_array_equal(parse_idx(idx_bytes(array)), array)


def test_parse_idx_rejects_broken_files():
    good = idx_bytes(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="not an IDX file"):
        parse_idx(b"\x01" + good[1:])
    with pytest.raises(ValueError, match="element type"):
        parse_idx(good[:2] + b"\x07" + good[3:])
    with pytest.raises(ValueError, match="should have"):
        parse_idx(good[:-1])


def test_parse_cifar_binary_keeps_the_channel_planes():
    image = np.zeros((3, 32, 32), np.uint8)
    image[0, 0, 1], image[1, 2, 3], image[2, 31, 31] = 10, 20, 30  # red, green, blue pixels
    images, labels = parse_cifar_binary(bytes([7]) + image.tobytes())
    assert labels.tolist() == [7] and images.shape == (1, 3, 32, 32)
    np.testing.assert_array_equal(images[0], image)
    with pytest.raises(ValueError, match="multiple of 3073"):
        parse_cifar_binary(bytes(3000))


@pytest.mark.parametrize(
    "loader, dataset", [(load_mnist, "mnist"), (load_fashion_mnist, "fashion_mnist")]
)
def test_idx_loaders_read_the_cache(tmp_path, monkeypatch, loader, dataset):
    arrays, digests = write_mnist_files(tmp_path / dataset)
    for name, digest in digests.items():
        monkeypatch.setitem(dl.SHA256, (dataset, name), digest)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = loader(split, cache_dir=tmp_path, download=False)
        assert images.dtype == np.float32 and images.shape == arrays[prefix][0].shape
        np.testing.assert_allclose(images, arrays[prefix][0] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(labels, arrays[prefix][1].astype(np.int64))
        assert labels.dtype == np.int64


def test_cifar10_loader_reads_the_binary_archive(tmp_path, monkeypatch):
    archive = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    train, test = write_cifar_archive(archive)
    monkeypatch.setitem(dl.SHA256, ("cifar10", archive.name), dl.sha256_of(archive))
    images, labels = load_cifar10("train", cache_dir=tmp_path, download=False)
    assert images.shape == (15, 3, 32, 32) and images.dtype == np.float32
    np.testing.assert_allclose(images, train[0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(labels, train[1])
    images, labels = load_cifar10("test", cache_dir=tmp_path, download=False)
    np.testing.assert_array_equal(labels, test[1])


def test_wrong_checksum_of_a_cached_file_raises(tmp_path):
    # The real table's digest cannot match these made-up bytes.
    write_mnist_files(tmp_path / "mnist")
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        load_mnist("train", cache_dir=tmp_path, download=False)


@needs_pooch
def test_download_verifies_then_caches(tmp_path, monkeypatch):
    served = tmp_path / "server"
    arrays, digests = write_mnist_files(served)
    for name, digest in digests.items():
        monkeypatch.setitem(dl.SHA256, ("mnist", name), digest)
    requested = []

    def serve(url):
        if url.startswith(dl.MIRRORS["mnist"][0]):  # the first mirror is down
            raise ConnectionError("connection refused")
        return (served / url.rsplit("/", 1)[-1]).read_bytes()

    monkeypatch.setattr(pooch, "HTTPDownloader", FakeServer(serve, requested))
    images, labels = load_mnist("test", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(labels, arrays["t10k"][1])
    assert (tmp_path / "cache" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()
    assert len(requested) == 4  # two files, each tried on two mirrors
    load_mnist("test", cache_dir=tmp_path / "cache")
    assert len(requested) == 4  # the second load is served from the cache


@needs_pooch
def test_mirror_with_wrong_bytes_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(pooch, "HTTPDownloader", FakeServer(lambda url: b"junk", []))
    with pytest.raises(ValueError, match="differs from the expected"):
        load_mnist("train", cache_dir=tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # not even a partial file


@needs_pooch
def test_offline_error_names_the_embedded_alternatives(tmp_path, monkeypatch):
    def offline(url):
        raise ConnectionError("no network")

    monkeypatch.setattr(pooch, "HTTPDownloader", FakeServer(offline, []))
    with pytest.raises(ConnectionError) as info:
        load_cifar10("train", cache_dir=tmp_path)
    for name in ("load_digits", "load_mnist_5k", "load_shapes", "cifar-10-binary.tar.gz into"):
        assert name in str(info.value)


@needs_pooch
def test_real_download_attempt_fails_fast_when_nothing_answers(tmp_path, monkeypatch):
    """pooch's own HTTP downloader, pointed at a closed port of this machine: no network used."""
    monkeypatch.undo()  # the real pooch.HTTPDownloader
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setitem(dl.MIRRORS, "mnist", (f"http://127.0.0.1:{port}/a/",
                                              f"http://127.0.0.1:{port}/b/"))
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="load_mnist_5k"):
        load_mnist("test", cache_dir=tmp_path)
    assert time.perf_counter() - start < 10


def test_without_pooch_a_download_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pooch", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'minitx\[pooch\]'.*load_digits"):
        load_fashion_mnist("train", cache_dir=tmp_path)


def test_embedded_datasets_and_the_cache_need_no_pooch(tmp_path):
    script = f"""
import sys
sys.modules["pooch"] = None  # importing pooch now fails
from minitx.data import load_digits, load_number_words, load_shapes
assert load_shapes(4)["images"].shape[0] == 4
assert len(load_digits("train")[0]) > 0
assert len(load_number_words("train", count=50, cache_dir={str(tmp_path)!r})[2]) > 0
"""
    subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, check=True, timeout=120)


def test_missing_file_without_download_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_fashion_mnist("test", cache_dir=tmp_path, download=False)
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_cifar10("valid", cache_dir=tmp_path)


def test_checksum_table_is_complete():
    for dataset in ("mnist", "fashion_mnist"):
        for prefix in ("train", "t10k"):
            for kind in ("images-idx3", "labels-idx1"):
                digest = dl.SHA256[(dataset, f"{prefix}-{kind}-ubyte.gz")]
                assert len(digest) == 64 and int(digest, 16) >= 0
    assert len(dl.SHA256[("cifar10", "cifar-10-binary.tar.gz")]) == 64
