"""Opt-in long run (pytest --runslow): the reference network, relu, SGD lr 0.01, batch 64, 15 epochs, full MNIST."""
import numpy as np
import pytest

import mlpx


@pytest.mark.slow
def test_reference_network_reaches_96_5_percent(mnist, record_property):
    model = mlpx.MLP([784, 500, 250, 100, 10], activation="relu", init="xavier_uniform", seed=0)
    model.compile(loss="cross_entropy", optimizer=mlpx.optim.SGD(lr=0.01))
    history = model.fit(mnist.x_train, mnist.y_train, epochs=15, batch_size=64, verbose=1)
    accuracy = model.evaluate(mnist.x_test, mnist.y_test)["accuracy"]
    seconds = float(np.median(history.epoch_seconds))
    record_property("test_accuracy", accuracy)
    record_property("median_seconds_per_epoch", seconds)
    print(f"test accuracy {accuracy:.4f}, median {seconds:.2f} s per epoch on backend {model.backend}")
    assert accuracy >= 0.965
