"""The lists of a batch's nonzero inputs that the sparse first layer (mlpx/backend/sparse_input.py) computes from.

Built once per step from the gathered batch (:class:`SparseBatch`), in three passes:

1. each row's *pixel pairs* (pixels 2p and 2p + 1; the last pair of an odd width holds one) with a nonzero, and their
   two values, branch-free (a pair is written always and kept only when counted: the pixels' zero/nonzero pattern
   is random to the branch predictor);
2. from those, each row's nonzero pixels ascending (``row_ptr``, ``col_idx``, ``row_val``), for the forward;
3. a counting sort of the rows' pairs by pair (``pair_ptr``, ``pair_row``, ``pair_val``: each pair's batch rows
   ascending), for the weight gradient, whose kernel loads each delta row once for both pixels of a pair.

Scanning pairs rather than pixels halves the iterations of the scan: with the pair lists added, building a
64-image batch's lists takes 0.91-0.94x the time the former pixel-by-pixel lists took on MNIST (~75 us, one thread,
interleaved with the code of efd8526), 0.82x on Fashion-MNIST; the scan is about half of it, the two list passes
the rest. Listing the whole training set once per ``fit`` and gathering each batch's lists from it was tried and
dropped: the gather read the lists of 64 random images from a 64 MB array, 45-95 us a step against ~75 us for
scanning the batch that ``take_rows`` has just brought into the cache, plus 80 ms per fit to build them.
NaN counts as nonzero (it is not zero).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def build_index(x_bi, row_ptr, col_idx, row_val, pair_ptr, pair_row, pair_val, scan_ptr, scan_pair, scan_val):
    """Fills the lists of the module docstring for x (steps 1-3); returns the number of nonzeros. Array sizes: row_ptr
    and scan_ptr rows + 1, pair_ptr pairs + 1, col_idx and row_val rows * cols + 1, the others rows * pairs + 1
    (pair_val and scan_val with 2 columns); the + 1 is room for a last write that is not counted."""
    rows, cols = x_bi.shape
    n_pairs = (cols + 1) // 2
    zero = x_bi.dtype.type(0)
    for p in range(n_pairs + 1):
        pair_ptr[p] = 0
    e = 0  # 1. each row's pairs with a nonzero, counted per pair in pair_ptr[p + 1]
    for i in range(rows):
        scan_ptr[i] = e
        xr = x_bi[i]
        for p in range(cols // 2):
            v0, v1 = xr[2 * p], xr[2 * p + 1]
            nz = (v0 != 0) | (v1 != 0)
            scan_pair[e] = p
            scan_val[e, 0] = v0
            scan_val[e, 1] = v1
            e += nz
            pair_ptr[p + 1] += nz
        if cols % 2:
            v0 = xr[cols - 1]
            nz = v0 != 0
            scan_pair[e] = n_pairs - 1
            scan_val[e, 0] = v0
            scan_val[e, 1] = zero
            e += nz
            pair_ptr[n_pairs] += nz
    scan_ptr[rows] = e
    nnz = 0  # 2. each row's nonzero pixels from its pairs
    for i in range(rows):
        row_ptr[i] = nnz
        for k in range(scan_ptr[i], scan_ptr[i + 1]):
            j, v0, v1 = 2 * scan_pair[k], scan_val[k, 0], scan_val[k, 1]
            col_idx[nnz] = j
            row_val[nnz] = v0
            nnz += v0 != 0
            col_idx[nnz] = j + 1
            row_val[nnz] = v1
            nnz += v1 != 0
    row_ptr[rows] = nnz
    for p in range(n_pairs):  # 3. the pairs' lists: each pair's rows, ascending
        pair_ptr[p + 1] += pair_ptr[p]
    for i in range(rows):
        for k in range(scan_ptr[i], scan_ptr[i + 1]):
            p = scan_pair[k]
            q = pair_ptr[p]
            pair_row[q] = i
            pair_val[q, 0] = scan_val[k, 0]
            pair_val[q, 1] = scan_val[k, 1]
            pair_ptr[p] = q + 1
    for p in range(n_pairs, 0, -1):  # the scatter advanced each start to the next one's: shift back
        pair_ptr[p] = pair_ptr[p - 1]
    pair_ptr[0] = 0
    return nnz


class SparseBatch:
    """The nonzero lists of one batch (preallocated for a batch size, input size and dtype; rebuilt every step):
    by row (``row_ptr``, ``col_idx``, ``row_val``) and by pixel pair (``pair_ptr``, ``pair_row``, ``pair_val``);
    the ``scan_*`` arrays are the build's scratch, :meth:`scratch_like` the sparse forward's."""

    def __init__(self, rows: int, cols: int, dtype):
        size, pairs = rows * cols + 1, rows * ((cols + 1) // 2) + 1
        self.shape = (rows, cols)
        self.row_ptr, self.scan_ptr = np.zeros(rows + 1, np.int64), np.zeros(rows + 1, np.int64)
        self.col_idx, self.row_val = np.zeros(size, np.int64), np.zeros(size, dtype)
        self.pair_ptr = np.zeros((cols + 1) // 2 + 1, np.int64)
        self.pair_row, self.pair_val = np.zeros(pairs, np.int64), np.zeros((pairs, 2), dtype)
        self.scan_pair, self.scan_val = np.zeros(pairs, np.int64), np.zeros((pairs, 2), dtype)
        self.nnz = 0
        self._scratch = None

    def scratch_like(self, out):
        """A scratch array of ``out``'s shape and dtype (the sparse forward's upper parts), kept between steps."""
        if self._scratch is None or self._scratch.shape != out.shape or self._scratch.dtype != out.dtype:
            self._scratch = np.empty_like(out)
        return self._scratch

    def build(self, x_bi) -> "SparseBatch":
        """The lists of the batch ``x_bi`` (a NumPy array of this batch's shape and dtype)."""
        if x_bi.shape != self.shape:
            raise ValueError(f"SparseBatch for shape {self.shape} given an array of shape {x_bi.shape}")
        if x_bi.dtype != self.row_val.dtype:  # the lists hold x's values: a cast would round or widen silently
            raise ValueError(f"SparseBatch for dtype {self.row_val.dtype} given an array of dtype {x_bi.dtype}")
        self.nnz = int(build_index(x_bi, self.row_ptr, self.col_idx, self.row_val, self.pair_ptr, self.pair_row,
                                   self.pair_val, self.scan_ptr, self.scan_pair, self.scan_val))
        return self

    @property
    def pair_lists(self) -> tuple:
        """The arguments the weight-gradient and update kernels take for x: (pair_ptr, pair_row, pair_val)."""
        return self.pair_ptr, self.pair_row, self.pair_val

    @property
    def touched_rows(self) -> int:
        """Pixels (rows of W1) with a nonzero in this batch."""
        return int(np.unique(self.col_idx[:self.nnz]).size)


def density(x) -> float:
    """Fraction of nonzero entries of x (a NumPy array), counted in chunks of rows (no x-sized temporary)."""
    if x.size == 0:
        return 0.0
    rows = max(1, (1 << 20) // max(1, x.shape[-1]))
    nonzero = sum(int(np.count_nonzero(x[s:s + rows])) for s in range(0, x.shape[0], rows))
    return nonzero / x.size
