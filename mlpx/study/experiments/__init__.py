"""The seed studies' experiments as one call each: configurations, runs over seeds, results table and plots.

Every run trains the reference network (784-500-250-100-10, batch 64) with one change per configuration, records
its history with the test set as the per-epoch validation data, and is then evaluated on the full training and
test sets. A run is a pure function of its task (configuration, seed, data), so it gives the same numbers in this
process, in a worker process or on a Dask worker (see ``mlpx.study.executors``).

The package: ``configs`` (the experiments' configurations), ``runs`` (one run and the tasks), ``run_key`` (what
determines a run's numbers, and its content key), ``store`` (the run store), ``schedule`` (longest runs first),
``suite`` (one deduplicated sweep over experiments), ``results`` (tables and plots of one experiment), ``index``
(the suite's index.md and account).
"""
from __future__ import annotations

import sys
from typing import Sequence

from .configs import (ACTIVATIONS, BASE, EXPERIMENTS, INIT_GRID, MOMENTUM, SGD,  # noqa: F401  (the public names)
                      _optimizer_text, experiment_configs)
from .runs import _data_spec, make_tasks, run_config  # noqa: F401


def run_experiment(name: str, out, epochs: int = 15, seeds: int = 1, jobs: int = 1, executor: str = "processes",
                   subset: int | None = None, dataset: str = "mnist", data_dir=None, sample: bool = False,
                   backend: str | None = None, blas_threads: int = 1, progress: bool = True,
                   init: str | Sequence[str] | None = None, store=None, input_sparsity: str = "auto") -> dict:
    """Run experiment ``name`` (every configuration x seeds 0..seeds-1) and write its outputs into ``out``.

    Each run uses ``blas_threads`` BLAS threads (default 1) wherever it executes, so that the executor and
    ``jobs`` do not change the numbers. ``init`` changes the initialization (see :func:`experiment_configs`),
    ``input_sparsity`` how every run computes the first layer (``MLP``'s parameter).
    Runs go through the run store ``store`` (default ``out/runs``; see ``store.py``): a run already there is
    reused, each new one is stored as it finishes. Several experiments as one sweep: ``suite.run_suite``.
    Returns {"results": one dict per run, "rows": the per-configuration summary, "files": paths written,
    "sweep": the sweep's account (``suite.Sweep``)}.
    """
    from .results import summarize, write_results
    from .suite import sweep_experiments

    _, _, settings, sweep = sweep_experiments([name], out, epochs, seeds, jobs, executor, subset, dataset, data_dir,
                                              sample, backend, blas_threads, progress, init, store, input_sparsity)
    results = sweep.results
    files = write_results(out, name, EXPERIMENTS[name][0], results, settings(name))
    print(f"mlpx: experiment {name}: {len(results)} runs ({sweep.runs_trained} trained, {sweep.runs_reused} "
          f"reused) in {sweep.wall_seconds:.0f} s; results in {out}/results.md", file=sys.stderr)
    return {"results": results, "rows": summarize(results), "files": files, "sweep": sweep}
