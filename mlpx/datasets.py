"""MNIST and Fashion-MNIST from the standard IDX gzip files.

Lookup order for the files: the ``MLPX_DATA_DIR`` environment variable, the user cache directory
(``$XDG_CACHE_HOME/mlpx`` or ``~/.cache/mlpx``), then a download from public mirrors into that cache, verified by
sha256 and written atomically. A ``data_dir`` argument replaces that search: the files must be there (an explicit
folder that is silently replaced by another would train on data the caller did not name). In each directory the
files may sit in a subfolder named after the dataset (``mnist/``, ``fashion-mnist/``) or directly in it.

A small stratified MNIST sample ships inside the package (``load_mnist_sample``) so that examples run offline.
Licences: MNIST is CC BY-SA 3.0 (Y. LeCun, C. Cortes, C. J. C. Burges); Fashion-MNIST is MIT (Zalando Research).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._io import atomic_write

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

DATASETS = {
    "mnist": {
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/"],
        "sha256": {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        "classes": [str(d) for d in range(10)],
        "licence": "CC BY-SA 3.0, Y. LeCun, C. Cortes, C. J. C. Burges",
    },
    "fashion-mnist": {
        "mirrors": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "sha256": {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                    "Ankle boot"],
        "licence": "MIT, Copyright (c) 2017 Zalando SE",
    },
}

SAMPLE_FILE = Path(__file__).parent / "data" / "mnist_sample.npz"
NORMALIZATIONS = ("scale", "standardize", "none")
_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}


class DataFormatError(ValueError):
    """An IDX file is corrupt, truncated or not what its name says."""


class DatasetNotFoundError(FileNotFoundError):
    """The dataset files are in none of the searched places and could not be downloaded."""


@dataclass
class Dataset:
    """Arrays of one dataset: images flattened to (n, 784) float32, labels int64. ``x_val``/``y_val`` are None
    unless a validation split was asked for. ``source`` says where the files came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    classes: tuple = ()
    source: str = ""

    def __repr__(self) -> str:
        val = f", val={len(self.x_val)}" if self.x_val is not None else ""
        return f"Dataset({self.name!r}, train={len(self.x_train)}{val}, test={len(self.x_test)}, from {self.source})"


# ---- IDX files -------------------------------------------------------------------------------------------------
def read_idx(path) -> np.ndarray:
    """Read a gzip-compressed IDX file (labels: idx1, images: idx3) into a uint8 array, checking its header."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataFormatError(f"{path}: cannot read as gzip (corrupt or truncated file): {err}") from None
    if len(raw) < 8:
        raise DataFormatError(f"{path}: expected an IDX header of at least 8 bytes, got {len(raw)} bytes")
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    if ndim not in _IDX_MAGIC or magic != _IDX_MAGIC[ndim]:
        raise DataFormatError(f"{path}: expected IDX magic 0x00000801 (labels) or 0x00000803 (images), "
                              f"got 0x{magic:08x}")
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataFormatError(f"{path}: header says shape {tuple(dims)} = {expected} bytes, file has {len(raw)} "
                              f"(truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


# ---- finding and downloading -----------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where downloaded datasets are kept: ``$XDG_CACHE_HOME/mlpx`` or ``~/.cache/mlpx``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlpx"


def _complete_folder(base: Path, name: str) -> Path | None:
    for folder in (base / name, base):
        if all((folder / f).is_file() for f in FILES):
            return folder
    return None


def _explicit_folder(name: str, base: Path) -> Path:
    """The folder a given ``data_dir`` holds the files in, or an error naming it and the files expected."""
    expected = f"the IDX files {', '.join(FILES)} (in it or in its subfolder {name}/)"
    if not base.exists():
        raise DatasetNotFoundError(f"{name}: data_dir {base} does not exist; expected a folder with {expected}")
    if not base.is_dir():
        raise DatasetNotFoundError(f"{name}: data_dir {base} is a file, not a folder; expected a folder with "
                                   f"{expected}")
    folder = _complete_folder(base, name)
    if folder is None:
        raise DatasetNotFoundError(f"{name}: data_dir {base} does not hold {expected}")
    return folder


def find_dataset(name: str, data_dir=None, download: bool = True) -> Path:
    """The folder holding the four IDX files of ``name``, following the lookup order in the module docstring."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if data_dir is not None and str(data_dir) != "":
        return _explicit_folder(name, Path(data_dir))
    searched = []
    for base in (os.environ.get("MLPX_DATA_DIR"), cache_dir()):
        if base:
            searched.append(str(base))
            folder = _complete_folder(Path(base), name)
            if folder is not None:
                return folder
    if not download:
        raise DatasetNotFoundError(f"{name}: the IDX files {', '.join(FILES)} are not in any of: "
                                   f"{'; '.join(searched)} (download disabled)")
    try:
        return download_dataset(name, cache_dir() / name)
    except OSError as err:
        raise DatasetNotFoundError(f"{name}: not found in {'; '.join(searched)} and the download failed: {err}. "
                                   f"Set MLPX_DATA_DIR to a folder with the IDX files.") from None


def download_dataset(name: str, folder: Path, timeout: float = 30.0) -> Path:
    """Download the four files of ``name`` into ``folder``, verifying each sha256; atomic per file."""
    spec = DATASETS[name]
    folder = Path(folder)
    for filename in FILES:
        target = folder / filename
        if target.is_file() and _sha256(target) == spec["sha256"][filename]:
            continue
        errors = []
        for mirror in spec["mirrors"]:
            try:
                with urllib.request.urlopen(mirror + filename, timeout=timeout) as response:
                    atomic_write(target, lambda f: shutil.copyfileobj(response, f))
            except OSError as err:
                errors.append(f"{mirror}: {err}")
                continue
            digest = _sha256(target)
            if digest == spec["sha256"][filename]:
                break
            target.unlink()
            errors.append(f"{mirror}: sha256 mismatch (got {digest})")
        else:
            raise OSError(f"could not download {filename}: {'; '.join(errors)}")
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- loading ---------------------------------------------------------------------------------------------------
def load(name: str, data_dir=None, normalize: str = "scale", validation_split: float = 0.0, seed: int = 0,
         download: bool = True) -> Dataset:
    """Load ``name`` ('mnist' or 'fashion-mnist'); see :func:`load_mnist` for the options."""
    folder = find_dataset(name, data_dir, download)
    arrays = [read_idx(folder / f) for f in FILES]
    for images, labels, split in ((arrays[0], arrays[1], "train"), (arrays[2], arrays[3], "test")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataFormatError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
    return _make_dataset(name, arrays[0], arrays[1], arrays[2], arrays[3], normalize, validation_split, seed,
                         source=str(folder))


def load_mnist(data_dir=None, normalize: str = "scale", validation_split: float = 0.0, seed: int = 0,
               download: bool = True) -> Dataset:
    """MNIST: 60,000 training and 10,000 test digits as (n, 784) float32 arrays and integer labels.

    normalize: 'scale' (pixels / 255, in [0, 1]), 'standardize' (zero mean, unit variance over the training
    pixels) or 'none' (0..255). validation_split: fraction of the training set held out (seeded by ``seed``).
    """
    return load("mnist", data_dir, normalize, validation_split, seed, download)


def load_fashion_mnist(data_dir=None, normalize: str = "scale", validation_split: float = 0.0, seed: int = 0,
                       download: bool = True) -> Dataset:
    """Fashion-MNIST (Zalando Research, MIT licence), same shapes and options as :func:`load_mnist`."""
    return load("fashion-mnist", data_dir, normalize, validation_split, seed, download)


def load_mnist_sample(normalize: str = "scale", validation_split: float = 0.0, seed: int = 0) -> Dataset:
    """The stratified MNIST sample bundled with mlpx (4,000 train and 1,000 test images; CC BY-SA 3.0)."""
    with np.load(SAMPLE_FILE, allow_pickle=False) as data:
        parts = [data[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    return _make_dataset("mnist", *parts, normalize, validation_split, seed,
                         source=f"bundled sample {SAMPLE_FILE.name}")


def _make_dataset(name, x_train, y_train, x_test, y_test, normalize, validation_split, seed, source) -> Dataset:
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"unknown normalize {normalize!r}; expected one of {', '.join(NORMALIZATIONS)}")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split: expected a fraction in [0, 1), got {validation_split!r}")
    x_train = x_train.reshape(len(x_train), -1).astype(np.float32)
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32)
    if normalize != "none":
        x_train /= 255.0
        x_test /= 255.0
    if normalize == "standardize":
        mean, std = x_train.mean(dtype=np.float64), x_train.std(dtype=np.float64)
        for x in (x_train, x_test):
            x -= np.float32(mean)
            x /= np.float32(std)
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    x_val = y_val = None
    if validation_split > 0:
        order = np.random.default_rng(seed).permutation(len(x_train))
        n_val = max(1, int(round(validation_split * len(x_train))))
        val, train = order[:n_val], np.sort(order[n_val:])
        x_val, y_val, x_train, y_train = x_train[val], y_train[val], x_train[train], y_train[train]
    return Dataset(name, x_train, y_train, x_test, y_test, x_val, y_val, tuple(DATASETS[name]["classes"]), source)


from .torchvision_data import from_torchvision  # noqa: E402,F401  (torchvision datasets as arrays)
