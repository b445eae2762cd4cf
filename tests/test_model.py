"""The public model API: reproducibility, inference, regression, float64, save and load."""
import numpy as np
import pytest

import mlpx
from mlpx.initializers import BIAS_INITIALIZERS, INITIALIZERS


def blobs(n=300, features=10, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    x = centres[y] + rng.normal(size=(n, features))
    return x.astype(np.float32), y


def trained(seed=0, **kwargs):
    x, y = blobs()
    model = mlpx.MLP([10, 16, 8, 3], seed=seed, backend="numpy", **kwargs)
    model.compile(loss="cross_entropy", optimizer=mlpx.optim.SGD(lr=0.05, momentum=0.9))
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0, validation_data=(x[:50], y[:50]))
    return model, history


def test_same_seed_same_weights_and_history():
    (m1, h1), (m2, h2) = trained(seed=5), trained(seed=5)
    assert h1.loss == h2.loss and h1.val_loss == h2.val_loss
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    m3, h3 = trained(seed=6)
    assert h3.loss != h1.loss


def test_training_learns_and_history_is_complete():
    model, history = trained()
    x, y = blobs()
    assert len(history.loss) == len(history.accuracy) == len(history.val_loss) == 3
    assert history.loss[-1] < history.loss[0]
    assert model.evaluate(x, y)["accuracy"] > 0.9
    assert history.history["val_accuracy"] == history.val_accuracy


def test_fit_twice_continues_the_same_run():
    """fit(epochs=1) twice equals fit(epochs=2): the shuffle generator and optimizer state carry over."""
    x, y = blobs()
    runs = []
    for chunks in ([2], [1, 1]):
        model = mlpx.MLP([10, 16, 3], seed=1, backend="numpy")
        model.compile(optimizer=mlpx.optim.Adam())
        for epochs in chunks:
            model.fit(x, y, epochs=epochs, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_predictions_are_consistent():
    model, _ = trained()
    x, y = blobs()
    proba = model.predict_proba(x, batch_size=64)
    assert proba.shape == (300, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(x, batch_size=7), proba.argmax(axis=1))
    assert np.mean(model.predict(x) == y) == pytest.approx(model.evaluate(x, y)["accuracy"])


def test_evaluate_matches_a_direct_computation():
    model, _ = trained()
    x, y = blobs()
    proba = model.predict_proba(x).astype(np.float64)
    expected = -np.mean(np.log(proba[np.arange(len(y)), y]))
    assert model.evaluate(x, y, batch_size=33)["loss"] == pytest.approx(expected, rel=1e-4)


def test_regression_with_identity_head():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = np.stack([x[:, 0] - 2 * x[:, 1], x[:, 2] ** 2], axis=1)
    model = mlpx.MLP([3, 32, 2], activation="tanh", output="identity", seed=0, dtype="float64", backend="numpy")
    model.compile(loss="mse", optimizer=mlpx.optim.Adam(lr=0.01))
    before = model.evaluate(x, y)["loss"]
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    after = model.evaluate(x, y)
    assert "accuracy" not in after and after["loss"] < 0.1 * before
    assert model.predict(x).shape == (400, 2)


@pytest.mark.parametrize("name", INITIALIZERS)
def test_initializers_are_seeded_and_scaled(name):
    a = mlpx.MLP([784, 500, 10], init=name, seed=3, backend="numpy").get_weights()
    b = mlpx.MLP([784, 500, 10], init=name, seed=3, backend="numpy").get_weights()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[1].any() == (name in BIAS_INITIALIZERS) and a[0].dtype == np.float32
    expected_std = {"zeros": 0.0, "small_random": 0.01 / np.sqrt(3), "normal": 1.0,
                    "xavier_uniform": np.sqrt(2 / 1284), "xavier_normal": np.sqrt(2 / 1284),
                    "he_normal": np.sqrt(2 / 784), "he_uniform": np.sqrt(2 / 784),
                    "lecun_uniform": np.sqrt(1 / 784), "lecun_normal": np.sqrt(1 / 784),
                    "torch_default": np.sqrt(1 / (3 * 784))}[name]
    assert a[0].std() == pytest.approx(expected_std, rel=0.02, abs=1e-12)


def test_float64_on_request():
    model = mlpx.MLP([4, 3, 2], dtype="float64", backend="numpy")
    assert all(w.dtype == np.float64 for w in model.get_weights())


def test_large_inputs_stay_finite():
    """Saturating activations and huge logits: no overflow warnings, no NaN."""
    x = np.full((4, 3), 1e4, dtype=np.float32) * np.array([1, -1, 1], dtype=np.float32)
    y = np.array([0, 1, 0, 1])
    for activation in ("sigmoid", "tanh", "relu", "leaky_relu", "identity"):
        model = mlpx.MLP([3, 5, 2], activation=activation, init="normal", seed=0, backend="numpy")
        model.compile(loss="cross_entropy", optimizer="sgd")
        with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
            loss = model.train_step(x, y)
            proba = model.predict_proba(x)
        assert np.isfinite(loss) and np.isfinite(proba).all()


def test_save_and_load_round_trip(tmp_path):
    model, _ = trained()
    x, y = blobs()
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = mlpx.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.get_config() == model.get_config()
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.step_count == model.optimizer.step_count
    # the restored momentum makes the next step identical
    model.train_step(x[:32], y[:32])
    loaded.train_step(x[:32], y[:32])
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    with np.load(path, allow_pickle=False) as data:
        assert {"W1", "b1", "W3", "b3", "config"} <= set(data.files)


def test_loading_corrupt_or_foreign_files_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        mlpx.load(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    with pytest.raises(ValueError, match="not a readable mlpx model file"):
        mlpx.load(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(ValueError, match="not an mlpx model file"):
        mlpx.load(foreign)
    model, _ = trained()
    good = tmp_path / "good.npz"
    model.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ValueError, match="not a readable mlpx model file"):
        mlpx.load(truncated)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, mlpx_format=np.array("mlpx.MLP"), config=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        mlpx.load(pickled)


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure in the middle of writing leaves the previous file intact and no temporary file behind."""
    model, _ = trained()
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()

    def exploding_savez(file, **arrays):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", exploding_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


@pytest.mark.parametrize("clone", ["pickle", "deepcopy"])
def test_a_copied_model_keeps_its_views_on_its_own_flat_buffers(clone):
    """Copied views would come apart from the flat buffer: the optimizer would update one, the forward read the
    other. The copy must train exactly like the original, and never touch it."""
    import copy
    import pickle

    from mlpx.backend.numpy_ops import NumpyOps

    x, y = np.random.default_rng(1).random((40, 5)), np.arange(40) % 3
    model = mlpx.MLP([5, 4, 3], seed=2, dtype="float64", backend=NumpyOps())
    model.compile(optimizer=mlpx.optim.Adam(lr=0.05))
    model.train_step(x, y)
    twin = pickle.loads(pickle.dumps(model)) if clone == "pickle" else copy.deepcopy(model)
    before = model.params.copy()
    assert all(np.shares_memory(w, twin.params) for w in twin.W + twin.b)
    twin.train_step(x, y)
    np.testing.assert_array_equal(model.params, before)        # the original is untouched
    model.train_step(x, y)
    np.testing.assert_array_equal(twin.params, model.params)
    np.testing.assert_array_equal(twin.W[0], model.W[0])
