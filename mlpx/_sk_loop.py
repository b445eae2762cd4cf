"""The epoch loop behind the scikit-learn estimators: shuffled mini-batches with optional sample weights.

``MLP.fit`` has no sample weights and no tolerance-based stopping, so the estimators drive the model one epoch at
a time through this loop and apply scikit-learn's stopping rules themselves (``mlpx.sklearn``).

Sample weights enter as a per-row factor on the output delta: row i of a batch B is scaled by w_i * B / sum(w_B),
which turns the gradient of the batch's mean loss into the gradient of its weighted mean sum(w_i l_i) / sum(w_B)
(scikit-learn's definition). Integer weights therefore match repeating samples when the batch holds all the data.
"""
from __future__ import annotations

import numpy as np


def run_epoch(model, x_dev, y_dev, weights, batch_size: int, shuffle: bool, alpha: float) -> float:
    """One pass over (x, y) in mini-batches; returns the epoch's mean training loss (weighted when ``weights``,
    a host array, is given), each batch's loss taken before its update. x and y are already on the backend.

    ``alpha`` is scikit-learn's L2 penalty ``0.5 * alpha * ||W||^2 / sum(batch weights)``: it becomes the
    optimizer's weight decay ``alpha / sum(batch weights)`` (``alpha / batch length`` without weights), batch by
    batch as scikit-learn divides it. A batch whose weights are all zero is skipped.
    """
    ops = model.ops
    n = x_dev.shape[0]
    order = model.shuffle_rng.permutation(n) if shuffle else np.arange(n)
    order_dev = ops.asarray(order.astype(np.int64))
    w_dev = None if weights is None else ops.asarray(weights, dtype=model.dtype)
    stats = ops.zeros(2, np.float64)          # [sum of per-sample losses, correct] (unweighted, from the loss op)
    weighted_sum = ops.zeros(1, np.float64)   # sum of w_i * loss_i, only used with sample weights
    for start in range(0, n, batch_size):
        index = order_dev[start:start + batch_size]
        batch = index.shape[0]
        batch_weight = batch if weights is None else float(weights[order[start:start + batch_size]].sum())
        if batch_weight <= 0:
            continue
        model.optimizer.weight_decay = alpha / batch_weight
        bufs = model._batch_buffers(batch)
        ops.take_rows(x_dev, index, bufs["x"])
        ops.take_rows(y_dev, index, bufs["y"])
        if w_dev is None:
            model._step(bufs["x"], bufs["y"], bufs, stats)
            continue
        w = w_dev[index]
        model._step(bufs["x"], bufs["y"], bufs, stats, row_scale=w * (batch / batch_weight))
        # The loss op added the output bias into a[-1] in place: it holds the batch's logits / outputs.
        weighted_sum += (w * per_sample_loss(ops.xp, bufs["a"][-1], bufs["y"], model.loss)).sum()
    if weights is None:
        return float(ops.to_host(stats)[0]) / n
    return float(ops.to_host(weighted_sum)[0]) / max(float(weights.sum()), np.finfo(np.float64).tiny)


def per_sample_loss(xp, outputs, targets, loss: str):
    """Loss of each row: cross-entropy from logits and integer labels, or the summed squared error (mse)."""
    if loss == "cross_entropy":
        row_max = outputs.max(axis=1)
        log_norm = xp.log(xp.exp(outputs - row_max[:, None]).sum(axis=1)) + row_max
        return log_norm - outputs[xp.arange(outputs.shape[0]), targets]
    diff = outputs - targets
    return (diff * diff).sum(axis=1)
