"""What the per-layer diagnostics cost (issue 14's target: an epoch at most 3% slower at ``log_every=200``).

Two models of the reference network (784-500-250-100-10, relu, batch 64, float32), same seed, one trained with
``diagnostics=True`` and one with ``diagnostics=False``, alternate epoch by epoch in one process: each round times one
epoch of each, in alternating order (on-off, then off-on), so that drift in the machine's speed hits both. The
verdict is the median over rounds of the paired ratio on/off; each round also records how many cores other processes
kept busy (bench/interference.py), since a busy machine makes any ratio meaningless. The optimizer's step count runs
on across rounds, so every epoch has its ~4.7 log points (938 steps / 200). Usage::

    python -m bench.diagnostics_cost                          # MNIST from MLPX_DATA_DIR, sgd and adam, 7 rounds
    python -m bench.diagnostics_cost --rounds 11 --optimizer adam
    python -m bench.diagnostics_cost --synthetic --samples 6400 --rounds 2   # a smoke test
"""
from __future__ import annotations

import argparse
import statistics
import time

from .common import BATCH, LAYERS, LR, load_data
from .interference import ForeignLoad

TARGET = 1.03


def _model(optimizer: str, backend: str | None):
    import mlpx

    model = mlpx.MLP(list(LAYERS), activation="relu", seed=0, backend=backend)
    model.compile(optimizer={"name": optimizer, "lr": LR if optimizer == "sgd" else 0.001})
    return model


def _epoch(model, data, diagnostics: bool, log_every: int) -> float:
    from mlpx.training import fit

    start = time.perf_counter()
    fit(model, data.x_train, data.y_train, epochs=1, batch_size=BATCH, verbose=0, log_every=log_every,
        diagnostics=diagnostics)
    return time.perf_counter() - start


def measure(data, optimizer: str = "sgd", rounds: int = 7, log_every: int = 200, backend: str | None = None) -> dict:
    """Paired epoch times with diagnostics on and off; returns the rounds and the median ratio."""
    models = {True: _model(optimizer, backend), False: _model(optimizer, backend)}
    for flag, model in models.items():           # warm-up: kernel compilation, buffers, page faults
        _epoch(model, data, flag, log_every)
    load = ForeignLoad([])
    rows = []
    for r in range(rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        load.start()
        seconds = {flag: _epoch(models[flag], data, flag, log_every) for flag in order}
        rows.append({"round": r + 1, "first": "on" if order[0] else "off", "on": seconds[True],
                     "off": seconds[False], "ratio": seconds[True] / seconds[False], "foreign_cores": load.cores()})
    ratios = [row["ratio"] for row in rows]
    return {"optimizer": optimizer, "rounds": rows, "median_ratio": statistics.median(ratios),
            "min_ratio": min(ratios), "max_ratio": max(ratios), "log_every": log_every,
            "backend": models[True].backend}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--optimizer", choices=["sgd", "adam", "both"], default="both")
    parser.add_argument("--log-every", type=int, default=200)
    parser.add_argument("--backend", default=None, help="mlpx backend (default: mlpx's default)")
    parser.add_argument("--synthetic", action="store_true", help="random data of MNIST's shape (timing only)")
    parser.add_argument("--samples", type=int, default=None, help="only the first N training images")
    args = parser.parse_args(argv)
    data = load_data(args.samples, args.synthetic)
    print(f"diagnostics on vs off, {'-'.join(map(str, LAYERS))} relu, batch {BATCH}, log_every {args.log_every}, "
          f"{len(data.x_train)} training images ({data.source})")
    for optimizer in (["sgd", "adam"] if args.optimizer == "both" else [args.optimizer]):
        result = measure(data, optimizer, args.rounds, args.log_every, args.backend)
        print(f"\n{optimizer} ({result['backend']} backend)\n")
        print("| round | first | on s | off s | on / off | other processes' cores |")
        print("|--:|---|--:|--:|--:|--:|")
        for row in result["rounds"]:
            cores = "n/a" if row["foreign_cores"] is None else f"{row['foreign_cores']:.2f}"
            print(f"| {row['round']} | {row['first']} | {row['on']:.3f} | {row['off']:.3f} | {row['ratio']:.4f} | "
                  f"{cores} |")
        verdict = "within" if result["median_ratio"] <= TARGET else "OVER"
        print(f"\nmedian of the paired ratios {result['median_ratio']:.4f} (range {result['min_ratio']:.4f}-"
              f"{result['max_ratio']:.4f}): {verdict} the {TARGET:.2f} target")


if __name__ == "__main__":
    main()
