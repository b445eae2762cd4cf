"""The epoch loop behind the scikit-learn estimators: shuffled mini-batches with optional sample weights.

``MLP.fit`` has no sample weights and no tolerance-based stopping, so the estimators drive the model one epoch at
a time through this loop and apply scikit-learn's stopping rules themselves (``mlpx.sklearn``).

Sample weights go to the loss op as row weights (``MLP._train_batch(..., row_weights=w)``): the batch's loss is
then the weighted mean sum(w_i l_i) / sum(w_B) (scikit-learn's definition), its gradient scales row i by
w_i * B / sum(w_B), and the loss accumulator gets sum(w_i l_i). Integer weights therefore match repeating samples
when the batch holds all the data.
"""
from __future__ import annotations

import numpy as np

from .policy import training_policy


def run_epoch(model, x_dev, y_dev, weights, batch_size: int, shuffle: bool, alpha: float) -> float:
    """One pass over (x, y) in mini-batches; returns the epoch's mean training loss (weighted when ``weights``,
    a host array, is given), each batch's loss taken before its update. x and y are already on the backend
    (``MLP.to_backend``).

    ``alpha`` is scikit-learn's L2 penalty ``0.5 * alpha * ||W||^2 / sum(batch weights)``: it becomes the
    optimizer's weight decay ``alpha / sum(batch weights)`` (``alpha / batch length`` without weights), batch by
    batch as scikit-learn divides it. A batch whose weights are all zero is skipped.
    """
    ops = model.ops
    n = x_dev.shape[0]
    order = model.shuffle_rng.permutation(n) if shuffle else np.arange(n)
    order_dev = ops.asarray(order.astype(np.int64))
    w_dev = None if weights is None else ops.asarray(weights, dtype=model.dtype)
    stats = ops.zeros(2, np.float64)          # [sum of (weighted) per-sample losses, correct], from the loss op
    policy = training_policy(model)           # how every step of this epoch runs (weight decay does not change it)
    with ops.training_threads(policy.share_blas_threads):  # as in fit: OpenBLAS's threads shared where it pays
        for start in range(0, n, batch_size):
            index = order_dev[start:start + batch_size]
            batch_weight = (index.shape[0] if weights is None
                            else float(weights[order[start:start + batch_size]].sum()))
            if batch_weight <= 0:
                continue
            model.optimizer.weight_decay = alpha / batch_weight
            model._train_batch(x_dev, y_dev, index, stats, row_weights=None if w_dev is None else w_dev[index],
                               policy=policy)
    total = n if weights is None else max(float(weights.sum()), np.finfo(np.float64).tiny)
    return float(ops.to_host(stats)[0]) / total
