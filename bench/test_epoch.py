"""Whole-epoch benchmarks: the BLAS floor first, then one training epoch of 784-500-250-100-10 (batch 64) per
backend and optimizer, and inference throughput on 10,000 images. The floor and the epochs run in the same session,
so the summary's epoch/floor ratios (issue 2: SGD within 1.3x, Adam within 1.6x) compare like with like."""
from __future__ import annotations

import pytest

import mlpx

from .common import BATCH, EPOCH_MEDIANS, LAYERS
from .conftest import available_backends
from .floor import BlasFloor, epoch_flops

BACKENDS = available_backends(speed_paths_only=True)
OPTIMIZERS = {
    "sgd": lambda: mlpx.optim.SGD(lr=0.01),
    "momentum": lambda: mlpx.optim.SGD(lr=0.01, momentum=0.9),
    "rmsprop": lambda: mlpx.optim.RMSProp(lr=0.001),
    "adam": lambda: mlpx.optim.Adam(lr=0.001),
}
ROUNDS = 3


def _record(benchmark, key: str) -> None:
    median = benchmark.stats.stats.median
    EPOCH_MEDIANS[key] = median
    if "floor" in EPOCH_MEDIANS and key != "floor":
        benchmark.extra_info["ratio_to_floor"] = median / EPOCH_MEDIANS["floor"]


def test_floor_epoch(benchmark, bench_data, bench_threads):
    benchmark.group = "epoch"
    floor = BlasFloor(LAYERS, BATCH, len(bench_data.x_train))
    benchmark.extra_info.update(gflop=epoch_flops(LAYERS, len(bench_data.x_train)) / 1e9, threads=bench_threads)
    benchmark.pedantic(floor.epoch, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _record(benchmark, "floor")


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_train_epoch(benchmark, bench_data, bench_threads, backend, optimizer):
    benchmark.group = "epoch"
    if backend == "numpy-reference" and optimizer not in ("sgd", "adam"):
        pytest.skip("the plain NumPy reference is timed for SGD and Adam only")
    ops = BACKENDS[backend]
    model = mlpx.MLP(list(LAYERS), activation="relu", seed=0, backend=ops)
    model.compile(loss="cross_entropy", optimizer=OPTIMIZERS[optimizer]())
    x, y = ops.asarray(bench_data.x_train), ops.asarray(bench_data.y_train)

    def epoch():
        model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
        ops.synchronize()

    benchmark.extra_info.update(data=bench_data.source, threads=bench_threads)
    benchmark.pedantic(epoch, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _record(benchmark, f"{backend}/{optimizer}")


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_inference_10k(benchmark, bench_data, backend):
    benchmark.group = "inference 10,000 images"
    ops = BACKENDS[backend]
    model = mlpx.MLP(list(LAYERS), activation="relu", seed=0, backend=ops)
    x = ops.asarray(bench_data.x_test[:10000])

    def predict():
        model.predict_proba(x)
        ops.synchronize()

    benchmark.pedantic(predict, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["images_per_s"] = len(x) / benchmark.stats.stats.median
