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
