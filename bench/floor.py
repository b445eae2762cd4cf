"""The BLAS floor: only the matrix products one training epoch needs, float32, into preallocated buffers.

No activation, loss, optimizer, gathering or Python beyond the loop itself: no MLP implementation that computes
the same products through the same BLAS can be faster, so ``epoch time / floor time`` is what an implementation's
everything-else costs. The products are exactly mlpx's (weights stored (in, out); backward through transposed
views): per step, for L layers, L forward products, L weight-gradient products ``a_in^T delta`` and L - 1 input
gradient products ``delta W^T`` (each layer's before its weight gradient, as in mlpx).
"""
from __future__ import annotations

import numpy as np


def step_products(layers, batch: int) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """(kind, shape of A as multiplied, shape of B as multiplied) for every product of one step, in order."""
    products = []
    for fan_in, fan_out in zip(layers[:-1], layers[1:]):
        products.append(("forward", (batch, fan_in), (fan_in, fan_out)))
    for layer in range(len(layers) - 2, -1, -1):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        if layer > 0:
            products.append(("input_grad", (batch, fan_out), (fan_out, fan_in)))
        products.append(("weight_grad", (fan_in, batch), (batch, fan_out)))
    return products


def epoch_flops(layers, n_samples: int) -> int:
    """Floating-point operations (2 per multiply-add) of one epoch's products."""
    return sum(2 * a[0] * a[1] * b[1] for _, a, b in step_products(layers, n_samples))


class BlasFloor:
    """Runs the products of one epoch of ``layers`` at ``batch`` on ``n_samples`` samples."""

    def __init__(self, layers, batch: int, n_samples: int, dtype=np.float32, seed: int = 0):
        self.layers, self.batch, self.n_samples = tuple(layers), int(batch), int(n_samples)
        rng = np.random.default_rng(seed)
        self.W = [rng.standard_normal((a, b)).astype(dtype) * np.float32(0.05)
                  for a, b in zip(layers[:-1], layers[1:])]
        self.dW = [np.empty_like(w) for w in self.W]
        sizes = {self.batch, self.n_samples % self.batch} - {0}
        self._bufs = {b: self._buffers(b, rng, dtype) for b in sizes}

    def _buffers(self, batch, rng, dtype):
        return {"x": rng.random((batch, self.layers[0]), dtype=np.float32).astype(dtype, copy=False),
                "a": [rng.standard_normal((batch, n)).astype(dtype) for n in self.layers[1:]],
                "delta": [rng.standard_normal((batch, n)).astype(dtype) for n in self.layers[1:]]}

    def step(self, batch: int) -> None:
        """The products of one training step on a batch of ``batch`` rows."""
        bufs, W, dW = self._bufs[batch], self.W, self.dW
        a_prev = bufs["x"]
        product = self.product
        for layer, w in enumerate(W):
            product("forward", a_prev, w, bufs["a"][layer])
            a_prev = bufs["a"][layer]
        for layer in range(len(W) - 1, -1, -1):
            a_in = bufs["x"] if layer == 0 else bufs["a"][layer - 1]
            if layer > 0:
                product("input_grad", bufs["delta"][layer], W[layer].T, bufs["delta"][layer - 1])
            product("weight_grad", a_in.T, bufs["delta"][layer], dW[layer])

    @staticmethod
    def product(kind: str, a, b, out) -> None:
        """out = a @ b (``kind`` names the product for profilers that override this)."""
        np.matmul(a, b, out=out)

    def epoch(self) -> None:
        full, rest = divmod(self.n_samples, self.batch)
        for _ in range(full):
            self.step(self.batch)
        if rest:
            self.step(rest)
