"""Weight initializers. Weights are drawn on the host with a seeded NumPy generator, then moved to the backend, so
the same seed gives the same weights on every backend. Weights are shaped (fan_in, fan_out).

Biases start at zero, except where the framework an initializer is named after draws them too (``torch_default``,
as ``torch.nn.Linear``): such an initializer has an entry in ``BIAS_INITIALIZERS``, drawn from the same generator
right after its layer's weights (PyTorch's order), so adding it left every other initializer's draws unchanged.
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


def lecun_uniform(rng, fan_in, fan_out):
    """LeCun uniform (Keras ``lecun_uniform``, JAX ``jax.nn.initializers.lecun_uniform``): U(-a, a),
    a = sqrt(3 / fan_in), variance 1 / fan_in; suits selu and tanh. Biases zero, as in Keras and Flax."""
    limit = np.sqrt(3.0 / fan_in)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


_TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]; the constant Keras and JAX divide by


def lecun_normal(rng, fan_in, fan_out):
    """LeCun normal as Keras (``lecun_normal``) and JAX/Flax define it (``jax.nn.initializers.lecun_normal``,
    the default kernel init of ``flax.linen.Dense``): a normal truncated at two standard deviations, scaled so
    that the variance is exactly 1 / fan_in (draws lie within +-2 sqrt(1 / fan_in) / 0.8796). Biases zero.
    Truncated, unlike this module's ``he_normal`` and ``xavier_normal``, because that is what the name means
    in the frameworks a result would be compared with; draws outside the cut are redrawn."""
    z = rng.standard_normal((fan_in, fan_out))
    outside = np.abs(z) > 2.0
    while outside.any():
        z[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(z) > 2.0
    return z * (np.sqrt(1.0 / fan_in) / _TRUNCATED_STD)


def torch_default(rng, fan_in, fan_out):
    """PyTorch's default for ``torch.nn.Linear``: ``kaiming_uniform_(a=sqrt(5))``, i.e. U(-a, a) with
    a = gain sqrt(3 / fan_in), gain = sqrt(2 / (1 + 5)), so a = 1 / sqrt(fan_in) (variance 1 / (3 fan_in)).
    The biases are drawn too, see :func:`torch_default_bias`: use this to reproduce a PyTorch setup."""
    limit = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def torch_default_bias(rng, fan_in, fan_out):
    """``torch.nn.Linear``'s bias: U(-1 / sqrt(fan_in), 1 / sqrt(fan_in)), fan_in being the layer's inputs."""
    limit = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-limit, limit, size=fan_out)


INITIALIZERS: dict[str, Callable] = {
    f.__name__: f for f in (zeros, small_random, normal, xavier_uniform, xavier_normal, he_normal, he_uniform,
                            lecun_uniform, lecun_normal, torch_default)
}
# Initializers whose biases are not zero: name -> f(rng, fan_in, fan_out) returning the (fan_out,) bias.
BIAS_INITIALIZERS: dict[str, Callable] = {"torch_default": torch_default_bias}


def check_initializer(name: str) -> str:
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; expected one of {', '.join(INITIALIZERS)}")
    return name


def initial_weights(name: str, layer_sizes, seed, dtype) -> list[np.ndarray]:
    """[W1, b1, W2, b2, ...] as host arrays of ``dtype`` for the given layer sizes."""
    init = INITIALIZERS[check_initializer(name)]
    bias_init = BIAS_INITIALIZERS.get(name)
    rng = np.random.default_rng(seed)
    arrays = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        arrays.append(init(rng, fan_in, fan_out).astype(dtype))
        bias = np.zeros(fan_out) if bias_init is None else bias_init(rng, fan_in, fan_out)
        arrays.append(bias.astype(dtype))
    return arrays
