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


def _save(fig, path, tight: bool = True) -> Path:
    from .._io import atomic_write

    if tight:
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


def _mean_and_band(ax, xs, values, label: str, lw: float) -> None:
    """One configuration's line: the mean over seeds (``values``: one row per seed) and, with several seeds, their
    min-max band in the line's colour."""
    seeds, length = values.shape
    line, = ax.plot(xs, values.mean(axis=0), lw=lw, marker="o" if length <= 30 else None, ms=3,
                    label=label if seeds == 1 else f"{label} (mean of {seeds} seeds)")
    if seeds > 1:
        ax.fill_between(xs, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.15)


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
        _mean_and_band(ax, xs, values, label, lw=1.4)
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


# ---- inside the network: History.layer_stats (mlpx.diagnostics) -------------------------------------------------
def _layer_series(history, key: str, layers) -> list:
    from ..diagnostics import series

    return [(layer, *series(history, layer, key)) for layer in layers]


def layer_curves(history, path, key: str = "grad_norm", layer_sizes: Sequence[int] | None = None,
                 hidden_only: bool = False, log_y: bool = True, ylabel: str | None = None,
                 title: str | None = None, ylim: tuple[float, float] | None = None) -> Path:
    """One line per layer of the per-layer statistic ``key`` ('grad_norm', 'update_ratio', 'saturated_fraction',
    ...) over the log points' iterations; ``hidden_only`` leaves out the output layer. ``ylim`` (a fraction's
    (0, 1)) sets the bottom and caps the top, which follows the data so that small fractions stay visible."""
    from ..diagnostics import layer_label, recorded_points

    stats = recorded_points(history)
    n_layers = len(stats[-1]) if stats else 0
    layers = range(n_layers - 1 if hidden_only else n_layers)
    fig = _figure()
    ax = fig.add_subplot()
    for layer, xs, ys in _layer_series(history, key, layers):
        if xs:
            ax.plot(xs, ys, lw=1.2, marker="o" if len(xs) <= 30 else None, ms=3,
                    label=layer_label(layer, layer_sizes) + (" (output)" if layer == n_layers - 1 else ""))
    ax.set(xlabel="iteration (mini-batch updates)", ylabel=ylabel or key.replace("_", " "))
    ax.set_title(title or f"{key.replace('_', ' ')} per layer", fontsize=10)
    if log_y and any(y > 0 for line in ax.lines for y in line.get_ydata()):
        ax.set_yscale("log")
    if ylim is not None:
        top = max([0.0, *(float(np.max(line.get_ydata())) for line in ax.lines)])
        upper = min(ylim[1], max(1.15 * top, 0.05))
        ax.set_ylim(ylim[0] - 0.02 * upper, upper + 0.02 * upper)
    ax.grid(alpha=0.3, which="both" if log_y else "major")
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"nothing recorded for {key!r}\n(no log point with diagnostics?)", ha="center",
                va="center", transform=ax.transAxes, color="gray")
    return _save(fig, path)


def gradient_norms(history, path, layer_sizes: Sequence[int] | None = None) -> Path:
    """||dW|| per layer over iterations, log scale: from each log point's step, on that step's batch."""
    return layer_curves(history, path, "grad_norm", layer_sizes, log_y=True,
                        ylabel="gradient norm ||dW|| (log scale)",
                        title="Weight-gradient norm per layer (the logged step's batch)")


def activation_fractions(history, path, activation: str, layer_sizes: Sequence[int] | None = None) -> Path:
    """The hidden layers' saturated (sigmoid, tanh) or inactive (relu, leaky relu) fraction over iterations."""
    from ..diagnostics import fraction_key

    key = fraction_key(activation) or "activation_mean"
    ylabel, title = {
        "saturated_fraction": ("saturated fraction of the outputs",
                               "output < 0.01 or > 0.99" if activation == "sigmoid" else "|output| > 0.99"),
        "inactive_fraction": ("inactive fraction of the units", "output <= 0 on every sample of the batch"),
        "activation_mean": ("mean activation", "over the batch and the units")}[key]
    return layer_curves(history, path, key, layer_sizes, hidden_only=True, log_y=False, ylabel=ylabel,
                        title=f"{ylabel.capitalize()} per hidden layer ({activation}: {title})",
                        ylim=None if key == "activation_mean" else (0.0, 1.0))


def first_layer_weights(w_io, path, n: int = 64, image_shape: tuple[int, int] = (28, 28),
                        title: str = "First-layer weights") -> Path:
    """The first ``n`` hidden units' incoming weight vectors (columns of W1, shaped (inputs, units)) as images,
    on one colour scale symmetric about zero shared by all of them (red positive, blue negative)."""
    w = np.asarray(w_io, dtype=np.float64)
    if w.shape[0] != image_shape[0] * image_shape[1]:
        raise ValueError(f"first_layer_weights: W1 has {w.shape[0]} inputs, not {image_shape[0]}x{image_shape[1]}")
    n = min(n, w.shape[1])
    shown = w[:, :n]
    vmax = float(np.abs(shown).max()) or 1.0
    cols = min(8, n)
    rows = max(1, int(np.ceil(n / cols)))
    fig = _figure(cols * 0.9 + 1.3, rows * 0.9 + 0.7)
    fig.subplots_adjust(left=0.02, right=0.84, bottom=0.02, top=1 - 0.6 / (rows * 0.9 + 0.7), wspace=0.06,
                        hspace=0.06)
    image = None
    for unit in range(n):
        ax = fig.add_subplot(rows, cols, unit + 1)
        image = ax.imshow(shown[:, unit].reshape(image_shape), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, cax=fig.add_axes((0.87, 0.1, 0.03, 0.75)), label="weight (one scale for all units)")
    fig.suptitle(f"{title}: units 1-{n}, incoming weights as {image_shape[0]}x{image_shape[1]} images")
    return _save(fig, path, tight=False)  # no tight_layout: it would move the colorbar's hand-placed axes


def compare_layers(runs: Mapping[str, Sequence], path, key: str = "grad_norm", title: str | None = None,
                   ylabel: str | None = None, log_y: bool = True) -> Path:
    """Overlay configurations (``runs``: label -> histories, one per seed) for the first and the last hidden
    layer's statistic ``key`` over iterations, one panel each: the mean over seeds, shaded min-max."""
    from ..diagnostics import recorded_points, series

    n_layers = max((len(points[-1]) for histories in runs.values() for h in histories
                    if (points := recorded_points(h))), default=0)
    panels = [(0, "first hidden layer")] + ([(n_layers - 2, "last hidden layer")] if n_layers > 2 else [])
    fig = _figure(6.5 * len(panels), 5)
    for slot, (layer, name) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), slot + 1)
        for label, histories in runs.items():
            pairs = [series(h, layer, key) for h in histories]
            length = min(len(xs) for xs, _ in pairs) if pairs else 0
            if length == 0:
                continue
            values = np.array([ys[:length] for _, ys in pairs], dtype=float)
            _mean_and_band(ax, pairs[0][0][:length], values, label, lw=1.3)
        ax.set(xlabel="iteration", ylabel=ylabel or key.replace("_", " "), title=f"{name} (weight layer {layer + 1})")
        if log_y and ax.lines:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both" if log_y else "major")
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, f"nothing recorded for {key!r}\n(diagnostics off?)", ha="center", va="center",
                    transform=ax.transAxes, color="gray")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
