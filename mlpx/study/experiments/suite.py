"""Several experiments as one sweep: every (configuration, seed) of every experiment named, each distinct run
trained once, finished runs kept in the run store (``store.py``) and reused across experiments and invocations.

``run_suite(["activations", "optimizers"], "experiments")`` writes, in ``experiments/``:

- ``runs/<key>.json``: the store, one file per finished run (the client writes it as soon as the run comes back,
  so a sweep killed at any moment resumes with only the missing runs);
- ``NAME/``: each experiment's results.md, results.csv, runs.csv, results.json and plots, as
  ``mlpx experiment NAME`` always wrote them (``results.write_results``), built from the stored runs only;
- ``index.md`` and ``suite.json``: the summary of the sweep and its time account (``index.py``).

Runs to train are ordered longest first (``schedule.py``) and go to the executor (``mlpx.executors``): inline,
worker processes or a Dask cluster; results come back to this process, which writes the store.
"""
from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .configs import BASE, EXPERIMENTS, _optimizer_text, experiment_configs
from .runs import _data_spec, make_tasks, run_config
from ..._checks import check_positive_int
from .schedule import estimate_costs, longest_first, measured_costs, usable_cores
from .run_key import backend_kind, content_key, data_identity, key_fields, mismatch
from .store import MismatchedRunWarning, RunStore, stored_result

ALL = "all"


@dataclass
class Entry:
    """One (experiment, configuration, seed) of a sweep, with the key of the run that gives its numbers."""
    experiment: str
    label: str
    optimizer: str
    task: dict
    fields: dict
    key: str


@dataclass
class Sweep:
    """The outcome of :func:`run_sweep`: one result per entry (in entry order) and the time account."""
    entries: list[Entry]
    results: list[dict]
    runs_trained: int
    runs_reused: int
    wall_seconds: float
    model_epochs_trained: int


def expand_names(names: Sequence[str]) -> list[str]:
    """The experiments ``names`` stands for, each once, in ``EXPERIMENTS`` order for ``all``, else as given."""
    out: list[str] = []
    for name in names:
        for each in (list(EXPERIMENTS) if name == ALL else [name]):
            if each not in EXPERIMENTS:
                raise ValueError(f"unknown experiment {each!r}; expected one of {', '.join(EXPERIMENTS)} or all")
            if each not in out:
                out.append(each)
    return out


def plan(names: Sequence[str], epochs: int, seeds: int, data: dict, blas_threads: int | None = 1,
         backend: str | None = None, init=None, data_id: dict | None = None, kind: str | None = None,
         input_sparsity: str = "auto") -> list[Entry]:
    """Every (experiment, configuration, seed) of ``names`` with its run's key. ``data_id`` and ``kind`` default
    to the data's identity and the backend kind found here (given, they let the keys be computed without data);
    ``init`` and ``input_sparsity`` as in :func:`~.runs.make_tasks`."""
    data_id = data_id if data_id is not None else data_identity(data)
    kind = kind if kind is not None else backend_kind(backend)
    entries = []
    for name in expand_names(names):
        for task in make_tasks(name, epochs, seeds, data, blas_threads, backend, init, input_sparsity):
            fields = key_fields(task, data_id, kind)
            config = task["config"]
            entries.append(Entry(name, config["label"], _optimizer_text(config["optimizer"]), task, fields,
                                 content_key(fields)))
    return entries


def run_sweep(entries: list[Entry], store: RunStore, executor: str = "processes", jobs: int | None = None,
              backend: str | None = None, progress: bool = True) -> Sweep:
    """Train each distinct run of ``entries`` not in ``store`` (longest first) and return every entry's result.

    Each finished run is written to the store as it arrives (unless it ran on another backend kind or with other
    libraries than its key says: :class:`~.store.MismatchedRunWarning`, used but not stored). A run stopped by
    Ctrl-C is not stored and stops the sweep (KeyboardInterrupt); a run that fails stops it with its error. Either
    way the runs not started are cancelled and those that finished are stored before the error is raised: the
    ones done already, then those still running, which worker processes finish (Dask's are cancelled)."""
    start = time.perf_counter()
    jobs = usable_cores() if jobs is None else check_positive_int(jobs, "--jobs")
    distinct: dict[str, Entry] = {}
    for entry in entries:
        distinct.setdefault(entry.key, entry)
    results: dict[str, dict] = {}
    for key in distinct:
        stored = store.get(key)
        if stored is not None:
            results[key] = stored
    missing = [e for k, e in distinct.items() if k not in results]
    reused = len(distinct) - len(missing)
    costs = estimate_costs([e.fields for e in missing], measured_costs(store.records()) if missing else {})
    missing = [missing[i] for i in longest_first(costs)]
    if missing:
        _train(missing, store, results, executor, min(jobs, len(missing)), backend, progress, reused, len(distinct))
    elif progress:
        print(f"mlpx: all {len(distinct)} distinct runs are in the store {store.folder}; nothing to train",
              file=sys.stderr)
    out = [{**results[e.key], "label": e.label, "optimizer": e.optimizer} for e in entries]
    return Sweep(entries, out, len(missing), reused, time.perf_counter() - start,
                 sum(e.task["epochs"] for e in missing))


def _train(missing: list[Entry], store: RunStore, results: dict, executor: str, jobs: int, backend, progress: bool,
           reused: int, distinct: int) -> None:
    from concurrent.futures import as_completed

    from tqdm import tqdm

    from ..executors import make_executor

    futures: dict = {}
    desc = f"sweep ({distinct} distinct runs, {reused} reused)"
    with tqdm(total=len(missing), desc=desc, unit="run", disable=not progress or None,
              postfix=f"left {len(missing)}") as bar:  # n/total: trained now / to train; ETA from their rate
        def keep(entry: Entry, result: dict) -> None:
            """Store a finished run under its key, unless it ran otherwise than the key says (then only used)."""
            why = mismatch(entry.fields, result)
            if why is None:
                results[entry.key] = store.put(entry.key, entry.fields, result)
            else:
                warnings.warn(f"run store: run {entry.key} ({entry.experiment}: {entry.label}, seed "
                              f"{entry.task['seed']}) is not stored: {why}. Its numbers are used in this sweep's "
                              f"reports only", MismatchedRunWarning, stacklevel=2)
                results[entry.key] = stored_result(result)
            bar.set_postfix_str(f"left {len(missing) - bar.n - 1}", refresh=False)
            bar.update(1)

        def collect(future):
            result = future.result()
            if result.get("stop_reason") == "interrupted":
                raise KeyboardInterrupt  # a partial run: not stored
            keep(futures[future], result)

        def keep_finished():
            """After an error or Ctrl-C: store the runs that did finish (whole) but were not collected yet."""
            for future, entry in futures.items():
                if entry.key in results or not future.done() or future.cancelled() or future.exception():
                    continue
                result = future.result()
                if result.get("stop_reason") != "interrupted":
                    try:
                        keep(entry, result)
                    except OSError:  # the error being raised says more than a failed write here
                        pass

        with make_executor(executor, jobs, backend=backend) as pool:
            try:
                for entry in missing:
                    future = pool.submit(run_config, entry.task)
                    futures[future] = entry
                    if future.done():  # the inline executor ran it already
                        collect(future)
                for future in as_completed([f for f, e in futures.items() if e.key not in results]):
                    collect(future)
            except BaseException:
                for future in futures:
                    future.cancel()  # the runs not started
                keep_finished()  # those done before the error, before any wait
                try:  # worker processes: wait for the running runs (leaving the pool would), then keep them too
                    pool.shutdown(wait=True, cancel_futures=True)
                except TypeError:  # Dask's executor: no cancel_futures; wait=False cancels its running runs
                    pool.shutdown(wait=False)
                keep_finished()
                raise


def settings_for(name: str, data: dict, epochs: int, seeds: int, blas_threads, init,
                 input_sparsity: str = "auto") -> dict:
    """The settings line of an experiment's results.md (as ``mlpx experiment NAME`` always wrote it; the input
    sparsity only when it is not the default "auto")."""
    settings = {"dataset": "MNIST sample (bundled)" if data["sample"] else data["dataset"], "epochs": epochs,
                "seeds": seeds, "batch size": BASE["batch_size"], "network": "784-500-250-100-10",
                "BLAS threads per run": blas_threads}
    if data.get("subset"):
        settings["subset"] = f"first {data['subset']} train/test images"
    if init is not None and name != "init-grid":
        settings["initialization"] = init if isinstance(init, str) else ", ".join(init)
    if input_sparsity != "auto":
        settings["input_sparsity"] = input_sparsity
    return settings


def sweep_experiments(names: Sequence[str], out, epochs: int = 15, seeds: int = 1, jobs: int | None = None,
                      executor: str = "processes", subset: int | None = None, dataset: str = "mnist",
                      data_dir=None, sample: bool = False, backend: str | None = None, blas_threads: int = 1,
                      progress: bool = True, init=None, store=None, input_sparsity: str = "auto"):
    """The work shared by :func:`run_suite` and ``run_experiment``: check the arguments (before any training),
    plan every run of ``names`` and run the sweep through the store (default ``out/runs``). Returns the names
    expanded, the data spec, a function ``settings(name)`` giving an experiment's settings line, and the
    :class:`Sweep`."""
    from ..paths import check_writable

    names = expand_names(names)
    for name in names:
        experiment_configs(name, init)  # fails early, naming what is valid
    epochs, seeds = check_positive_int(epochs, "--epochs"), check_positive_int(seeds, "--seeds")
    out = Path(out)
    store = Path(store) if store is not None else out / "runs"
    check_writable(out, "--out")  # before any training: a store that cannot be written would lose every run
    check_writable(store, "--store")
    data = _data_spec(dataset, data_dir, subset, sample)
    entries = plan(names, epochs, seeds, data, blas_threads, backend, init, input_sparsity=input_sparsity)
    sweep = run_sweep(entries, RunStore(store), executor, jobs, backend, progress)

    def settings(name: str, with_init: bool = True) -> dict:
        return settings_for(name, data, epochs, seeds, blas_threads, init if with_init else None, input_sparsity)

    return names, data, settings, sweep


def run_suite(names: Sequence[str], out, epochs: int = 15, seeds: int = 1, jobs: int | None = None,
              executor: str = "processes", subset: int | None = None, dataset: str = "mnist", data_dir=None,
              sample: bool = False, backend: str | None = None, blas_threads: int = 1, progress: bool = True,
              init=None, store=None, input_sparsity: str = "auto") -> dict:
    """Run the experiments ``names`` (``["all"]`` for every one) as one sweep into ``out`` (see the module
    docstring); ``store`` is the run store's folder (default ``out/runs``). ``jobs`` defaults to the usable cores;
    ``input_sparsity`` is every run's (``MLP``'s parameter: "auto" lets each run decide from the data's density).
    Returns {"sweep": Sweep, "suite": the suite.json dict, "files": {experiment: its files}}."""
    from .index import suite_account, write_index
    from .results import write_results

    out = Path(out)
    names, data, settings, sweep = sweep_experiments(
        names, out, epochs, seeds, jobs, executor, subset, dataset, data_dir, sample, backend, blas_threads,
        progress, init, store, input_sparsity)
    files, by_experiment = {}, {}
    for entry, result in zip(sweep.entries, sweep.results):
        by_experiment.setdefault(entry.experiment, []).append(result)
    for name in names:
        files[name] = write_results(out / name, name, EXPERIMENTS[name][0], by_experiment[name], settings(name))
    suite = suite_account(sweep, names, settings(names[0], with_init=False))
    write_index(out, suite, by_experiment)
    print(f"mlpx: {len(names)} experiment(s), {suite['runs_total']} runs ({suite['runs_distinct']} distinct: "
          f"{suite['runs_trained']} trained, {suite['runs_reused']} reused) in {sweep.wall_seconds:.0f} s; "
          f"summary in {out / 'index.md'}", file=sys.stderr)
    return {"sweep": sweep, "suite": suite, "files": files}
