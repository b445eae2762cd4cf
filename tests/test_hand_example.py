"""The hand-computed example from a seed study, through the public API."""
import numpy as np
import pytest

import mlpx


def test_one_one_one_network_mse_sgd_step():
    model = mlpx.MLP([1, 1, 1], activation="relu", output="identity", dtype="float64", backend="numpy")
    model.set_weights([np.array([[0.5]]), np.array([1.0]), np.array([[0.5]]), np.array([1.0])])
    model.compile(loss="mse", optimizer=mlpx.optim.SGD(lr=0.01))
    x = np.array([[1.0], [2.0], [3.0]])
    y = np.array([3.0, 4.0, 5.0])
    assert model.evaluate(x, y)["loss"] == pytest.approx(4.375, abs=1e-12)
    loss = model.train_step(x, y)
    assert loss == pytest.approx(4.375, abs=1e-12)
    w1, b1, w2, b2 = (float(v.ravel()[0]) for v in model.get_weights())
    assert w1 == pytest.approx(0.545, abs=1e-12)
    assert b1 == pytest.approx(1.02, abs=1e-12)
    assert w2 == pytest.approx(0.585, abs=1e-12)
    assert b2 == pytest.approx(1.04, abs=1e-12)
