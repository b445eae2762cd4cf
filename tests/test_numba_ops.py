"""NumbaOps, the fast CPU backend, against the NumPy reference: the whole op suite of test_backend_ops, rerun
with NumbaOps as the backend under test (tinygrad's TestOpsGPU(TestOps) pattern)."""
import inspect

import numpy as np
import pytest

pytest.importorskip("numba", reason="Numba is not installed: the CPU backend falls back to NumpyOps")

from test_backend_ops import *  # noqa: E402,F401,F403  (the op tests, written once)

# Rerun here only the tests that take the backend under test (the ``ops`` fixture): the others (kernel sources,
# the backends' class structure) do not depend on it and ran once in test_backend_ops.
for _name in [name for name, value in list(globals().items())
              if name.startswith("test_") and callable(value) and "ops" not in inspect.signature(value).parameters]:
    del globals()[_name]

import mlpx  # noqa: E402
from mlpx.backend.numba_ops import NumbaOps  # noqa: E402


@pytest.fixture
def ops():
    return NumbaOps()


def test_numpy_backend_uses_the_fused_kernels(monkeypatch):
    from mlpx import backend

    monkeypatch.setattr(backend, "_ops_cache", {})
    assert isinstance(backend.get_ops("numpy"), NumbaOps)
    monkeypatch.setenv("MLPX_NUMBA", "0")
    monkeypatch.setattr(backend, "_ops_cache", {})
    assert type(backend.get_ops("numpy")).__name__ == "NumpyOps"


def test_training_matches_the_reference_backend(monkeypatch):
    """A few epochs on NumbaOps give the same history as on NumpyOps (to float32 rounding)."""
    from mlpx import backend

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    y = rng.integers(0, 4, size=300)
    histories = []
    for ops in (NumbaOps(), backend.NumpyOps()):
        monkeypatch.setattr(backend, "_ops_cache", {"numpy": ops})
        model = mlpx.MLP([12, 16, 8, 4], activation="leaky_relu", seed=0, backend="numpy")
        assert model.ops is ops
        model.compile(loss="cross_entropy", optimizer=mlpx.optim.Adam(lr=0.01, weight_decay=0.001))
        histories.append((model.fit(x, y, epochs=3, batch_size=32, verbose=0).loss, model.get_weights()))
    np.testing.assert_allclose(histories[0][0], histories[1][0], rtol=1e-5)
    for a, b in zip(histories[0][1], histories[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_state_never_goes_subnormal(dtype):
    """Where gradients stay zero, moments decay geometrically; values below the smallest normal number are stored
    as zero (subnormal arithmetic made the Adam step 4x slower), and the parameters still match the reference."""
    tiny = np.finfo(dtype).tiny
    ops, reference = NumbaOps(), backend_reference()
    n = 7
    runs = []
    for impl in (ops, reference):
        p = np.linspace(0.5, 1.5, n).astype(dtype)
        m = np.full(n, tiny * 50, dtype)   # decays into the subnormal range within a few steps
        v = np.full(n, tiny * 50, dtype)
        for step in range(1, 60):
            impl.adam_update(p, np.zeros(n, dtype), m, v, np.empty_like(p), lr=0.001, beta1=0.9, beta2=0.5,
                             eps=1e-8, weight_decay=0.0, step=step)
        runs.append((p, m, v))
    (p, m, v), (p_ref, m_ref, v_ref) = runs
    assert not np.any((m != 0) & (np.abs(m) < tiny)) and not np.any((v != 0) & (np.abs(v) < tiny))
    assert np.any((m_ref != 0) & (np.abs(m_ref) < tiny))     # the reference does go subnormal
    np.testing.assert_array_equal(p, p_ref)
    velocity = np.full(n, tiny * 1.05, dtype)  # x 0.9 momentum: subnormal
    ops.sgd_update(p, np.zeros(n, dtype), velocity, None, lr=0.1, momentum=0.9, dampening=0.0, nesterov=False,
                   weight_decay=0.0, first_step=False)
    assert not velocity.any()


def backend_reference():
    from mlpx.backend.numpy_ops import NumpyOps

    return NumpyOps()


def _count_folds(ops):
    """Wrap ops.gemm_accumulate to count its calls."""
    calls = []
    original = ops.gemm_accumulate

    def counting(*args, **kwargs):
        calls.append(args[2].shape)
        return original(*args, **kwargs)

    ops.gemm_accumulate = counting
    return calls


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_plain_sgd_folded_into_the_backward_pass_equals_the_usual_step(weight_decay):
    """NumbaOps updates plain SGD's weights inside the weight-gradient product (BLAS beta = 1 - lr wd); in float64
    the result equals gradient-then-update on the reference backend to rounding."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(150, 9)), rng.integers(0, 3, size=150)
    results = []
    for ops in (NumbaOps(), backend_reference()):
        calls = _count_folds(ops)
        model = mlpx.MLP([9, 7, 5, 3], activation="tanh", seed=1, dtype="float64", backend=ops)
        model.compile(optimizer=mlpx.optim.SGD(lr=0.1, weight_decay=weight_decay))
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        results.append((history.loss, model.get_weights(), calls, model.optimizer.step_count))
    (loss, weights, calls, steps), (ref_loss, ref_weights, ref_calls, ref_steps) = results
    assert calls == [(5, 3), (7, 5), (9, 7)] * steps and ref_calls == []   # folded on NumbaOps only
    assert steps == ref_steps == 2 * 10
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    for got, want in zip(weights, ref_weights):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("optimizer", [mlpx.optim.SGD(lr=0.1, momentum=0.9), mlpx.optim.Adam(),
                                       mlpx.optim.RMSProp()])
def test_optimizers_that_need_the_gradient_do_not_fold(optimizer):
    ops = NumbaOps()
    calls = _count_folds(ops)
    model = mlpx.MLP([4, 3, 2], seed=0, backend=ops).compile(optimizer=optimizer)
    model.train_step(np.ones((5, 4), np.float32), np.array([0, 1, 0, 1, 1]))
    assert calls == [] and optimizer.step_count == 1


def test_folding_falls_back_to_numpy_without_a_reachable_blas(monkeypatch):
    """Where NumPy's BLAS cannot be found (another BLAS, no threadpoolctl), the usual path runs, same numbers."""
    ops = NumbaOps()
    monkeypatch.setattr(ops, "_cblas", None)
    out = np.ones((3, 2))
    ops.gemm_accumulate(np.ones((4, 3)), np.ones((4, 2)), out, -0.5, 1.0, trans_a=True)
    np.testing.assert_array_equal(out, np.full((3, 2), -1.0))
    strided = np.ones((3, 4))[:, ::2]   # not contiguous: the BLAS call refuses, the reference takes over
    ops2 = NumbaOps()
    ops2.gemm_accumulate(np.ones((4, 3)), np.ones((4, 2)), strided, -0.5, 1.0, trans_a=True)
    np.testing.assert_array_equal(strided, np.full((3, 2), -1.0))


def test_a_model_on_numba_ops_pickles_and_deep_copies_and_trains_on_identically():
    """NumbaOps holds ctypes function pointers into NumPy's BLAS; they are looked up again, not copied."""
    import copy
    import pickle

    x, y = np.random.default_rng(0).random((32, 6), dtype=np.float32), np.arange(32) % 3
    model = mlpx.MLP([6, 5, 3], seed=0, backend=NumbaOps()).compile(optimizer=mlpx.optim.SGD(lr=0.1))
    model.train_step(x, y)
    clones = [pickle.loads(pickle.dumps(model)), copy.deepcopy(model)]
    for clone in clones:
        assert clone.ops.fast_gemm_accumulate == model.ops.fast_gemm_accumulate
    for m in [model, *clones]:
        m.train_step(x, y)
    for clone in clones:
        np.testing.assert_array_equal(clone.params, model.params)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 1001])
def test_sum_squares_is_the_float64_squared_norm(dtype, n):
    """NumbaOps' sum_squares (four running sums, no float64 copy) against the reference's float64 dot, on odd
    lengths and 2-D views; the result lands in a 1-element float64 view and nothing else changes."""
    x = np.random.default_rng(n).standard_normal((n, 3)).astype(dtype) * 1e3
    out = np.full(3, 7.0)
    NumbaOps().sum_squares(x, out[1:2])
    flat = x.reshape(-1).astype(np.float64)
    assert out[1] == pytest.approx(float(flat @ flat), rel=1e-12, abs=0.0)
    assert out[0] == out[2] == 7.0
