"""Per-layer diagnostics (History.layer_stats, mlpx/diagnostics.py): hand-computed values on a 2-3-2 network, the
same numbers on every CPU backend and the emulated GPU, unchanged training, exact resume, no extra host
synchronization, and the report and experiment plots."""
import json

import numpy as np
import pytest

import mlpx
from mlpx.backend.numpy_ops import NumpyOps
from mlpx.training import fit

from conftest import make_ops, needs_gxx

BACKENDS = ["numpy", "numba", "emulated"]

# The 2-3-2 network: unit 1 is steep in x0, unit 2 gentle, unit 3 steep and negative in x1.
X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
Y = np.array([0, 1, 1, 0])
W1 = np.array([[8.0, 0.1, 0.0], [0.0, 0.2, -9.0]])
B1 = np.zeros(3)
W2 = np.array([[0.5, -0.5], [1.0, 0.3], [-0.2, 0.4]])
B2 = np.array([0.1, -0.1])
FORWARD = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0),
           "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z)}
DERIVATIVE = {"sigmoid": lambda y: y * (1 - y), "tanh": lambda y: 1 - y * y, "relu": lambda y: (y > 0) * 1.0,
              "leaky_relu": lambda y: np.where(y > 0, 1.0, 0.01)}


def hand_model(activation, optimizer, backend=None):
    model = mlpx.MLP([2, 3, 2], activation=activation, dtype="float64", seed=0, backend=backend or NumpyOps())
    model.compile(optimizer=optimizer)
    model.set_weights([W1, B1, W2, B2])
    return model


def by_hand(activation):
    """Forward and backward of the one batch, written out: gradients of the mean cross-entropy."""
    h = FORWARD[activation](X @ W1 + B1)
    z = h @ W2 + B2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    delta2 = (p - np.eye(2)[Y]) / len(X)
    delta1 = (delta2 @ W2.T) * DERIVATIVE[activation](h)
    return h, [X.T @ delta1, h.T @ delta2], [delta1.sum(axis=0), delta2.sum(axis=0)]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_hand_computed_values_on_a_2_3_2_network(activation):
    lr = 0.1
    model = hand_model(activation, mlpx.optim.SGD(lr=lr))
    history = fit(model, X, Y, epochs=1, batch_size=4, shuffle=False, verbose=0, log_every=1)
    assert history.iterations == [1] and len(history.layer_stats) == 1
    hidden, output = history.layer_stats[0]
    h, dW, db = by_hand(activation)
    # ||W1|| = sqrt(8^2 + 0.1^2 + 0.2^2 + 9^2), before the step
    assert hidden["weight_norm"] == pytest.approx(np.sqrt(145.05), rel=1e-14)
    assert output["weight_norm"] == pytest.approx(np.sqrt(0.25 + 0.25 + 1 + 0.09 + 0.04 + 0.16), rel=1e-14)
    for entry, g, gb, w in zip((hidden, output), dW, db, (W1, W2)):
        assert entry["grad_norm"] == pytest.approx(np.linalg.norm(g), rel=1e-12)
        assert entry["bias_grad_norm"] == pytest.approx(np.linalg.norm(gb), rel=1e-12)
        # plain SGD: the update is lr dW, so the ratio is lr ||dW|| / ||W||
        assert entry["update_ratio"] == pytest.approx(lr * np.linalg.norm(g) / np.linalg.norm(w), rel=1e-9)
    assert hidden["activation_mean"] == pytest.approx(h.mean(), rel=1e-14)
    assert set(output) == {"grad_norm", "bias_grad_norm", "weight_norm", "update_ratio"}
    if activation in ("sigmoid", "tanh"):
        # saturated: unit 1 at z = 8, 8, -8 (not at 0), unit 3 at z = -9, -9: 5 of the 12 outputs
        assert hidden["saturated_fraction"] == 5 / 12 and "inactive_fraction" not in hidden
    else:
        # unit 3 (z = 0, -9, -9, 0) is <= 0 on the whole batch; units 1 and 2 fire somewhere: 1 of 3
        assert hidden["inactive_fraction"] == 1 / 3 and "saturated_fraction" not in hidden
    if activation == "relu":  # outputs [8, 0, 8, 0], [0.1, 0.2, 0.3, 0], [0, 0, 0, 0]
        assert hidden["activation_mean"] == pytest.approx(16.6 / 12, rel=1e-14)


def test_update_ratio_is_the_update_the_optimizer_made():
    """Weight decay enters the update but not the gradient norm; Adam's first step moves every weight whose
    gradient is not zero by about lr."""
    lr, wd = 0.1, 0.5
    history = fit(hand_model("sigmoid", mlpx.optim.SGD(lr=lr, weight_decay=wd)), X, Y, epochs=1, batch_size=4,
                  shuffle=False, verbose=0, log_every=1)
    _, dW, _ = by_hand("sigmoid")
    for entry, g, w in zip(history.layer_stats[0], dW, (W1, W2)):
        assert entry["grad_norm"] == pytest.approx(np.linalg.norm(g), rel=1e-12)
        assert entry["update_ratio"] == pytest.approx(lr * np.linalg.norm(g + wd * w) / np.linalg.norm(w), rel=1e-9)
    history = fit(hand_model("sigmoid", mlpx.optim.Adam(lr=0.01)), X, Y, epochs=1, batch_size=4, shuffle=False,
                  verbose=0, log_every=1)
    for entry, g, w in zip(history.layer_stats[0], dW, (W1, W2)):
        moved = np.abs(g) > 1e-6
        assert entry["update_ratio"] == pytest.approx(0.01 * np.sqrt(moved.sum()) / np.linalg.norm(w), rel=1e-3)


def test_zero_weights_have_no_update_ratio_and_json_keeps_it():
    model = mlpx.MLP([2, 3, 2], activation="relu", init="zeros", dtype="float64", seed=0, backend=NumpyOps())
    model.compile(optimizer="sgd")
    history = fit(model, X, Y, epochs=1, batch_size=4, verbose=0, log_every=1)
    assert history.layer_stats[0][0]["weight_norm"] == 0 and history.layer_stats[0][0]["update_ratio"] is None
    assert json.loads(json.dumps(history.to_dict()))["layer_stats"] == history.layer_stats


def _data(n=96, features=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)), rng.integers(0, classes, n)


def _train(backend, activation, optimizer, diagnostics=True, epochs=2, log_every=3, dtype="float64"):
    x, y = _data()
    model = mlpx.MLP([12, 10, 8, 3], activation=activation, seed=4, dtype=dtype, backend=make_ops(backend))
    model.compile(optimizer=optimizer)
    history = fit(model, x, y, epochs=epochs, batch_size=16, verbose=0, log_every=log_every, diagnostics=diagnostics,
                  validation_data=(x[:20], y[:20]))
    return model, history


OPTIMIZERS = [{"name": "sgd", "lr": 0.1}, {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
              {"name": "adam", "lr": 0.01}]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=["sgd", "momentum", "adam"])
def test_training_is_bitwise_unchanged_by_diagnostics(backend, optimizer):
    """Plain SGD is folded into the products on Numba: the logged step keeps that path (float32, as trained)."""
    for dtype in ("float32", "float64"):
        on, h_on = _train(backend, "relu", optimizer, True, dtype=dtype)
        off, h_off = _train(backend, "relu", optimizer, False, dtype=dtype)
        assert len(h_on.layer_stats) == len(h_on.iterations) == 4 and h_off.layer_stats == []
        for a, b in zip(on.get_weights(), off.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert h_on.loss == h_off.loss and h_on.iteration_loss == h_off.iteration_loss


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mnist_training_on_the_default_backend_is_unchanged(optimizer):
    """MNIST images on the default CPU backend (whatever first-layer path it picks for them), float32."""
    data = mlpx.datasets.load_mnist_sample()
    runs = []
    for diagnostics in (True, False):
        model = mlpx.MLP([784, 32, 16, 10], seed=2, backend="numpy")
        model.compile(optimizer=optimizer)
        history = fit(model, data.x_train[:960], data.y_train[:960], epochs=2, batch_size=64, verbose=0,
                      log_every=7, diagnostics=diagnostics)
        runs.append((model.get_weights(), history))
    assert len(runs[0][1].layer_stats) == 4 and runs[1][1].layer_stats == []
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("activation", ["tanh", "leaky_relu"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=["sgd", "momentum", "adam"])
def test_same_numbers_on_numpy_numba_and_emulated(activation, optimizer):
    reference = _train("numpy", activation, optimizer)[1].layer_stats
    for backend in ("numba", "emulated"):
        stats = _train(backend, activation, optimizer)[1].layer_stats
        assert len(stats) == len(reference)
        for point, ref_point in zip(stats, reference):
            for entry, ref in zip(point, ref_point):
                assert entry.keys() == ref.keys()
                for key in ref:
                    assert entry[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-15), (backend, key)


@needs_gxx
def test_log_points_need_no_extra_host_synchronization():
    """Same syncs with diagnostics on and off, log points included; more steps add none."""
    from mlpx.backend.cupy_ops import make_emulated_ops

    x, y = _data(n=256)
    counts = {}
    for diagnostics in (True, False):
        for n in (128, 256):                       # 8 and 16 steps: 2 and 4 log points
            model = mlpx.MLP([12, 10, 8, 3], seed=0, backend=make_emulated_ops())
            model.compile(optimizer="momentum")
            history = fit(model, x[:n], y[:n], epochs=1, batch_size=16, verbose=0, log_every=4,
                          diagnostics=diagnostics)
            assert len(history.layer_stats) == (n // 64 if diagnostics else 0)
            counts[diagnostics, n] = model.ops.counters.snapshot()
    for n in (128, 256):
        assert counts[True, n]["syncs"] == counts[False, n]["syncs"], n
        assert counts[True, n]["uploads"] == counts[False, n]["uploads"], n
    per_point = (counts[True, 256]["syncs"] - counts[True, 128]["syncs"]) / 2
    assert per_point == (counts[False, 256]["syncs"] - counts[False, 128]["syncs"]) / 2 == 1  # the read-back


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_restores_layer_stats_exactly(tmp_path, optimizer):
    """On the default CPU backend (the checkpoint loads there), plain SGD folded, Adam not."""
    from mlpx.checkpoint import load_checkpoint, resume

    x, y = _data(n=80)

    def model():
        m = mlpx.MLP([12, 10, 8, 3], activation="sigmoid", seed=1, backend="numpy")
        m.compile(optimizer=optimizer)
        return m

    whole = fit(model(), x, y, epochs=3, batch_size=16, verbose=0, log_every=3)
    first = fit(model(), x, y, epochs=1, batch_size=16, verbose=0, log_every=3, checkpoint=tmp_path / "c.npz")
    saved = load_checkpoint(tmp_path / "c.npz").history
    assert saved.layer_stats == first.layer_stats and len(saved.layer_stats) == 1
    _, resumed = resume(tmp_path / "c.npz", x, y, epochs=3, batch_size=16, verbose=0, log_every=3)
    assert resumed.iterations == whole.iterations == [3, 6, 9, 12, 15]
    assert resumed.layer_stats == whole.layer_stats                                 # exact, float for float
    assert load_checkpoint(tmp_path / "c.npz").history.layer_stats == whole.layer_stats


def test_layer_stats_stay_aligned_with_iterations_when_diagnostics_change():
    x, y = _data(n=64)
    model = mlpx.MLP([12, 10, 3], seed=1, backend=NumpyOps())
    model.compile(optimizer="sgd")
    history = fit(model, x, y, epochs=1, batch_size=16, verbose=0, log_every=2, diagnostics=False)
    assert history.layer_stats == []
    history = fit(model, x, y, epochs=2, batch_size=16, verbose=0, log_every=2, history=history, initial_epoch=1)
    assert len(history.layer_stats) == len(history.iterations) == 4
    assert history.layer_stats[:2] == [None, None] and all(history.layer_stats[2:])
    history = fit(model, x, y, epochs=3, batch_size=16, verbose=0, log_every=2, history=history, initial_epoch=2,
                  diagnostics=False)
    assert len(history.layer_stats) == 6 and history.layer_stats[4:] == [None, None]


def test_run_report_plots_and_table(tmp_path):
    from mlpx.study import plot, report
    from mlpx.diagnostics import markdown_table, series

    data = mlpx.datasets.load_mnist_sample()
    model = mlpx.MLP([784, 16, 12, 10], activation="sigmoid", seed=0, backend=NumpyOps())
    model.compile(optimizer="sgd")
    history = fit(model, data.x_train[:640], data.y_train[:640], epochs=2, batch_size=64, verbose=0, log_every=5)
    steps, values = series(history, 0)
    assert steps == [5, 10, 15, 20] and len(values) == 4
    plots = report._diagnostics_plots(plot, tmp_path, model, history.to_dict())
    for name in ("gradient_norms.png", "activations.png", "first_layer_weights.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert len(plots) == 3
    table = markdown_table(history.to_dict(), model.layer_sizes)
    assert "At step 20" in table and "layer 1 (784-16)" in table and "layer 3 (12-10) (output)" in table
    assert "saturated fraction" in table and "inactive fraction" not in table
    text = report.markdown_report("t", report.evaluate_classifier(model, data.x_test[:50], data.y_test[:50],
                                                                  list(data.classes)),
                                  list(data.classes), history=history.to_dict(), layer_sizes=model.layer_sizes)
    assert "## Inside the network" in text


def test_experiment_overlay_of_first_and_last_hidden_layer(tmp_path):
    from mlpx.study.experiments.results import LAYER_PLOT, write_results

    x, y = _data(n=64)
    results = []
    for label, act in (("relu", "relu"), ("sigmoid", "sigmoid")):
        for seed in (0, 1):
            model = mlpx.MLP([12, 10, 8, 6, 3], activation=act, seed=seed, backend=NumpyOps())
            model.compile(optimizer="sgd")
            history = fit(model, x, y, epochs=2, batch_size=16, verbose=0, log_every=2)
            results.append({"label": label, "seed": seed, "optimizer": "sgd lr 0.01", "test_accuracy": 0.5,
                            "train_accuracy": 0.5, "train_loss": 1.0, "test_loss": 1.0, "seconds": 1.0,
                            "stop_reason": None, "history": history.to_dict()})
    files = write_results(tmp_path, "activations", "test", results, {"epochs": 2})
    assert files[LAYER_PLOT].stat().st_size > 1000
    assert LAYER_PLOT in (tmp_path / "results.md").read_text()


@pytest.mark.gpu
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=["sgd", "momentum", "adam"])
def test_cupy_backend_gives_the_same_numbers(optimizer):
    """On a GPU (``pytest -m gpu``): the reductions run as CuPy ops on the device, in float64."""
    reference = _train("numpy", "tanh", optimizer)[1].layer_stats
    stats = _train("cupy", "tanh", optimizer)[1].layer_stats
    for point, ref_point in zip(stats, reference, strict=True):
        for entry, ref in zip(point, ref_point):
            for key in ref:
                assert entry[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-15), key
