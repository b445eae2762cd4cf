"""Input validation with messages that name what was expected and what came."""
from __future__ import annotations

import numpy as np


def _describe(array) -> str:
    return f"{type(array).__module__.split('.')[0]} array of shape {tuple(array.shape)} and dtype {array.dtype}"


def check_features(x, n_features: int, what: str = "x") -> None:
    """x must be a non-empty 2-D array with ``n_features`` columns and finite values."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{what}: expected an array of shape (n_samples, {n_features}), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array of shape (n_samples, {n_features}), got {_describe(x)}")
    if x.shape[0] == 0:
        raise ValueError(f"{what}: expected at least one sample, got an empty array of shape {tuple(x.shape)}")
    if x.shape[1] != n_features:
        raise ValueError(f"{what}: expected {n_features} features per sample (the model's input size), "
                         f"got {x.shape[1]} (shape {tuple(x.shape)})")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{what}: expected numbers, got dtype {x.dtype}")
    if x.dtype.kind == "f":
        finite = np.isfinite(x)  # works on CuPy arrays too (__array_ufunc__)
        if not bool(finite.all()):
            raise ValueError(f"{what}: expected finite values, found {int(finite.size - finite.sum())} NaN or "
                             f"infinite entries")


def check_labels(y, n_samples: int, n_classes: int, what: str = "y"):
    """y must be 1-D integer class labels in [0, n_classes), one per sample. Returns them as int32."""
    y = np.asarray(y) if not hasattr(y, "shape") else y
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"{what}: expected 1-D class labels of shape ({n_samples},), got {_describe(y)}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{what}: expected {n_samples} labels (one per sample of x), got {y.shape[0]}")
    if y.dtype.kind == "f":
        if not bool((y == y.round()).all()):
            raise ValueError(f"{what}: expected integer class labels, got non-integer values (dtype {y.dtype})")
    elif y.dtype.kind not in "iub":
        raise TypeError(f"{what}: expected integer class labels, got dtype {y.dtype}")
    low, high = y.min(), y.max()
    if low < 0 or high >= n_classes:
        raise ValueError(f"{what}: expected labels in [0, {n_classes}) for a model with {n_classes} outputs, "
                         f"got values from {low} to {high}")
    return y.astype(np.int32, copy=False) if isinstance(y, np.ndarray) else y.astype("int32")


def check_targets(y, n_samples: int, n_outputs: int, what: str = "y"):
    """Real-valued regression targets, shape (n_samples, n_outputs), or (n_samples,) for one output."""
    if not hasattr(y, "shape"):
        y = np.asarray(y)
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(f"{what}: expected regression targets of shape ({n_samples}, {n_outputs}), got "
                         f"{_describe(y)}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{what}: expected {n_samples} targets (one per sample of x), got {y.shape[0]}")
    check_features(y, n_outputs, what)
    return y


def check_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)
