"""The first layer from the batch's nonzero inputs: forward, weight gradient and plain SGD's folded update.

MNIST images are 81% zero pixels (Fashion-MNIST 50%), and the first layer's two products, ``x_b @ W1`` and
``x_b^T delta1``, are 64% of a training step's arithmetic for the 784-500-250-100-10 network. Only the nonzero
pixels contribute to either, so these kernels do the work of the nonzeros alone:

- the lists of the batch's nonzeros (mlpx/backend/sparse_index.py): by row for the forward, by pixel pair for the
  weight gradient;
- ``forward``: ``out[i, :] = sum over the row's nonzeros j (ascending) of x[i, j] W1[j, :]``, four nonzeros per
  pass over the output row (the same additions in the same order as one at a time, a quarter of the output row's
  loads and stores; measured at batch 64 on MNIST, float32, one thread: 250 us against 365 us one at a time and
  377 us in 128-column panels, dense OpenBLAS 556 us), in two parts added last: the pixels below
  :func:`_upper_start` (where the folded update's second half of chunks begins: pixel 400 of 784) and those from it
  on. Why: with two threads the parallel twins then split W1 alike, rows below 400 on one core in both the forward
  and the update, the others on the other core. Split by batch rows, as it was, the forward had both cores read
  every touched row of W1 and the update's writes then moved half of them between the cores' caches: alone the
  parallel update took 150 us, after each parallel forward 190-220 us (a one-off script, 64 MNIST batches). Measured
  by epochs (MNIST, SGD, interleaved with the row-split forward, median of paired ratios): 2 threads 0.94-0.95x
  (2 runs of 9 and 13 rounds), Adam 0.94-0.97x; 1 thread, where the serial forward only pays the second part's
  pass (+3%, ~5-9 us a step): 0.99-1.04x in 3 runs, within this machine's noise;
- ``weight_grad``: ``dW1[j, :] = sum over the batch rows i with x[i, j] != 0 (ascending) of x[i, j] delta[i, :]``
  for the pixels j with a nonzero in the batch, two neighbouring pixels at a time (pixels 2p and 2p + 1, from the
  pair lists): each delta row is loaded once for both, and a pixel that is zero in a row adds 0 * delta (the same
  sum, bit for bit). Neighbouring pixels are mostly zero or nonzero together (MNIST: 1.17 pair entries per nonzero
  pixel, for 0.58 delta-row loads). The pair's sums run in two scratch rows (fresh arrays, which LLVM knows apart
  from delta; summing straight into dW's rows gained nothing) and are then copied. Measured at batch 64, one
  thread, interleaved with the one-pixel-at-a-time kernels these replaced (a one-off script against the code of
  efd8526; bench/sparse_ops.py times both against dense BLAS): weight gradient 0.72-0.77x, folded SGD update
  0.73-0.76x on MNIST; 0.81x and 0.67x on Fashion-MNIST. The other rows' gradient is zero, and the flat gradient
  buffer must hold zeros there for the optimizers; rather than zeroing 784 rows every step, ``dirty`` remembers
  which rows were written since they were last zeroed, and only those are cleared (on MNIST about 500 rows are
  touched per batch of 64);
- ``weight_update``: plain SGD's fold ``W1 <- beta W1 + alpha dW1`` (``beta = 1 - lr wd``, ``alpha = -lr``) straight
  into W1, the product summed pair by pair as in the weight gradient: rows whose pair is zero in the whole batch
  are scaled by beta, or not touched at all when beta is 1 (no weight decay).

Each output element is one sum in a fixed order (ascending pixel, in the forward's two fixed parts; or ascending
batch row), whatever the chunk or the thread that computes it: the results are the same bits on every run and with
any thread count. The sums are not BLAS's (different order, no fused multiply-add), so the sparse path agrees
with the dense one to rounding, not to the bit (tested: float64 weights after 100 MNIST steps within 1e-12
relative, float32 within 1e-5). Fused multiply-adds (Numba's ``fastmath={"contract"}``) were tried and gained
nothing (within 2%): these loops wait on loading W1's and delta's rows, not on arithmetic.

Each kernel has a ``*_parallel`` twin (prange over the forward's two parts, then over its rows for the final
addition; over ``CHUNKS`` chunks of pixel pairs in the weight gradient and the folded update, one scratch pair per
chunk; Numba's static schedule gives each of two threads one contiguous half of the chunks) for use while
mlpx.backend.blas_pool runs OpenBLAS's jobs on Numba's threads, which ``fit`` arranges whenever the sparse path
trains, plain SGD included (mlpx.policy.share_blas_threads); outside that, a parallel Numba kernel would meet
OpenBLAS's spinning workers (see numba_kernels.py). Measured on the 2 cores (bench/sparse_ops.py --threads 2, with
and without --parallel, 64 MNIST images, before the forward's two parts): weight gradient 207 -> 129 us, folded
update 202 -> 110 us, forward with the batch's index 332 -> 272 us (the index build, 74-105 us of it, is serial).
The ``reference_*`` functions are the same ops in plain NumPy, the definition the kernels are tested against; the
NumPy reference backend (NumpyOps, ``MLPX_NUMBA=0``) and the GPU backends train dense.

The density below which the sparse path is faster (``CROSSOVER_DENSITY``) was measured on this project's
development machine with one thread (bench/sparse_ops.py --crossover), see the constant.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .numba_kernels import parallel_twin
from .sparse_index import SparseBatch, density  # noqa: F401  (the lists these kernels read)

CHUNKS = 16  # chunks of row pairs in the folded update (one scratch pair each; the parallel twin splits them)

# The input density (fraction of nonzero entries in the training data) at or below which "auto" takes the sparse
# path. Measured with ``python -m bench.sparse_ops --crossover --threads 1 --blocks 7 --reps 30`` (one thread,
# float32, batch 64, 784 -> 500, random pixels at each density, medians of 7 interleaved blocks; code of 7185cca,
# the pair kernels). Sparse / dense time of the pair of first-layer ops a step makes:
#
#   density                                   0.1   0.2   0.3   0.4   0.5   0.6   0.8
#   forward (index incl.) + folded SGD        0.38  0.69  0.94  1.14  1.32  1.51  2.11
#   forward (index incl.) + weight gradient   0.37  0.73  0.98  1.13  1.31  1.49  1.98
#
# break-even near 0.31-0.32 for both; the constant sits just below it. Random pixels are the pair kernels' worst
# case (neighbours independent: 1.8 pair entries per nonzero at density 0.2, against 1.17 on MNIST's images), so
# images break even later. MNIST (0.19) is well inside: 0.60 and 0.40 the dense time (forward, folded SGD);
# Fashion-MNIST (0.50) outside: 1.59 and 0.88, 1.25x dense together (``--datasets``, same command). Two threads
# (parallel twins, threads shared as in fit: ``--threads 2 --parallel --blocks 21 --reps 60``, 2026-12-02) put the
# random-pixel break-even lower, near 0.19 (forward + folded SGD 0.69 at 0.1, 1.07 at 0.2; one thread in the same
# session: 0.78 at 0.2, 1.06 at 0.3), but there the op benchmark misleads: its forward follows a block of dense
# products, which leave W1 in the other core's cache, and takes ~370 us, against 134-162 us for the same parallel
# forward in a loop of its own and 159-178 us inside fit's step (bench/profile_step.py). The epoch decides: on MNIST
# with two threads sparse trains at 1.08-1.14x the floor against 1.27-1.36x dense (docs/benchmarks/results.md).
# So one constant for every thread count, from the one-thread sweep.
CROSSOVER_DENSITY = 0.30


# ---- Numba kernels -----------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy", inline="always")
def _pairs_per_chunk(n_in):
    """How many pixel pairs each of the ``CHUNKS`` chunks of the weight gradient and the folded update holds."""
    return ((n_in + 1) // 2 + CHUNKS - 1) // CHUNKS


@njit(cache=True, error_model="numpy", inline="always")
def _upper_start(n_in):
    """The first pixel of the forward's upper part: where the chunks CHUNKS // 2 .. CHUNKS - 1 of the weight
    gradient and the folded update begin (n_in when that is past the last pixel)."""
    return min(n_in, 2 * _pairs_per_chunk(n_in) * (CHUNKS // 2))


@njit(cache=True, error_model="numpy", inline="always")
def _row_sum(k, stop, row_val, col_idx, w_io, o):
    """o = the sum of row_val[k] W[col_idx[k]] over [k, stop), added one by one to 0 in list order, four nonzeros
    per pass over o (the same additions in the same order as one at a time, a quarter of o's loads and stores)."""
    cols = o.shape[0]
    for c in range(cols):
        o[c] = 0
    while k + 4 <= stop:
        v0, v1, v2, v3 = row_val[k], row_val[k + 1], row_val[k + 2], row_val[k + 3]
        w0, w1, w2, w3 = w_io[col_idx[k]], w_io[col_idx[k + 1]], w_io[col_idx[k + 2]], w_io[col_idx[k + 3]]
        for c in range(cols):
            o[c] = (((o[c] + v0 * w0[c]) + v1 * w1[c]) + v2 * w2[c]) + v3 * w3[c]
        k += 4
    while k < stop:
        v0, w0 = row_val[k], w_io[col_idx[k]]
        for c in range(cols):
            o[c] = o[c] + v0 * w0[c]
        k += 1


@njit(cache=True, error_model="numpy")
def forward(row_ptr, col_idx, row_val, w_io, out_bo, upper_bo):
    """out = x @ W from x's row lists, in two parts added last: out[i] = (sum over the row's nonzeros below
    :func:`_upper_start`) + (sum over those from it on), each summed as in :func:`_row_sum`. ``upper_bo`` is scratch
    of out's shape (this serial kernel uses one row of it; :func:`forward_parallel`, the same sums, all of it)."""
    rows = row_ptr.shape[0] - 1
    cols = w_io.shape[1]
    split = _upper_start(w_io.shape[0])
    upper = upper_bo[0]
    for i in range(rows):
        start, stop = row_ptr[i], row_ptr[i + 1]
        mid = start + np.searchsorted(col_idx[start:stop], split)
        o = out_bo[i]
        _row_sum(start, mid, row_val, col_idx, w_io, o)
        _row_sum(mid, stop, row_val, col_idx, w_io, upper)
        for c in range(cols):
            o[c] = o[c] + upper[c]


@njit(cache=True, error_model="numpy", parallel=True)
def forward_parallel(row_ptr, col_idx, row_val, w_io, out_bo, upper_bo):
    """:func:`forward`'s sums, the lower parts of all rows on one thread and the upper parts on another: with the
    folded update's chunks split the same way, each core reads and writes only its own rows of W1 (see the module
    docstring)."""
    rows = row_ptr.shape[0] - 1
    cols = w_io.shape[1]
    split = _upper_start(w_io.shape[0])
    for part in prange(2):
        for i in range(rows):
            start, stop = row_ptr[i], row_ptr[i + 1]
            mid = start + np.searchsorted(col_idx[start:stop], split)
            if part == 0:
                _row_sum(start, mid, row_val, col_idx, w_io, out_bo[i])
            else:
                _row_sum(mid, stop, row_val, col_idx, w_io, upper_bo[i])
    for i in prange(rows):
        o, upper = out_bo[i], upper_bo[i]
        for c in range(cols):
            o[c] = o[c] + upper[c]


@njit(cache=True, error_model="numpy", inline="always")
def _pair_sum(start, stop, pair_row, pair_val, delta_bo, acc0, acc1):
    """acc0, acc1 = the sums over k in [start, stop) of pair_val[k, 0] delta[pair_row[k]] and of
    pair_val[k, 1] delta[pair_row[k]], added one by one in k order; stop > start. Each delta row is loaded once for
    both pixels, four rows per pass over the accumulators. A pixel zero in a row adds 0 * delta: the same sum."""
    cols = acc0.shape[0]
    a0, b0, r0 = pair_val[start, 0], pair_val[start, 1], delta_bo[pair_row[start]]
    for c in range(cols):
        acc0[c] = a0 * r0[c]
        acc1[c] = b0 * r0[c]
    k = start + 1
    while k + 4 <= stop:
        a0, a1, a2, a3 = pair_val[k, 0], pair_val[k + 1, 0], pair_val[k + 2, 0], pair_val[k + 3, 0]
        b0, b1, b2, b3 = pair_val[k, 1], pair_val[k + 1, 1], pair_val[k + 2, 1], pair_val[k + 3, 1]
        r0, r1, r2, r3 = delta_bo[pair_row[k]], delta_bo[pair_row[k + 1]], delta_bo[pair_row[k + 2]], \
            delta_bo[pair_row[k + 3]]
        for c in range(cols):
            d0, d1, d2, d3 = r0[c], r1[c], r2[c], r3[c]
            acc0[c] = (((acc0[c] + a0 * d0) + a1 * d1) + a2 * d2) + a3 * d3
            acc1[c] = (((acc1[c] + b0 * d0) + b1 * d1) + b2 * d2) + b3 * d3
        k += 4
    while k < stop:
        a0, b0, r0 = pair_val[k, 0], pair_val[k, 1], delta_bo[pair_row[k]]
        for c in range(cols):
            acc0[c] = acc0[c] + a0 * r0[c]
            acc1[c] = acc1[c] + b0 * r0[c]
        k += 1


@njit(cache=True, error_model="numpy")
def weight_grad(pair_ptr, pair_row, pair_val, delta_bo, dw_io, dirty):
    """dW = x^T delta from x's pair lists: rows 2p and 2p + 1 are the sums over the batch rows with a nonzero in
    pair p (ascending); the rows of empty pairs are zeroed if ``dirty`` says they may hold an earlier gradient.
    Updates ``dirty``."""
    n_in, cols = dw_io.shape
    n_pairs = (n_in + 1) // 2
    chunk = _pairs_per_chunk(n_in)
    for part in prange(CHUNKS):
        acc0, acc1, spare = np.empty(cols, dw_io.dtype), np.empty(cols, dw_io.dtype), np.empty(cols, dw_io.dtype)
        for p in range(part * chunk, min(n_pairs, (part + 1) * chunk)):
            j, start, stop = 2 * p, pair_ptr[p], pair_ptr[p + 1]
            second = j + 1 < n_in
            if start == stop:
                for r in range(j, j + 1 + second):
                    if dirty[r]:
                        dw_io[r, :] = 0
                        dirty[r] = False
                continue
            _pair_sum(start, stop, pair_row, pair_val, delta_bo, acc0, acc1)
            d0, d1 = dw_io[j], (dw_io[j + 1] if second else spare)
            for c in range(cols):
                d0[c] = acc0[c]
                d1[c] = acc1[c]
            dirty[j] = True
            if second:
                dirty[j + 1] = True


@njit(cache=True, error_model="numpy")
def weight_update(pair_ptr, pair_row, pair_val, delta_bo, w_io, alpha, beta):
    """W = beta W + alpha x^T delta (plain SGD folded: alpha = -lr, beta = 1 - lr wd), the product summed as in
    :func:`weight_grad`; the rows of pairs that are zero in the whole batch are only scaled by beta (untouched
    when beta is 1)."""
    n_in, cols = w_io.shape
    n_pairs = (n_in + 1) // 2
    cast = w_io.dtype.type
    alpha, beta = cast(alpha), cast(beta)
    scale = beta != 1
    chunk = _pairs_per_chunk(n_in)
    for part in prange(CHUNKS):
        # one scratch pair of sums per chunk (and so per thread in the parallel twin), and a spare row standing in
        # for the absent second row of an odd width's last pair
        acc0, acc1, spare = np.empty(cols, w_io.dtype), np.empty(cols, w_io.dtype), np.empty(cols, w_io.dtype)
        for p in range(part * chunk, min(n_pairs, (part + 1) * chunk)):
            start, stop = pair_ptr[p], pair_ptr[p + 1]
            w0, w1 = w_io[2 * p], (w_io[2 * p + 1] if 2 * p + 1 < n_in else spare)
            if start == stop:
                if scale:
                    for c in range(cols):
                        w0[c] = beta * w0[c]
                        w1[c] = beta * w1[c]
                continue
            _pair_sum(start, stop, pair_row, pair_val, delta_bo, acc0, acc1)
            if scale:
                for c in range(cols):
                    w0[c] = beta * w0[c] + alpha * acc0[c]
                    w1[c] = beta * w1[c] + alpha * acc1[c]
            else:
                for c in range(cols):
                    w0[c] = w0[c] + alpha * acc0[c]
                    w1[c] = w1[c] + alpha * acc1[c]


# parallel=True builds under their own names (Numba's disk cache keys entries by name; see numba_kernels)
weight_grad_parallel = parallel_twin(weight_grad)
weight_update_parallel = parallel_twin(weight_update)


# ---- NumPy reference ---------------------------------------------------------------------------------------------
def reference_forward(x_bi, w_io, out_bo):
    """out = x @ W over x's nonzero columns only (a column of zeros contributes nothing)."""
    cols = np.flatnonzero(np.any(x_bi != 0, axis=0))
    np.matmul(x_bi[:, cols], w_io[cols], out=out_bo)
    return out_bo


def reference_weight_grad(x_bi, delta_bo, dw_io):
    """dW = x^T delta: the touched rows from the product, the others zero."""
    cols = np.flatnonzero(np.any(x_bi != 0, axis=0))
    dw_io[...] = 0
    dw_io[cols] = x_bi[:, cols].T @ delta_bo
    return dw_io


def reference_weight_update(x_bi, delta_bo, w_io, alpha, beta):
    """W = beta W + alpha x^T delta; rows of pixels that are zero in the whole batch: W = beta W."""
    cols = np.flatnonzero(np.any(x_bi != 0, axis=0))
    product = x_bi[:, cols].T @ delta_bo
    if beta != 1:
        w_io *= beta
    w_io[cols] += alpha * product
    return w_io
