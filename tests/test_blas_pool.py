"""mlpx.backend.blas_pool: OpenBLAS's parallel work on Numba's thread pool during fit, and the parallel optimizer
kernels that this makes affordable. Same bits as without it, the hook set only inside, and every refusal."""
import ctypes
import os

import numpy as np
import pytest

pytest.importorskip("numba", reason="Numba is not installed: no Numba kernels, nothing to share")
from threadpoolctl import threadpool_limits  # noqa: E402

import mlpx  # noqa: E402
from mlpx.backend import blas_pool  # noqa: E402
from mlpx.backend import numba_kernels as nk  # noqa: E402
from mlpx.backend.numba_ops import NumbaOps  # noqa: E402
from mlpx.backend.numpy_ops import NumpyOps  # noqa: E402


@pytest.fixture
def pool():
    """Sharing is possible here (2 BLAS threads at least); skips with the reason where it is not."""
    if os.cpu_count() < 2:
        pytest.skip("one CPU: OpenBLAS runs one thread, nothing to share")
    with threadpool_limits(limits=2, user_api="blas"):
        reason = blas_pool.unavailable_reason()
        if reason is not None:
            pytest.skip(f"OpenBLAS's threads cannot be shared here: {reason}")
        yield blas_pool


def installed_hook() -> int:
    """The callback OpenBLAS would call now (its global ``openblas_threads_callback_``), 0 for its own threads."""
    return ctypes.c_void_p.in_dll(blas_pool.numpy_blas_library(), "openblas_threads_callback_").value or 0


def test_the_hook_is_set_only_inside_and_counts_nesting(pool):
    assert installed_hook() == 0 and not pool.sharing()
    with pool.shared_threads() as threads:
        assert threads == 2 and pool.sharing()
        assert installed_hook() == pool._callback_address()
        with pool.shared_threads():
            assert installed_hook() == pool._callback_address()
        assert installed_hook() == pool._callback_address() and pool.sharing()
    assert installed_hook() == 0 and not pool.sharing()


def test_the_hook_is_removed_when_the_block_fails(pool):
    with pytest.raises(KeyboardInterrupt):
        with pool.shared_threads():
            raise KeyboardInterrupt
    assert installed_hook() == 0 and not pool.sharing()


def test_not_wanted_means_not_shared(pool):
    with pool.shared_threads(wanted=False) as threads:
        assert threads == 0 and installed_hook() == 0 and not pool.sharing()


@pytest.mark.parametrize("shape", [(64, 784, 500), (300, 257, 129), (1024, 500, 250), (7, 3000, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_on_the_shared_pool_give_the_same_bits(pool, shape, dtype):
    """OpenBLAS splits the work the same way whoever runs its jobs: identical results, plain and transposed."""
    m, k, n = shape
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    own = [a @ b, a.T.copy().T @ b, np.matmul(a[:, :k].T.T, b), (b.T @ a.T)]
    with pool.shared_threads():
        assert installed_hook() != 0
        shared = [a @ b, a.T.copy().T @ b, np.matmul(a[:, :k].T.T, b), (b.T @ a.T)]
    for x, y in zip(own, shared):
        np.testing.assert_array_equal(x, y)


def _optimizer_inputs(n, dtype, seed):
    """Parameters, gradients and state with the values that matter: subnormal, zero, signed zero, huge, NaN, inf."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(n).astype(dtype) for _ in range(5)]
    tiny = np.finfo(dtype).tiny
    specials = np.array([tiny / 4, -tiny / 3, 0.0, -0.0, 1e30, np.nan, np.inf, -np.inf, tiny], dtype)
    for array in arrays[1:]:
        array[: specials.size] = rng.permutation(specials)[:n]
    arrays[3] = np.abs(arrays[3])           # a second-moment state is never negative
    return arrays


@pytest.mark.parametrize("n", [1, 17, 4099, 100_003])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_optimizer_kernels_equal_the_serial_ones(n, dtype):
    """Each parallel twin gives the serial kernel's values (elementwise: no reduction to reorder), odd lengths and
    special values included."""
    tiny = float(np.finfo(dtype).tiny)
    calls = {
        "sgd": lambda k, p, g, s1, s2, s3: k(p, g, s1, 0.1, 0.9, 1.0, True, 0.01, False, tiny),
        "rmsprop": lambda k, p, g, s1, s2, s3: k(p, g, s2, s1, s3, 0.01, 0.99, 0.01, 1e-8, 0.01, 0.5, True, tiny),
        "adam": lambda k, p, g, s1, s2, s3: k(p, g, s1, s2, 0.001, 0.9, 0.1, 0.999, 0.001, 1e-8, 0.01, 1.2, tiny),
    }
    for name, call in calls.items():
        serial, parallel = getattr(nk, f"{name}_update"), getattr(nk, f"{name}_update_parallel")
        runs = []
        for kernel in (serial, parallel):
            arrays = _optimizer_inputs(n, dtype, seed=n)
            for _ in range(3):
                call(kernel, *arrays)
            runs.append(arrays)
        for want, got in zip(*runs):
            # equal bits, signed zeros included; a NaN may change its sign bit (x86 scalar and SIMD code differ)
            assert np.array_equal(want, got, equal_nan=True), name
            finite = ~np.isnan(want)
            assert np.array_equal(np.signbit(want[finite]), np.signbit(got[finite])), name


def test_the_parallel_twins_are_really_parallel():
    """The twins are separate compilations with parallel=True (Numba's disk cache once handed the parallel build
    the serial machine code when both shared a name)."""
    for name in ("sgd", "rmsprop", "adam"):
        twin = getattr(nk, f"{name}_update_parallel")
        assert twin.targetoptions.get("parallel") is True
        assert twin.py_func.__qualname__ == f"{name}_update_parallel"
        assert twin.py_func.__code__ is getattr(nk, f"{name}_update").py_func.__code__


OPTIMIZERS = {
    "adam": lambda: mlpx.optim.Adam(lr=0.003, weight_decay=0.001),
    "nesterov": lambda: mlpx.optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001),
    "rmsprop": lambda: mlpx.optim.RMSProp(lr=0.003, momentum=0.5, centered=True),
    "plain sgd": lambda: mlpx.optim.SGD(lr=0.05),
}


class _SharingSpy(mlpx.callbacks.Callback):
    def __init__(self):
        self.seen = []

    def on_epoch_begin(self, model, epoch):
        self.seen.append(blas_pool.sharing())


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fit_shares_for_a_parameter_pass_and_gives_the_same_run(pool, monkeypatch, name):
    """fit shares the threads exactly when the optimizer has a pass over all parameters (not plain SGD, whose
    update is folded into the products); weights and history are bit for bit those of a run without sharing."""
    rng = np.random.default_rng(0)
    x = rng.random((640, 784), dtype=np.float32)
    y = rng.integers(0, 10, 640)
    runs = []
    for switch in ("0", "1"):
        monkeypatch.setenv(blas_pool.ENV_SWITCH, switch)
        model = mlpx.MLP([784, 500, 250, 100, 10], seed=0, backend="numpy")
        assert isinstance(model.ops, NumbaOps)
        model.compile(optimizer=OPTIMIZERS[name]())
        spy = _SharingSpy()
        history = model.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[spy])
        runs.append((model.get_weights(), history.loss, spy.seen))
        assert installed_hook() == 0 and not pool.sharing()      # removed after fit
    (weights_own, loss_own, seen_own), (weights_shared, loss_shared, seen_shared) = runs
    assert seen_own == [False, False]
    assert seen_shared == [name != "plain sgd"] * 2
    assert loss_own == loss_shared
    for a, b in zip(weights_own, weights_shared):
        np.testing.assert_array_equal(a, b)


def test_refusals_name_their_reason(pool, monkeypatch):
    monkeypatch.setenv(blas_pool.ENV_SWITCH, "0")
    assert "MLPX_SHARED_BLAS_POOL=0" in blas_pool.unavailable_reason()
    with blas_pool.shared_threads() as threads:
        assert threads == 0 and installed_hook() == 0
    monkeypatch.delenv(blas_pool.ENV_SWITCH)
    monkeypatch.setenv("OMP_DYNAMIC", "true")
    assert "OMP_DYNAMIC" in blas_pool.unavailable_reason()
    monkeypatch.delenv("OMP_DYNAMIC")
    with threadpool_limits(limits=1, user_api="blas"):
        assert "1 thread" in blas_pool.unavailable_reason()
    monkeypatch.setattr(blas_pool, "_omp_pid", os.getpid() + 1)       # as seen from a forked child
    assert "fork" in blas_pool.unavailable_reason()
    monkeypatch.setattr(blas_pool, "_library", lambda: None)
    assert "openblas_set_threads_callback_function" in blas_pool.unavailable_reason()


def test_a_forked_child_goes_back_to_openblas_threads(pool):
    """The fork handler (run here by hand) removes the hook: GNU OpenMP cannot run in the child."""
    with pool.shared_threads():
        blas_pool._forget_in_child()
        assert installed_hook() == 0 and not pool.sharing()
    assert blas_pool._users == 0 and installed_hook() == 0


_FORK_SCRIPT = """
import ctypes, os, sys
import numpy as np
from mlpx.backend import blas_pool
a = np.random.default_rng(0).random((256, 256))
want = a @ a
def hook():
    return ctypes.c_void_p.in_dll(blas_pool.numpy_blas_library(), "openblas_threads_callback_").value or 0
with blas_pool.shared_threads() as threads:
    assert threads >= 2 and hook() != 0
    pid = os.fork()
    if pid == 0:
        ok = hook() == 0 and np.array_equal(a @ a, want) and "fork" in blas_pool.unavailable_reason()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
sys.exit(0 if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and hook() == 0 else 1)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_real_fork_while_shared_leaves_a_working_child(pool):
    """fork() while the hook is set: the child multiplies on OpenBLAS's own threads and exits normally. (In a
    fresh interpreter: the test process may hold other libraries' threads, which fork does not copy.)"""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _FORK_SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_reference_backend_does_nothing_around_fit():
    with NumpyOps().training_threads(parameter_pass=True) as value:
        assert value is None and not blas_pool.sharing()
