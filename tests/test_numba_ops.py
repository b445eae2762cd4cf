"""NumbaOps, the fast CPU backend, against the NumPy reference: the whole op suite of test_backend_ops, rerun
with NumbaOps as the backend under test (tinygrad's TestOpsGPU(TestOps) pattern)."""
import numpy as np
import pytest

pytest.importorskip("numba", reason="Numba is not installed: the CPU backend falls back to NumpyOps")

from test_backend_ops import *  # noqa: E402,F401,F403  (the op tests, written once)

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
