"""Bad input gets a clear error naming what was expected and what came."""
import re

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
    ({"leaky_slope": -0.1}, r"leaky_slope .* expected 0 <= leaky_slope < 1"),
    ({"leaky_slope": 0.2, "alpha": 0.3}, r"alpha is the older name of leaky_slope"),
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
    (lambda: mlpx.optim.SGD(lr=0), r"SGD: lr must be a finite number > 0, got 0"),
    (lambda: mlpx.optim.SGD(lr=float("nan")), r"lr must be a finite number > 0, got nan"),
    (lambda: mlpx.optim.SGD(lr=float("inf")), r"SGD: lr must be a finite number > 0, got inf"),
    (lambda: mlpx.optim.Adam(lr=-float("inf")), r"Adam: lr must be a finite number > 0, got -inf"),
    (lambda: mlpx.optim.SGD(lr="0.1"), r"SGD: lr must be a finite number > 0, got str '0.1'"),
    (lambda: mlpx.optim.SGD(lr=None), r"SGD: lr must be a finite number > 0, got NoneType None"),
    (lambda: mlpx.optim.SGD(momentum=-0.1), r"SGD: momentum must be a finite number in \[0, 1\), got -0.1"),
    (lambda: mlpx.optim.SGD(momentum=1), r"SGD: momentum must be a finite number in \[0, 1\), got 1"),
    (lambda: mlpx.optim.SGD(momentum=2.0), r"SGD: momentum must be a finite number in \[0, 1\), got 2.0"),
    (lambda: mlpx.optim.SGD(dampening=float("inf")), r"SGD: dampening must be a finite number >= 0, got inf"),
    (lambda: mlpx.optim.SGD(nesterov=True), "nesterov momentum requires momentum > 0"),
    (lambda: mlpx.optim.SGD(weight_decay=float("inf")), r"SGD: weight_decay must be a finite number >= 0, got inf"),
    (lambda: mlpx.optim.RMSProp(momentum=1.0), r"RMSProp: momentum must be a finite number in \[0, 1\), got 1.0"),
    (lambda: mlpx.optim.RMSProp(alpha=1.0), r"RMSProp: alpha must be a finite number in \[0, 1\), got 1.0"),
    (lambda: mlpx.optim.RMSProp(alpha=-0.5), r"RMSProp: alpha must be a finite number in \[0, 1\), got -0.5"),
    (lambda: mlpx.optim.RMSProp(eps=0), r"RMSProp: eps must be a finite number > 0, got 0"),
    (lambda: mlpx.optim.RMSProp(weight_decay=-1), r"RMSProp: weight_decay must be a finite number >= 0, got -1"),
    (lambda: mlpx.optim.RMSProp(weight_decay=float("nan")), r"weight_decay must be a finite number >= 0, got nan"),
    (lambda: mlpx.optim.Adam(betas=(0.9, 1.0)), r"Adam: betas\[1\] \(beta2\) must be a finite number in \[0, 1\), "
                                                r"got 1.0"),
    (lambda: mlpx.optim.Adam(betas=(-0.1, 0.9)), r"betas\[0\] \(beta1\) must be a finite number in \[0, 1\)"),
    (lambda: mlpx.optim.Adam(betas=(float("nan"), 0.9)), r"betas\[0\] \(beta1\) .* got nan"),
    (lambda: mlpx.optim.Adam(betas=0.9), r"Adam: betas must be a pair \(beta1, beta2\), each in \[0, 1\), got 0.9"),
    (lambda: mlpx.optim.Adam(betas=(0.9,)), r"Adam: betas must be a pair .* got \(0.9,\)"),
    (lambda: mlpx.optim.Adam(betas=(0.9, 0.99, 0.999)), r"Adam: betas must be a pair"),
    (lambda: mlpx.optim.Adam(betas="ab"), r"Adam: betas must be a pair .* got 'ab'"),
    (lambda: mlpx.optim.Adam(betas=(0.9, "0.999")), r"betas\[1\] \(beta2\) must be a finite number .* got str"),
    (lambda: mlpx.optim.Adam(eps=0.0), r"Adam: eps must be a finite number > 0, got 0.0"),
    (lambda: mlpx.optim.Adam(weight_decay=float("inf")), r"Adam: weight_decay must be a finite number >= 0, got inf"),
    (lambda: mlpx.optim.make_optimizer("momentum", momentum=2), r"SGD: momentum must be a finite number in \[0, 1\)"),
])
def test_optimizers_reject_bad_hyper_parameters(make, message):
    """Each names the optimizer and the parameter, what was expected and what came (strings are TypeErrors)."""
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_optimizers_accept_the_edges_of_their_ranges():
    mlpx.optim.SGD(lr=1e-12, momentum=0.0)
    mlpx.optim.SGD(lr=np.float32(0.1), momentum=np.float64(0.99), weight_decay=np.int64(0))
    mlpx.optim.RMSProp(alpha=0.0, momentum=0.999999)
    mlpx.optim.Adam(betas=[0.0, 0.999999], eps=1e-300)
    assert mlpx.optim.Adam(betas=np.array([0.5, 0.6])).betas == (0.5, 0.6)


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


@pytest.mark.parametrize("method", ["evaluate", "predict", "predict_proba", "transform"])
@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "64"])
def test_inference_refuses_a_bad_batch_size(model, method, batch_size):
    """0 used to fail inside range() and -1 to return {'loss': 0.0, 'accuracy': 0.0} from no batch at all."""
    args = (X, Y) if method == "evaluate" else (X,)
    with pytest.raises(ValueError, match=rf"batch_size must be a positive integer, got {batch_size!r}"):
        getattr(model, method)(*args, batch_size=batch_size)


def test_inference_with_batches_smaller_than_the_data_still_works(model):
    assert model.evaluate(X, Y, batch_size=2) == pytest.approx(model.evaluate(X, Y))
    np.testing.assert_array_equal(model.predict(X, batch_size=np.int64(3)), model.predict(X))


@pytest.mark.parametrize("callbacks, error, message", [
    (3, TypeError, r"callbacks must be a list of mlpx.Callback instances \(or None\), got int 3"),
    ("early", TypeError, r"callbacks must be a list .* got str 'early'"),
    (mlpx.callbacks.EarlyStopping(monitor="loss"), TypeError, r"callbacks must be a list .* got EarlyStopping"),
    ([mlpx.callbacks.StepLR(1), 3], TypeError, r"callbacks\[1\] must be an mlpx.Callback instance .* got int 3"),
])
def test_fit_refuses_callbacks_that_are_not_a_list_of_callbacks(model, callbacks, error, message):
    before = model.get_weights()
    with pytest.raises(error, match=message):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=callbacks)
    for old, new in zip(before, model.get_weights()):  # refused before any step
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("weights, message", [
    (None, r"set_weights: weights must be a list of 4 arrays \[W1, b1, ...\] .* got NoneType"),
    (np.zeros(4), r"set_weights: weights must be a list of 4 arrays .* got ndarray"),
    ("W1b1W2b2", r"set_weights: weights must be a list of 4 arrays .* got str"),
])
def test_set_weights_refuses_what_is_not_a_list_of_arrays(model, weights, message):
    with pytest.raises(TypeError, match=message):
        model.set_weights(weights)


@pytest.mark.parametrize("seed", [-1, 1.5, 2.0, True, "3", [1, 2]])
def test_model_refuses_a_seed_that_is_not_a_non_negative_integer(seed):
    with pytest.raises(ValueError, match=rf"seed must be a non-negative integer or None, got {re.escape(repr(seed))}"):
        mlpx.MLP([4, 3, 2], seed=seed, backend="numpy")


def test_model_accepts_numpy_integer_seeds_as_plain_ints():
    model = mlpx.MLP([4, 3, 2], seed=np.int64(3), backend="numpy")
    assert model.seed == 3 and type(model.seed) is int  # JSON-serializable in saved models
    np.testing.assert_array_equal(model.get_weights()[0], mlpx.MLP([4, 3, 2], seed=3, backend="numpy").get_weights()[0])


@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "inf"], "argument --lr: must be a finite number > 0, got inf"),
    (["train", "--lr", "nan"], "argument --lr: must be a finite number > 0, got nan"),
    (["train", "--momentum", "2"], "argument --momentum: must be a finite number in [0, 1), got 2.0"),
    (["train", "--momentum", "1"], "argument --momentum: must be a finite number in [0, 1), got 1.0"),
    (["train", "--momentum", "-0.5"], "argument --momentum: must be a finite number in [0, 1), got -0.5"),
    (["train", "--optimizer", "adam", "--betas", "0.9", "1"], "argument --betas: must be a finite number in [0, 1)"),
    (["train", "--weight-decay", "inf"], "argument --weight-decay: must be a finite number >= 0, got inf"),
    (["train", "--weight-decay", "-1"], "argument --weight-decay: must be a finite number >= 0, got -1.0"),
    (["train", "--seed", "-1"], "argument --seed: expected a non-negative integer, got -1"),
    (["train", "--init", "kaiming"], "argument --init: invalid choice: 'kaiming'"),
    (["experiment", "activations", "--init", "kaiming"], "argument --init: invalid choice: 'kaiming'"),
])
def test_cli_refuses_out_of_range_hyper_parameters_before_anything_runs(tmp_path, monkeypatch, capsys, argv,
                                                                          message):
    from mlpx.study.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("weights, message", [
    (-np.ones(12), r"sample_weight: expected non-negative weights, got 12 negative value\(s\) of 12"),
    (np.r_[np.ones(6), -np.ones(6)], r"sample_weight: expected non-negative weights, got 6 negative"),
    (np.zeros(12), r"(?i)sample_weight|non-zero"),  # scikit-learn's own check or ours: all zero is refused
    (np.full(12, np.nan), r"sample_weight contains NaN"),
    (np.full(12, np.inf), r"sample_weight contains infinity"),
])
@pytest.mark.parametrize("estimator", ["MLPClassifier", "MLPRegressor"])
def test_sklearn_estimators_refuse_sample_weights_that_train_nothing(weights, message, estimator):
    """Negative or all-zero weights used to train nothing at all (loss_curve_ all 0.0)."""
    sk = pytest.importorskip("mlpx.sklearn")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 3)), np.arange(12) % 2
    with pytest.raises(ValueError, match=message):
        getattr(sk, estimator)(max_iter=2, backend="numpy").fit(x, y, sample_weight=weights)
    est = getattr(sk, estimator)(backend="numpy")
    if estimator == "MLPClassifier":
        est.partial_fit(x, y, classes=[0, 1])
        with pytest.raises(ValueError, match=message):
            est.partial_fit(x, y, sample_weight=weights)


@pytest.mark.parametrize("variable, value, accepted", [
    ("MLPX_BACKEND", "bogus", "auto, numpy, cupy, emulated"),
    ("MLPX_NUMBA", "garbage", "0, 1"),
])
def test_environment_variables_with_unknown_values_are_refused_by_name(monkeypatch, variable, value, accepted):
    from mlpx import backend

    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable} is '{value}'; expected one of {accepted}"):
        mlpx.MLP([4, 3, 2], seed=0) if variable == "MLPX_BACKEND" else backend.cpu_ops()


def test_environment_backend_choice_still_works(monkeypatch):
    from mlpx import backend

    monkeypatch.setenv("MLPX_BACKEND", "numpy")
    monkeypatch.setenv("MLPX_NUMBA", "0")
    assert mlpx.MLP([4, 3, 2], seed=0).backend == "numpy"
    assert type(backend.cpu_ops()).__name__ == "NumpyOps"
