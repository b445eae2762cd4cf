"""Activation functions and their derivatives, the NumPy reference.

Each activation has a forward ``f(z, out)`` and a backward ``g(dy, y, out)`` written next to each other.
The backward uses the saved *output* ``y`` rather than the input ``z`` (as Chainer does), so the forward can
overwrite its input in place and the GPU kernels can use the very same formula.
All functions write into ``out`` (which may alias an input) and allocate nothing large.
"""
from __future__ import annotations

import numpy as np

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")
ACT_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}  # as the fused kernels (CUDA, Numba) number them


# sigmoid: y = 1 / (1 + e^-z), computed as (1 + tanh(z/2)) / 2: no overflow for large |z|.
def sigmoid_forward(z, out, slope=0.0):
    np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5


# sigmoid': y (1 - y)
def sigmoid_backward(dy, y, out, slope=0.0):
    tmp = 1.0 - y
    tmp *= y
    np.multiply(dy, tmp, out=out)


# tanh: y = tanh(z)
def tanh_forward(z, out, slope=0.0):
    np.tanh(z, out=out)


# tanh': 1 - y^2
def tanh_backward(dy, y, out, slope=0.0):
    tmp = y * y
    np.subtract(1.0, tmp, out=tmp)
    np.multiply(dy, tmp, out=out)


# relu: y = max(z, 0)
def relu_forward(z, out, slope=0.0):
    np.maximum(z, 0.0, out=out)


# relu': 1 where y > 0, else 0 (0 at z = 0, as PyTorch)
def relu_backward(dy, y, out, slope=0.0):
    np.multiply(dy, y > 0, out=out)


# leaky relu: y = z if z > 0 else slope z; max(z, slope z) for 0 <= slope < 1
def leaky_relu_forward(z, out, slope=0.01):
    np.maximum(z, z * slope, out=out)


# leaky relu': 1 where y > 0 else slope (y has the sign of z when slope > 0)
def leaky_relu_backward(dy, y, out, slope=0.01):
    gain = np.where(y > 0, 1.0, slope).astype(y.dtype, copy=False)
    np.multiply(dy, gain, out=out)


# identity: y = z, derivative 1
def identity_forward(z, out, slope=0.0):
    if out is not z:
        np.copyto(out, z)


def identity_backward(dy, y, out, slope=0.0):
    if out is not dy:
        np.copyto(out, dy)


FORWARD = {
    "sigmoid": sigmoid_forward,
    "tanh": tanh_forward,
    "relu": relu_forward,
    "leaky_relu": leaky_relu_forward,
    "identity": identity_forward,
}
BACKWARD = {
    "sigmoid": sigmoid_backward,
    "tanh": tanh_backward,
    "relu": relu_backward,
    "leaky_relu": leaky_relu_backward,
    "identity": identity_backward,
}


def check_activation(name: str) -> str:
    """Return ``name`` if it is a known activation, else raise a ValueError listing the valid ones."""
    if name not in FORWARD:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return name
