"""One run of an experiment (a configuration with one seed), the unit of work sent to the executors, and the
tasks that describe them. A run is a pure function of its task (configuration, seed, data), so it gives the same
numbers in this process, in a worker process or on a Dask worker (see ``mlpx.study.executors``). Every run trains
through the library's public ``MLP.fit``.
"""
from __future__ import annotations

import time
from typing import Sequence

from ... import datasets
from ...model import MLP, check_input_sparsity
from ..data import announce_sample, load_run_data
from .configs import _optimizer_text, experiment_configs


_DATA_CACHE: dict = {}


def run_config(task: dict) -> dict:
    """Train one configuration with one seed and evaluate it: the unit of work sent to executors. The BLAS thread
    count is pinned to ``task["blas_threads"]`` for the run (float sums depend on it), so a task gives the same
    numbers in this process, a worker process or a Dask worker."""

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=task.get("blas_threads"), user_api="blas"):
        return _train_and_evaluate(task)


def _train_and_evaluate(task: dict) -> dict:
    from .run_key import library_identity, ops_kind

    key = tuple(sorted(task["data"].items()))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_run_data(**task["data"])
    data, config, seed = _DATA_CACHE[key], task["config"], task["seed"]
    model = MLP([data.x_train.shape[1], *config["hidden"], len(data.classes)], activation=config["activation"],
                init=config["init"], seed=seed, backend=task.get("backend"),
                input_sparsity=task.get("input_sparsity", "auto"))
    model.compile(loss=config["loss"], optimizer=config["optimizer"])
    start = time.perf_counter()
    history = model.fit(data.x_train, data.y_train, epochs=task["epochs"], batch_size=config["batch_size"],
                        validation_data=(data.x_test, data.y_test), verbose=0, log_every=task.get("log_every", 200),
                        diagnostics=task.get("diagnostics", True))  # per-layer stats for the studies' overlays
    seconds = time.perf_counter() - start
    train, test = model.evaluate(data.x_train, data.y_train), model.evaluate(data.x_test, data.y_test)
    return {"label": config["label"], "seed": seed, "optimizer": _optimizer_text(config["optimizer"]),
            "test_accuracy": test["accuracy"], "train_accuracy": train["accuracy"], "train_loss": train["loss"],
            "test_loss": test["loss"], "seconds": seconds, "stop_reason": history.stop_reason,
            "history": history.to_dict(), "first_layer": model.input_path["path"],  # the path fit took
            # what this process ran it with: the client stores the result only if its key says the same
            "backend": ops_kind(model.ops), "libraries": library_identity()}


def make_tasks(name: str, epochs: int, seeds: int, data: dict, blas_threads: int | None = 1,
               backend: str | None = None, init: str | Sequence[str] | None = None,
               input_sparsity: str = "auto") -> list[dict]:
    """One task per (configuration, seed), seeds 0..seeds-1; ``init`` as in :func:`experiment_configs`,
    ``input_sparsity`` as ``MLP``'s (the first layer from the inputs' nonzeros, or dense, or decided by density)."""
    input_sparsity = check_input_sparsity(input_sparsity)
    return [{"config": config, "seed": seed, "epochs": epochs, "data": data, "blas_threads": blas_threads,
             "backend": backend, "input_sparsity": input_sparsity}
            for config in experiment_configs(name, init) for seed in range(seeds)]


def _data_spec(dataset: str, data_dir, subset: int | None, sample: bool) -> dict:
    """What each worker loads. When MNIST cannot be found here, say so loudly and use the bundled sample."""
    if not sample:
        try:
            datasets.find_dataset(dataset, data_dir)
        except datasets.DatasetNotFoundError as err:
            if dataset != "mnist" or data_dir:  # an explicit folder without the data is an error
                raise
            announce_sample(err)
            sample = True
    return {"dataset": dataset, "data_dir": None if data_dir is None else str(data_dir), "sample": sample,
            "allow_sample": False, "subset": subset}  # a worker without the data fails: no silent mix of data
