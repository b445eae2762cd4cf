"""mlpx.sklearn estimators: scikit-learn's own estimator checks, sample weights checked by finite differences and
against repeated samples, pipelines and grid search, labels of any type, partial_fit, early stopping, pickling."""
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_friedman1  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from mlpx.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

from conftest import needs_gxx  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks([MLPClassifier(backend="numpy"), MLPRegressor(backend="numpy")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _blobs(n=60, n_features=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.normal(size=(n, n_features)) + 2.0 * y[:, None]
    return x, y


def _forward_loss(theta, shapes, x, y, w, alpha):
    """Independent float64 reference: relu hidden layer, softmax, weighted mean cross-entropy, sklearn's L2."""
    params, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        params.append(theta[offset:offset + size].reshape(shape))
        offset += size
    w1, b1, w2, b2 = params
    z = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    per_sample = -log_p[np.arange(len(y)), y]
    return (w * per_sample).sum() / w.sum() + 0.5 * alpha * (theta @ theta) / w.sum()


def test_sample_weight_gradient_matches_finite_differences():
    """One plain-SGD full-batch step moves the parameters by -lr * grad of the weighted loss + L2 penalty."""
    x, y = _blobs(n=12)
    w = np.random.default_rng(1).uniform(0.0, 3.0, size=len(y))
    lr, alpha = 0.05, 0.3
    est = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0, learning_rate_init=lr, alpha=alpha,
                        batch_size=len(y), shuffle=False, dtype="float64", random_state=0, backend="numpy")
    est.partial_fit(x, y, sample_weight=w, classes=[0, 1, 2])     # a first step, to leave the initial point
    before = np.concatenate([a.ravel() for a in est.model_.get_weights()])
    est.partial_fit(x, y, sample_weight=w)
    after = np.concatenate([a.ravel() for a in est.model_.get_weights()])
    shapes = est.model_.parameter_shapes()
    eps, numeric = 1e-6, np.empty_like(before)
    for i in range(before.size):
        step = np.zeros_like(before)
        step[i] = eps
        numeric[i] = (_forward_loss(before + step, shapes, x, y, w, alpha)
                      - _forward_loss(before - step, shapes, x, y, w, alpha)) / (2 * eps)
    np.testing.assert_allclose((before - after) / lr, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("solver", ["sgd", "adam", "rmsprop"])
def test_integer_weights_equal_repeated_samples(solver):
    """Full-batch training with weights (0 included) matches training on the repeated samples; string labels."""
    x, y = _blobs(n=18)
    labels = np.array(["cat", "dog", "emu"])[y]
    w = np.random.default_rng(2).integers(0, 4, size=len(y))
    params = dict(hidden_layer_sizes=(8,), solver=solver, learning_rate_init=0.01, max_iter=40,
                  dtype="float64", random_state=3, backend="numpy")   # batch "auto": all 18 or 27 rows
    weighted = MLPClassifier(**params).fit(x, labels, sample_weight=w)
    repeated = MLPClassifier(**params).fit(np.repeat(x, w, axis=0), np.repeat(labels, w))
    np.testing.assert_allclose(weighted.predict_proba(x), repeated.predict_proba(x), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-9)
    assert list(weighted.classes_) == ["cat", "dog", "emu"]


def test_grid_search_pipeline_end_to_end():
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, train_size=600, test_size=300, random_state=0,
                                                        stratify=y)
    pipe = Pipeline([("scale", MinMaxScaler()), ("mlp", MLPClassifier(max_iter=40, random_state=0,
                                                                      backend="numpy"))])
    grid = {"mlp__hidden_layer_sizes": [(16,), (64,)], "mlp__solver": ["adam", "sgd"]}
    search = GridSearchCV(pipe, grid, cv=3).fit(x_train, y_train)
    assert set(search.cv_results_["params"][0]) == set(grid)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert search.best_score_ > 0.85
    assert search.score(x_test, y_test) > 0.85


def test_cross_val_score_regressor_pipeline():
    x, y = make_friedman1(n_samples=300, noise=0.1, random_state=0)
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", MLPRegressor(hidden_layer_sizes=(32,), batch_size=32,
                                                                       learning_rate_init=0.01, random_state=0,
                                                                       backend="numpy"))])
    scores = cross_val_score(pipe, x, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8


def test_labels_of_any_type_and_binary():
    x, y = _blobs(n=40, n_classes=2)
    for labels in (np.array([-1, 1])[y], np.array(["no", "yes"])[y], np.array([1.0, 3.0])[y]):
        est = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0,
                            backend="numpy").fit(x, labels)
        assert est.predict(x).dtype == labels.dtype
        assert est.predict_proba(x).shape == (40, 2)
        assert est.score(x, labels) > 0.9


def test_partial_fit_needs_classes_and_learns():
    x, y = _blobs(n=90)
    est = MLPClassifier(hidden_layer_sizes=(16,), batch_size=10, learning_rate_init=0.01, random_state=0,
                        backend="numpy")
    with pytest.raises(ValueError, match="classes="):
        est.partial_fit(x, y)
    est.partial_fit(x[y < 2], y[y < 2], classes=[0, 1, 2])      # a batch without class 2 is fine
    for _ in range(30):
        est.partial_fit(x, y)
    assert est.n_iter_ == 31 and len(est.loss_curve_) == 31
    assert est.loss_curve_[-1] < est.loss_curve_[1]
    assert est.score(x, y) > 0.9
    with pytest.raises(ValueError, match="not in classes_"):
        est.partial_fit(x, y + 5)


def test_early_stopping_restores_best_validation_weights():
    x, y = _blobs(n=200, seed=4)
    y = np.where(np.random.default_rng(5).random(len(y)) < 0.3, (y + 1) % 3, y)   # label noise: overfits
    est = MLPClassifier(hidden_layer_sizes=(64,), early_stopping=True, validation_fraction=0.25,
                        n_iter_no_change=5, max_iter=200, random_state=7, backend="numpy").fit(x, y)
    assert len(est.validation_scores_) == est.n_iter_ < 200
    assert est.best_validation_score_ == max(est.validation_scores_)
    _, x_val, _, y_val = train_test_split(x, y, random_state=7, test_size=0.25, stratify=y)
    assert est.score(x_val, y_val) == pytest.approx(est.best_validation_score_)


def test_regressor_multi_output_and_shapes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    targets = np.column_stack([x @ [1.0, -2.0, 0.5], np.sin(x[:, 0])])
    est = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0, backend="numpy").fit(x, targets)
    assert est.predict(x).shape == (200, 2)
    assert est.score(x, targets) > 0.9
    assert MLPRegressor(max_iter=5, backend="numpy").fit(x, targets[:, 0]).predict(x).shape == (200,)


def test_dtype_follows_input_or_parameter():
    x, y = _blobs(n=30)
    assert MLPClassifier(max_iter=2, backend="numpy").fit(x.astype(np.float32), y).model_.dtype == np.float32
    assert MLPClassifier(max_iter=2, backend="numpy").fit(x, y).model_.dtype == np.float64
    assert MLPClassifier(max_iter=2, dtype="float32", backend="numpy").fit(x, y).model_.dtype == np.float32


@pytest.mark.parametrize("params, match", [
    ({"solver": "lbfgs"}, "solver"), ({"activation": "softplus"}, "activation"),
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes"), ({"batch_size": 0}, "batch_size"),
    ({"alpha": -1.0}, "alpha"), ({"max_iter": 0}, "max_iter"), ({"dtype": "float16"}, "dtype")])
def test_bad_parameters_name_themselves(params, match):
    x, y = _blobs(n=12)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(backend="numpy", **params).fit(x, y)


def test_pickle_and_clone_keep_predictions():
    x, y = _blobs(n=30)
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0, backend="numpy").fit(x, y)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict_proba(x), est.predict_proba(x))
    restored.partial_fit(x, y)                      # still trainable, optimizer state included
    assert clone(est).get_params() == est.get_params()


def test_convergence_warning_when_max_iter_is_reached():
    x, y = _blobs(n=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning, match="max_iter=3"):
            MLPClassifier(max_iter=3, backend="numpy").fit(x, y)


@pytest.mark.parametrize("backend", [pytest.param("emulated", marks=needs_gxx),
                                     pytest.param("cupy", marks=pytest.mark.gpu)])
def test_weighted_training_matches_numpy_on_kernel_backends(backend):
    """Sample weights (row scaling, weighted loss through ops.xp) run the same on the CUDA kernels' backends."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 5))
    w = rng.integers(0, 4, size=90).astype(float)
    for cls, y in ((MLPClassifier, np.arange(90) % 3), (MLPRegressor, x[:, :2] * 2.0)):
        params = dict(hidden_layer_sizes=(7,), max_iter=20, batch_size=32, dtype="float64", random_state=0)
        reference = cls(backend="numpy", **params).fit(x, y, sample_weight=w)
        other = cls(backend=backend, **params).fit(x, y, sample_weight=w)
        assert other.model_.backend == backend
        np.testing.assert_allclose(other.loss_curve_, reference.loss_curve_, rtol=1e-10)
        predict = "predict_proba" if cls is MLPClassifier else "predict"
        np.testing.assert_allclose(getattr(other, predict)(x), getattr(reference, predict)(x), rtol=1e-9,
                                   atol=1e-12)


def test_sgd_learning_rate_schedules_as_scikit_learn():
    """The lr after 'invscaling' epochs and the 'adaptive' divide-by-5 stops agree with scikit-learn's own MLP."""
    from sklearn import neural_network

    x, y = _blobs(n=40)
    params = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=0.1, batch_size=40, random_state=0)
    for schedule, extra in (("invscaling", dict(power_t=0.5, max_iter=3)),
                            ("adaptive", dict(tol=1e9, n_iter_no_change=1, max_iter=30))):  # every epoch stalls
        ours = MLPClassifier(learning_rate=schedule, backend="numpy", **params, **extra).fit(x, y)
        theirs = neural_network.MLPClassifier(learning_rate=schedule, **params, **extra).fit(x, y)
        assert ours.n_iter_ == theirs.n_iter_
        assert ours.model_.optimizer.lr == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    assert ours.model_.optimizer.lr <= 1e-6 < 5 * ours.model_.optimizer.lr
    adam = MLPClassifier(learning_rate="invscaling", max_iter=3, backend="numpy", **{**params, "solver": "adam"})
    assert adam.fit(x, y).model_.optimizer.lr == 0.1               # schedules apply to sgd only


@pytest.mark.parametrize("solver, weighted", [("sgd", True), ("adam", False)])
def test_estimators_take_the_sparse_first_layer_on_sparse_data(solver, weighted):
    """input_sparsity='auto' measures the data as MLP.fit does: sparse X trains the first layer from its nonzeros
    (with sample weights and alpha's weight decay too), to rounding the same weights as the dense path; dense X
    stays dense."""
    pytest.importorskip("mlpx.backend.numba_ops")
    rng = np.random.default_rng(0)
    X = rng.random((300, 41))
    X[rng.random(X.shape) >= 0.15] = 0
    y = (X[:, :20].sum(axis=1) > X[:, 20:].sum(axis=1)).astype(int)
    w = rng.random(300) if weighted else None
    kw = dict(hidden_layer_sizes=(16,), solver=solver, alpha=1e-3, max_iter=3, tol=0, batch_size=32,
              dtype="float64", random_state=0, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        auto = MLPClassifier(**kw).fit(X, y, sample_weight=w)
        dense = MLPClassifier(input_sparsity="dense", **kw).fit(X, y, sample_weight=w)
        filled = MLPClassifier(**kw).fit(X + 1, y)
    assert auto.model_.input_path["path"] == "sparse", auto.model_.input_path
    assert dense.model_.input_path["path"] == "dense" and filled.model_.input_path["path"] == "dense"
    for a, b in zip(auto.model_.get_weights(), dense.model_.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver, density, shares", [("adam", 1.0, True), ("sgd", 0.15, True), ("sgd", 1.0, False)])
def test_estimators_share_blas_threads_as_fit_does(monkeypatch, solver, density, shares):
    """Each estimator epoch runs in ``ops.training_threads(policy.share_blas_threads)`` as fit does (Adam's pass
    and the sparse path's kernels then use every core; dense plain SGD does not share); the weights are bit for bit
    those of a run without sharing (MLPX_SHARED_BLAS_POOL=0)."""
    import os

    from threadpoolctl import threadpool_limits

    import mlpx

    pytest.importorskip("mlpx.backend.numba_ops")
    from mlpx.backend import blas_pool

    if os.cpu_count() < 2:
        pytest.skip("one CPU: nothing to share")
    seen = []
    train_batch = mlpx.MLP._train_batch

    def spy(self, *args, **kwargs):
        seen.append(blas_pool.sharing())
        return train_batch(self, *args, **kwargs)

    monkeypatch.setattr(mlpx.MLP, "_train_batch", spy)
    rng = np.random.default_rng(3)
    X = rng.random((256, 60))
    X[rng.random(X.shape) >= density] = 0
    y = (X[:, :30].sum(axis=1) > X[:, 30:].sum(axis=1)).astype(int)
    kw = dict(hidden_layer_sizes=(40,), solver=solver, max_iter=2, tol=0, batch_size=32, random_state=0,
              backend="numpy")
    if solver == "sgd":
        kw["momentum"] = 0.0  # plain SGD (scikit-learn's default momentum is 0.9): its update folds into the products
    runs = []
    with threadpool_limits(limits=2, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if blas_pool.unavailable_reason() is not None:
            pytest.skip(f"OpenBLAS's threads cannot be shared here: {blas_pool.unavailable_reason()}")
        for switch in ("0", "1"):
            monkeypatch.setenv(blas_pool.ENV_SWITCH, switch)
            seen.clear()
            est = MLPClassifier(**kw).fit(X, y)
            runs.append((est.model_.get_weights(), set(seen)))
    assert [s for _, s in runs] == [{False}, {shares}]
    assert not blas_pool.sharing()                                  # released after each epoch
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
