"""The two yardsticks: the BLAS floor (nothing but the products) and the from-scratch course implementation."""
from __future__ import annotations

import numpy as np

from ..course_mlp import Network
from ..floor import BlasFloor
from .base import Setup, System


class Floor(System):
    name, label = "blas-floor", "BLAS floor (products only)"

    def __init__(self, setup: Setup, data):
        super().__init__(setup, data)
        n = setup.samples
        self.floor = BlasFloor(setup.layers, setup.batch, n)

    def epoch(self) -> None:
        self.floor.epoch()

    def n_parameters(self) -> int:
        return sum(w.size + w.shape[1] for w in self.floor.W)

    def info(self) -> dict:
        return {"version": np.__version__, "notes": "the 11 matrix products per step of mlpx, float32, "
                                                    "preallocated; no activations, loss, optimizer or gathering"}


class Course(System):
    name, label = "course-numpy", "from-scratch course code (einsum, float64)"

    def __init__(self, setup: Setup, data):
        super().__init__(setup, data)
        self.net = Network(setup.layers, seed=0)
        n = setup.samples
        self.x = data.x_train[:n].astype(np.float64)   # course code converts the data to float64 once
        self.y = data.y_train[:n]
        self.rng = np.random.default_rng(0)

    def epoch(self) -> None:
        self.net.train_epoch(self.x, self.y, self.setup.batch, self.setup.lr, self.rng)

    def accuracy(self, x, y) -> float:
        return self.net.accuracy(x.astype(np.float64), y)

    def n_parameters(self) -> int:
        return sum(p.size for p in self.net.get_weights())

    def info(self) -> dict:
        return {"version": np.__version__, "notes": "per-layer objects, np.einsum products, float64, "
                                                    "one-hot targets per batch"}
