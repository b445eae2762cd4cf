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
    try:
        return ctypes.c_void_p.in_dll(blas_pool.numpy_blas_library(), "openblas_threads_callback_").value or 0
    except ValueError:
        pytest.skip("this OpenBLAS does not export openblas_threads_callback_ (the hook cannot be inspected)")


def run_script(script: str) -> None:
    """Run ``script`` in a fresh interpreter with a time limit: a hang (two OpenBLAS jobs on one thread wait for
    each other for ever) fails the test instead of freezing the suite; so does a fork in a process with threads."""
    import subprocess
    import sys

    try:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the script hung (killed after 120 s)")
    assert result.returncode == 0, result.stdout + result.stderr


_JOBS_ON_NUMBA_THREADS = """
import glob, os, time
import numpy as np
from mlpx.backend import blas_pool

def cpu_ticks(threads):
    total = 0
    for tid in threads:
        fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total

def threads_now():
    return {int(os.path.basename(t)) for t in glob.glob("/proc/self/task/*")} - {os.getpid()}

def settle(threads):
    # wait until the threads stop running: spinning workers give up after a spin budget of CPU time, which a busy
    # machine stretches in wall time; settled = their CPU time unchanged over a 0.2 s window
    last, deadline = cpu_ticks(threads), time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = cpu_ticks(threads)
        if now == last:
            return
        last = now
    raise AssertionError(f"threads {sorted(threads)} kept running for 30 s")

a = np.random.default_rng(0).random((400, 400))
a @ a
openblas_threads = threads_now()              # Numba's pool does not exist yet
assert openblas_threads, "OpenBLAS started no worker thread"
assert blas_pool.unavailable_reason() is None, blas_pool.unavailable_reason()   # starts Numba's pool
settle(openblas_threads)                      # OpenBLAS's workers stop spinning after ~0.13 s (idle machine)
numba_threads = threads_now() - openblas_threads
with blas_pool.shared_threads():
    before = cpu_ticks(openblas_threads), cpu_ticks(numba_threads)
    for _ in range(300):
        a @ a
    after = cpu_ticks(openblas_threads), cpu_ticks(numba_threads)
assert after[0] == before[0], f"OpenBLAS's own workers ran {after[0] - before[0]} ticks while shared"
assert after[1] - before[1] > 5, f"Numba's threads ran only {after[1] - before[1]} ticks"
before = cpu_ticks(openblas_threads)
for _ in range(300):
    a @ a
assert cpu_ticks(openblas_threads) - before > 5, "the measurement cannot see OpenBLAS's own workers"

# the optimizer kernels' parallel twins (as loaded from Numba's cache) run on Numba's threads; the serial ones not
from mlpx.backend import numba_kernels as nk
p, g, m, v = (np.random.default_rng(1).random(2_000_000, dtype=np.float32) for _ in range(4))
args = (0.001, 0.9, 0.1, 0.999, 0.001, 1e-8, 0.0, 1.0, 1e-38)
# 1500 parallel passes give Numba's worker 2M x 1500 / 2 element updates, CPU time however busy the machine:
# 93-115 ticks measured, ~20x the threshold (100 passes gave ~5 ticks and failed by chance)
for kernel, busy, passes in ((nk.adam_update, False, 200), (nk.adam_update_parallel, True, 1500)):
    kernel(p, g, m, v, *args)
    settle(numba_threads)                     # Numba's workers done spinning after the warm-up call
    before = cpu_ticks(numba_threads)
    for _ in range(passes):
        kernel(p, g, m, v, *args)
    ticks = cpu_ticks(numba_threads) - before
    assert (ticks > 5) if busy else (ticks <= 1), (kernel, ticks)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux's /proc to see per-thread CPU time")
def test_openblas_jobs_really_run_on_numbas_threads(pool):
    """While shared, OpenBLAS's own worker threads do no work and Numba's do; after, OpenBLAS's work again. And
    the parallel optimizer twins run on Numba's threads, the serial kernels do not."""
    run_script(_JOBS_ON_NUMBA_THREADS)


_OTHER_THREADS = """
import threading
import numpy as np, numba
from mlpx.backend import blas_pool
a = np.random.default_rng(0).random((512, 512))
want = a @ a
results = []
def product(threads, chunksize):
    numba.set_num_threads(threads)            # fewer Numba threads than OpenBLAS jobs in this thread
    numba.set_parallel_chunksize(chunksize)   # and a chunk size that would put two jobs in one chunk
    results.append(np.array_equal(a @ a, want))
    results.append(numba.get_num_threads() == threads and numba.get_parallel_chunksize() == chunksize)
with blas_pool.shared_threads() as threads:
    assert threads >= 2
    for settings in ((1, 0), (1, 4), (threads, 8)):
        worker = threading.Thread(target=product, args=settings)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), f"a product with Numba settings {settings} hung"
    product(1, 3)                             # the sharing thread itself, settings lowered inside the block
assert all(results), results
"""


def test_any_thread_with_any_numba_settings_gets_its_jobs_threads(pool):
    """The hook is process-wide: a product from a thread whose Numba thread count is below OpenBLAS's job count, or
    whose chunk size would merge jobs, still gets one thread per job (a hang otherwise), and its settings back."""
    run_script(_OTHER_THREADS)


def test_the_hook_is_set_only_inside_and_counts_nesting(pool):
    assert installed_hook() == 0 and not pool.sharing()
    with pool.shared_threads() as threads:
        assert threads == 2 and pool.sharing()
        assert installed_hook() == pool._compiled_callback().address
        with pool.shared_threads():
            assert installed_hook() == pool._compiled_callback().address
        assert installed_hook() == pool._compiled_callback().address and pool.sharing()
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
    """The twins are copies of the serial kernels under their own names (Numba's disk cache once handed the
    parallel build the serial machine code when both shared a name)."""
    p = np.ones(64, np.float32)
    calls = {"sgd": (p, p, p, 0.1, 0.9, 1.0, False, 0.0, False, 1e-38),
             "rmsprop": (p, p, p, p, p, 0.01, 0.99, 0.01, 1e-8, 0.0, 0.5, True, 1e-38),
             "adam": (p, p, p, p, 0.001, 0.9, 0.1, 0.999, 0.001, 1e-8, 0.0, 1.0, 1e-38)}
    for name, args in calls.items():
        serial, twin = getattr(nk, f"{name}_update"), getattr(nk, f"{name}_update_parallel")
        assert twin.py_func.__qualname__ == f"{name}_update_parallel"
        assert twin.py_func.__code__ is serial.py_func.__code__
        for kernel in (serial, twin):
            kernel(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
    # that the cached machine code really runs on several threads: test_openblas_jobs_really_run_on_numbas_threads


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
    monkeypatch.setenv("OMP_THREAD_LIMIT", "1")
    assert "OMP_THREAD_LIMIT" in blas_pool.unavailable_reason()
    monkeypatch.delenv("OMP_THREAD_LIMIT")
    import numba

    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1)
    assert "Numba's pool has 1" in blas_pool.unavailable_reason()
    monkeypatch.undo()
    monkeypatch.setattr(blas_pool, "_threading_layer", lambda: "workqueue")
    assert "'workqueue'" in blas_pool.unavailable_reason()

    def no_layer():
        raise ValueError("No threading layer could be loaded")
    monkeypatch.setattr(blas_pool, "_threading_layer", no_layer)
    assert "did not start (ValueError: No threading layer" in blas_pool.unavailable_reason()
    with blas_pool.shared_threads() as threads:       # not shared, and no error: fit then runs serially
        assert threads == 0 and not blas_pool.sharing()
    monkeypatch.undo()
    monkeypatch.setattr(blas_pool, "_forked_child", True)
    assert "fork" in blas_pool.unavailable_reason()
    monkeypatch.setattr(blas_pool, "_library", lambda: None)
    assert "openblas_set_threads_callback_function" in blas_pool.unavailable_reason()


def test_a_forked_child_goes_back_to_openblas_threads(pool, monkeypatch):
    """The fork handler (run here by hand) removes the hook and turns sharing off: Numba's pool has started in this
    process, and GNU OpenMP cannot run in a forked child."""
    monkeypatch.setattr(blas_pool, "_forked_child", False)   # restored afterwards: this process is no child
    monkeypatch.setattr(blas_pool, "_lock", blas_pool._lock)
    with pool.shared_threads():
        blas_pool._after_fork_in_child()
        assert installed_hook() == 0 and not pool.sharing()
        assert "fork" in blas_pool.unavailable_reason()
    assert blas_pool._users == 0 and installed_hook() == 0


_FORK_SCRIPT = """
import ctypes, os, sys
import numpy as np
from mlpx.backend import blas_pool
a = np.random.default_rng(0).random((256, 256))
want = a @ a
def hook():
    return ctypes.c_void_p.in_dll(blas_pool.numpy_blas_library(), "openblas_threads_callback_").value or 0
assert blas_pool.unavailable_reason() is None, blas_pool.unavailable_reason()
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
    run_script(_FORK_SCRIPT)


def test_the_reference_backend_does_nothing_around_fit():
    with NumpyOps().training_threads(share=True) as value:
        assert value is None and not blas_pool.sharing()
