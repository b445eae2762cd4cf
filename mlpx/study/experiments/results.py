"""An experiment's outputs: per-configuration means and spreads over seeds, as Markdown, CSV and overlay plots.

Files written into the output folder: ``results.md`` (table), ``results.csv`` (one row per configuration: mean and
sample standard deviation of each number), ``runs.csv`` (one row per run), ``results.json`` (every run with its full
history) and the overlay plots named in ``PLOTS``.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from ..._io import atomic_write_text
from ...diagnostics import has_layer_stats

NUMBERS = ("test_accuracy", "train_accuracy", "train_loss", "test_loss", "seconds")
PLOTS = {  # file: (history key, x key, y label, title, log scale)
    "test_accuracy_per_epoch.png": ("val_accuracy", None, "test accuracy (fraction correct)",
                                    "Test accuracy after each epoch", False),
    "train_loss_per_epoch.png": ("loss", None, "training loss (mean over the epoch, log scale)",
                                 "Training loss per epoch", True),
    "test_loss_per_epoch.png": ("val_loss", None, "test loss", "Test loss after each epoch", False),
    "loss_per_iteration.png": ("iteration_loss", "iterations", "training loss (mean over 200 steps, log scale)",
                               "Training loss per iteration", True),
}

LAYER_PLOT = "gradient_norms_per_layer.png"  # from the runs' History.layer_stats (mlpx.diagnostics), when recorded


def _has_layer_stats(results: list[dict]) -> bool:
    return any(has_layer_stats(run.get("history", {})) for run in results)


def summarize(results: list[dict]) -> list[dict]:
    """One row per configuration (in first-seen order): mean and standard deviation over its seeds."""
    groups: dict[str, list[dict]] = {}
    for run in results:
        groups.setdefault(run["label"], []).append(run)
    rows = []
    for label, runs in groups.items():
        row = {"configuration": label, "optimizer": runs[0]["optimizer"], "seeds": len(runs)}
        for key in NUMBERS:
            values = [r[key] for r in runs]
            row[f"{key}_mean"] = statistics.fmean(values)
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        stops = sorted({r["stop_reason"] for r in runs if r["stop_reason"]})
        row["notes"] = "; ".join(stops)
        rows.append(row)
    return rows


def _pm(row: dict, key: str, scale: float = 1.0, digits: int = 2) -> str:
    mean, std = row[f"{key}_mean"] * scale, row[f"{key}_std"] * scale
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if row["seeds"] > 1 else f"{mean:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    """The results table: accuracies in percent, losses, seconds of training per run; mean ± std over seeds."""
    head = ["configuration", "optimizer", "seeds", "test accuracy %", "train accuracy %", "train loss", "test loss",
            "seconds per run", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["--:"] * 5 + ["---"]) + "|"]
    best = max(rows, key=lambda r: r["test_accuracy_mean"])["configuration"] if rows else None
    for r in rows:
        name = f"**{r['configuration']}**" if r["configuration"] == best else r["configuration"]
        lines.append(f"| {name} | {r['optimizer']} | {r['seeds']} | {_pm(r, 'test_accuracy', 100)} | "
                     f"{_pm(r, 'train_accuracy', 100)} | {_pm(r, 'train_loss', digits=4)} | "
                     f"{_pm(r, 'test_loss', digits=4)} | {_pm(r, 'seconds', digits=1)} | {r['notes']} |")
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_results(folder, name: str, description: str, results: list[dict], settings: dict) -> dict:
    """Write every output file of an experiment; returns {file name: path}."""
    from .. import plot

    folder = Path(folder)
    rows = summarize(results)
    written = {}
    layer_plot = _has_layer_stats(results)
    settings_text = ", ".join(f"{k} {v}" for k, v in settings.items())
    text = (f"# Experiment `{name}`: {description}\n\n{settings_text}. Accuracies in percent, mean ± sample "
            f"standard deviation over seeds; train numbers are measured on the whole training set after training; "
            f"seconds are training time per run. Best test accuracy in bold.\n\n{markdown_table(rows)}\n")
    text += "\n".join(f"![{file}]({file})" for file in
                      [*PLOTS, *([LAYER_PLOT] if layer_plot else [])]) + "\n"
    written["results.md"] = atomic_write_text(folder / "results.md", text)
    columns = ["configuration", "optimizer", "seeds"] + [f"{k}_{s}" for k in NUMBERS for s in ("mean", "std")]
    written["results.csv"] = atomic_write_text(folder / "results.csv", _csv(rows, columns + ["notes"]))
    written["runs.csv"] = atomic_write_text(folder / "runs.csv",
                                            _csv(results, ["label", "optimizer", "seed", *NUMBERS, "stop_reason"]))
    written["results.json"] = atomic_write_text(folder / "results.json", json.dumps(
        {"experiment": name, "settings": settings, "runs": results}, indent=None))
    by_label: dict[str, list] = {}
    for run in results:
        by_label.setdefault(run["label"], []).append(run["history"])
    for file, (key, x_key, ylabel, title, log_y) in PLOTS.items():
        written[file] = plot.compare(by_label, folder / file, key=key, x_key=x_key, ylabel=ylabel, log_y=log_y,
                                     title=f"{title}: {name}", xlabel="iteration" if x_key else "epoch")
    if layer_plot:
        written[LAYER_PLOT] = plot.compare_layers(
            by_label, folder / LAYER_PLOT, key="grad_norm", ylabel="gradient norm ||dW|| (log scale)",
            title=f"Weight-gradient norm of the first and last hidden layer, at each log point's step: {name}")
    return written


def rewrite_results(folder) -> dict:
    """Write the tables and plots again from ``results.json`` (after a change of format, without rerunning)."""
    from .configs import EXPERIMENTS

    saved = json.loads((Path(folder) / "results.json").read_text())
    name = saved["experiment"]
    return write_results(folder, name, EXPERIMENTS[name][0], saved["runs"], saved["settings"])
