"""torchvision datasets as mlpx arrays: ``mlpx.datasets.from_torchvision(dataset)``.

Works by duck typing on torchvision's dataset API, so torchvision itself is needed only to build a dataset by name:

- MNIST-like datasets (MNIST, FashionMNIST, KMNIST, EMNIST, CIFAR10, ...) keep all images in ``.data`` and the
  labels in ``.targets``: when no ``transform``/``target_transform`` is set these are converted in one go.
- Any other dataset (or one with transforms, a ``Subset``, ...) is iterated as ``(image, label)`` pairs; images
  may be PIL images, torch tensors or NumPy arrays, labels ints or 0-d tensors.

Images become flat float32 rows: uint8 pixels are divided by 255 (``normalize="scale"``, as ``ToTensor`` does),
float pixels (already transformed) are kept as they are; ``normalize="none"`` keeps uint8 values 0..255.
"""
from __future__ import annotations

import numpy as np

NORMALIZATIONS = ("scale", "none")


def from_torchvision(dataset, normalize: str = "scale", verbose: bool = False, **kwargs) -> tuple:
    """(x, y): images flattened to an (n, pixels) float32 array and labels as int64.

    ``dataset`` is a torchvision dataset object (or anything with the same API), or the name of a
    ``torchvision.datasets`` class (e.g. ``"FashionMNIST"``) built with ``kwargs`` (``root``, ``train``,
    ``download``). ``verbose`` shows a progress bar while iterating a dataset item by item.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize: expected one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    if isinstance(dataset, str):
        dataset = _build(dataset, **kwargs)
    elif kwargs:
        raise TypeError(f"from_torchvision: keyword arguments {sorted(kwargs)} only apply when dataset is a name")
    if _has_arrays(dataset):
        images, labels = _to_numpy(dataset.data), _to_numpy(dataset.targets)
    else:
        images, labels = _iterate(dataset, verbose)
    if len(images) != len(labels):
        raise ValueError(f"from_torchvision: {len(images)} images but {len(labels)} labels")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"from_torchvision: expected one integer class label per image, got labels of shape "
                         f"{labels.shape} and dtype {labels.dtype}")
    x = images.reshape(len(images), -1)
    scale = normalize == "scale" and x.dtype == np.uint8
    x = x.astype(np.float32)
    if scale:
        x /= 255.0
    return x, labels.astype(np.int64)


def _build(name: str, **kwargs):
    try:
        import torchvision.datasets as tv_datasets
    except ImportError as err:
        raise ImportError(f"from_torchvision({name!r}) needs torchvision to build the dataset, and it could not "
                          f"be imported ({err}). Install the torchvision build that matches your torch "
                          f"(pip install torchvision), or pass a dataset object instead of a name.") from None
    cls = getattr(tv_datasets, name, None)
    if cls is None:
        raise ValueError(f"torchvision.datasets has no dataset named {name!r}")
    return cls(**kwargs)


def _has_arrays(dataset) -> bool:
    """True for datasets whose ``.data``/``.targets`` are the whole thing (no transforms to apply)."""
    return (hasattr(dataset, "data") and hasattr(dataset, "targets")
            and getattr(dataset, "transform", None) is None and getattr(dataset, "target_transform", None) is None)


def _to_numpy(value) -> np.ndarray:
    """Torch tensors (on any device), PIL images, lists and arrays to a NumPy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _iterate(dataset, verbose: bool) -> tuple[np.ndarray, np.ndarray]:
    try:
        n = len(dataset)
    except TypeError:
        raise TypeError(f"from_torchvision: expected a dataset with len() and [index] returning (image, label), "
                        f"got {type(dataset).__name__}") from None
    if n == 0:
        raise ValueError("from_torchvision: the dataset is empty")
    indices = range(n)
    if verbose:
        from tqdm import tqdm

        indices = tqdm(indices, desc="from_torchvision", unit="image")
    images, labels = None, np.empty(n, dtype=np.int64)
    for i in indices:
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError(f"from_torchvision: item {i} is {type(item).__name__}, expected an (image, label) pair")
        image = _to_numpy(item[0])
        if images is None:
            images = np.empty((n, *image.shape), dtype=image.dtype)
        if image.shape != images.shape[1:]:
            raise ValueError(f"from_torchvision: image {i} has shape {image.shape}, the first had "
                             f"{images.shape[1:]}; resize them to one shape (a transform) first")
        images[i] = image
        labels[i] = int(_to_numpy(item[1]))
    return images, labels
