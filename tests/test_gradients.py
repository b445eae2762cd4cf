"""Finite-difference gradient checks in float64 for every activation, both losses and both output heads."""
import numpy as np
import pytest

import mlpx
from mlpx.activations import ACTIVATIONS

CASES = [("softmax", "cross_entropy"), ("softmax", "mse"), ("identity", "mse")]


def numerical_gradients(model, x, y, eps=1e-6):
    weights = model.get_weights()
    grads = []
    for i, w in enumerate(weights):
        g = np.zeros_like(w)
        for j in np.ndindex(w.shape):
            for sign in (+1, -1):
                shifted = [v.copy() for v in weights]
                shifted[i][j] += sign * eps
                model.set_weights(shifted)
                g[j] += sign * model.loss_and_gradients(x, y)[0] / (2 * eps)
        grads.append(g)
    model.set_weights(weights)
    return grads


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("head,loss", CASES)
def test_gradients_match_finite_differences(activation, head, loss):
    rng = np.random.default_rng(7)
    sizes = [5, 7, 6, 4]
    model = mlpx.MLP(sizes, activation=activation, output=head, init="xavier_normal", alpha=0.1, seed=3,
                     dtype="float64", backend="numpy")
    # non-zero biases so that every gradient path is exercised
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    model.compile(loss=loss, optimizer="sgd")
    x = rng.normal(size=(9, sizes[0]))
    y = rng.integers(0, sizes[-1], size=9) if head == "softmax" else rng.normal(size=(9, sizes[-1]))
    loss_value, analytic = model.loss_and_gradients(x, y)
    numeric = numerical_gradients(model, x, y)
    assert np.isfinite(loss_value) and loss_value > 0
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-8)


def test_gradient_check_detects_a_wrong_gradient():
    """The checker itself can fail: a deliberately broken backward is caught."""
    rng = np.random.default_rng(0)
    model = mlpx.MLP([3, 4, 2], activation="tanh", dtype="float64", seed=0, backend="numpy")
    model.compile(loss="cross_entropy", optimizer="sgd")
    x, y = rng.normal(size=(4, 3)), rng.integers(0, 2, size=4)
    _, analytic = model.loss_and_gradients(x, y)
    analytic[0] = analytic[0] * 1.01
    numeric = numerical_gradients(model, x, y)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(analytic[0], numeric[0], rtol=1e-6, atol=1e-8)
