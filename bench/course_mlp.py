"""A typical from-scratch MLP as MNIST courses write it: one object per layer, einsum, float64, one-hot targets.

Nothing here is deliberately slow; it is the honest shape of that code: each layer caches its input, products go
through ``np.einsum`` (no BLAS unless asked to optimise), every step allocates its temporaries and builds a one-hot
matrix, and the data is float64. It is the baseline of the "10x faster than course code" target, and a test checks
that it computes the same SGD step as mlpx in float64.
"""
from __future__ import annotations

import numpy as np


class Dense:
    """z = x W + b, W shaped (n_in, n_out)."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator):
        limit = np.sqrt(6.0 / (n_in + n_out))           # Xavier/Glorot uniform
        self.W = rng.uniform(-limit, limit, (n_in, n_out))
        self.b = np.zeros(n_out)

    def forward(self, x):
        self.x = x
        return np.einsum("bi,io->bo", x, self.W) + self.b

    def backward(self, grad):
        self.dW = np.einsum("bi,bo->io", self.x, grad)
        self.db = grad.sum(axis=0)
        return np.einsum("bo,io->bi", grad, self.W)

    def update(self, lr: float):
        self.W -= lr * self.dW
        self.b -= lr * self.db


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, grad):
        return grad * self.mask

    def update(self, lr: float):
        pass


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against one-hot targets."""

    def forward(self, logits, targets_onehot):
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        self.probs = exp / exp.sum(axis=1, keepdims=True)
        self.targets = targets_onehot
        return -np.sum(targets_onehot * np.log(self.probs + 1e-12)) / len(logits)

    def backward(self):
        return (self.probs - self.targets) / len(self.probs)


class Network:
    """Dense/ReLU stack with a softmax cross-entropy head, trained by plain SGD."""

    def __init__(self, sizes, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.layers.append(Dense(n_in, n_out, rng))
            if i < len(sizes) - 2:
                self.layers.append(ReLU())
        self.loss_fn = SoftmaxCrossEntropy()
        self.n_classes = sizes[-1]

    def dense_layers(self) -> list[Dense]:
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    def set_weights(self, weights) -> None:
        """[W1, b1, W2, b2, ...] with W shaped (in, out), as mlpx's get_weights returns them."""
        for layer, (w, b) in zip(self.dense_layers(), zip(weights[0::2], weights[1::2])):
            layer.W, layer.b = np.array(w, dtype=np.float64), np.array(b, dtype=np.float64)

    def get_weights(self) -> list[np.ndarray]:
        return [p for layer in self.dense_layers() for p in (layer.W, layer.b)]

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def train_batch(self, x, y, lr: float) -> float:
        onehot = np.eye(self.n_classes)[y]
        loss = self.loss_fn.forward(self.forward(x), onehot)
        grad = self.loss_fn.backward()
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        for layer in self.layers:
            layer.update(lr)
        return loss

    def train_epoch(self, x, y, batch_size: int, lr: float, rng: np.random.Generator) -> float:
        """One shuffled pass; returns the mean batch loss."""
        order = rng.permutation(len(x))
        losses = []
        for start in range(0, len(x), batch_size):
            index = order[start:start + batch_size]
            losses.append(self.train_batch(x[index], y[index], lr))
        return float(np.mean(losses))

    def accuracy(self, x, y) -> float:
        return float(np.mean(self.forward(x).argmax(axis=1) == y))
