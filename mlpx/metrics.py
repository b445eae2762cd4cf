"""Classification metrics on label arrays: accuracy, confusion matrix, per-class precision/recall/F1, report.

Definitions follow scikit-learn's (``sklearn.metrics``): rows of the confusion matrix are true classes, columns
predicted ones; a class never predicted has precision 0 (and never present, recall 0) instead of a warning, as
scikit-learn's ``zero_division=0``. The tests compare every function with scikit-learn where it is installed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _labels(y, what: str) -> np.ndarray:
    array = np.asarray(y)
    if array.ndim != 1:
        raise ValueError(f"{what}: expected a 1-d array of class labels, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.mod(array, 1) == 0):
            raise ValueError(f"{what}: expected integer class labels, got dtype {array.dtype} with fractions")
    if array.size and array.min() < 0:
        raise ValueError(f"{what}: expected labels >= 0, got {array.min()}")
    return array.astype(np.int64, copy=False)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred: expected the same length, got {t.shape[0]} and {p.shape[0]}")
    return t, p


def accuracy(y_true, y_pred) -> float:
    """Fraction of labels predicted exactly."""
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        raise ValueError("accuracy: got no samples")
    return float(np.mean(t == p))


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: entry [i, j] = samples of true class i predicted as j."""
    t, p = _pair(y_true, y_pred)
    seen = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    if n_classes is None:
        n_classes = seen
    elif seen > n_classes:
        raise ValueError(f"confusion_matrix: n_classes={n_classes} but a label {seen - 1} occurs")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def precision_recall_f1(y_true, y_pred, n_classes: int | None = None) -> dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` (float arrays) and ``support`` (true count per class)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    true_positive = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def classification_report(y_true, y_pred, target_names: Sequence[str] | None = None, n_classes: int | None = None,
                          digits: int = 4, output_dict: bool = False):
    """Per-class precision/recall/F1/support plus accuracy and macro/weighted averages.

    As text (a table like scikit-learn's) or, with ``output_dict=True``, as a dict keyed by class name,
    ``"accuracy"``, ``"macro avg"`` and ``"weighted avg"``.
    """
    if target_names is not None and n_classes is None:
        n_classes = len(target_names)
    scores = precision_recall_f1(y_true, y_pred, n_classes)
    k = len(scores["support"])
    names = [str(n) for n in target_names] if target_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"target_names: expected {k} names, got {len(names)}")
    total = int(scores["support"].sum())
    report: dict = {}
    for i, name in enumerate(names):
        report[name] = {m: float(scores[m][i]) for m in ("precision", "recall", "f1")}
        report[name]["support"] = int(scores["support"][i])
    report["accuracy"] = accuracy(y_true, y_pred)
    weights = scores["support"] / total if total else np.zeros(k)
    for avg, w in (("macro avg", np.full(k, 1.0 / k)), ("weighted avg", weights)):
        report[avg] = {m: float(np.dot(w, scores[m])) for m in ("precision", "recall", "f1")}
        report[avg]["support"] = total
    return report if output_dict else format_report(report, digits)


def format_report(report: dict, digits: int = 4) -> str:
    """The text table of a :func:`classification_report` dict."""
    width = max(len("weighted avg"), *(len(name) for name in report))
    head = f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"
    lines = [head, ""]
    for name, row in report.items():
        if name == "accuracy":
            total = report["macro avg"]["support"]
            lines += ["", f"{name:>{width}} {'':>9} {'':>9} {row:>9.{digits}f} {total:>9}"]
            continue
        lines.append(f"{name:>{width}} {row['precision']:>9.{digits}f} {row['recall']:>9.{digits}f} "
                     f"{row['f1']:>9.{digits}f} {row['support']:>9}")
    return "\n".join(lines) + "\n"
