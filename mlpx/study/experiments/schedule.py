"""Scheduling a sweep: how many runs at once, and in which order.

Longest runs first: with N workers the sweep ends when the last run ends, so the long runs go first and the short
ones fill the gaps at the end (the classic LPT rule). A run's cost is estimated as

    cost = epochs x seconds per epoch of its configuration

where the seconds per epoch are, in order of preference:

1. measured: the mean ``seconds / epochs`` of the runs of the same configuration (everything in the run's key but
   the seed and the epochs) already in the store, e.g. from an earlier, shorter sweep;
2. otherwise the configuration's relative weight (``relative_cost``) times the median ratio measured / weight over
   the configurations that were measured (1 when none was). The weights come from the six experiments' full runs on
   the 2-core machine (issue 13): plain SGD runs (activations, learning-rates, init-grid) took 16-17 s per 15-epoch
   run, the experiments with a parameter pass (momentum, RMSProp, Adam) 18.5-19.5 s: SGD without momentum folds
   its update into the backward products (docs/architecture.md), the others make an extra pass over all
   parameters. So plain SGD weighs 1.0 and the others 1.2.

Ties keep the experiments' order.
"""
from __future__ import annotations

import os
import statistics


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), the default ``--jobs``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def relative_cost(config: dict) -> float:
    """Seconds per epoch relative to plain SGD, from ``normal_config``'s optimizer (see the module docstring)."""
    optimizer = config["optimizer"]
    return 1.0 if optimizer["name"] == "sgd" and not optimizer.get("momentum") else 1.2


def configuration_signature(fields: dict) -> str:
    """The key of a run with its seed and epochs left out: runs with equal signatures cost the same per epoch."""
    from .run_key import content_key

    return content_key({k: v for k, v in fields.items() if k not in ("seed", "epochs")})


def measured_costs(records) -> dict[str, float]:
    """{configuration signature: mean seconds per epoch} from ``(fields, result)`` pairs of stored runs."""
    from .store import result_problem

    seconds: dict[str, list[float]] = {}
    for fields, result in records:
        if result_problem(result) is not None or not isinstance(fields, dict):
            continue  # a malformed record measures nothing (the sweep reports it when it needs that run)
        epochs = len(result["history"]["loss"]) or fields.get("epochs")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            epochs = 1
        if result["seconds"] > 0:
            try:
                signature = configuration_signature(fields)
            except (TypeError, ValueError):  # fields that are not JSON numbers and texts
                continue
            seconds.setdefault(signature, []).append(result["seconds"] / epochs)
    return {sig: statistics.fmean(values) for sig, values in seconds.items()}


def estimate_costs(fields_list: list[dict], measured: dict[str, float]) -> list[float]:
    """The estimated cost of each run (``fields`` as in its key), in seconds where measurements allow."""
    signatures = [configuration_signature(f) for f in fields_list]
    ratios = [measured[s] / relative_cost(f["config"]) for s, f in zip(signatures, fields_list) if s in measured]
    scale = statistics.median(ratios) if ratios else 1.0
    return [f["epochs"] * (measured[s] if s in measured else relative_cost(f["config"]) * scale)
            for s, f in zip(signatures, fields_list)]


def longest_first(costs: list[float]) -> list[int]:
    """Indices ordered by decreasing cost, ties in their given order."""
    return sorted(range(len(costs)), key=lambda i: -costs[i])
