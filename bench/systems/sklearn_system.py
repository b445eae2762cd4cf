"""scikit-learn's MLPClassifier: one epoch is one ``fit`` with ``max_iter=1`` and ``warm_start=True``."""
from __future__ import annotations

import warnings

from ..common import n_parameters
from .base import Setup, System


class SklearnSystem(System):
    name, label = "sklearn", "scikit-learn MLPClassifier"

    def __init__(self, setup: Setup, data):
        super().__init__(setup, data)
        from sklearn.neural_network import MLPClassifier

        if setup.optimizer["name"] != "sgd":
            raise ValueError("the scikit-learn row is timed with plain SGD only")
        self.clf = MLPClassifier(hidden_layer_sizes=tuple(setup.layers[1:-1]), activation="relu", solver="sgd",
                                 alpha=0.0, batch_size=setup.batch, learning_rate="constant",
                                 learning_rate_init=setup.lr, momentum=setup.momentum, nesterovs_momentum=False,
                                 max_iter=1, shuffle=True, random_state=0, warm_start=True, tol=0.0,
                                 n_iter_no_change=10**9, early_stopping=False)
        n = setup.samples
        self.x, self.y = data.x_train[:n], data.y_train[:n]

    def epoch(self) -> None:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.clf.fit(self.x, self.y)

    def accuracy(self, x, y) -> float:
        return float(self.clf.score(x, y))

    def n_parameters(self) -> int:
        if not hasattr(self.clf, "coefs_"):     # built lazily by the first fit
            return n_parameters(self.setup.layers)
        return sum(w.size for w in self.clf.coefs_) + sum(b.size for b in self.clf.intercepts_)

    def info(self) -> dict:
        import sklearn

        dtype = self.clf.coefs_[0].dtype.name if hasattr(self.clf, "coefs_") else self.x.dtype.name
        return {"version": sklearn.__version__,
                "notes": f"solver='sgd', momentum=0, alpha=0, max_iter=1 + warm_start per epoch; computes in "
                         f"{dtype}; each fit re-validates X and re-encodes the labels; weights (in, out) and "
                         f"Glorot-uniform init of its own"}
