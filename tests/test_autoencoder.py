"""Autoencoders and feature extraction: MLP.transform against a NumPy forward, a linear autoencoder reaching the
PCA optimum, the study's building blocks, and a small end-to-end run of the study."""
import csv

import numpy as np
import pytest

import mlpx
from mlpx.study import autoencoder


def test_transform_matches_numpy_forward_for_every_hidden_layer():
    model = mlpx.MLP([6, 5, 4, 3, 2], activation="tanh", seed=1, dtype="float64", backend="numpy")
    x = np.random.default_rng(0).normal(size=(9, 6))
    weights = model.get_weights()
    a = x
    for k in (1, 2, 3):
        a = np.tanh(a @ weights[2 * k - 2] + weights[2 * k - 1])
        np.testing.assert_allclose(model.transform(x, layer=k, batch_size=4), a, rtol=1e-12)
    np.testing.assert_array_equal(model.transform(x, layer=-1), model.transform(x, layer=3))
    np.testing.assert_array_equal(model.transform(x, layer=-3), model.transform(x, layer=1))


@pytest.mark.parametrize("layer", [0, 4, -4, 1.0, True])
def test_transform_rejects_layers_that_are_not_hidden(layer):
    model = mlpx.MLP([6, 5, 4, 3, 2], backend="numpy")
    with pytest.raises(ValueError, match=r"hidden layer number in 1..3"):
        model.transform(np.zeros((1, 6)), layer=layer)


def test_build_autoencoder_is_the_seed_network():
    model = autoencoder.build_autoencoder(activation="identity", backend="numpy")
    assert model.layer_sizes == [784, 128, 64, 32, 64, 128, 784]
    assert (model.output, model.loss, model.activation) == ("identity", "mse", "identity")
    assert autoencoder.bottleneck_layer(model) == 3
    assert autoencoder.encode(model, np.zeros((5, 784), np.float32)).shape == (5, 32)


def test_linear_autoencoder_reaches_the_pca_error():
    """A linear autoencoder's best reconstruction is the projection on the top principal components."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(400, 4)) @ rng.normal(size=(4, 12)) + 0.1 * rng.normal(size=(400, 12)))
    x = (x - x.mean(axis=0)).astype(np.float32)
    _, s, _ = np.linalg.svd(x, full_matrices=False)
    pca_error = (s[3:] ** 2).sum() / len(x)                      # per-sample squared error with 3 components
    model = autoencoder.build_autoencoder(12, hidden=(3,), activation="identity", lr=0.01, backend="numpy")
    history = autoencoder.train_autoencoder(model, x, epochs=150, batch_size=40)
    assert history.loss[-1] < history.loss[0] / 5
    error = model.evaluate(x, x)["loss"]
    assert pca_error <= error * 1.0001 and error < 1.05 * pca_error


def test_first_of_each_class_picks_one_per_class_first():
    y = np.array([3, 3, 1, 0, 2, 1, 0])
    np.testing.assert_array_equal(autoencoder.first_of_each_class(y, 6), [3, 2, 4, 0, 1, 5])


def test_run_study_end_to_end_on_the_bundled_sample(tmp_path):
    data = mlpx.datasets.load_mnist_sample()
    result = autoencoder.run_study(tmp_path, epochs=2, subset=(600, 300), data=data, classifier_epochs=2,
                                   backend="numpy", verbose=0)
    for name in ("reconstructions.png", "loss_iterations.png", "loss_epochs.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["features"].split(" (")[0] for r in rows] == ["raw pixels"] * 2 + ["relu AE bottleneck"] * 2 + [
        "identity AE bottleneck"] * 2
    assert all(0.1 < float(r["test_accuracy"]) <= 1 for r in rows)          # better than chance (10 classes)
    with open(tmp_path / "loss_curves.csv") as f:
        curves = list(csv.DictReader(f))
    assert [(c["activation"], c["epoch"]) for c in curves] == [("relu", "1"), ("relu", "2"), ("identity", "1"),
                                                               ("identity", "2")]
    assert float(curves[1]["train_mse_per_pixel"]) < float(curves[0]["train_mse_per_pixel"])
    assert "| raw pixels (784) | softmax regression |" in (tmp_path / "results.md").read_text()
    assert len(result["results"]) == 6


def test_pca_reconstruction_mse_is_zero_for_data_of_that_rank():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 8)) + 5.0
    assert autoencoder.pca_reconstruction_mse(x[:40], x[40:], 3) < 1e-20
    assert autoencoder.pca_reconstruction_mse(x[:40], x[40:], 2) > 1e-3
