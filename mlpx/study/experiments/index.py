"""A sweep's summary: ``OUT/index.md`` (for people) and ``OUT/suite.json`` (for programs).

index.md: one row per experiment (its best configuration by mean test accuracy, that mean ± sample standard
deviation over the seeds, the seed studies' figure for that configuration where they give one, a link to the
experiment's folder), then the time account: runs total / distinct / trained now / reused, wall time, model-epochs
trained and model-epochs per second.

suite.json: ``experiments``, ``settings``, ``runs_total``, ``runs_distinct``, ``runs_trained``, ``runs_reused``,
``wall_seconds``, ``model_epochs_trained``, ``model_epochs_per_second`` and ``runs``: per (experiment,
configuration, seed) its ``experiment``, ``label``, ``seed``, ``key`` (the run store's file name), ``test_accuracy``
and ``test_loss``.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..._io import atomic_write_text

# Test accuracy (%) the seed studies reported, per experiment and configuration label (docs/results/README.md).
SEED_FIGURES = {
    "activations": {"sigmoid": 90.1, "tanh": 95.9, "relu": 96.9, "leaky_relu": 97.0},
    "optimizers": {"sgd": 96.9, "momentum 0.9": 97.9, "adam": 97.8},
}


def suite_account(sweep, names: list[str], settings: dict) -> dict:
    """The suite.json dict of a :class:`~mlpx.experiments.suite.Sweep`."""
    wall = sweep.wall_seconds
    return {
        "experiments": list(names), "settings": settings,
        "runs_total": len(sweep.entries), "runs_distinct": len({e.key for e in sweep.entries}),
        "runs_trained": sweep.runs_trained, "runs_reused": sweep.runs_reused, "wall_seconds": round(wall, 3),
        "model_epochs_trained": sweep.model_epochs_trained,
        "model_epochs_per_second": round(sweep.model_epochs_trained / wall, 4) if wall > 0 else None,
        "runs": [{"experiment": e.experiment, "label": e.label, "seed": e.task["seed"], "key": e.key,
                  "test_accuracy": r["test_accuracy"], "test_loss": r["test_loss"]}
                 for e, r in zip(sweep.entries, sweep.results)],
    }


def _best_row(name: str, runs: list[dict]) -> str:
    from .results import summarize

    rows = summarize(runs)
    best = max(rows, key=lambda r: r["test_accuracy_mean"])
    accuracy = f"{100 * best['test_accuracy_mean']:.2f}"
    if best["seeds"] > 1:
        accuracy += f" ± {100 * best['test_accuracy_std']:.2f}"
    seed = SEED_FIGURES.get(name, {}).get(best["configuration"])
    return (f"| [{name}]({name}/results.md) | {len(rows)} | {best['configuration']} ({best['optimizer']}) | "
            f"{accuracy} | {'—' if seed is None else seed} | [CSV]({name}/results.csv), [runs]({name}/runs.csv) |")


def index_markdown(suite: dict, by_experiment: dict[str, list[dict]]) -> str:
    from .configs import EXPERIMENTS

    settings = ", ".join(f"{k} {v}" for k, v in suite["settings"].items() if k != "initialization")
    lines = [f"# Seed studies: {len(suite['experiments'])} experiment(s) as one sweep", "",
             f"{settings}. Best configuration of each experiment by mean test accuracy (percent, mean ± sample "
             f"standard deviation over the seeds); each experiment's folder holds its full table, CSV files and "
             f"plots.", "",
             "| experiment | configurations | best configuration | test accuracy % | seed studies | files |",
             "|---|--:|---|--:|--:|---|"]
    lines += [_best_row(name, by_experiment[name]) for name in suite["experiments"]]
    lines += ["", "Experiments: " + "; ".join(f"`{n}`: {EXPERIMENTS[n][0]}" for n in suite["experiments"]) + ".",
              "", "## Time", ""]
    rate = suite["model_epochs_per_second"]
    lines += ["| runs total | distinct | trained now | reused | wall time | model-epochs trained | "
              "model-epochs per second |", "|--:|--:|--:|--:|--:|--:|--:|",
              f"| {suite['runs_total']} | {suite['runs_distinct']} | {suite['runs_trained']} | {suite['runs_reused']} "
              f"| {suite['wall_seconds']:.0f} s | {suite['model_epochs_trained']} | "
              f"{'—' if rate is None else f'{rate:.2f}'} |", "",
              "A run is distinct by its key (configuration without its label, seed, epochs, data, BLAS threads, "
              "backend, NumPy/Numba/BLAS versions, code): the same run in several experiments is trained once. "
              "Reused runs come from the run store (`runs/`), from this or an earlier invocation; the wall time is "
              "this invocation's. "
              "Machine-readable: [suite.json](suite.json).", ""]
    return "\n".join(lines)


def write_index(out, suite: dict, by_experiment: dict[str, list[dict]]) -> dict:
    """Write ``out/index.md`` and ``out/suite.json``; returns {file name: path}."""
    out = Path(out)
    return {"index.md": atomic_write_text(out / "index.md", index_markdown(suite, by_experiment)),
            "suite.json": atomic_write_text(out / "suite.json", json.dumps(suite, indent=1) + "\n")}
