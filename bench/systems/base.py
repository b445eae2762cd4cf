"""The interface every benchmarked system implements, so the worker can time them all the same way."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Setup:
    """What to build: network, batch, optimizer, BLAS/OpenMP threads, and how many training samples one timed
    "epoch" covers (fewer than the data set for slow systems and the scaling study; the worker scales times)."""

    layers: tuple
    batch: int
    optimizer: dict = field(default_factory=lambda: {"name": "sgd", "lr": 0.01})
    threads: int = 1
    samples: int = 60000

    @property
    def lr(self) -> float:
        return float(self.optimizer.get("lr", 0.01))

    @property
    def momentum(self) -> float:
        return float(self.optimizer.get("momentum", 0.0))


class System:
    """One way of training the network. ``epoch`` trains one pass over ``setup.samples`` samples and returns only
    when the work is done (GPU systems synchronize)."""

    name = "system"
    label = "system"

    def __init__(self, setup: Setup, data):
        self.setup, self.data = setup, data

    def epoch(self) -> None:
        raise NotImplementedError

    def accuracy(self, x, y) -> float:
        raise NotImplementedError(f"{self.name} does not report accuracy")

    def info(self) -> dict:
        """Versions, BLAS, and how this system differs from the common protocol."""
        return {}

    def n_parameters(self) -> int:
        raise NotImplementedError


class Unavailable(RuntimeError):
    """The system cannot run here (missing package, no GPU); the message says why."""
