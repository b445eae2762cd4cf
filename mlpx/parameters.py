"""Parameter storage for :class:`mlpx.MLP`: one flat buffer for all weights and biases, one for their gradients,
per-layer views into both, and what keeps them together (pickling, loading weights, moving to another backend).

A mixin, so that ``backprop.py`` keeps the forward and backward passes and this module the layout they run on: every
optimizer makes one pass over ``params`` (one kernel launch on the GPU), and ``W[l]``, ``b[l]``, ``dW[l]``,
``db[l]`` are views, never copies. It builds on the model's ``layer_sizes``, ``dtype`` and ``ops`` (``to`` also on
its ``optimizer`` and ``choose_input_path``) and imports nothing of the model, so the import graph stays acyclic.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _checks
from .backend import get_ops


def parameter_shapes(layer_sizes) -> list[tuple[int, ...]]:
    """Shapes of [W1, b1, W2, b2, ...] for a network of ``layer_sizes`` (inputs, hidden ..., outputs)."""
    shapes = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        shapes += [(fan_in, fan_out), (fan_out,)]
    return shapes


def weight_names(n_layers: int) -> list[str]:
    """The names of [W1, b1, W2, b2, ...]: the entries of a model file, the words of error messages."""
    return [f"{kind}{layer}" for layer in range(1, n_layers + 1) for kind in "Wb"]


class Parameters:
    """The flat parameter and gradient buffers of :class:`mlpx.MLP` and their per-layer views."""

    def to(self, backend) -> "MLP":
        """Move the model (weights, optimizer state) to another backend, in place; returns the model.

        ``model.to("cupy")`` / ``model.to("numpy")``. Arrays given to a model follow one rule: NumPy arrays are
        copied to the model's device (once per call; ``fit`` uploads the data set once), while GPU arrays given to
        a NumPy model are refused with a message; saved files hold NumPy arrays and load on any backend.
        """
        ops = get_ops(backend)
        if ops is self.ops:
            return self
        weights = self.get_weights()
        state = self.optimizer.state_dict(self.ops) if self.optimizer is not None else None
        self.ops = ops
        self._allocate_parameters()
        self.set_weights(weights)
        if self.input_sparsity != "auto" or not ops.sparse_input:
            self.choose_input_path(None)  # (auto on a sparse-capable backend: the next fit decides)
        if state is not None:
            self.optimizer.load_state_dict(ops, state, self.dtype, self.params.size)
        return self

    def parameter_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of [W1, b1, W2, b2, ...]."""
        return parameter_shapes(self.layer_sizes)

    def _allocate_parameters(self) -> None:
        """One flat buffer for all parameters and one for their gradients, with per-layer views into both."""
        total = sum(int(np.prod(s)) for s in self.parameter_shapes())
        self.params = self.ops.zeros(total, self.dtype)
        self.grads = self.ops.zeros(total, self.dtype)
        self._make_views()

    def _make_views(self) -> None:
        """The per-layer views into the flat buffers (``W``, ``b``, ``dW``, ``db``) and the batch buffer cache."""
        self._param_views, self._grad_views = [], []
        self._bias_ranges = []  # (start, stop) of each bias in the flat buffers
        offset = 0
        for shape in self.parameter_shapes():
            size = int(np.prod(shape))
            if len(shape) == 1:
                self._bias_ranges.append((offset, offset + size))
            self._param_views.append(self.params[offset:offset + size].reshape(shape))
            self._grad_views.append(self.grads[offset:offset + size].reshape(shape))
            offset += size
        self.W, self.b = self._param_views[0::2], self._param_views[1::2]
        self.dW, self.db = self._grad_views[0::2], self._grad_views[1::2]
        self._buffers: dict[int, dict] = {}
        self._dw1_dirty = None  # sparse path: rows of dW[0] that may be nonzero (None: all of them)

    def __getstate__(self) -> dict:
        """Pickle and deepcopy keep the flat buffers and rebuild the views: copied views would come apart from
        the buffers (training would update one and read the other)."""
        views = ("_param_views", "_grad_views", "_bias_ranges", "W", "b", "dW", "db", "_buffers", "_dw1_dirty")
        return {key: value for key, value in self.__dict__.items() if key not in views}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_views()

    def get_weights(self) -> list[np.ndarray]:
        """[W1, b1, W2, b2, ...] as NumPy arrays (copies), W shaped (in, out)."""
        return [self.ops.to_host(v).copy() for v in self._param_views]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load [W1, b1, W2, b2, ...] (shapes as :meth:`get_weights` returns them) into the model."""
        shapes = self.parameter_shapes()
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights: weights must be a list of {len(shapes)} arrays [W1, b1, ...] (as "
                            f"get_weights returns), got {type(weights).__name__}")
        if len(weights) != len(shapes):
            raise ValueError(f"set_weights: expected {len(shapes)} arrays [W1, b1, ...], got {len(weights)}")
        arrays = []
        for entry, array, shape in zip(weight_names(len(shapes) // 2), weights, shapes):  # all checked, then written
            array = array.get() if hasattr(array, "__cuda_array_interface__") else np.asarray(array)  # CuPy ok
            name = f"set_weights: {entry}"
            if array.shape != shape:
                raise ValueError(f"{name} expected shape {shape}, got {array.shape}")
            if array.dtype.kind not in "fiub":
                raise TypeError(f"{name}: expected real numbers, got dtype {array.dtype}")
            if array.dtype.kind == "f":
                _checks.check_finite(array, name, self.dtype)  # NaN, inf, and 1e40 that would be inf in float32
            arrays.append(array)
        for view, array in zip(self._param_views, arrays):
            view[...] = self.ops.asarray(array, dtype=self.dtype)
