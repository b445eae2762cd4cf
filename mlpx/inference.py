"""Inference for :class:`mlpx.MLP`: features, probabilities, predictions and evaluation, batch by batch.

A mixin, so that ``backprop.py`` keeps the training path (forward, loss, backward, the one training step) and this
module the read-only uses of a network. It builds on what the model and its Backprop mixin define (``_inputs``,
``_targets``, ``_batch_buffers``, ``_forward``, ``_loss_and_output_delta``) and imports nothing of the model, so
the import graph stays acyclic. Inference always runs the dense first layer.
"""
from __future__ import annotations

import numpy as np

from . import _checks


class Inference:
    """The inference methods of :class:`mlpx.MLP` (transform, predict_proba, predict, evaluate)."""

    def _output_batches(self, x, batch_size: int, stop: int | None = None):
        """(start, buffers after the forward pass) batch by batch; ``stop`` as in ``_forward``. Checks
        ``batch_size`` now, not at the first batch (0 would fail inside ``range``, -1 yield no batch at all)."""
        batch_size = _checks.check_positive_int(batch_size, "batch_size")
        return self._output_batches_checked(x, batch_size, stop)

    def _output_batches_checked(self, x, batch_size: int, stop: int | None):
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            bufs = self._batch_buffers(xb.shape[0])
            self._forward(xb, bufs, stop=stop)
            yield start, bufs

    def transform(self, x, layer: int = -1, batch_size: int = 1024) -> np.ndarray:
        """Activations of hidden layer ``layer`` (1 = first hidden layer, -1 = last) for x, as a NumPy array:
        the learned features, e.g. the bottleneck of an autoencoder. Computed batch by batch."""
        n_hidden = self.n_layers - 1
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not (
                1 <= layer <= n_hidden or -n_hidden <= layer <= -1):
            raise ValueError(f"layer: expected a hidden layer number in 1..{n_hidden} (or -{n_hidden}..-1 from "
                             f"the end) for layer sizes {self.layer_sizes}, got {layer!r}")
        stop = int(layer) if layer > 0 else n_hidden + 1 + int(layer)
        x = self._inputs(x)
        result = np.empty((x.shape[0], self.layer_sizes[stop]), dtype=self.dtype)
        for start, bufs in self._output_batches(x, batch_size, stop=stop):
            features = bufs["a"][stop - 1]
            result[start:start + features.shape[0]] = self.ops.to_host(features)
        return result

    def predict_proba(self, x, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities (softmax head only), a NumPy array of shape (n_samples, n_classes)."""
        if self.output != "softmax":
            raise ValueError("predict_proba needs a softmax output head; this model's head is 'identity': "
                             "use predict")
        x = self._inputs(x)
        result = np.empty((x.shape[0], self.n_outputs), dtype=self.dtype)
        for start, bufs in self._output_batches(x, batch_size):
            z = bufs["a"][-1]
            probs = bufs.get("probs")
            if probs is None:  # inference's own output buffer, allocated on first use
                probs = bufs["probs"] = self.ops.empty(z.shape, self.dtype)
            self.ops.softmax(z, self.b[-1], probs)
            result[start:start + z.shape[0]] = self.ops.to_host(probs)
        return result

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        """Predicted class labels (softmax head) or outputs (identity head), as a NumPy array."""
        if self.output == "softmax":
            return self.predict_proba(x, batch_size).argmax(axis=1)
        x = self._inputs(x)
        result = np.empty((x.shape[0], self.n_outputs), dtype=self.dtype)
        for start, bufs in self._output_batches(x, batch_size):
            z = bufs["a"][-1]
            self.ops.bias_act_forward(z, self.b[-1], "identity", z)
            result[start:start + z.shape[0]] = self.ops.to_host(z)
        return result

    def evaluate(self, x, y, batch_size: int = 1024) -> dict:
        """Mean loss and accuracy (accuracy only for the softmax head) on (x, y), without updating anything."""
        if self.loss is None:
            raise RuntimeError("evaluate needs a loss: call model.compile(loss=...) first")
        x = self._inputs(x)
        y = self._targets(y, x.shape[0])
        stats = self.ops.zeros(2, np.float64)
        for start, bufs in self._output_batches(x, batch_size):
            self._loss_and_output_delta(y[start:start + bufs["x"].shape[0]], bufs, stats)
        loss_sum, correct = (float(v) for v in self.ops.to_host(stats))
        result = {"loss": loss_sum / x.shape[0]}
        if self.output == "softmax":
            result["accuracy"] = correct / x.shape[0]
        return result
