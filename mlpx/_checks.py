"""Input validation with messages that name what was expected and what came."""
from __future__ import annotations

import numpy as np


def _describe(array) -> str:
    return f"{type(array).__module__.split('.')[0]} array of shape {tuple(array.shape)} and dtype {array.dtype}"


def check_features(x, n_features: int, what: str = "x", dtype=None) -> None:
    """x must be a non-empty 2-D array with ``n_features`` columns and finite values (finite in ``dtype`` too, the
    model's, when given: x is cast to it)."""
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
        check_finite(x, what, dtype)


def check_finite(x, what: str, dtype=None) -> None:
    """Refuse NaN, inf and values beyond ``dtype``'s range (default: x's own): a float64 1e40 passes a finite check
    but turns into inf on the cast to float32, and the weights into NaN. Two reductions (min, max; NaN propagates),
    no temporary array, one host read on a GPU; the entries are counted only to word the error. Works on CuPy
    arrays too."""
    target = np.dtype(dtype if dtype is not None else x.dtype)
    limit = float(np.finfo(target).max)
    if x.dtype.kind == "f":  # float32 data for a float64 model: compare within float32 (no overflowing cast)
        limit = min(limit, float(np.finfo(x.dtype).max))
    if x.size == 0 or bool((x.min() >= -limit) & (x.max() <= limit)):  # False for NaN
        return
    finite = np.isfinite(x)
    if not bool(finite.all()):
        raise ValueError(f"{what}: expected finite values, found {int(finite.size - finite.sum())} NaN or "
                         f"infinite entries")
    value = float(x.max()) if float(x.max()) > limit else float(x.min())
    raise ValueError(f"{what}: value {value:g} overflows {target.name} (largest {limit:g}); expected "
                     f"values within +-{limit:g}")


def check_array(array, shape: tuple, dtype, what: str) -> None:
    """An array read from a file, that the kernels will trust: exactly ``shape`` and ``dtype``, finite values.

    The fused kernels take their lengths from the parameter buffer, so a shorter state array would let them read
    and write past its end; a file written by mlpx always holds the model's own shapes and dtype.
    """
    dtype = np.dtype(dtype)
    if not hasattr(array, "shape") or tuple(array.shape) != tuple(shape) or array.dtype != dtype:
        got = (f"shape {tuple(array.shape)} {array.dtype}" if hasattr(array, "shape") and hasattr(array, "dtype")
               else type(array).__name__)
        raise ValueError(f"{what}: expected shape {tuple(shape)} {dtype.name}, got {got}")
    if dtype.kind == "f":
        check_finite(array, what)


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


def check_targets(y, n_samples: int, n_outputs: int, what: str = "y", dtype=None):
    """Real-valued regression targets, shape (n_samples, n_outputs), or (n_samples,) for one output; finite in
    ``dtype`` (the model's) when given."""
    if not hasattr(y, "shape"):
        y = np.asarray(y)
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(f"{what}: expected regression targets of shape ({n_samples}, {n_outputs}), got "
                         f"{_describe(y)}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{what}: expected {n_samples} targets (one per sample of x), got {y.shape[0]}")
    check_features(y, n_outputs, what, dtype)
    return y


def check_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_seed(value, what: str = "seed") -> int | None:
    """None (fresh entropy) or a non-negative integer. NumPy refuses a negative seed deep inside, in words that do
    not name the parameter; a float or bool seed (1.5, True) is a mistake rather than a seed anyone means."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer or None, got {value!r}")
    return int(value)


def check_number(value, what: str, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number within [low, high] (``low_open``/``high_open`` exclude an end); returns it as a float.

    Hyper-parameters go straight into the update kernels, where a string fails with an internal message and inf
    or NaN silently ruin the weights, so they are checked where they are given.
    """
    if low is None and high is None:
        condition = "a finite number"
    elif high is None:
        condition = f"a finite number {'>' if low_open else '>='} {low:g}"
    elif low is None:
        condition = f"a finite number {'<' if high_open else '<='} {high:g}"
    else:
        condition = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} must be {condition}, got {type(value).__name__} {value!r}")
    number = float(value)
    below = low is not None and (number < low or (low_open and number == low))
    above = high is not None and (number > high or (high_open and number == high))
    if not np.isfinite(number) or below or above:
        raise ValueError(f"{what} must be {condition}, got {value!r}")
    return number
