"""Count what one training step costs the GPU backend: kernel launches (matrix products included), host
synchronizations, uploads and new allocations, measured on the CuPy backend's real orchestration.

Without a GPU it runs over the emulated device (the kernels compiled for the CPU), which counts exactly what CuPy
would be asked to do. One step is what ``fit`` does per batch: gather the batch's rows and labels on the device,
forward, loss, backward, optimizer update. Usage::

    python -m mlpx.backend.step_counts                 # the reference 784-500-250-100-10 network, batch 64
    python -m mlpx.backend.step_counts --backend cupy  # the same on a GPU
"""
from __future__ import annotations

import argparse

import numpy as np

REFERENCE_SIZES = (784, 500, 250, 100, 10)
CASES = (("relu", "cross_entropy", "sgd"), ("relu", "cross_entropy", "momentum"), ("relu", "cross_entropy", "adam"),
         ("relu", "cross_entropy", "rmsprop"), ("sigmoid", "mse", "sgd"))


def count_step(model, x_dev, y_dev, batch: int, steps: int = 3) -> dict:
    """Counts per step, averaged over ``steps`` steps after a first (buffer-allocating) one, for a compiled model
    on a counting backend; the data set (x_dev, y_dev) is already on the device, as ``fit`` puts it there."""
    from ..policy import training_policy

    ops = model.ops
    order = ops.asarray(np.arange(x_dev.shape[0], dtype=np.int64))
    stats = ops.zeros(2, np.float64)
    policy = training_policy(model)  # decided once, as fit decides it

    def one_step(step: int) -> None:
        index = order[(step * batch) % (x_dev.shape[0] - batch + 1):][:batch]
        model._train_batch(x_dev, y_dev, index, stats, policy=policy)  # the step fit takes, gather included

    one_step(0)
    before = ops.counters.snapshot()
    for step in range(1, steps + 1):
        one_step(step)
    counts = ops.counters.since(before)
    return {key: value / steps for key, value in counts.items()}


def reference_counts(backend: str = "emulated", batch: int = 64, sizes=REFERENCE_SIZES, cases=CASES) -> list[dict]:
    """Per-step counts of the reference network for each (activation, loss, optimizer) case."""
    from ..model import MLP

    rows = []
    rng = np.random.default_rng(0)
    x = rng.random((4 * batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], 4 * batch)
    if backend == "cupy":   # count every host read of a device array too (float(a), a.item(), ...), as emulated does
        from .cupy_ops import make_cupy_ops

        backend = make_cupy_ops(count_host_reads=True)
    for activation, loss, optimizer in cases:
        model = MLP(list(sizes), activation=activation, seed=0, backend=backend)
        model.compile(loss=loss, optimizer=optimizer)
        x_dev, y_dev = model.to_backend(x, y)
        rows.append({"activation": activation, "loss": loss, "optimizer": optimizer,
                     **count_step(model, x_dev, y_dev, batch)})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="emulated", choices=["emulated", "cupy"])
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    print(f"per training step, {'-'.join(map(str, REFERENCE_SIZES))} network, batch {args.batch}, "
          f"backend {args.backend}")
    print("| activation | loss | optimizer | launches | of which matrix products | host syncs | uploads | "
          "allocations |")
    print("|---|---|---|---|---|---|---|---|")
    for row in reference_counts(args.backend, args.batch):
        print(f"| {row['activation']} | {row['loss']} | {row['optimizer']} | {row['launches']:g} | {row['gemms']:g} "
              f"| {row['syncs']:g} | {row['uploads']:g} | {row['allocations']:g} |")


if __name__ == "__main__":
    main()
