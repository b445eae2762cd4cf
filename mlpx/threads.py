"""BLAS thread control (threadpoolctl). On a shared 2-core machine a second busy process slows 2-thread BLAS
3-6x, so benchmarks and parallel workers pin the count."""
from __future__ import annotations

from ._checks import check_positive_int


def set_num_threads(n: int) -> None:
    """Limit the BLAS libraries loaded in this process to ``n`` threads (for the rest of the process)."""
    from threadpoolctl import threadpool_limits

    n = check_positive_int(n, "set_num_threads: n")
    global _limiter
    _limiter = threadpool_limits(limits=n, user_api="blas")


def blas_info() -> list[dict]:
    """The BLAS libraries loaded in this process: name, version, threading layer, CPU kernel, thread count."""
    import numpy  # noqa: F401  (loads numpy's BLAS)
    from threadpoolctl import threadpool_info

    return [info for info in threadpool_info() if info.get("user_api") == "blas"]


_limiter = None
