"""Bad input gets a clear error naming what was expected and what came."""
import numpy as np
import pytest

import mlpx


@pytest.fixture
def model():
    m = mlpx.MLP([4, 3, 2], seed=0, backend="numpy")
    m.compile(loss="cross_entropy", optimizer="sgd")
    return m


X = np.zeros((5, 4), dtype=np.float32)
Y = np.array([0, 1, 0, 1, 1])


@pytest.mark.parametrize("x,y,message", [
    (np.zeros((5, 3)), Y, r"expected 4 features .* got 3"),
    (np.zeros(4), Y, r"expected a 2-D array"),
    (np.zeros((0, 4)), Y[:0], r"at least one sample"),
    (np.full((5, 4), np.nan), Y, r"finite values, found 20 NaN"),
    (np.where(np.eye(5, 4) > 0, np.inf, 0), Y, r"finite values, found 4"),
    (X, np.array([0, 1, 2, 0, 1]), r"labels in \[0, 2\) .* got values from 0 to 2"),
    (X, np.array([0, -1, 1, 0, 1]), r"got values from -1 to 1"),
    (X, Y[:4], r"expected 5 labels .* got 4"),
    (X, np.array([0.5, 1, 0, 1, 1]), r"integer class labels"),
    (X, np.array(["a"] * 5), r"integer class labels"),
    ("not an array", Y, r"expected an array"),
])
def test_fit_rejects_bad_data(model, x, y, message):
    with pytest.raises((ValueError, TypeError), match=message):
        model.fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("kwargs,message", [
    ({"batch_size": 0}, r"batch_size must be a positive integer, got 0"),
    ({"batch_size": -3}, r"batch_size must be a positive integer"),
    ({"epochs": 0}, r"epochs must be a positive integer, got 0"),
    ({"epochs": 1.5}, r"epochs must be a positive integer"),
])
def test_fit_rejects_bad_settings(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model.fit(X, Y, verbose=0, **{"epochs": 1, **kwargs})


@pytest.mark.parametrize("kwargs,message", [
    ({"activation": "swish"}, r"unknown activation 'swish'; expected one of sigmoid, tanh, relu, leaky_relu"),
    ({"init": "orthogonal"}, r"unknown initializer 'orthogonal'; expected one of zeros, small_random"),
    ({"output": "sigmoid"}, r"unknown output head 'sigmoid'; expected one of softmax, identity"),
    ({"dtype": "float16"}, r"dtype: expected one of float32, float64"),
    ({"backend": "jax"}, r"unknown backend 'jax'; expected one of auto, numpy, cupy"),
    ({"alpha": 1.5}, r"alpha .* expected 0 <= alpha < 1"),
])
def test_model_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mlpx.MLP([4, 3, 2], **kwargs)


@pytest.mark.parametrize("sizes", [[4], [], [4, 0, 2], [4, -1, 2], "784"])
def test_model_rejects_bad_layer_sizes(sizes):
    with pytest.raises(ValueError, match="layer_sizes"):
        mlpx.MLP(sizes)


def test_unknown_loss_and_optimizer_list_the_valid_ones():
    m = mlpx.MLP([4, 3, 2], backend="numpy")
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; expected one of cross_entropy, mse"):
        m.compile(loss="hinge")
    with pytest.raises(ValueError, match=r"unknown optimizer 'lbfgs'; expected one of sgd, momentum, rmsprop, adam"):
        m.compile(optimizer="lbfgs")
    identity = mlpx.MLP([4, 3, 2], output="identity", backend="numpy")
    with pytest.raises(ValueError, match="needs a softmax output head"):
        identity.compile(loss="cross_entropy")


@pytest.mark.parametrize("make,message", [
    (lambda: mlpx.optim.SGD(lr=0), "lr must be > 0"),
    (lambda: mlpx.optim.SGD(lr=float("nan")), "lr must be > 0"),
    (lambda: mlpx.optim.SGD(momentum=-0.1), "momentum must be >= 0"),
    (lambda: mlpx.optim.SGD(nesterov=True), "nesterov momentum requires momentum > 0"),
    (lambda: mlpx.optim.Adam(betas=(0.9, 1.0)), r"betas must lie in \[0, 1\)"),
    (lambda: mlpx.optim.RMSProp(weight_decay=-1), "weight_decay must be >= 0"),
])
def test_optimizers_reject_bad_hyper_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_uncompiled_model_says_what_to_do():
    m = mlpx.MLP([4, 3, 2], backend="numpy")
    with pytest.raises(RuntimeError, match=r"call model.compile"):
        m.fit(X, Y, verbose=0)
    with pytest.raises(RuntimeError, match=r"call model.compile"):
        m.train_step(X, Y)


def test_set_weights_checks_shapes(model):
    weights = model.get_weights()
    weights[2] = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"W2 expected shape \(3, 2\), got \(2, 3\)"):
        model.set_weights(weights)
    with pytest.raises(ValueError, match="expected 4 arrays"):
        model.set_weights(weights[:2])


def test_predict_proba_needs_a_softmax_head():
    m = mlpx.MLP([4, 3, 2], output="identity", backend="numpy")
    with pytest.raises(ValueError, match="softmax output head"):
        m.predict_proba(X)


@pytest.mark.parametrize("make, message", [
    (lambda: mlpx.callbacks.EarlyStopping(patience=0), r"EarlyStopping: patience must be a positive integer, got 0"),
    (lambda: mlpx.callbacks.EarlyStopping(patience=True), r"patience must be a positive integer, got True"),
    (lambda: mlpx.callbacks.StepLR(1.5), r"StepLR: step_size \(epochs\) must be a positive integer, got 1.5"),
    (lambda: mlpx.callbacks.CosineLR(-2), r"CosineLR: t_max \(epochs\) must be a positive integer, got -2"),
    (lambda: mlpx.threads.set_num_threads(0), r"set_num_threads: n must be a positive integer, got 0"),
])
def test_counts_that_must_be_positive_integers_say_so(make, message):
    with pytest.raises(ValueError, match=message):
        make()
