"""Weight initializers. Weights are drawn on the host with a seeded NumPy generator, then moved to the backend, so
the same seed gives the same weights on every backend. Biases start at zero. Weights are shaped (fan_in, fan_out).
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def zeros(rng, fan_in, fan_out):
    """All zeros: every hidden unit stays identical (the symmetry problem the init studies show)."""
    return np.zeros((fan_in, fan_out))


def small_random(rng, fan_in, fan_out):
    """Uniform in [-0.01, 0.01): the 'small random' initialization of course notebooks."""
    return rng.uniform(-0.01, 0.01, size=(fan_in, fan_out))


def normal(rng, fan_in, fan_out):
    """Standard normal N(0, 1), unscaled (torch.nn.init.normal_'s default): too large for wide layers."""
    return rng.standard_normal((fan_in, fan_out))


def xavier_uniform(rng, fan_in, fan_out):
    """Glorot uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); suits tanh and sigmoid."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def xavier_normal(rng, fan_in, fan_out):
    """Glorot normal: N(0, 2 / (fan_in + fan_out))."""
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / (fan_in + fan_out))


def he_normal(rng, fan_in, fan_out):
    """He (Kaiming) normal: N(0, 2 / fan_in); suits relu."""
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)


def he_uniform(rng, fan_in, fan_out):
    """He (Kaiming) uniform: U(-a, a), a = sqrt(6 / fan_in)."""
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


INITIALIZERS: dict[str, Callable] = {
    f.__name__: f for f in (zeros, small_random, normal, xavier_uniform, xavier_normal, he_normal, he_uniform)
}


def check_initializer(name: str) -> str:
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; expected one of {', '.join(INITIALIZERS)}")
    return name


def initial_weights(name: str, layer_sizes, seed, dtype) -> list[np.ndarray]:
    """[W1, b1, W2, b2, ...] as host arrays of ``dtype`` for the given layer sizes."""
    init = INITIALIZERS[check_initializer(name)]
    rng = np.random.default_rng(seed)
    arrays = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        arrays.append(init(rng, fan_in, fan_out).astype(dtype))
        arrays.append(np.zeros(fan_out, dtype=dtype))
    return arrays
