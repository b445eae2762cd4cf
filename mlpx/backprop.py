"""Backprop for :class:`mlpx.MLP`: the batch buffers, the forward pass, the loss, the backward pass and the one
training step, all through the backend ops.

Notation follows the maths: layer ``l`` computes ``a[l+1] = act(a[l] @ W[l] + b[l])`` with ``W[l]`` shaped
(fan_in, fan_out); backprop carries ``delta`` = dLoss/dz backwards. The output layer has no activation of its own:
the loss op adds the bias and applies the head (softmax or identity) in the same pass.

A mixin, so that ``model.py`` keeps the configuration and the public API and this module the arithmetic of a
step: every training path (``fit``'s loop, the scikit-learn loop, ``train_step``, ``loss_and_gradients``, the step
counter) and inference's forward pass run through these methods. It builds on what the model and its
:class:`mlpx.parameters.Parameters` mixin define (``ops``, ``dtype``, ``layer_sizes``, the per-layer views ``W``,
``b``, ``dW``, ``db``, ``optimizer``, ``loss``) and imports nothing of the model, so the import graph stays acyclic.
"""
from __future__ import annotations

import numpy as np

from .losses import loss_op_name
from .policy import TrainingPolicy


class Backprop:
    """The forward and backward passes of :class:`mlpx.MLP` and its one training step."""

    def _batch_buffers(self, batch: int) -> dict:
        """Activation and delta buffers for one batch size, allocated once and reused."""
        bufs = self._buffers.get(batch)
        if bufs is None:
            ops, dt, sizes = self.ops, self.dtype, self.layer_sizes
            bufs = {
                "x": ops.empty((batch, sizes[0]), dt),
                "y": (ops.empty(batch, np.int32) if self.output == "softmax"
                      else ops.empty((batch, sizes[-1]), dt)),
                "a": [ops.empty((batch, n), dt) for n in sizes[1:]],       # a[l]: output of layer l
                "delta": [ops.empty((batch, n), dt) for n in sizes[1:]],   # dLoss/dz of layer l
            }
            self._buffers[batch] = bufs
        return bufs

    def _forward(self, x, bufs, stop: int | None = None, sparse=None) -> None:
        """a[l] = act(a[l-1] @ W[l] + b[l]) for the hidden layers, then the output layer's product z = a @ W into
        a[-1], without its bias: the head op that follows (a loss op, ``softmax``) adds the bias and applies the head.
        ``stop`` ends the pass after that many layers (feature extraction). With ``sparse`` (x's nonzero lists,
        see :meth:`_sparse_batch`) the first product runs over x's nonzeros only."""
        ops, a_prev = self.ops, x
        for layer in range(self.n_layers if stop is None else stop):
            a = bufs["a"][layer]
            if layer == 0 and sparse is not None:
                ops.sparse_forward(sparse, self.W[0], out=a)
            else:
                ops.gemm(a_prev, self.W[layer], out=a)
            if layer < self.n_layers - 1:
                ops.bias_act_forward(a, self.b[layer], self.activation, a, self.leaky_slope)
            a_prev = a

    def _loss_and_output_delta(self, y, bufs, stats, row_weights=None) -> None:
        """Output layer: add bias, apply the head, accumulate the loss, write dLoss/dz into delta[-1]; with
        ``row_weights`` (one per row, on the backend) the loss is the weighted mean (``NumpyOps.weighted_loss``)."""
        name = loss_op_name(self.loss, self.output)
        args = (bufs["a"][-1], self.b[-1], y, bufs["delta"][-1], stats)
        if row_weights is None:
            getattr(self.ops, name)(*args)
        else:
            self.ops.weighted_loss(name, *args, row_weights)

    def _backward(self, x, bufs, fold=None, sparse=None) -> None:
        """Gradients of all parameters into the flat ``grads`` buffer, from delta[-1] back to the input.

        With ``fold = (alpha, beta)`` the weights are updated in place instead, ``W <- beta W + alpha dW``, by the
        weight-gradient product itself (see ``Optimizer.folded_weight_update``); the bias gradients are still
        written. Each layer's input gradient uses W before that update. With ``sparse`` the first layer's weight
        gradient (or folded update) runs over x's nonzeros only: rows of pixels that are zero in the whole batch get
        a zero gradient (or no update, or only the weight decay's scaling).
        """
        ops = self.ops
        last = self.n_layers - 1
        ops.bias_grad(bufs["delta"][last], self.db[last])
        for layer in range(last, -1, -1):
            delta = bufs["delta"][layer]
            a_in = x if layer == 0 else bufs["a"][layer - 1]
            if layer > 0:
                d_prev = bufs["delta"][layer - 1]
                ops.gemm(delta, self.W[layer], out=d_prev, trans_b=True)         # dLoss/da_in = delta W^T
            if layer == 0 and sparse is not None:
                if fold is None:
                    if self._dw1_dirty is None:
                        self._dw1_dirty = np.ones(self.n_features, np.bool_)
                    ops.sparse_weight_grad(sparse, delta, self.dW[0], self._dw1_dirty)
                else:
                    ops.sparse_weight_update(sparse, delta, self.W[0], *fold)
            elif fold is None:
                ops.gemm(a_in, delta, out=self.dW[layer], trans_a=True)          # dW = a_in^T delta
                if layer == 0:
                    self._dw1_dirty = None                                       # every row written
            else:
                ops.gemm_accumulate(a_in, delta, self.W[layer], *fold, trans_a=True)  # W = beta W + alpha dW
            if layer > 0:
                ops.act_backward_bias_grad(d_prev, bufs["a"][layer - 1], self.activation, d_prev,
                                           self.db[layer - 1], self.leaky_slope)  # delta = . * act'(a), db

    def _train_batch(self, x_dev, y_dev, index, stats, row_weights=None, *, policy: TrainingPolicy) -> None:
        """The one training step, shared by ``fit``'s loop, the scikit-learn loop and the step counter: gather the
        rows ``index`` (backend int64 array) of the backend data set (x_dev, y_dev) into the batch buffers, then
        forward, loss, backward and the optimizer's update; [loss sum, correct] accumulate into ``stats`` (on the
        device, no host synchronization). The step's activations and deltas stay in ``_batch_buffers(len(index))``
        (the per-layer diagnostics read them there).

        ``row_weights`` (backend array, one per row of the batch) makes the step's loss the weighted mean
        sum(w_i loss_i) / sum(w) (scikit-learn's sample weights); ``stats`` then gets the weighted loss sum.
        ``policy`` is how to run the step (:func:`mlpx.policy.training_policy`, decided once by the caller: per
        ``fit``, per scikit-learn epoch, per counted run).
        """
        ops = self.ops
        bufs = self._batch_buffers(index.shape[0])
        ops.take_rows(x_dev, index, bufs["x"])
        ops.take_rows(y_dev, index, bufs["y"])
        self._step(bufs["x"], bufs["y"], bufs, stats, row_weights, policy)

    def _step(self, x, y, bufs, stats, row_weights, policy: TrainingPolicy) -> None:
        """The step of :meth:`_train_batch` on a batch (x, y) already on the backend (``train_step`` passes its
        arrays as they are, the loops the gathered ``bufs["x"]``, ``bufs["y"]``)."""
        fold = self.optimizer.folded_weight_update() if policy.fold_sgd else None
        self._gradients(x, y, bufs, stats, policy.sparse_first_layer, row_weights, fold)
        if fold is None:
            self.optimizer.step(self.ops, self.params, self.grads)
        else:  # the weights were updated inside the backward pass; the biases remain
            self.optimizer.step_ranges(self.ops, self.params, self.grads, self._bias_ranges)

    def _gradients(self, x, y, bufs, stats, use_sparse: bool, row_weights=None, fold=None) -> None:
        """Forward, loss and backward: all parameter gradients into the flat ``grads`` buffer (the weights
        updated in place instead when ``fold`` is given, see :meth:`_backward`). ``use_sparse``: the first layer
        from x's nonzeros, the training policy's ``sparse_first_layer`` (:mod:`mlpx.policy`), not decided again
        here."""
        sparse = self._sparse_batch(x, bufs) if use_sparse else None
        self._forward(x, bufs, sparse=sparse)
        self._loss_and_output_delta(y, bufs, stats, row_weights)
        self._backward(x, bufs, fold, sparse)

    def _sparse_batch(self, x, bufs):
        """x's nonzero lists for the sparse first layer (the policy chose that path: see :meth:`_gradients`)."""
        batch = bufs.get("sparse")
        if batch is None:
            batch = bufs["sparse"] = self.ops.sparse_batch(x.shape[0], self.n_features, self.dtype)
        return self.ops.sparse_index(x, batch)
