"""Evaluation of a trained model and the Markdown report of a run (numbers, confusion matrix, per-class scores).

``evaluate_classifier`` computes every number once; ``markdown_report`` only formats them, so the report states
exactly what ``metrics.json`` holds. ``write_run_files`` writes a run folder's report, metrics and plots.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import metrics
from .._io import atomic_write_text
from ..diagnostics import has_layer_stats, markdown_table

PLOTS = {"iteration_loss": "loss_per_iteration.png", "loss": "loss_per_epoch.png",
         "accuracy": "accuracy_per_epoch.png", "confusion": "confusion_matrix.png",
         "misclassified": "misclassified.png", "gradient_norms": "gradient_norms.png",
         "activations": "activations.png", "first_layer_weights": "first_layer_weights.png"}


def evaluate_classifier(model, x, y, class_names: Sequence[str]) -> dict:
    """Loss, accuracy, predictions, confusion matrix and classification report of ``model`` on (x, y)."""
    start = time.perf_counter()
    result = model.evaluate(x, y)
    y_pred = model.predict(x)
    k = len(class_names)
    return {"loss": result["loss"], "accuracy": metrics.accuracy(y, y_pred), "n_samples": int(len(y)),
            "y_pred": y_pred, "confusion_matrix": metrics.confusion_matrix(y, y_pred, k).tolist(),
            "classification_report": metrics.classification_report(y, y_pred, target_names=class_names,
                                                                   output_dict=True),
            "seconds": time.perf_counter() - start}


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def confusion_table(cm, class_names: Sequence[str]) -> str:
    """A confusion matrix as a Markdown table (rows: true class, columns: predicted class)."""
    header = ["true \\ predicted", *class_names]
    return _table(header, [[name, *row] for name, row in zip(class_names, cm)])


def report_table(report: dict) -> str:
    """A classification_report dict as a Markdown table, with the accuracy and the two averages."""
    rows = []
    for name, row in report.items():
        if name == "accuracy":
            continue
        rows.append([name, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", row["support"]])
    rows.insert(len(rows) - 2, ["accuracy", "", "", f"{report['accuracy']:.4f}", rows[-1][4]])
    return _table(["class", "precision", "recall", "F1", "support"], rows)


def markdown_report(title: str, evaluation: dict, class_names: Sequence[str], config: dict | None = None,
                    history: dict | None = None, train_eval: dict | None = None, plots: dict | None = None,
                    layer_sizes: Sequence[int] | None = None) -> str:
    """The Markdown text of a run (or of ``mlpx evaluate`` when only ``evaluation`` is given); ``layer_sizes``
    labels the per-layer diagnostics table."""
    parts = [f"# {title}", ""]
    if config:
        parts += ["## Configuration", "", _table(["setting", "value"], [[k, f"`{v}`"] for k, v in config.items()]),
                  ""]
    rows = [["test", f"{evaluation['loss']:.4f}", f"{evaluation['accuracy']:.4f}", evaluation["n_samples"]]]
    if train_eval is not None:
        rows.insert(0, ["train (after training)", f"{train_eval['loss']:.4f}", f"{train_eval['accuracy']:.4f}",
                        train_eval["n_samples"]])
    if history and history.get("val_loss"):
        rows.insert(-1, ["validation (last epoch)", f"{history['val_loss'][-1]:.4f}",
                         f"{history['val_accuracy'][-1]:.4f}" if history.get("val_accuracy") else "", ""])
    parts += ["## Results", "", _table(["data", "loss", "accuracy", "samples"], rows), ""]
    if history:
        seconds = history.get("epoch_seconds", [])
        stop = history.get("stop_reason") or "completed all epochs"
        parts += ["## Training", "", f"- epochs run: {len(history.get('loss', []))} ({stop})",
                  f"- training time: {sum(seconds):.1f} s in all, {np.mean(seconds) if seconds else 0:.2f} s per "
                  f"epoch on average", f"- updates: {history.get('steps', 'n/a')} mini-batch steps (iteration loss "
                  f"recorded every {_log_every(history, config)} steps)", ""]
    parts += [f"- evaluation time: {evaluation['seconds']:.2f} s on {evaluation['n_samples']} test samples", "",
              "## Confusion matrix (test set)", "", "Rows are true classes, columns predicted classes.", "",
              confusion_table(evaluation["confusion_matrix"], class_names), "",
              "## Classification report (test set)", "", report_table(evaluation["classification_report"]), ""]
    if history:
        table = markdown_table(history, layer_sizes)  # '' when no log point recorded layer statistics
        if table:
            parts += ["## Inside the network (per-layer diagnostics)", "", table, ""]
    if plots:
        parts += ["## Plots", ""] + [f"![{name}]({Path(path).name})" for name, path in plots.items()] + [""]
    return "\n".join(parts)


def _log_every(history: dict, config: dict | None) -> str:
    """The run's log_every (from its config; else the first log point's step, which is log_every)."""
    if config and config.get("log_every"):
        return str(config["log_every"])
    steps = history.get("iterations") or []
    return str(steps[0]) if steps else "n/a"


def _diagnostics_plots(plot, folder: Path, model, history: dict) -> dict:
    """The per-layer diagnostics' plots of a run: gradient norms, hidden activations' saturated or inactive
    fraction, and for 784-input (28x28 image) models the first 64 units' weights."""
    sizes = model.layer_sizes
    plots = {"gradient norms per layer": plot.gradient_norms(history, folder / PLOTS["gradient_norms"], sizes)}
    if model.n_layers > 1:
        plots["hidden activations"] = plot.activation_fractions(history, folder / PLOTS["activations"],
                                                                model.activation, sizes)
    if model.n_features == 784:
        plots["first-layer weights"] = plot.first_layer_weights(model.get_weights()[0],
                                                                folder / PLOTS["first_layer_weights"])
    return plots


def write_run_files(folder, model, data, history: dict, config: dict | None, title: str,
                    with_train_eval: bool = True) -> dict:
    """Evaluate ``model`` on ``data`` and write report.md, metrics.json and the plots into ``folder``.
    Returns the test evaluation (without predictions)."""
    from . import plot

    folder = Path(folder)
    names = list(data.classes)
    test = evaluate_classifier(model, data.x_test, data.y_test, names)
    train = evaluate_classifier(model, data.x_train, data.y_train, names) if with_train_eval else None
    val_label = f"validation, {len(data.x_val)} held-out images" if data.x_val is not None else "validation"
    plots = {}
    if history and history.get("iterations"):
        plots["loss per iteration"] = plot.iteration_loss(history, folder / PLOTS["iteration_loss"],
                                                          val_label=val_label, loss_name=model.loss)
    if history and history.get("loss"):
        plots["loss per epoch"] = plot.epoch_curves(history, folder / PLOTS["loss"], "loss", val_label=val_label,
                                                    loss_name=model.loss)
        if history.get("accuracy"):
            plots["accuracy per epoch"] = plot.epoch_curves(history, folder / PLOTS["accuracy"], "accuracy",
                                                            val_label=val_label)
    if history and has_layer_stats(history):
        plots.update(_diagnostics_plots(plot, folder, model, history))
    plots["confusion matrix"] = plot.confusion_matrix(test["confusion_matrix"], folder / PLOTS["confusion"], names,
                                                      title=f"Confusion matrix, {data.name} test set")
    plots["misclassified"] = plot.misclassified(data.x_test, data.y_test, test["y_pred"],
                                                folder / PLOTS["misclassified"], names)
    text = markdown_report(title, test, names, config, history, train, plots, layer_sizes=model.layer_sizes)
    atomic_write_text(folder / "report.md", text)
    summary = {"test": {k: v for k, v in test.items() if k != "y_pred"}}
    if train is not None:
        summary["train"] = {k: v for k, v in train.items() if k not in ("y_pred",)}
    atomic_write_text(folder / "metrics.json", json.dumps(summary, indent=1))
    return summary["test"]
