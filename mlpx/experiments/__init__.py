"""The seed studies' experiments as one call each: configurations, runs over seeds, results table and plots.

Every run trains the reference network (784-500-250-100-10, batch 64) with one change per configuration, records
its history with the test set as the per-epoch validation data, and is then evaluated on the full training and
test sets. A run is a pure function of its task (configuration, seed, data), so it gives the same numbers in this
process, in a worker process or on a Dask worker (see ``mlpx.executors``).
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import as_completed

from typing import Sequence

from .. import datasets
from .._checks import check_positive_int
from ..initializers import check_initializer

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
SGD = {"name": "sgd", "lr": 0.01}
MOMENTUM = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
BASE = {"hidden": [500, 250, 100], "activation": "relu", "init": "xavier_uniform", "loss": "cross_entropy",
        "optimizer": SGD, "batch_size": 64}
INIT_GRID = ("zeros", "small_random", "he_normal", "xavier_uniform")  # the seed study's grid


def _config(label: str, **changes) -> dict:
    return {**BASE, "label": label, **changes}


def _init_grid(inits: Sequence[str] = INIT_GRID) -> list[dict]:
    return [_config(f"{init} / {act}", init=init, activation=act) for init in inits for act in ACTIVATIONS]


def _optimizer_text(spec: dict) -> str:
    extras = [f"{k} {v}" for k, v in spec.items() if k not in ("name", "lr") and v]
    name = "momentum" if spec.get("momentum") else spec["name"]
    return f"{name} lr {spec['lr']}" + (f" ({', '.join(extras)})" if extras else "")


EXPERIMENTS = {
    "activations": ("hidden activation, SGD lr 0.01",
                    lambda: [_config(act, activation=act) for act in ACTIVATIONS]),
    "optimizers": ("optimizer with a standard learning rate each, relu",
                   lambda: [_config("sgd", optimizer=SGD), _config("momentum 0.9", optimizer=MOMENTUM),
                            _config("rmsprop", optimizer={"name": "rmsprop", "lr": 0.001}),
                            _config("adam", optimizer={"name": "adam", "lr": 0.001})]),
    "losses": ("cross-entropy vs MSE (on the softmax output), each with SGD and momentum, relu",
               lambda: [_config(f"{loss} + {name}", loss=loss, optimizer=opt)
                        for loss in ("cross_entropy", "mse") for name, opt in (("sgd", SGD), ("momentum", MOMENTUM))]),
    "weight-decay": ("L2 weight decay with momentum 0.9 lr 0.01, relu",
                     lambda: [_config(f"weight decay {wd}", optimizer={**MOMENTUM, "weight_decay": wd})
                              for wd in (0.5, 0.1, 0.01, 0.001, 0.0)]),
    "learning-rates": ("SGD learning rate for each activation",
                       lambda: [_config(f"{act} lr {lr}", activation=act, optimizer={"name": "sgd", "lr": lr})
                                for act in ACTIVATIONS for lr in (0.001, 0.01, 0.1)]),
    "init-grid": ("weight initialization crossed with the activation, SGD lr 0.01", _init_grid),
}


def experiment_configs(name: str, init: str | Sequence[str] | None = None) -> list[dict]:
    """The configurations of experiment ``name`` (see ``EXPERIMENTS``).

    ``init`` changes the initialization, e.g. to ``torch_default`` to reproduce a study run with PyTorch's
    ``nn.Linear`` defaults: for init-grid, the initializers crossed with the activations (instead of
    ``INIT_GRID``); for the others, one initializer used by every configuration (instead of xavier_uniform).
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    if init is None:
        return EXPERIMENTS[name][1]()
    inits = [init] if isinstance(init, str) else list(init)
    if not inits:
        raise ValueError(f"--init: expected at least one initializer for experiment {name}, got none")
    for each in inits:
        check_initializer(each)
    if name == "init-grid":
        return _init_grid(list(dict.fromkeys(inits)))
    if len(inits) != 1:
        raise ValueError(f"--init: experiment {name} uses one initializer for every configuration (init-grid "
                         f"crosses several), got {len(inits)}: {', '.join(inits)}")
    return [{**config, "init": inits[0]} for config in EXPERIMENTS[name][1]()]


def _announce_sample(err) -> None:
    """Say loudly, on stderr, that MNIST is missing and the bundled sample stands in for it."""
    print(f"mlpx: {err}\nmlpx: USING THE BUNDLED SAMPLE (4,000 train / 1,000 test images), not the full "
          f"MNIST; accuracy will be lower than on the full dataset", file=sys.stderr)


def load_study_data(dataset: str = "mnist", data_dir=None, sample: bool = False, allow_sample: bool = True,
                    subset: int | None = None, validation_split: float = 0.0, seed: int = 0) -> datasets.Dataset:
    """The dataset, or the bundled MNIST sample (asked for, or as a loud fallback when MNIST is missing and no
    ``data_dir`` was given: an explicit folder without the data is an error); ``subset`` keeps the first N
    training and test images (for quick runs)."""
    if sample:
        data = datasets.load_mnist_sample(validation_split=validation_split, seed=seed)
    else:
        try:
            data = datasets.load(dataset, data_dir=data_dir, validation_split=validation_split, seed=seed)
        except datasets.DatasetNotFoundError as err:
            if dataset != "mnist" or not allow_sample or data_dir:
                raise
            _announce_sample(err)
            data = datasets.load_mnist_sample(validation_split=validation_split, seed=seed)
    if subset is not None:
        if subset < 1:
            raise ValueError(f"--subset: expected a positive number of images, got {subset}")
        data.x_train, data.y_train = data.x_train[:subset], data.y_train[:subset]
        data.x_test, data.y_test = data.x_test[:subset], data.y_test[:subset]
        data.source += f", first {subset} train/test images"
    return data


_DATA_CACHE: dict = {}


def run_config(task: dict) -> dict:
    """Train one configuration with one seed and evaluate it: the unit of work sent to executors. The BLAS thread
    count is pinned to ``task["blas_threads"]`` for the run (float sums depend on it), so a task gives the same
    numbers in this process, a worker process or a Dask worker."""

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=task.get("blas_threads"), user_api="blas"):
        return _train_and_evaluate(task)


def _train_and_evaluate(task: dict) -> dict:
    from ..model import MLP
    from ..optim import make_optimizer
    from ..training import fit

    key = tuple(sorted(task["data"].items()))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_study_data(**task["data"])
    data, config, seed = _DATA_CACHE[key], task["config"], task["seed"]
    model = MLP([data.x_train.shape[1], *config["hidden"], len(data.classes)], activation=config["activation"],
                init=config["init"], seed=seed, backend=task.get("backend"))
    model.compile(loss=config["loss"], optimizer=make_optimizer(dict(config["optimizer"])))
    start = time.perf_counter()
    history = fit(model, data.x_train, data.y_train, epochs=task["epochs"], batch_size=config["batch_size"],
                  validation_data=(data.x_test, data.y_test), verbose=0, log_every=task.get("log_every", 200),
                  diagnostics=task.get("diagnostics", True))  # per-layer stats for the studies' overlays
    seconds = time.perf_counter() - start
    train, test = model.evaluate(data.x_train, data.y_train), model.evaluate(data.x_test, data.y_test)
    return {"label": config["label"], "seed": seed, "optimizer": _optimizer_text(config["optimizer"]),
            "test_accuracy": test["accuracy"], "train_accuracy": train["accuracy"], "train_loss": train["loss"],
            "test_loss": test["loss"], "seconds": seconds, "stop_reason": history.stop_reason,
            "history": history.to_dict()}


def make_tasks(name: str, epochs: int, seeds: int, data: dict, blas_threads: int | None = 1,
               backend: str | None = None, init: str | Sequence[str] | None = None) -> list[dict]:
    """One task per (configuration, seed), seeds 0..seeds-1; ``init`` as in :func:`experiment_configs`."""
    return [{"config": config, "seed": seed, "epochs": epochs, "data": data, "blas_threads": blas_threads,
             "backend": backend} for config in experiment_configs(name, init) for seed in range(seeds)]


def run_tasks(tasks: list[dict], executor, progress: bool = True) -> list[dict]:
    """Submit every task and return the results in task order, with a progress bar as runs complete. A run
    stopped by Ctrl-C stops the whole sweep (KeyboardInterrupt) instead of starting the next one."""
    from tqdm import tqdm

    futures: dict = {}
    results: list = [None] * len(tasks)
    with tqdm(total=len(tasks), desc="runs", unit="run", disable=not progress or None) as bar:
        def collect(future):
            results[futures[future]] = result = future.result()
            bar.update(1)
            if result["stop_reason"] == "interrupted":
                raise KeyboardInterrupt
        for i, task in enumerate(tasks):
            future = executor.submit(run_config, task)
            futures[future] = i
            if future.done():  # the inline executor ran it already
                collect(future)
        for future in as_completed([f for f in futures if results[futures[f]] is None]):
            collect(future)
    return results


def _data_spec(dataset: str, data_dir, subset: int | None, sample: bool) -> dict:
    """What each worker loads. When MNIST cannot be found here, say so loudly and use the bundled sample."""
    if not sample:
        try:
            datasets.find_dataset(dataset, data_dir)
        except datasets.DatasetNotFoundError as err:
            if dataset != "mnist" or data_dir:  # an explicit folder without the data is an error
                raise
            _announce_sample(err)
            sample = True
    return {"dataset": dataset, "data_dir": None if data_dir is None else str(data_dir), "sample": sample,
            "allow_sample": False, "subset": subset}  # a worker without the data fails: no silent mix of data


def run_experiment(name: str, out, epochs: int = 15, seeds: int = 1, jobs: int = 1, executor: str = "processes",
                   subset: int | None = None, dataset: str = "mnist", data_dir=None, sample: bool = False,
                   backend: str | None = None, blas_threads: int = 1, progress: bool = True,
                   init: str | Sequence[str] | None = None, store=None) -> dict:
    """Run experiment ``name`` (every configuration x seeds 0..seeds-1) and write its outputs into ``out``.

    Each run uses ``blas_threads`` BLAS threads (default 1) wherever it executes, so that the executor and
    ``jobs`` do not change the numbers. ``init`` changes the initialization (see :func:`experiment_configs`).
    Runs go through the run store ``store`` (default ``out/runs``; see ``store.py``): a run already there is
    reused, each new one is stored as it finishes. Several experiments as one sweep: ``suite.run_suite``.
    Returns {"results": one dict per run, "rows": the per-configuration summary, "files": paths written,
    "sweep": the sweep's account (``suite.Sweep``)}.
    """
    from pathlib import Path

    from .results import summarize, write_results
    from .store import RunStore
    from .suite import plan, run_sweep, settings_for

    experiment_configs(name, init)  # fails early, naming what is valid, on an unknown experiment or initializer
    epochs, seeds = check_positive_int(epochs, "--epochs"), check_positive_int(seeds, "--seeds")
    data = _data_spec(dataset, data_dir, subset, sample)
    entries = plan([name], epochs, seeds, data, blas_threads, backend, init)
    sweep = run_sweep(entries, RunStore(Path(out) / "runs" if store is None else store), executor, jobs, backend,
                      progress)
    results = sweep.results
    files = write_results(out, name, EXPERIMENTS[name][0], results,
                          settings_for(name, data, epochs, seeds, blas_threads, init))
    print(f"mlpx: experiment {name}: {len(results)} runs ({sweep.runs_trained} trained, {sweep.runs_reused} "
          f"reused) in {sweep.wall_seconds:.0f} s; results in {out}/results.md", file=sys.stderr)
    return {"results": results, "rows": summarize(results), "files": files, "sweep": sweep}
