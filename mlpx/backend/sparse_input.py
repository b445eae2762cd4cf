"""The first layer from the batch's nonzero inputs: forward, weight gradient and plain SGD's folded update.

MNIST images are 81% zero pixels (Fashion-MNIST 50%), and the first layer's two products, ``x_b @ W1`` and
``x_b^T delta1``, are 64% of a training step's arithmetic for the 784-500-250-100-10 network. Only the nonzero
pixels contribute to either, so these kernels do the work of the nonzeros alone:

- ``build_index`` lists the batch's nonzeros once per step, row by row (CSR: for the forward) and pixel by pixel
  (CSC: for the weight gradient), in one pass plus a scatter; the writes are branch-free (a zero is written and
  not counted), as the pixels' zero/nonzero pattern is random to the branch predictor;
- ``forward``: ``out[i, :] = sum over the row's nonzeros j (ascending) of x[i, j] W1[j, :]``, four nonzeros per
  pass over the output row (the same additions in the same order as one at a time, a quarter of the output row's
  loads and stores; measured at batch 64 on MNIST, float32, one thread: 250 us against 365 us one at a time and
  377 us in 128-column panels, dense OpenBLAS 556 us);
- ``weight_grad``: ``dW1[j, :] = sum over the batch rows i with x[i, j] != 0 (ascending) of x[i, j] delta[i, :]``
  for the pixels j with a nonzero in the batch. The other rows' gradient is zero, and the flat gradient buffer must
  hold zeros there for the optimizers; rather than zeroing 784 rows every step, ``dirty`` remembers which rows were
  written since they were last zeroed, and only those are cleared (on MNIST about 500 rows are touched per batch of
  64, so most rows are clean step after step);
- ``weight_update``: plain SGD's fold ``W1 <- beta W1 + alpha dW1`` (``beta = 1 - lr wd``, ``alpha = -lr``) straight
  into W1: rows whose pixel is zero in the whole batch are scaled by beta, or not touched at all when beta is 1
  (no weight decay).

Each output element is one sum in a fixed order (ascending pixel, or ascending batch row), whatever the panel or
the thread that computes it: the results are the same bits on every run and with any thread count. The sums are not
BLAS's (different order, no fused multiply-add), so the sparse path agrees with the dense one to rounding, not to
the bit (tested: float64 weights after 100 MNIST steps within 1e-12 relative, float32 within 1e-5).

Each kernel has a ``*_parallel`` twin (prange over the batch rows in the forward, over W1's rows in the weight
gradient, over ``CHUNKS`` chunks of W1's rows in the folded update, one scratch row per chunk) for use while
mlpx.backend.blas_pool runs OpenBLAS's jobs on Numba's threads, which ``fit`` arranges whenever the sparse path
trains, plain SGD included (mlpx.policy.share_blas_threads); outside that, a parallel Numba kernel would meet
OpenBLAS's spinning workers (see numba_kernels.py). Measured on 2 cores (64 MNIST images, threads shared, another
process on the machine): forward 245 -> 154 us, weight gradient 247 -> 169 us, folded update 256 -> 164 us. The
``reference_*`` functions are the same ops in plain NumPy, the definition the kernels are tested against; the NumPy
reference backend (NumpyOps, ``MLPX_NUMBA=0``) and the GPU backends train dense.

The density below which the sparse path is faster (``CROSSOVER_DENSITY``) was measured on this project's
development machine with one thread (bench/sparse_ops.py --crossover), see the constant.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .numba_kernels import parallel_twin

CHUNKS = 16  # row chunks of the folded update (one scratch row each; the parallel twin splits them)

# The input density (fraction of nonzero entries in the training data) at or below which "auto" takes the sparse
# path. Measured with ``python -m bench.sparse_ops --crossover --threads 1 --blocks 7 --reps 30`` (one thread,
# float32, batch 64, 784 -> 500, random pixels at each density, medians of 7 interleaved blocks; 2 cores shared with
# another session's tests, so indicative). Sparse / dense time of the pair of first-layer ops a step makes:
#
#   density                                   0.1   0.2   0.3   0.4   0.5   0.6   0.8
#   forward (index incl.) + folded SGD        0.35  0.62  0.87  1.13  1.35  1.64  2.45
#   forward (index incl.) + weight gradient   0.37  0.58  0.84  1.09  1.36  1.60  2.10
#
# break-even near 0.35 for both; the constant sits below it for margin. MNIST (0.19) is well inside, Fashion-MNIST
# (0.50) outside. Two threads (parallel twins, threads shared as in fit: ``--threads 2 --parallel``) could not be
# measured on that machine (another process held a core: dense products 3-8 ms instead of 0.3); at MNIST's density
# the parallel twins were 1.5x faster than the serial kernels where the dense products gained ~1.7x, so the
# two-thread break-even is likely lower than this one-thread value (left open: a per-thread-count constant).
CROSSOVER_DENSITY = 0.30


# ---- Numba kernels -----------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def build_index(x_bi, row_ptr, col_idx, row_val, col_ptr, col_row, col_val, cursor):
    """Lists x's nonzeros row by row (row_ptr, col_idx, row_val) and pixel by pixel (col_ptr, col_row, col_val);
    returns the number of nonzeros. Array sizes: row_ptr rows + 1, col_ptr and cursor cols + 1, the others
    rows * cols. NaN counts as nonzero (it is not zero)."""
    rows, cols = x_bi.shape
    for j in range(cols + 1):
        col_ptr[j] = 0
    nnz = 0
    for i in range(rows):
        row_ptr[i] = nnz
        xr = x_bi[i]
        for j in range(cols):
            v = xr[j]
            nz = v != 0
            col_idx[nnz] = j          # branch-free: written always, kept only when counted
            row_val[nnz] = v
            nnz += nz
            col_ptr[j + 1] += nz
    row_ptr[rows] = nnz
    for j in range(cols):
        col_ptr[j + 1] += col_ptr[j]
        cursor[j] = col_ptr[j]
    for i in range(rows):
        for k in range(row_ptr[i], row_ptr[i + 1]):
            j = col_idx[k]
            p = cursor[j]
            col_row[p] = i
            col_val[p] = row_val[k]
            cursor[j] = p + 1
    return nnz


@njit(cache=True, error_model="numpy")
def forward(row_ptr, col_idx, row_val, w_io, out_bo):
    """out = x @ W from x's row lists: each output element is the sum over the row's nonzeros, ascending pixel,
    added one by one to 0 (four nonzeros per pass over the output row: the same additions in the same order, with
    a quarter of the output loads and stores)."""
    rows = row_ptr.shape[0] - 1
    cols = w_io.shape[1]
    for i in prange(rows):
        o = out_bo[i]
        for c in range(cols):
            o[c] = 0
        k, stop = row_ptr[i], row_ptr[i + 1]
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


@njit(cache=True, error_model="numpy", inline="always")
def _column_sum(start, stop, col_row, col_val, delta_bo, acc):
    """acc = sum over k in [start, stop) of col_val[k] delta[col_row[k]], added one by one in k order (four per
    pass over acc: the same additions, fewer loads and stores); stop > start."""
    cols = acc.shape[0]
    v0, r0 = col_val[start], delta_bo[col_row[start]]
    for c in range(cols):
        acc[c] = v0 * r0[c]
    k = start + 1
    while k + 4 <= stop:
        v0, v1, v2, v3 = col_val[k], col_val[k + 1], col_val[k + 2], col_val[k + 3]
        r0, r1, r2, r3 = delta_bo[col_row[k]], delta_bo[col_row[k + 1]], delta_bo[col_row[k + 2]], \
            delta_bo[col_row[k + 3]]
        for c in range(cols):
            acc[c] = (((acc[c] + v0 * r0[c]) + v1 * r1[c]) + v2 * r2[c]) + v3 * r3[c]
        k += 4
    while k < stop:
        v0, r0 = col_val[k], delta_bo[col_row[k]]
        for c in range(cols):
            acc[c] = acc[c] + v0 * r0[c]
        k += 1


@njit(cache=True, error_model="numpy")
def weight_grad(col_ptr, col_row, col_val, delta_bo, dw_io, dirty):
    """dW = x^T delta from x's pixel lists: row j is the sum over the batch rows with a nonzero pixel j (ascending);
    rows without one are zeroed if ``dirty`` says they may hold an earlier gradient. Updates ``dirty``."""
    n_in = dw_io.shape[0]
    for j in prange(n_in):
        start, stop = col_ptr[j], col_ptr[j + 1]
        if start == stop:
            if dirty[j]:
                dw_io[j, :] = 0
                dirty[j] = False
            continue
        _column_sum(start, stop, col_row, col_val, delta_bo, dw_io[j])
        dirty[j] = True


@njit(cache=True, error_model="numpy")
def weight_update(col_ptr, col_row, col_val, delta_bo, w_io, alpha, beta):
    """W = beta W + alpha x^T delta (plain SGD folded: alpha = -lr, beta = 1 - lr wd), row j of the product summed
    as in :func:`weight_grad`; rows whose pixel is zero in the whole batch are only scaled by beta (untouched when
    beta is 1)."""
    n_in, cols = w_io.shape
    cast = w_io.dtype.type
    alpha, beta = cast(alpha), cast(beta)
    scale = beta != 1
    chunk = (n_in + CHUNKS - 1) // CHUNKS
    for part in prange(CHUNKS):
        acc = np.empty(cols, w_io.dtype)  # one per chunk of rows (and so per thread in the parallel twin)
        for j in range(part * chunk, min(n_in, (part + 1) * chunk)):
            start, stop = col_ptr[j], col_ptr[j + 1]
            w = w_io[j]
            if start == stop:
                if scale:
                    for c in range(cols):
                        w[c] = beta * w[c]
                continue
            _column_sum(start, stop, col_row, col_val, delta_bo, acc)
            if scale:
                for c in range(cols):
                    w[c] = beta * w[c] + alpha * acc[c]
            else:
                for c in range(cols):
                    w[c] = w[c] + alpha * acc[c]


# parallel=True builds under their own names (Numba's disk cache keys entries by name; see numba_kernels)
forward_parallel = parallel_twin(forward)
weight_grad_parallel = parallel_twin(weight_grad)
weight_update_parallel = parallel_twin(weight_update)


class SparseBatch:
    """The nonzero lists of one batch (preallocated for a batch size, input size and dtype; rebuilt every step)."""

    def __init__(self, rows: int, cols: int, dtype):
        size = rows * cols
        self.shape = (rows, cols)
        self.row_ptr = np.zeros(rows + 1, np.int64)
        self.col_idx = np.zeros(size, np.int64)
        self.row_val = np.zeros(size, dtype)
        self.col_ptr = np.zeros(cols + 1, np.int64)
        self.col_row = np.zeros(size, np.int64)
        self.col_val = np.zeros(size, dtype)
        self.cursor = np.zeros(cols + 1, np.int64)
        self.nnz = 0

    def build(self, x_bi) -> "SparseBatch":
        if x_bi.shape != self.shape:
            raise ValueError(f"SparseBatch for shape {self.shape} given an array of shape {x_bi.shape}")
        if x_bi.dtype != self.row_val.dtype:  # the lists hold x's values: a cast would round or widen silently
            raise ValueError(f"SparseBatch for dtype {self.row_val.dtype} given an array of dtype {x_bi.dtype}")
        self.nnz = int(build_index(x_bi, self.row_ptr, self.col_idx, self.row_val, self.col_ptr, self.col_row,
                                   self.col_val, self.cursor))
        return self

    @property
    def touched_rows(self) -> int:
        """Pixels (rows of W1) with a nonzero in this batch."""
        return int(np.count_nonzero(np.diff(self.col_ptr)))


def density(x) -> float:
    """Fraction of nonzero entries of x (a NumPy array), counted in chunks of rows (no x-sized temporary)."""
    if x.size == 0:
        return 0.0
    rows = max(1, (1 << 20) // max(1, x.shape[-1]))
    nonzero = sum(int(np.count_nonzero(x[s:s + rows])) for s in range(0, x.shape[0], rows))
    return nonzero / x.size


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
