"""mlpx.datasets.from_torchvision: stand-ins that mimic torchvision's dataset API (always run), and real
torchvision datasets built from the local IDX files (skipped, with the reason, when torchvision cannot import)."""
import gzip
import os
import shutil
import sys

import numpy as np
import pytest

import mlpx
from mlpx.datasets import from_torchvision


@pytest.fixture(scope="module")
def sample():
    """The bundled MNIST sample as raw uint8 images (n, 28, 28) and labels."""
    data = mlpx.datasets.load_mnist_sample(normalize="none")
    return data.x_train.reshape(-1, 28, 28).astype(np.uint8), data.y_train


class MnistLike:
    """Mimics torchvision.datasets.MNIST: all images in .data, labels in .targets, optional transforms."""

    def __init__(self, images, labels, transform=None):
        self.data, self.targets, self.transform, self.target_transform = images, labels, transform, None

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        image = self.data[i]
        return (self.transform(image) if self.transform else image), int(self.targets[i])


class PairsOnly:
    """Mimics an ImageFolder-style dataset: only len() and [i] -> (image, label)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def to_tensor_like(image):
    """What torchvision's ToTensor does to a (H, W) uint8 image: (1, H, W) float32 in [0, 1]."""
    return (image[None].astype(np.float32) / 255.0)


def test_mnist_like_arrays_convert_in_one_go(sample):
    images, labels = sample
    x, y = from_torchvision(MnistLike(images, labels))
    assert x.shape == (len(images), 784) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, images.reshape(len(images), -1).astype(np.float32) / 255.0)
    np.testing.assert_array_equal(y, labels)
    raw, _ = from_torchvision(MnistLike(images, labels), normalize="none")
    assert raw.max() == 255.0


def test_transforms_and_pairs_are_iterated(sample):
    images, labels = sample[0][:50], sample[1][:50]
    expected = images.reshape(50, -1).astype(np.float32) / 255.0
    x, y = from_torchvision(MnistLike(images, labels, transform=to_tensor_like))   # transform: item by item
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, labels)
    x, y = from_torchvision(PairsOnly(list(images), [np.int64(v) for v in labels]))
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, labels)


def test_torch_tensors_are_accepted(sample):
    torch = pytest.importorskip("torch")
    images, labels = sample[0][:40], sample[1][:40]
    x, y = from_torchvision(MnistLike(torch.from_numpy(images), torch.from_numpy(labels)))
    np.testing.assert_array_equal(x, images.reshape(40, -1) / np.float32(255.0))
    pairs = PairsOnly([torch.from_numpy(to_tensor_like(im)) for im in images], [torch.tensor(v) for v in labels])
    x2, y2 = from_torchvision(pairs)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, labels)


def test_clear_errors():
    with pytest.raises(TypeError, match=r"\(image, label\) pair"):
        from_torchvision([np.zeros(3)])                      # items are images, not pairs
    with pytest.raises(ValueError, match="resize"):
        from_torchvision(PairsOnly([np.zeros((2, 2)), np.zeros((3, 3))], [0, 1]))
    with pytest.raises(ValueError, match="empty"):
        from_torchvision(PairsOnly([], []))
    with pytest.raises(ValueError, match="normalize"):
        from_torchvision(PairsOnly([np.zeros(2)], [0]), normalize="standardize")
    with pytest.raises(TypeError, match="only apply when dataset is a name"):
        from_torchvision(PairsOnly([np.zeros(2)], [0]), root="/tmp")


def test_dataset_name_without_torchvision_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)          # makes `import torchvision` fail
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ImportError, match="needs torchvision.*pip install torchvision"):
        from_torchvision("MNIST", root="/nowhere")


# ---- real torchvision over the local IDX files --------------------------------------------------------------------
def _torchvision():
    try:
        import torchvision
    except Exception as err:  # an ImportError, or a torch/torchvision version mismatch failing at import
        pytest.skip(f"torchvision cannot be imported here ({type(err).__name__}: {err})")
    return torchvision


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    """A torchvision MNIST root (MNIST/raw/ with the unpacked IDX files) made from MLPX_DATA_DIR; no download."""
    if not os.environ.get("MLPX_DATA_DIR"):
        pytest.skip("MLPX_DATA_DIR is not set: point it at a folder with the MNIST IDX files")
    source = mlpx.datasets.find_dataset("mnist", download=False)
    root = tmp_path_factory.mktemp("torchvision")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mlpx.datasets.FILES:
        with gzip.open(source / name, "rb") as src, open(raw / name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return root


def test_real_torchvision_mnist_matches_mlpx_loader(mnist_root):
    tv = _torchvision()
    reference = mlpx.datasets.load_mnist(download=False)
    train = tv.datasets.MNIST(str(mnist_root), train=True, download=False)
    x, y = from_torchvision(train)
    np.testing.assert_array_equal(x, reference.x_train)
    np.testing.assert_array_equal(y, reference.y_train)
    x_test, y_test = from_torchvision("MNIST", root=str(mnist_root), train=False, download=False)
    np.testing.assert_array_equal(x_test, reference.x_test)
    np.testing.assert_array_equal(y_test, reference.y_test)
    import torch

    with_tensor = tv.datasets.MNIST(str(mnist_root), train=False, download=False,
                                    transform=tv.transforms.ToTensor())
    subset = torch.utils.data.Subset(with_tensor, list(range(100)))        # PIL -> ToTensor, item by item
    x_sub, y_sub = from_torchvision(subset)
    np.testing.assert_allclose(x_sub, reference.x_test[:100], atol=1e-7)
    np.testing.assert_array_equal(y_sub, reference.y_test[:100])
