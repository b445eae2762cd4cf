"""Datasets: IDX parsing and its errors, lookup order, verified atomic download, bundled sample, options."""
import gzip
import hashlib
import http.server
import threading
from functools import partial

import numpy as np
import pytest

from mlpx import datasets
from mlpx.datasets import FILES, DataFormatError


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0801 if array.ndim == 1 else 0x0803
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_dataset(folder, n_train=20, n_test=10, seed=0):
    """Four small valid IDX gzip files; returns their arrays."""
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train),
              rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)]
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(FILES, arrays):
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


def test_read_idx_round_trip(tmp_path):
    arrays = write_fake_dataset(tmp_path)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / FILES[0]), arrays[0])
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / FILES[1]), arrays[1])


@pytest.mark.parametrize("content,message", [
    (gzip.compress(b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02" + bytes(7)),
     r"header says shape \(2, 2, 2\) = 24 bytes, file has 23"),
    (gzip.compress(b"\x00\x00\x08\x02\x00\x00\x00\x01\x05"), r"expected IDX magic .* got 0x00000802"),
    (gzip.compress(b"\x00\x00"), r"at least 8 bytes"),
    (b"not gzip at all", r"cannot read as gzip"),
    (gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05" + bytes(5))[:-6], r"cannot read as gzip"),
])
def test_read_idx_rejects_corrupt_files(tmp_path, content, message):
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=message):
        datasets.read_idx(path)


def test_lookup_order_argument_then_environment_then_cache(tmp_path, monkeypatch):
    write_fake_dataset(tmp_path / "arg" / "mnist", n_train=11)
    write_fake_dataset(tmp_path / "env" / "mnist", n_train=12)
    write_fake_dataset(tmp_path / "cache" / "mlpx" / "mnist", n_train=13)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MLPX_DATA_DIR", str(tmp_path / "env"))
    assert len(datasets.load_mnist(tmp_path / "arg", download=False).x_train) == 11
    assert len(datasets.load_mnist(download=False).x_train) == 12
    monkeypatch.delenv("MLPX_DATA_DIR")
    assert len(datasets.load_mnist(download=False).x_train) == 13


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MLPX_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(datasets.DatasetNotFoundError, match=r"nowhere.*download disabled"):
        datasets.load_fashion_mnist(download=False)
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        datasets.load("cifar")


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP server on loopback serving a fake 'mnist', with the registry pointed at it."""
    served = tmp_path / "served"
    write_fake_dataset(served)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    digests = {f: hashlib.sha256((served / f).read_bytes()).hexdigest() for f in FILES}
    spec = {**datasets.DATASETS["mnist"], "mirrors": [f"http://127.0.0.1:{server.server_port}/"],
            "sha256": digests}
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MLPX_DATA_DIR", raising=False)
    yield served, spec
    server.shutdown()


def test_download_verifies_and_caches(mirror, tmp_path):
    data = datasets.load_mnist()
    assert len(data.x_train) == 20 and "cache" in data.source
    assert sorted(p.name for p in (tmp_path / "cache" / "mlpx" / "mnist").iterdir()) == sorted(FILES)


def test_download_with_wrong_checksum_leaves_nothing(mirror, tmp_path):
    _, spec = mirror
    spec["sha256"][FILES[0]] = "0" * 64
    with pytest.raises(datasets.DatasetNotFoundError, match="sha256 mismatch"):
        datasets.load_mnist()
    folder = tmp_path / "cache" / "mlpx" / "mnist"
    assert not folder.exists() or not any(folder.iterdir())


def test_bundled_sample_is_stratified():
    data = datasets.load_mnist_sample()
    assert data.x_train.shape == (4000, 784) and data.x_test.shape == (1000, 784)
    assert np.bincount(data.y_train).tolist() == [400] * 10
    assert np.bincount(data.y_test).tolist() == [100] * 10
    assert data.x_train.dtype == np.float32 and 0 <= data.x_train.min() and data.x_train.max() <= 1
    assert "sample" in data.source


def test_normalization_options_and_validation_split():
    raw = datasets.load_mnist_sample(normalize="none")
    assert raw.x_train.max() == 255.0
    std = datasets.load_mnist_sample(normalize="standardize")
    assert abs(std.x_train.mean()) < 1e-4 and std.x_train.std() == pytest.approx(1, rel=1e-4)
    split = datasets.load_mnist_sample(validation_split=0.25, seed=1)
    assert len(split.x_val) == 1000 and len(split.x_train) == 3000
    again = datasets.load_mnist_sample(validation_split=0.25, seed=1)
    np.testing.assert_array_equal(split.y_val, again.y_val)
    with pytest.raises(ValueError, match=r"validation_split: expected a fraction in \[0, 1\), got 1.0"):
        datasets.load_mnist_sample(validation_split=1.0)
    with pytest.raises(ValueError, match="unknown normalize 'minmax'"):
        datasets.load_mnist_sample(normalize="minmax")


def test_full_mnist_and_fashion_mnist(mnist):
    assert mnist.x_train.shape == (60000, 784) and mnist.x_test.shape == (10000, 784)
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    fashion = datasets.load_fashion_mnist(download=False)
    assert fashion.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert fashion.classes[9] == "Ankle boot"


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "nope", r"data_dir .*nope does not exist"),
    (lambda tmp: (tmp / "a-file").write_text("x") and tmp / "a-file", r"data_dir .*a-file is a file, not a folder"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", r"data_dir .*empty does not hold the IDX files"),
])
def test_an_explicit_data_dir_without_the_data_is_an_error_not_a_fallback(tmp_path, monkeypatch, make, message):
    """MLPX_DATA_DIR holds a valid dataset, yet a given data_dir that lacks it must not silently load from there."""
    write_fake_dataset(tmp_path / "env" / "mnist")
    monkeypatch.setenv("MLPX_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(datasets.DatasetNotFoundError, match=message) as info:
        datasets.load_mnist(data_dir=make(tmp_path))
    assert FILES[0] in str(info.value)
    assert len(datasets.load_mnist().x_train) == 20  # without data_dir, the environment's folder is used
