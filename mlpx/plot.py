"""Report-ready figures with matplotlib, drawn on the Agg canvas (no display, no pyplot global state).

Every function takes recorded numbers (a :class:`mlpx.History`, or its ``to_dict()`` as read from history.json),
writes one PNG and returns its path. Histories from several seeds of one configuration overlay as a mean line
with a min-max band.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

DPI = 100


def _figure(width: float = 7.0, height: float = 4.5):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("mlpx.plot needs matplotlib: pip install 'mlpx[plots]'") from None
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    from ._io import atomic_write

    fig.tight_layout()
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI))


def _get(history, key: str) -> list:
    values = history.get(key) if isinstance(history, Mapping) else getattr(history, key, None)
    return list(values or [])


def iteration_loss(history, path, title: str = "Training loss per iteration", val_label: str = "validation",
                   loss_name: str = "loss", log_scale: bool = False) -> Path:
    """Training loss averaged over each ``log_every`` steps (200 by default), with the validation loss at the
    same steps when it was recorded."""
    fig = _figure()
    ax = fig.add_subplot()
    steps = _get(history, "iterations")
    every = steps[0] if steps else 0
    ax.plot(steps, _get(history, "iteration_loss"), label=f"training (mean over the last {every} steps)", lw=1.2,
            marker="o" if len(steps) <= 30 else None, ms=3)
    val = _get(history, "iteration_val_loss")
    if val:
        ax.plot(steps[:len(val)], val, label=f"{val_label} (at that step)", lw=1.2,
                marker="o" if len(steps) <= 30 else None, ms=3)
    ax.set(xlabel="iteration (mini-batch updates)", ylabel=f"{loss_name.replace('_', '-')} loss", title=title)
    if log_scale:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def epoch_curves(history, path, metric: str = "loss", title: str | None = None, val_label: str = "validation",
                 loss_name: str = "loss") -> Path:
    """Training vs validation ``metric`` ('loss' or 'accuracy') per epoch."""
    fig = _figure()
    ax = fig.add_subplot()
    train = _get(history, metric)
    epochs = np.arange(1, len(train) + 1)
    ax.plot(epochs, train, marker="o", ms=3, label="training (mean over the epoch)")
    val = _get(history, f"val_{metric}")
    if val:
        ax.plot(epochs[:len(val)], val, marker="o", ms=3, label=f"{val_label} (end of epoch)")
    ax.set(xlabel="epoch", ylabel=f"{loss_name.replace('_', '-')} loss" if metric == "loss"
           else f"{metric} (fraction correct)",
           title=title or f"{metric.capitalize()} per epoch")
    ax.set_xticks(epochs if len(epochs) <= 20 else epochs[::max(1, len(epochs) // 10)])
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def confusion_matrix(cm, path, class_names: Sequence[str] | None = None, title: str = "Confusion matrix") -> Path:
    """Heatmap of a confusion matrix: colours normalised per true-class row, raw counts written in each cell."""
    cm = np.asarray(cm)
    k = cm.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig = _figure(7.5, 6.5)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class (row-normalised)")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8 if k <= 10 else 6,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right")
    ax.set_yticks(range(k), names)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    return _save(fig, path)


def misclassified(x, y_true, y_pred, path, class_names: Sequence[str] | None = None, n: int = 25,
                  image_shape: tuple[int, int] = (28, 28), title: str = "Misclassified test images") -> Path:
    """A grid of the first ``n`` misclassified images, each titled with its true and predicted label."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)[:n]
    cols = 5
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig = _figure(cols * 1.6, rows * 1.8 + 0.4)
    names = [str(c) for c in class_names] if class_names is not None else None
    label = (lambda c: names[c]) if names else str
    for slot, index in enumerate(wrong):
        ax = fig.add_subplot(rows, cols, slot + 1)
        ax.imshow(np.asarray(x[index]).reshape(image_shape), cmap="gray_r")
        ax.set_title(f"true {label(y_true[index])}\npred {label(y_pred[index])}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{title} ({len(wrong)} of {int((y_true != y_pred).sum())} errors shown)")
    return _save(fig, path)


def compare(runs: Mapping[str, Sequence], path, key: str = "loss", title: str | None = None,
            ylabel: str | None = None, x_key: str | None = None, xlabel: str = "epoch", log_y: bool = False) -> Path:
    """Overlay several configurations: ``runs`` maps a label to a list of histories (one per seed); each is drawn
    as the mean over seeds of ``key`` with a min-max band. ``x_key`` ('iterations') picks the x values."""
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    for label, histories in runs.items():
        series = [_get(h, key) for h in histories]
        length = min(len(s) for s in series)
        if length == 0:
            continue
        values = np.array([s[:length] for s in series], dtype=float)
        xs = np.array(_get(histories[0], x_key)[:length]) if x_key else np.arange(1, length + 1)
        mean = values.mean(axis=0)
        line, = ax.plot(xs, mean, lw=1.4, marker="o" if length <= 30 else None, ms=3,
                        label=label if len(series) == 1 else f"{label} (mean of {len(series)} seeds)")
        if len(series) > 1:
            ax.fill_between(xs, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.15)
    ax.set(xlabel=xlabel, ylabel=ylabel or key, title=title or f"{key} by configuration")
    if log_y and ax.lines:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both" if log_y else "major")
    if not x_key:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.lines:
        several = any(len(h) > 1 for h in runs.values())
        ax.legend(fontsize=8, title="shaded: min-max over seeds" if several else None, title_fontsize=8)
    else:
        ax.text(0.5, 0.5, f"nothing recorded for {key!r}\n(runs too short?)", ha="center", va="center",
                transform=ax.transAxes, color="gray")
    return _save(fig, path)
