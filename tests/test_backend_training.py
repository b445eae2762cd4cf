"""The CuPy backend's orchestration, run in CI over the CPU emulation of its kernels: whole trainings match the
NumPy backend, one step of the reference network stays within its launch and synchronization budget, models move
between backends, and arrays of the wrong kind are refused with a clear message."""
import numpy as np
import pytest

import mlpx
from mlpx.backend import step_counts
from mlpx.backend.cupy_ops import make_emulated_ops

from conftest import needs_gxx

pytestmark = needs_gxx


@pytest.fixture(scope="module")
def sample():
    data = mlpx.datasets.load_mnist_sample()
    return data.x_train[:640], data.y_train[:640], data.x_test[:200], data.y_test[:200]


CASES = [("relu", "cross_entropy", {"name": "sgd", "lr": 0.05}),
         ("sigmoid", "mse", {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
         ("tanh", "cross_entropy", {"name": "adam", "lr": 0.002, "weight_decay": 1e-4}),
         ("leaky_relu", "cross_entropy", {"name": "rmsprop", "lr": 0.001, "momentum": 0.5, "centered": True})]


def _train(backend, dtype, activation, loss, optimizer, data):
    x, y, x_val, y_val = data
    model = mlpx.MLP([784, 48, 24, 10], activation=activation, seed=3, dtype=dtype, backend=backend)
    model.compile(loss=loss, optimizer=mlpx.optim.make_optimizer(dict(optimizer)))
    history = model.fit(x, y, epochs=2, batch_size=64, validation_data=(x_val, y_val), verbose=0)
    return model, history


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-4)])
@pytest.mark.parametrize("activation, loss, optimizer", CASES)
def test_training_on_the_emulated_gpu_path_matches_numpy(sample, dtype, rtol, activation, loss, optimizer):
    """float32 drifts over 20 steps as any two float32 implementations do; float64 shows the path is exact."""
    ref_model, ref = _train("numpy", dtype, activation, loss, optimizer, sample)
    model, got = _train("emulated", dtype, activation, loss, optimizer, sample)
    assert model.backend == "emulated"
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose(getattr(got, key), getattr(ref, key), rtol=rtol, err_msg=key)
    for w_got, w_ref in zip(model.get_weights(), ref_model.get_weights()):
        np.testing.assert_allclose(w_got, w_ref, rtol=0, atol=rtol * np.abs(w_ref).max())
    np.testing.assert_allclose(model.predict_proba(sample[2]), ref_model.predict_proba(sample[2]), atol=rtol * 10)


def test_identity_head_regression_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((150, 12))
    y = np.stack([x[:, 0] - x[:, 1], np.sin(x[:, 2])], axis=1)
    results = []
    for backend in ("numpy", "emulated"):
        model = mlpx.MLP([12, 16, 2], activation="tanh", output="identity", seed=1, dtype="float64", backend=backend)
        model.compile(loss="mse", optimizer="adam")
        history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
        results.append((history.loss, model.predict(x)))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-10, atol=1e-12)


def test_reference_network_step_budget():
    """One step of 784-500-250-100-10 at batch 64: at most 24 launches (matrix products included), no host
    synchronization, nothing uploaded or allocated once the buffers exist."""
    for row in step_counts.reference_counts("emulated"):
        assert row["launches"] <= 24, row
        assert row["gemms"] == 11, row                       # 4 forward, 4 weight gradients, 3 input gradients
        assert row["syncs"] == 0 and row["uploads"] == 0 and row["allocations"] == 0, row


def test_fit_synchronizes_per_epoch_not_per_step(sample):
    """Through the real training loop: more steps in an epoch add launches but no synchronization."""
    x, y = sample[0], sample[1]
    counts = []
    for n in (128, 512):                                      # 2 and 8 steps
        model = mlpx.MLP([784, 32, 10], seed=0, backend=make_emulated_ops())
        model.compile(optimizer="momentum")
        model.fit(x[:n], y[:n], epochs=1, batch_size=64, verbose=0)
        counts.append(model.ops.counters.snapshot())
    more = {key: counts[1][key] - counts[0][key] for key in counts[0]}
    assert more["syncs"] == 0 and more["uploads"] == 0 and more["allocations"] == 0, more
    assert more["launches"] == 6 * (5 + 7), more     # per step: 5 matrix products, 7 kernels (2 of them gathers)


def test_model_moves_between_backends_and_files_load_anywhere(sample, tmp_path):
    x, y = sample[0][:128], sample[1][:128]
    model = mlpx.MLP([784, 20, 10], seed=0, backend="numpy")
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    twin = mlpx.MLP([784, 20, 10], seed=0, backend="numpy")
    twin.compile(optimizer="adam")
    twin.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert model.to("emulated") is model and model.backend == "emulated"
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.train_step(x[:32], y[:32])                          # Adam's state moved too: the next step agrees
    twin.train_step(x[:32], y[:32])
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    model.save(tmp_path / "m.npz")
    loaded = mlpx.load(tmp_path / "m.npz", backend="numpy")
    assert loaded.backend == "numpy"
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.step_count == model.optimizer.step_count
    model.to("numpy")
    assert model.backend == "numpy" and type(model.params) is np.ndarray


class FakeGpuArray:
    """Looks like a CuPy array to duck typing, as far as mlpx looks."""

    __cuda_array_interface__ = {"shape": (2, 784), "typestr": "<f4", "data": (0, False), "version": 3}
    shape, ndim, dtype = (2, 784), 2, np.dtype(np.float32)


def test_gpu_arrays_are_refused_with_a_clear_message():
    for backend in ("numpy", "emulated"):
        model = mlpx.MLP([784, 10], seed=0, backend=backend)
        with pytest.raises(TypeError, match="(?i)cupy"):
            model.predict(FakeGpuArray())


def test_kernels_refuse_host_arrays_and_wrong_dtypes():
    ops = make_emulated_ops()
    z = ops.zeros((4, 3), np.float32)
    with pytest.raises(TypeError, match="must be a device array"):
        ops.bias_act_forward(np.zeros((4, 3), np.float32), ops.zeros(3, np.float32), "relu", z)
    with pytest.raises(TypeError, match="must have dtype float32"):
        ops.bias_act_forward(z, ops.zeros(3, np.float64), "relu", z)
    with pytest.raises(ValueError, match="expected shape"):
        ops.bias_act_forward(z, ops.zeros(4, np.float32), "relu", z)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.act_backward(z.T, ops.zeros((3, 4), np.float32), "relu", ops.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="unknown activation"):
        ops.act_backward(z, z, "swish", z)


def test_reading_a_device_value_on_the_host_counts_as_a_sync():
    ops = make_emulated_ops()
    stats = ops.zeros(2, np.float64)
    before = ops.counters.snapshot()
    float(stats[0])
    bool(stats[1] > 0)
    ops.to_host(stats)
    assert ops.counters.since(before)["syncs"] == 3


def test_backend_choice_report_warmup_and_require_gpu(monkeypatch):
    from mlpx import backend

    assert backend.resolve_backend("auto")[0] in ("numpy", "cupy")       # auto never picks the emulation
    report = mlpx.backend_report()
    assert {"numpy", "cupy", "emulated", "default", "kernel_sources", "emulated_kernel_cache"} <= set(report)
    assert mlpx.warmup("emulated")["backend"] == "emulated"
    assert mlpx.warmup("numpy") == {"backend": "numpy", "seconds": 0.0}
    usable, why = backend.cupy_status()
    if not usable:
        with pytest.raises(RuntimeError, match="no GPU backend") as err:
            mlpx.require_gpu()
        assert why in str(err.value)


def test_backend_report_says_plain_sgd_on_the_sparse_path_shares_blas_threads_too(monkeypatch):
    """mlpx.policy.share_blas_threads shares for any optimizer on the sparse first-layer path, not only for
    momentum, RMSProp and Adam: the report says so."""
    from mlpx import backend
    from mlpx.backend import blas_pool

    monkeypatch.setattr(blas_pool, "unavailable_reason", lambda: None)
    text = backend._thread_sharing(True)
    assert text.startswith("yes") and "plain SGD too" in text and "sparse first-layer" in text


def test_require_gpu_names_an_old_driver(monkeypatch):
    import sys
    import types

    from mlpx import backend

    class CUDARuntimeError(RuntimeError):
        pass

    def no_device():
        raise CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    runtime = types.SimpleNamespace(getDeviceCount=no_device, driverGetVersion=lambda: 11040,
                                    runtimeGetVersion=lambda: 12090)
    fake = types.SimpleNamespace(is_available=lambda: False, cuda=types.SimpleNamespace(runtime=runtime))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(RuntimeError, match="driver is too old .*CUDA 11040.*12090"):
        backend.require_gpu()
