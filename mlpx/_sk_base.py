"""What mlpx's scikit-learn estimators share (:mod:`mlpx.sklearn`): hyper-parameters and their checks, the model
they build, scikit-learn's fitting rules (validation split, tolerance-based stopping, learning-rate schedules, best
validation weights) and pickling; the epoch loop itself is :func:`mlpx._sk_loop.run_epoch`.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, validate_data

from . import optim
from ._checks import check_positive_int
from ._sk_loop import run_epoch
from .model import MLP
from .serialization import model_arrays, model_from_arrays

ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "sigmoid": "sigmoid", "tanh": "tanh",
               "relu": "relu", "leaky_relu": "leaky_relu"}
SOLVERS = ("sgd", "adam", "rmsprop")
LEARNING_RATES = ("constant", "invscaling", "adaptive")


def _checked_sample_weight(sample_weight, X) -> np.ndarray:
    """scikit-learn's checks (length, NaN, inf, not all zero), then no negative weight and a positive sum: the
    epoch loop skips every batch whose weights do not sum to more than 0, so such weights trained nothing and
    reported a loss of 0.0. Checked here rather than with ``_check_sample_weight``'s non-negativity flag, whose
    name changed between the scikit-learn versions mlpx supports (``only_non_negative``, ``ensure_non_negative``).
    """
    weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
    negative = weights < 0
    if negative.any():
        raise ValueError(f"sample_weight: expected non-negative weights, got {int(negative.sum())} negative "
                         f"value(s) of {weights.size} (smallest {weights.min():g})")
    if not weights.sum() > 0:
        raise ValueError(f"sample_weight: expected weights with a positive sum, got a sum of {weights.sum():g}")
    return weights


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, validation, the model and the training loop."""

    _head = "softmax"
    _loss = "cross_entropy"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, backend=None, dtype=None, input_sparsity="auto"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.dtype = dtype
        self.input_sparsity = input_sparsity

    # ---- parameters ---------------------------------------------------------------------------------------------
    def _validate_params(self) -> None:
        """Clear errors for bad hyper-parameters, raised at fit time (scikit-learn's convention)."""
        sizes = self._hidden_sizes()
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes: expected positive integers, got {self.hidden_layer_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.learning_rate not in LEARNING_RATES:
            raise ValueError(f"learning_rate: expected one of {', '.join(LEARNING_RATES)}, got {self.learning_rate!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver: expected one of {', '.join(SOLVERS)}, got {self.solver!r}")
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, (int, np.integer))
                                              and not isinstance(self.batch_size, bool) and self.batch_size > 0)):
            raise ValueError(f"batch_size: expected 'auto' or a positive integer, got {self.batch_size!r}")
        for name in ("max_iter", "n_iter_no_change"):
            check_positive_int(getattr(self, name), name)
        checks = {"alpha": self.alpha >= 0, "learning_rate_init": self.learning_rate_init > 0, "tol": self.tol >= 0,
                  "power_t": self.power_t >= 0,
                  "momentum": 0 <= self.momentum <= 1, "validation_fraction": 0 < self.validation_fraction < 1,
                  "beta_1": 0 <= self.beta_1 < 1, "beta_2": 0 <= self.beta_2 < 1, "epsilon": self.epsilon > 0}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name}: value {getattr(self, name)!r} is out of range (see the docstring)")
        if self.dtype not in (None, "float32", "float64", np.float32, np.float64):
            raise ValueError(f"dtype: expected None, 'float32' or 'float64', got {self.dtype!r}")

    def _hidden_sizes(self) -> list:
        sizes = self.hidden_layer_sizes
        return [sizes] if isinstance(sizes, (int, np.integer)) else list(sizes)

    def _batch_size(self, n_samples: int) -> int:
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"batch_size {self.batch_size} is larger than the {n_samples} samples: using "
                          f"{n_samples}", UserWarning)
        return int(min(self.batch_size, n_samples))

    def _make_optimizer(self) -> optim.Optimizer:
        decay = 0.0  # set batch by batch from alpha by the epoch loop (mlpx._sk_loop.run_epoch)
        if self.solver == "sgd":
            return optim.SGD(lr=self.learning_rate_init, momentum=self.momentum, weight_decay=decay,
                             nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        if self.solver == "rmsprop":
            return optim.RMSProp(lr=self.learning_rate_init, eps=self.epsilon, weight_decay=decay)
        return optim.Adam(lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                          weight_decay=decay)

    # ---- fitting ------------------------------------------------------------------------------------------------
    def _build(self, n_features: int, n_outputs: int, dtype) -> None:
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        sizes = [n_features, *self._hidden_sizes(), n_outputs]
        self.model_ = MLP(sizes, activation=ACTIVATIONS[self.activation], output=self._head, seed=seed,
                          dtype=dtype, backend=self.backend, input_sparsity=self.input_sparsity)
        self.model_.compile(loss=self._loss, optimizer=self._make_optimizer())
        self.loss_curve_, self.n_iter_, self.t_ = [], 0, 0
        self.best_loss_ = np.inf
        self.validation_scores_, self.best_validation_score_ = None, None
        self._no_improvement_count = 0

    def _train_dtype(self, X) -> str:
        if self.dtype is not None:
            return np.dtype(self.dtype).name
        return "float32" if X.dtype == np.float32 else "float64"

    def _fit(self, X, y, sample_weight, incremental: bool):
        """Shared by fit and partial_fit; y is already encoded for the model (labels 0..k-1 or 2-D targets)."""
        first = not hasattr(self, "model_") or not (incremental or self.warm_start)
        if sample_weight is not None:
            sample_weight = _checked_sample_weight(sample_weight, X)
        x_train, y_train, w_train, validation = self._split_validation(X, y, sample_weight, incremental)
        batch_size = self._batch_size(x_train.shape[0])
        if first:
            self._build(X.shape[1], self._n_outputs(y), self._train_dtype(X))
        model = self.model_
        if not incremental:
            self._no_improvement_count = 0
        if validation is not None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self._best_weights = model.get_weights()
        x_dev, y_dev = model.to_backend(x_train, y_train, names=("X", "y"))
        model.choose_input_path(x_dev)  # as MLP.fit: sparse or dense first layer, from this call's data
        for _ in range(1 if incremental else self.max_iter):
            loss = run_epoch(model, x_dev, y_dev, w_train, batch_size, bool(self.shuffle), float(self.alpha))
            self.n_iter_ += 1
            self.t_ += x_dev.shape[0]
            self.loss_curve_.append(loss)
            if self._schedule() == "invscaling":
                model.optimizer.lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if incremental or self._should_stop(model, loss, validation):
                break
        else:
            warnings.warn(f"mlpx {type(self).__name__}: reached max_iter={self.max_iter} epochs without "
                          f"converging (tol={self.tol}); raise max_iter or tol", ConvergenceWarning)
        if validation is not None:
            model.set_weights(self._best_weights)
            del self._best_weights
        return self

    def _split_validation(self, X, y, sample_weight, incremental: bool):
        """(x, y, w) to train on and the held-out (x, y, w) for early stopping (None without it)."""
        if not self.early_stopping or incremental:
            return X, y, sample_weight, None
        arrays = [X, y] + ([] if sample_weight is None else [sample_weight])
        parts = train_test_split(*arrays, random_state=self.random_state, test_size=self.validation_fraction,
                                 stratify=y if self._head == "softmax" else None)
        train, held_out = parts[0::2], parts[1::2]
        if sample_weight is None:
            train, held_out = train + [None], held_out + [None]
        return (*train, tuple(held_out))

    def _should_stop(self, model, loss: float, validation) -> bool:
        """scikit-learn's rule after each epoch: stop once the training loss (or the validation score) has not
        improved by ``tol`` for more than ``n_iter_no_change`` epochs; keeps the best validation weights."""
        if validation is not None:
            score = self._validation_score(*validation)
            self.validation_scores_.append(score)
            stalled = score < self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_, self._best_weights = score, model.get_weights()
        else:
            stalled = loss > self.best_loss_ - self.tol
            self.best_loss_ = min(self.best_loss_, loss)
        self._no_improvement_count = self._no_improvement_count + 1 if stalled else 0
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        if self._schedule() != "adaptive" or model.optimizer.lr <= 1e-6:
            return True
        model.optimizer.lr /= 5.0          # 'adaptive': divide by 5 and carry on, as scikit-learn does
        self._no_improvement_count = 0
        return False

    def _schedule(self) -> str:
        return self.learning_rate if self.solver == "sgd" else "constant"

    def _validation_score(self, X, y, sample_weight) -> float:
        raise NotImplementedError

    def _n_outputs(self, y) -> int:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        """Pickle the model as plain arrays (its flat buffer and views do not survive pickling as objects)."""
        state = self.__dict__.copy()
        if "model_" in state:
            state["model_"] = {"arrays": model_arrays(self.model_), "backend": self.model_.backend}
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("model_"), dict):
            saved = state["model_"]
            state["model_"] = model_from_arrays(saved["arrays"], backend=saved["backend"], source="pickle")
        self.__dict__.update(state)

    def _check_X(self, X, reset: bool):
        return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
