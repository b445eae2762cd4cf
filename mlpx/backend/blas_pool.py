"""One thread pool for NumPy's OpenBLAS and mlpx's Numba kernels, so the optimizer pass can use every core too.

Why: after each parallel product OpenBLAS keeps its worker threads spinning for ~0.13 s, so a parallel Numba kernel
run between two products finds the other cores busy (measured: a parallel Adam pass turned a 3.0 s epoch into
9.4 s). OpenBLAS >= 0.3.27 lets the caller run its parallel work instead
(``openblas_set_threads_callback_function``): here that work runs on Numba's OpenMP pool, the same threads that then
run the optimizer pass. Products keep OpenBLAS's own split (same results, bit for bit); the Adam pass, which had to
run on one core, halves (measured on 2 cores: 0.55 -> 0.33 ms per step, Adam epoch -12%).

Used by ``fit`` on the Numba backend, for optimizers with a pass over all parameters (momentum, RMSProp, Adam), only
while it trains: the hook is set on entry and removed on exit, so NumPy code outside ``fit`` keeps OpenBLAS's own
threads. Plain SGD has no such pass (its update is folded into the products) and would only pay the hand-over
(measured +3% per step), so it does not share. Off where anything is unusual, with the reason from
:func:`unavailable_reason`: no OpenBLAS with the hook, Numba's threading layer not OpenMP (only OpenMP guarantees
each OpenBLAS job a thread of its own; OpenBLAS's jobs wait for each other, so two on one thread would never end),
one BLAS thread, a forked child of a process that started OpenMP, or ``MLPX_SHARED_BLAS_POOL=0``.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading

import numpy as np
from llvmlite import ir
from numba import cfunc, get_num_threads, njit, prange, set_num_threads, types
from numba.extending import intrinsic

from .cblas import numpy_blas_library

ENV_SWITCH = "MLPX_SHARED_BLAS_POOL"
# Setter and thread-count getter, spelled as in NumPy >= 2 wheels (scipy-openblas), NumPy 1.x wheels, plain builds.
_SPELLINGS = (("scipy_openblas_set_threads_callback_function64_", "scipy_openblas_get_num_threads64_"),
              ("openblas_set_threads_callback_function64_", "openblas_get_num_threads64_"),
              ("openblas_set_threads_callback_function", "openblas_get_num_threads"))


@intrinsic
def _call_job(typingctx, function_address, job_number, job_address, job_data):
    """Call OpenBLAS's ``void dojob(int thread, void *job, int data)`` through its address."""
    def codegen(context, builder, signature, args):
        address, number, job, data = args
        int32, byte_pointer = ir.IntType(32), ir.IntType(8).as_pointer()
        function_type = ir.FunctionType(ir.VoidType(), [int32, byte_pointer, int32])
        function = builder.inttoptr(address, function_type.as_pointer())
        builder.call(function, [builder.trunc(number, int32), builder.inttoptr(job, byte_pointer), data])
        return context.get_dummy_value()
    return types.void(function_address, job_number, job_address, job_data), codegen


@njit(parallel=True, cache=True)
def _run_jobs(dojob, numjobs, job_size, jobs, job_data):
    """Each of OpenBLAS's jobs on a thread of its own (they wait for each other), all at once: Numba splits the
    range into as many chunks as the calling thread's Numba thread count, which is at least ``numjobs`` (see
    :func:`shared_threads`), so no chunk holds two jobs. (Setting the count in here would stop Numba caching it.)"""
    for i in prange(numjobs):
        _call_job(dojob, np.int64(i), jobs + np.uint64(i) * job_size, job_data)


def _callback(sync, dojob, numjobs, job_size, jobs, job_data):
    _run_jobs(dojob, numjobs, job_size, jobs, job_data)


@functools.lru_cache(maxsize=None)
def _callback_address() -> int:
    """OpenBLAS's callback, ``void (*)(int sync, dojob_fn dojob, int numjobs, size_t job_size, void *jobs,
    int job_data)``, compiled (or loaded from Numba's cache) only now: the cached machine code calls the parallel
    runtime, whose symbols exist only once the threading layer has started (loading it earlier aborts the process
    with "Symbol not found: allocate_sched"). Pointers arrive as 64-bit integers (the same registers in the C
    calling convention). ``sync`` is always 1: OpenBLAS waits for the jobs, and so does a parallel region."""
    _threading_layer()
    signature = types.void(types.int32, types.uint64, types.int32, types.uint64, types.uint64, types.int32)
    return cfunc(signature, cache=True)(_callback).address


@njit(parallel=True, cache=True)
def _touch(x):
    for i in prange(x.shape[0]):
        x[i] += 1.0


class _Library:
    def __init__(self, library: ctypes.CDLL, set_name: str, get_name: str) -> None:
        self.set_callback = getattr(library, set_name)
        self.set_callback.argtypes, self.set_callback.restype = [ctypes.c_void_p], None
        self.num_threads = getattr(library, get_name)
        self.num_threads.argtypes, self.num_threads.restype = [], ctypes.c_int


@functools.lru_cache(maxsize=None)
def _library() -> _Library | None:
    library = numpy_blas_library()
    for set_name, get_name in _SPELLINGS:
        if library is not None and hasattr(library, set_name) and hasattr(library, get_name):
            return _Library(library, set_name, get_name)
    return None


@functools.lru_cache(maxsize=None)
def _threading_layer() -> str:
    """Numba's threading layer, started here by a tiny parallel kernel (it is chosen at the first launch)."""
    import numba

    _touch(np.zeros(4))
    return numba.threading_layer()


_lock = threading.Lock()
_users = 0                      # open shared_threads() contexts that installed the hook
_omp_pid: int | None = None     # the process that started Numba's OpenMP pool (GNU OpenMP does not survive fork)


def unavailable_reason() -> str | None:
    """Why OpenBLAS's threads cannot be shared with Numba here, or None when they can."""
    global _omp_pid
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return f"turned off by {ENV_SWITCH}=0"
    library = _library()
    if library is None:
        return "NumPy's BLAS is not an OpenBLAS with openblas_set_threads_callback_function (needs >= 0.3.27)"
    if _omp_pid is not None and _omp_pid != os.getpid():
        return "this process is a fork of one that started OpenMP (GNU OpenMP cannot run in a forked child)"
    for name in ("OMP_DYNAMIC", "OMP_THREAD_LIMIT"):
        if name in os.environ:
            return f"{name} is set: OpenMP might give OpenBLAS's jobs fewer threads than they need"
    threads = library.num_threads()
    if threads < 2:
        return f"OpenBLAS runs {threads} thread: nothing to share"
    import numba

    if threads > numba.config.NUMBA_NUM_THREADS:
        return f"OpenBLAS runs {threads} threads, Numba's pool has {numba.config.NUMBA_NUM_THREADS}"
    layer = _threading_layer()
    _omp_pid = _omp_pid or os.getpid()
    if layer != "omp":
        return f"Numba's threading layer is {layer!r}; only 'omp' guarantees each OpenBLAS job its own thread"
    return None


def sharing() -> bool:
    """True while a :func:`shared_threads` context has OpenBLAS's parallel work running on Numba's pool."""
    return _users > 0


@contextlib.contextmanager
def shared_threads(wanted: bool = True):
    """Run OpenBLAS's parallel work on Numba's pool inside the block; yields the thread count, or 0 if not shared.

    Nested and concurrent blocks are counted; the hook is removed when the last one ends, errors included. Inside,
    this thread's Numba thread count equals OpenBLAS's count, so each OpenBLAS job gets a thread of its own: do not
    raise OpenBLAS's count inside the block (mlpx never does), or two jobs that wait for each other could share one.
    """
    global _users
    if not wanted or unavailable_reason() is not None:
        yield 0
        return
    library = _library()
    threads = library.num_threads()
    with _lock:
        if _users == 0:
            library.set_callback(_callback_address())
        _users += 1
    previous = get_num_threads()
    set_num_threads(threads)        # the optimizer kernels' threads, in this thread
    try:
        yield threads
    finally:
        set_num_threads(previous)
        with _lock:
            if _users > 0:              # (a fork inside the block has already reset the count in the child)
                _users -= 1
                if _users == 0:
                    library.set_callback(None)


def _forget_in_child() -> None:
    """After fork: OpenBLAS back on its own threads (re-created after fork); OpenMP is unusable in the child."""
    global _users
    if _users:
        _users = 0
        _library().set_callback(None)


if hasattr(os, "register_at_fork"):   # (not on Windows, which has no fork)
    os.register_at_fork(after_in_child=_forget_in_child)
