"""One training epoch, dense first layer against the sparse one, interleaved in one process (issue 12).

    MLPX_DATA_DIR=... env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python -m bench.sparse_epoch --threads 2 --rounds 5 --optimizers sgd,adam

Variants, each a model of its own (784-500-250-100-10, float32, batch 64, seed 0, ``fit(epochs=1)``, full MNIST):

- ``floor``: the dense products of one epoch alone (bench/floor.py), the issue's yardstick;
- ``dense``: ``input_sparsity="dense"`` (OpenBLAS's threads shared with Numba's only for a parameter pass, as fit
  decides);
- ``sparse``: ``input_sparsity="sparse"``, as fit decides (threads shared);
- ``sparse-own``: the same with ``MLPX_SHARED_BLAS_POOL=0`` during its epoch (OpenBLAS keeps its own threads, the
  sparse kernels run serially): what the sharing buys;
- ``dense-own``: the dense path with ``MLPX_SHARED_BLAS_POOL=0``: what the sharing buys there (momentum, RMSProp,
  Adam; plain SGD does not share on the dense path).

One untimed warm-up epoch per variant, then ``--rounds`` rounds in which every variant times one epoch, the order
rotating each round; the table gives each variant's median epoch and the medians over rounds of its ratios to the
same round's ``floor`` and ``dense`` epochs (paired ratios: a disturbance of the shared machine hits the pair alike).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from unittest import mock

import numpy as np

from .common import BATCH, LAYERS, load_data, pin_threads

OPTIMIZERS = {"sgd": {"name": "sgd", "lr": 0.01}, "adam": {"name": "adam", "lr": 0.001},
              "momentum": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
              "rmsprop": {"name": "rmsprop", "lr": 0.001}}
VARIANTS = {"floor": (None, False), "dense": ("dense", True), "sparse": ("sparse", True),
            "sparse-own": ("sparse", False), "dense-own": ("dense", False)}


def _epoch(model, x, y, share: bool) -> float:
    from mlpx.backend import blas_pool

    if not hasattr(model, "fit"):  # the BLAS floor
        start = time.perf_counter()
        model.epoch()
        return time.perf_counter() - start

    with mock.patch.dict(os.environ, {} if share else {blas_pool.ENV_SWITCH: "0"}):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
        return time.perf_counter() - start


def run(optimizer: str, variants: list[str], rounds: int, x, y) -> dict:
    import mlpx

    from .floor import BlasFloor

    models = {}
    for name in variants:
        path, _ = VARIANTS[name]
        if path is None:
            models[name] = BlasFloor(LAYERS, BATCH, len(x))
            continue
        model = mlpx.MLP(list(LAYERS), seed=0, input_sparsity=path, backend="numpy")
        model.compile(optimizer=OPTIMIZERS[optimizer])
        models[name] = model
    for name in variants:  # warm-up: compilation, first allocations
        _epoch(models[name], x, y, VARIANTS[name][1])
    times = {name: [] for name in variants}
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for name in order:
            times[name].append(_epoch(models[name], x, y, VARIANTS[name][1]))
        print(f"  round {r + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in variants), flush=True)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--optimizers", default="sgd,adam")
    parser.add_argument("--variants", default="floor,dense,sparse,sparse-own")
    parser.add_argument("--samples", type=int, default=None, help="first N training images (default: all)")
    args = parser.parse_args(argv)
    from mlpx.backend import blas_pool

    limiter = pin_threads(args.threads)  # noqa: F841  (kept alive)
    data = load_data(args.samples)
    x, y = data.x_train, data.y_train
    print(f"threads {args.threads}, MNIST {len(x)} images, density {np.count_nonzero(x) / x.size:.3f}, "
          f"sharing: {blas_pool.unavailable_reason() or 'available'}, {args.rounds} rounds")
    variants = args.variants.split(",")
    for optimizer in args.optimizers.split(","):
        print(f"\n{optimizer} {OPTIMIZERS[optimizer]}", flush=True)
        times = run(optimizer, variants, args.rounds, x, y)
        print("| variant | median epoch s | min s | paired ratio to floor | paired ratio to dense |\n"
              "|---|---:|---:|---:|---:|")
        for name in variants:
            ratios = [statistics.median(t / d for t, d in zip(times[name], times[base])) if base in times
                      else float("nan") for base in ("floor", "dense")]
            print(f"| {name} | {statistics.median(times[name]):.3f} | {min(times[name]):.3f} | {ratios[0]:.3f} | "
                  f"{ratios[1]:.3f} |")


if __name__ == "__main__":
    main()
