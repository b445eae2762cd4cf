"""The first layer's products, dense (NumPy's OpenBLAS) against the sparse-input kernels, on real batches.

    MLPX_DATA_DIR=... python -m bench.sparse_ops --threads 1 --blocks 9
    python -m bench.sparse_ops --crossover          # synthetic batches of chosen densities: where sparse stops paying
    python -m bench.sparse_ops --threads 2 --parallel --crossover   # the parallel twins, threads shared as in fit

Per op, medians over ``--blocks`` interleaved blocks (dense, sparse, dense, sparse, ...; each block times
``--reps`` calls over a rotating set of 64-image batches of the training data), so a disturbance on a shared machine
hits both alike. Ops, at batch 64 and W1 784 x 500 (float32 unless ``--dtype``):

- forward: ``x_b @ W1`` (np.matmul into a preallocated output) vs build the nonzero index + sparse forward;
- weight gradient: ``x_b^T delta`` (np.matmul) vs the sparse weight gradient (index already built);
- folded SGD: BLAS gemm with alpha/beta into W1 vs the sparse folded update (with and without weight decay);
- index: building the batch's nonzero lists alone.

``--crossover`` times forward + weight gradient (+ index) both ways on random pixels at several densities.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from .common import pin_threads


def _batches(dataset: str, n_batches: int, batch: int, seed: int = 0, density: float | None = None):
    if density is not None:
        rng = np.random.default_rng(seed)
        x = rng.random((n_batches * batch, 784), dtype=np.float32)
        x[rng.random(x.shape) >= density] = 0
        return x.reshape(n_batches, batch, 784)
    import mlpx

    data = mlpx.datasets.load(dataset, download=False)
    rng = np.random.default_rng(seed)
    index = rng.permutation(len(data.x_train))[:n_batches * batch]
    return np.ascontiguousarray(data.x_train[index]).reshape(n_batches, batch, 784)


def _time(fn, reps: int) -> float:
    start = time.perf_counter()
    for r in range(reps):
        fn(r)
    return (time.perf_counter() - start) / reps


def measure(xs, dtype, blocks: int, reps: int, width: int = 500, parallel: bool = False) -> dict:
    """Interleaved medians (seconds per call) of each op, dense and sparse."""
    from mlpx.backend import sparse_input as si
    from mlpx.backend.cblas import numpy_cblas

    xs = xs.astype(dtype)
    n_batches, batch, n_in = xs.shape
    rng = np.random.default_rng(1)
    w = rng.standard_normal((n_in, width)).astype(dtype) * 0.05
    delta = rng.standard_normal((batch, width)).astype(dtype) * 0.01
    out = np.empty((batch, width), dtype)
    dw = np.zeros((n_in, width), dtype)
    dirty = np.ones(n_in, np.bool_)
    index = [si.SparseBatch(batch, n_in, dtype).build(x) for x in xs]
    scratch = si.SparseBatch(batch, n_in, dtype)
    cblas = numpy_cblas()
    fwd = si.forward_parallel if parallel else si.forward
    grad = si.weight_grad_parallel if parallel else si.weight_grad
    upd = si.weight_update_parallel if parallel else si.weight_update

    def dense_fold(r, beta=1.0):
        if cblas is None or not cblas.gemm(xs[r % n_batches], delta, w, -1e-6, beta, True, False):
            w[...] = beta * w - 1e-6 * (xs[r % n_batches].T @ delta)

    def sparse_fold(r, beta=1.0):
        s = index[r % n_batches]
        upd(*s.pair_lists, delta, w, -1e-6, beta)

    def sparse_forward(r):
        s = scratch.build(xs[r % n_batches])
        fwd(s.row_ptr, s.col_idx, s.row_val, w, out, s.scratch_like(out))  # as NumbaOps.sparse_forward

    def sparse_grad(r):
        s = index[r % n_batches]
        grad(*s.pair_lists, delta, dw, dirty)

    ops = {
        "forward (incl. index)": (lambda r: np.matmul(xs[r % n_batches], w, out=out), sparse_forward),
        "weight gradient": (lambda r: np.matmul(xs[r % n_batches].T, delta, out=dw), sparse_grad),
        "folded SGD, wd 0": (dense_fold, sparse_fold),
        "folded SGD, wd > 0": (lambda r: dense_fold(r, 1 - 1e-6), lambda r: sparse_fold(r, 1 - 1e-6)),
        "index alone": (None, lambda r: scratch.build(xs[r % n_batches])),
    }
    for dense, sparse in ops.values():  # warm-up (compilation, caches)
        for fn in (dense, sparse):
            if fn is not None:
                _time(fn, 3)
    result = {}
    for name, (dense, sparse) in ops.items():
        d, s = [], []
        for _ in range(blocks):
            if dense is not None:
                d.append(_time(dense, reps))
            s.append(_time(sparse, reps))
        result[name] = (statistics.median(d) if d else None, statistics.median(s))
    touched = statistics.mean(i.touched_rows for i in index)
    nnz = statistics.mean(i.nnz for i in index)
    result["_batch"] = {"density": nnz / (batch * n_in), "touched_rows": touched}
    return result


def _print(title: str, result: dict) -> None:
    info = result.pop("_batch")
    print(f"\n{title}: density {info['density']:.3f}, W1 rows touched per batch {info['touched_rows']:.0f}")
    print("| op | dense us | sparse us | sparse/dense |\n|---|---:|---:|---:|")
    for name, (d, s) in result.items():
        ratio = f"{s / d:.2f}" if d else ""
        print(f"| {name} | {d * 1e6:.0f} | {s * 1e6:.0f} | {ratio} |" if d else f"| {name} | | {s * 1e6:.0f} | |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--parallel", action="store_true", help="the kernels' parallel twins (Numba threads)")
    parser.add_argument("--crossover", action="store_true", help="random pixels at densities 0.1 ... 0.9")
    args = parser.parse_args(argv)
    import numba  # noqa: F401  (loaded first: pin_threads then limits Numba's pool too)

    limiter = pin_threads(args.threads)  # noqa: F841  (kept alive)
    dtype = np.dtype(args.dtype)
    print(f"threads {args.threads}, {dtype.name}, batch 64, W1 784 x 500, medians of {args.blocks} interleaved "
          f"blocks of {args.reps} calls{', parallel twins' if args.parallel else ''}")
    from mlpx.backend import blas_pool

    # The parallel twins run as fit runs them: with OpenBLAS's jobs on Numba's pool (else they would meet
    # OpenBLAS's spinning workers after every dense product, mlpx/backend/blas_pool.py).
    with blas_pool.shared_threads(wanted=args.parallel) as shared:
        if args.parallel:
            print(f"OpenBLAS's threads shared with Numba's: {shared or blas_pool.unavailable_reason()}")
        if args.crossover:
            for d in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8):
                _print(f"random pixels, density {d}", measure(_batches("", 32, 64, density=d), dtype, args.blocks,
                                                               args.reps, parallel=args.parallel))
            return
        for name in args.datasets.split(","):
            _print(name, measure(_batches(name, 64, 64), dtype, args.blocks, args.reps, parallel=args.parallel))


if __name__ == "__main__":
    main()
