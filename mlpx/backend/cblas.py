"""NumPy's own BLAS, called directly for the one product NumPy cannot express: ``C = alpha * A @ B + beta * C``.

Plain SGD folds its weight update into the weight-gradient product this way (``W <- W - lr * a^T delta``), which
saves one pass over all parameters per step. NumPy has no such call, and SciPy's BLAS wrappers load a second
OpenBLAS whose thread pool fights NumPy's on the same cores (measured: 5x slower steps), so this module finds the
library NumPy is linked to (through threadpoolctl) and calls its ``cblas_?gemm`` with ctypes. Any surprise (another
BLAS, a missing symbol, an odd array) means "not available" and callers use plain NumPy instead.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# Symbol spellings, newest first: NumPy >= 2 wheels (scipy-openblas, 64-bit ints), NumPy 1.x wheels
# (openblas64_, 64-bit ints), then a plain LP64 cblas (distribution builds, MKL).
_SPELLINGS = (("scipy_cblas_{}gemm64_", ctypes.c_int64), ("cblas_{}gemm64_", ctypes.c_int64),
              ("cblas_{}gemm", ctypes.c_int))


class Cblas:
    """``gemm`` for float32 and float64 through one loaded BLAS library."""

    def __init__(self, library: ctypes.CDLL, spelling: str, int_type) -> None:
        self._gemm = {}
        for letter, dtype, scalar in (("s", np.float32, ctypes.c_float), ("d", np.float64, ctypes.c_double)):
            fn = getattr(library, spelling.format(letter))
            fn.restype = None
            fn.argtypes = ([ctypes.c_int] * 3 + [int_type] * 3 + [scalar, ctypes.c_void_p, int_type,
                                                                   ctypes.c_void_p, int_type, scalar,
                                                                   ctypes.c_void_p, int_type])
            self._gemm[np.dtype(dtype)] = fn

    def __reduce__(self):
        """Pickled (or deep-copied) as "NumPy's BLAS of the process that loads it": function pointers do not travel."""
        return numpy_cblas, ()

    def gemm(self, a, b, c, alpha: float, beta: float, trans_a: bool = False, trans_b: bool = False) -> bool:
        """c = alpha * op(a) @ op(b) + beta * c in place; op transposes where asked.

        a, b and c must be C-contiguous, writeable, non-empty NumPy arrays of one float dtype with matching
        shapes; returns False (and does nothing) otherwise, so the caller can fall back to NumPy.
        """
        fn = self._gemm.get(c.dtype)
        if (fn is None or a.dtype != c.dtype or b.dtype != c.dtype or a.ndim != 2 or b.ndim != 2 or c.ndim != 2
                or not (a.flags.c_contiguous and b.flags.c_contiguous and c.flags.c_contiguous)):
            return False
        m, k = a.shape[::-1] if trans_a else a.shape
        k_b, n = b.shape[::-1] if trans_b else b.shape
        if k != k_b or c.shape != (m, n):
            return False
        try:
            pointers = [ctypes.addressof(ctypes.c_char.from_buffer(x)) for x in (a, b, c)]
        except (TypeError, ValueError):  # read-only or empty: from_buffer needs a writeable, non-empty buffer
            return False
        # (from_buffer takes ~1 us where ndarray.ctypes.data takes ~3; this call runs 4 times per training step)
        fn(_ROW_MAJOR, _TRANS if trans_a else _NO_TRANS, _TRANS if trans_b else _NO_TRANS, m, n, k,
           alpha, pointers[0], a.shape[1], pointers[1], b.shape[1], beta, pointers[2], c.shape[1])
        return True


@functools.lru_cache(maxsize=None)
def numpy_blas_library() -> ctypes.CDLL | None:
    """The BLAS library NumPy's matmul uses, opened with ctypes, or None where it cannot be told apart."""
    from ..threads import blas_info

    try:
        paths = [info["filepath"] for info in blas_info()]
    except Exception:  # threadpoolctl missing or failing: no fast path, never an error
        return None
    # NumPy's own copy (wheels keep it under numpy.libs or numpy/.dylibs); else the only BLAS loaded (conda).
    # Never guess between several: another BLAS would bring its own thread pool.
    own = [path for path in paths if "numpy" in path]
    for path in own or (paths if len(paths) == 1 else []):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


@functools.lru_cache(maxsize=None)
def numpy_cblas() -> Cblas | None:
    """The BLAS NumPy's matmul uses, or None where it cannot be found (then nothing here is used)."""
    library = numpy_blas_library()
    for spelling, int_type in _SPELLINGS:
        if library is not None and hasattr(library, spelling.format("s")) and hasattr(library, spelling.format("d")):
            return Cblas(library, spelling, int_type)
    return None
