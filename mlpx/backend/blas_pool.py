"""One thread pool for NumPy's OpenBLAS and mlpx's Numba kernels, so the optimizer pass can use every core too.

Why: after each parallel product OpenBLAS keeps its worker threads spinning for ~0.13 s, so a parallel Numba kernel
run between two products finds the other cores busy (measured: a parallel Adam pass turned a 3.0 s epoch into
9.4 s). OpenBLAS >= 0.3.27 lets the caller run its parallel work instead
(``openblas_set_threads_callback_function``): here that work runs on Numba's OpenMP pool, the same threads that then
run the optimizer pass. Products keep OpenBLAS's own split (same results, bit for bit); the Adam pass, which had to
run on one core, takes about half as long (measured on 2 cores, 544k parameters: 483-499 -> 262-279 us; Adam
epoch -12%).

Used by ``fit`` on the Numba backend for optimizers with a pass over all parameters (momentum, RMSProp, Adam), while
it trains. The hook is process-wide: while it is set, every thread's OpenBLAS calls run on Numba's pool (the same
results; each call raises its thread's Numba thread count to the number of jobs for the call). It is set on entry
and removed on exit. Plain SGD has no such pass (its update is folded into the products) and would only pay the
hand-over (measured: 1.04x per step), so it does not share on the dense path; on the sparse first-layer path
(mlpx.backend.sparse_input) every optimizer shares, for the sparse kernels' parallel twins (mlpx.policy). Note: when
another process takes a core, two-thread epochs degrade whichever threads run the products (measured on 2 cores,
sparse first layer, bursts of another session's tests: epochs of 2-26 s against 1.0-1.5 s quiet); the worst seen
were shared ones (24-26 s, against at most 11.6 s unshared in the same rounds): indicative, not a clean comparison.
What it gains, re-measured after the pair kernels of the sparse first layer (bench/sparse_epoch.py, 2 threads,
MNIST, 9 paired rounds, docs/benchmarks/results.md), as the median of each epoch's ratio to the same round's dense
shared epoch, shared against own threads: sparse RMSProp 0.80 vs 0.93 (14%), dense Adam 1.00 vs 1.15 (13%), dense
momentum 4%, sparse SGD, momentum and Adam 0-1%, dense RMSProp 1%; the fastest rounds tell the same for RMSProp
(sparse 22%) and Adam (sparse 13%, dense 9%) and also credit sparse momentum with 13%. The 2-thread rounds of this
machine are bimodal (some epochs take twice as long), so single figures move by several percent between runs.
Kept: above the 5% bar for Adam and RMSProp, the optimizers with a pass over all parameters.
Off where anything is unusual, with the reason from :func:`unavailable_reason`: no OpenBLAS with the hook; Numba's
threading layer not OpenMP, or failing to start (only OpenMP's static schedule promises each OpenBLAS job a thread
of its own; the jobs wait for each other, so two on one thread would never end); ``OMP_DYNAMIC`` or
``OMP_THREAD_LIMIT`` set; one BLAS thread, or more than Numba's pool has; a forked child of a process that started
Numba's OpenMP pool; ``MLPX_SHARED_BLAS_POOL=0``. Not covered: an OpenBLAS call made from inside a Numba parallel
loop while ``fit`` shares (nested OpenMP runs one thread).
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
from numba.core import cgutils
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


# The threading layer's thread-local settings, called by symbol name with the types Numba's own parallel code
# declares (numba/parfors/parfor_lowering.py). numba.set_num_threads inside jitted code would go through a ctypes
# pointer, which Numba cannot cache; by name, as here, it can. The symbols exist once the layer has started.
def _layer_getter(name: str):
    """``name(void)`` returning a 64-bit integer (thread count, chunk size), as an intrinsic."""
    @intrinsic
    def get(typingctx):
        def codegen(context, builder, signature, args):
            function_type = ir.FunctionType(ir.IntType(64), [])
            return builder.call(cgutils.get_or_insert_function(builder.module, function_type, name), [])
        return types.int64(), codegen
    return get


def _layer_setter(name: str, bits: int):
    """``void name(int<bits> value)`` as an intrinsic."""
    @intrinsic
    def set_(typingctx, value):
        def codegen(context, builder, signature, args):
            argument = ir.IntType(bits)
            function_type = ir.FunctionType(ir.VoidType(), [argument])
            function = cgutils.get_or_insert_function(builder.module, function_type, name)
            value_bits = args[0].type.width
            value = (args[0] if value_bits == bits else builder.trunc(args[0], argument) if value_bits > bits
                     else builder.sext(args[0], argument))
            builder.call(function, [value])
            return context.get_dummy_value()
        return types.void(value), codegen
    return set_


_get_threads, _set_threads = _layer_getter("get_num_threads"), _layer_setter("set_num_threads", 32)
_get_chunksize, _set_chunksize = _layer_getter("get_parallel_chunksize"), _layer_setter("set_parallel_chunksize", 64)


@njit(parallel=True, cache=True)
def _run_jobs(dojob, numjobs, job_size, jobs, job_data):
    """Each of OpenBLAS's jobs on a thread of its own (they wait for each other), all at once. Numba splits a prange
    into as many chunks as the calling thread's Numba thread count, so that count is raised to ``numjobs`` here if
    lower, and the chunk size set to 0 (even split), whatever the calling thread had set; both restored after."""
    threads, chunksize = _get_threads(), _get_chunksize()
    _set_chunksize(np.int64(0))
    if threads < numjobs:
        _set_threads(numjobs)
    for i in prange(numjobs):
        _call_job(dojob, np.int64(i), jobs + np.uint64(i) * job_size, job_data)
    _set_threads(threads)
    _set_chunksize(chunksize)


def _callback(sync, dojob, numjobs, job_size, jobs, job_data):
    _run_jobs(dojob, numjobs, job_size, jobs, job_data)


@functools.lru_cache(maxsize=None)
def _compiled_callback():
    """OpenBLAS's callback, ``void (*)(int sync, dojob_fn dojob, int numjobs, size_t job_size, void *jobs,
    int job_data)``, compiled (or loaded from Numba's cache) only now: the cached machine code calls the threading
    layer's functions by name, which exist only once the layer has started (loading it earlier aborts the process
    with "Symbol not found: allocate_sched"). Pointers arrive as 64-bit integers (the same registers in the C
    calling convention). ``sync`` is always 1: OpenBLAS waits for the jobs, and so does a parallel region. The
    object is kept (cached here) for as long as OpenBLAS may call its address."""
    _threading_layer()
    signature = types.void(types.int32, types.uint64, types.int32, types.uint64, types.uint64, types.int32)
    return cfunc(signature, cache=True)(_callback)


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
_users = 0                  # open shared_threads() blocks that share
_forked_child = False       # this process was forked after Numba's OpenMP pool started (GNU OpenMP cannot go on)


def unavailable_reason() -> str | None:
    """Why OpenBLAS's threads cannot be shared with Numba here, or None when they can."""
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return f"turned off by {ENV_SWITCH}=0"
    library = _library()
    if library is None:
        return "NumPy's BLAS is not an OpenBLAS with openblas_set_threads_callback_function (needs >= 0.3.27)"
    if _forked_child:
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
    try:
        layer = _threading_layer()
    except Exception as err:  # e.g. NUMBA_THREADING_LAYER names a layer that is not installed
        return f"Numba's threading layer did not start ({type(err).__name__}: {err})"
    if layer != "omp":
        return f"Numba's threading layer is {layer!r}; only 'omp' guarantees each OpenBLAS job its own thread"
    try:
        _compiled_callback()
    except Exception as err:
        return f"the callback did not compile ({type(err).__name__}: {err})"
    return None


def sharing() -> bool:
    """True while a :func:`shared_threads` block has OpenBLAS's parallel work running on Numba's pool."""
    return _users > 0


@contextlib.contextmanager
def shared_threads(wanted: bool = True):
    """Run OpenBLAS's parallel work on Numba's pool inside the block; yields the thread count, or 0 if not shared.

    Nested and concurrent blocks are counted; the hook is removed when the last one ends, errors included. This
    thread's Numba thread count is set to OpenBLAS's count inside (the optimizer kernels' threads).
    """
    global _users
    if not wanted or unavailable_reason() is not None:
        yield 0
        return
    import numba

    library = _library()
    threads = min(library.num_threads(), numba.config.NUMBA_NUM_THREADS)
    previous = get_num_threads()
    counted = False
    try:
        set_num_threads(threads)
        with _lock:
            counted = True
            if _users == 0:
                library.set_callback(_compiled_callback().address)
            _users += 1
        yield threads
    finally:
        with _lock:
            if counted and _users > 0:  # (a fork inside the block has already reset the count in the child)
                _users -= 1
                if _users == 0:
                    library.set_callback(None)
        set_num_threads(previous)


def _after_fork_in_child() -> None:
    """OpenBLAS back on its own threads (it re-creates them after fork); Numba's OpenMP pool, if it was started,
    cannot be used in the child (GNU OpenMP), so sharing is off there for good."""
    global _users, _lock, _forked_child
    _lock = threading.Lock()                # another thread may have held it at the fork
    from numba.np.ufunc import parallel

    _forked_child = bool(getattr(parallel, "_is_initialized", True))
    if _users:
        _users = 0
        _library().set_callback(None)


if hasattr(os, "register_at_fork"):   # (not on Windows, which has no fork)
    os.register_at_fork(after_in_child=_after_fork_in_child)
