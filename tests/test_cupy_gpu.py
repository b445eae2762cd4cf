"""The real CuPy backend against the NumPy one, on a GPU (skipped without one; the op-by-op comparison is the
``cupy`` case of tests/test_backend_ops.py). Run on a GPU machine with ``pytest -m gpu`` (see docs/kernels.md)."""
import numpy as np
import pytest

import mlpx
from mlpx.backend import step_counts

pytestmark = pytest.mark.gpu


def _model(backend, dtype="float32", optimizer="momentum"):
    model = mlpx.MLP([784, 64, 32, 10], activation="relu", seed=5, dtype=dtype, backend=backend)
    return model.compile(loss="cross_entropy", optimizer=optimizer)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam"])
def test_training_steps_match_numpy(dtype, rtol, optimizer):
    rng = np.random.default_rng(0)
    x, y = rng.random((320, 784), dtype=np.float32), rng.integers(0, 10, 320)
    ref, gpu = _model("numpy", dtype, optimizer), _model("cupy", dtype, optimizer)
    h_ref = ref.fit(x, y, epochs=2, batch_size=64, verbose=0)
    h_gpu = gpu.fit(x, y, epochs=2, batch_size=64, verbose=0)
    np.testing.assert_allclose(h_gpu.loss, h_ref.loss, rtol=rtol)
    np.testing.assert_allclose(h_gpu.accuracy, h_ref.accuracy, rtol=rtol)
    for a, b in zip(gpu.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * np.abs(b).max())


def test_step_budget_on_the_gpu():
    for row in step_counts.reference_counts("cupy", cases=step_counts.CASES[:1]):
        assert row["launches"] <= 24 and row["syncs"] == 0 and row["allocations"] == 0, row


def test_arrays_move_by_the_documented_rules(tmp_path):
    import cupy

    model = _model("cupy")
    x = np.random.default_rng(1).random((8, 784), dtype=np.float32)
    from_numpy = model.predict_proba(x)                       # NumPy input: copied to the device
    from_cupy = model.predict_proba(cupy.asarray(x))          # CuPy input: used in place
    np.testing.assert_array_equal(from_numpy, from_cupy)
    with pytest.raises(TypeError, match="CuPy"):
        _model("numpy").predict(cupy.asarray(x))
    model.save(tmp_path / "m.npz")
    on_cpu = mlpx.load(tmp_path / "m.npz", backend="numpy")
    np.testing.assert_allclose(on_cpu.predict_proba(x), from_numpy, atol=1e-5)
    assert on_cpu.to("cupy").backend == "cupy"


def test_warmup_report_and_require_gpu():
    mlpx.require_gpu()
    assert mlpx.warmup("cupy")["backend"] == "cupy"
    report = mlpx.backend_report()
    assert report["cupy"] == "available" and "gpu" in report and report["kernel_compile_seconds"] >= 0


def test_host_reads_of_device_arrays_count_as_syncs_on_the_gpu():
    """Finding 4: float(a), a.item(), a.get() on a CuPy array each wait for the device; the counting device sees
    them, so the step budget's 0 syncs is a real 0 on the GPU too."""
    from mlpx.backend.cupy_ops import make_cupy_ops

    ops = make_cupy_ops(count_host_reads=True)
    stats = ops.zeros(2, np.float64)
    view = stats[1:]
    assert view._counters is ops.counters
    before = ops.counters.snapshot()
    float(stats[0])
    stats[1].item()
    view.get()
    ops.to_host(stats)
    assert ops.counters.since(before)["syncs"] == 4


def test_a_gpu_model_pickles_and_deep_copies():
    import copy
    import pickle

    model = _model("cupy")
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert twin.backend == "cupy"
        for a, b in zip(twin.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
