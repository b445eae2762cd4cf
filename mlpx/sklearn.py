"""scikit-learn estimators over mlpx: ``MLPClassifier`` and ``MLPRegressor``.

They follow scikit-learn's API and its ``MLPClassifier`` parameter names where the meaning is the same, pass
``sklearn.utils.estimator_checks`` (no check is declared as an expected failure) and work in ``Pipeline``,
``GridSearchCV`` and ``cross_val_score``. Differences from scikit-learn's own MLP, on purpose:

- ``solver``: 'sgd', 'adam' or 'rmsprop' (mlpx's optimizers, update rules as ``torch.optim``); no 'lbfgs'.
- ``alpha`` (L2 penalty, scikit-learn's meaning: ``0.5 * alpha * ||W||^2`` added to each batch's summed loss) is
  applied as the optimizer's ``weight_decay = alpha / batch_size``, the same gradient per batch; unlike
  scikit-learn, biases decay too. ``loss_curve_`` holds the data loss only (no penalty term).
- The classifier uses a softmax head with cross-entropy for any number of classes (two outputs for a binary
  problem, not one logistic unit); the regressor an identity head with mlpx's MSE (per-sample sum of squared
  errors over the outputs, averaged over samples: twice scikit-learn's per-output mean for one output).
- ``dtype``: None trains in float32 when X is float32 and in float64 otherwise (as scikit-learn's MLP does);
  'float32' or 'float64' force one. ``backend``: 'numpy', 'cupy', 'auto' or None (mlpx's default).
  ``input_sparsity``: 'auto' (default), 'sparse' or 'dense', as ``mlpx.MLP``'s: with 'auto' each ``fit`` (and each
  ``partial_fit`` call) measures the density of the data it trains on and computes the first layer from the
  nonzero inputs at or below the crossover (MNIST pixels: 19% nonzero); ``model_.input_path`` says which ran.
- ``learning_rate`` schedules ('constant', 'invscaling', 'adaptive') apply to solver='sgd' only, as in
  scikit-learn; no multilabel classification.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ._sk_base import _BaseMLP


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multilayer perceptron classifier (softmax output, cross-entropy loss) trained by mlpx.

    Labels may be of any type scikit-learn accepts (ints, strings, ...): ``classes_`` holds them, sorted.
    Attributes after fit: ``classes_``, ``loss_curve_`` (mean training loss per epoch), ``n_iter_`` (epochs run),
    ``best_loss_``, ``validation_scores_`` and ``best_validation_score_`` (early stopping: accuracy on the held-out
    ``validation_fraction``, best weights restored), ``model_`` (the underlying :class:`mlpx.MLP`),
    ``n_features_in_``. See the module docstring for how the parameters map onto mlpx.
    """

    def fit(self, X, y, sample_weight=None):
        """Train for up to ``max_iter`` epochs, stopping when the loss (or validation accuracy) stalls."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], reset=True)
        check_classification_targets(y)
        if not (self.warm_start and hasattr(self, "model_")):
            self.classes_ = np.unique(y)
        return self._fit(X, self._encode(y), sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); ``classes`` (all labels that will ever appear) is required on the first call."""
        self._validate_params()
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], reset=first)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("partial_fit: pass classes= (every label that can appear) on the first call")
            self.classes_ = np.unique(np.asarray(classes))
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(f"partial_fit: classes={classes!r} differ from the first call's {self.classes_!r}")
        return self._fit(X, self._encode(y), sample_weight, incremental=True)

    def _encode(self, y) -> np.ndarray:
        if type_of_target(y) == "multilabel-indicator":
            raise ValueError("MLPClassifier: multilabel targets are not supported; pass 1-D class labels")
        y = np.asarray(y).reshape(-1) if np.ndim(y) == 2 else np.asarray(y)
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise ValueError(f"y contains labels not in classes_ {self.classes_!r}: {np.unique(y[unknown])!r}")
        return index.astype(np.int64)

    def _n_outputs(self, y) -> int:
        return len(self.classes_)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self)
        return self.model_.predict_proba(self._check_X(X, reset=False))

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class label for each row of X."""
        best = self.predict_proba(X).argmax(axis=1)
        return self.classes_[best]

    def _validation_score(self, X, y, sample_weight) -> float:
        return accuracy_score(y, self.model_.predict_proba(X).argmax(axis=1), sample_weight=sample_weight)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multilayer perceptron regressor (identity output, MSE loss) trained by mlpx; targets of any width.

    Attributes as :class:`MLPClassifier` (``validation_scores_`` hold R^2); ``predict`` returns a 1-D array when
    ``y`` was 1-D at fit time, else (n_samples, n_outputs).
    """

    _head = "identity"
    _loss = "mse"

    def fit(self, X, y, sample_weight=None):
        """Train for up to ``max_iter`` epochs, stopping when the loss (or validation R^2) stalls."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], multi_output=True, y_numeric=True,
                             reset=True)
        self._y_1d = y.ndim == 1
        return self._fit(X, self._targets(y), sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y); the first call builds the model."""
        self._validate_params()
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], multi_output=True, y_numeric=True,
                             reset=first)
        if first:
            self._y_1d = y.ndim == 1
        return self._fit(X, self._targets(y), sample_weight, incremental=True)

    @staticmethod
    def _targets(y) -> np.ndarray:
        return np.asarray(y, dtype=np.float64).reshape(len(y), -1)

    def _n_outputs(self, y) -> int:
        return y.shape[1]

    def predict(self, X) -> np.ndarray:
        """Predicted targets."""
        check_is_fitted(self)
        out = self.model_.predict(self._check_X(X, reset=False))
        return out.ravel() if self._y_1d else out

    def _validation_score(self, X, y, sample_weight) -> float:
        return r2_score(y, self.model_.predict(X), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
