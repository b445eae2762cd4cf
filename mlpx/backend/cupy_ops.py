"""CupyOps: the GPU backend (CuPy + the fused kernels in kernels/). Filled in by the CuPy issue."""
from __future__ import annotations


def make_cupy_ops():
    raise NotImplementedError(
        "the CuPy backend is not implemented yet in this version of mlpx; use backend='numpy'"
    )
