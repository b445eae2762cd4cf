"""The multilayer perceptron: its configuration, its inputs' checks and its public training API.

``MLP`` is assembled from three mixins: :class:`mlpx.backprop.Backprop` (the forward pass, the loss, the backward
pass, the one training step), :class:`mlpx.parameters.Parameters` (the flat parameter and gradient buffers with
their per-layer views, get/set_weights, pickling, ``to``) and :class:`mlpx.inference.Inference` (transform,
predict_proba, predict, evaluate). This module keeps what a user calls to build and train a network: the
constructor and its checks, ``compile``, ``fit``, ``train_step``, ``loss_and_gradients``, ``save``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _checks
from .activations import check_activation
from .backprop import Backprop
from .backend import get_ops
from .inference import Inference
from .initializers import initial_weights
from .losses import check_loss_for_head
from .optim import Optimizer, make_optimizer
from .parameters import Parameters
from .policy import decide_input_path, sparse_first_layer, training_policy

HEADS = ("softmax", "identity")
DTYPES = ("float32", "float64")
INPUT_SPARSITY = ("auto", "sparse", "dense")


def check_input_sparsity(value) -> str:
    """``value`` if it is one of INPUT_SPARSITY (see ``MLP``), else a ValueError naming them."""
    if value not in INPUT_SPARSITY:
        raise ValueError(f"input_sparsity: expected one of {', '.join(INPUT_SPARSITY)}, got {value!r}")
    return value


class MLP(Backprop, Inference, Parameters):
    """A fully connected network, e.g. ``MLP([784, 500, 250, 100, 10], activation="relu")``.

    Parameters
    ----------
    layer_sizes: input size, hidden sizes, output size.
    activation: hidden activation: sigmoid, tanh, relu, leaky_relu (negative slope ``leaky_slope``) or identity.
    output: ``"softmax"`` (class labels) or ``"identity"`` (real-valued targets).
    init: weight initializer (see ``mlpx.initializers.INITIALIZERS``); biases start at zero, except with
        ``"torch_default"`` (PyTorch's ``nn.Linear`` draws them too).
    seed: seeds the weights and the shuffling (a non-negative int, or None for fresh entropy); the same seed gives
        the same run on the CPU.
    dtype: ``"float32"`` (default) or ``"float64"``.
    backend: ``"auto"``, ``"numpy"`` or ``"cupy"``; None uses ``mlpx.set_backend`` / ``MLPX_BACKEND`` / auto.
    input_sparsity: how training computes the first layer: ``"sparse"`` from each batch's nonzero inputs only
        (forward, weight gradient and plain SGD's folded update; mlpx.backend.sparse_input), ``"dense"`` with the
        full BLAS products, or ``"auto"`` (default): ``fit`` measures the training data's density (fraction of
        nonzero entries) once and takes the sparse path at or below
        ``mlpx.backend.sparse_input.CROSSOVER_DENSITY`` (MNIST, 19% nonzero: sparse; standardized or other dense
        data: dense). Only the Numba CPU backend has the sparse kernels; the NumPy reference (``MLPX_NUMBA=0``)
        and the GPU backends always train dense. Inference (predict, evaluate, transform) is always dense.
        ``model.input_path`` says which path the last training ran and why.
    leaky_slope: leaky_relu's slope for negative inputs, 0 <= leaky_slope < 1 (default 0.01). ``alpha=`` is its
        older name, still accepted (model files saved with ``"alpha"`` in their config load unchanged).
    """

    def __init__(self, layer_sizes: Sequence[int], activation: str = "relu", output: str = "softmax",
                 init: str = "xavier_uniform", leaky_slope: float = 0.01, seed: int | None = None,
                 dtype: str = "float32", backend: str | None = None, input_sparsity: str = "auto", *,
                 alpha: float | None = None):
        sizes = list(layer_sizes) if isinstance(layer_sizes, (list, tuple)) else None
        if not sizes or len(sizes) < 2:
            raise ValueError(f"layer_sizes: expected a list of at least 2 sizes (inputs ... outputs), "
                             f"got {layer_sizes!r}")
        for size in sizes:
            _checks.check_positive_int(size, f"layer_sizes entry (in {sizes})")
        if output not in HEADS:
            raise ValueError(f"unknown output head {output!r}; expected one of {', '.join(HEADS)}")
        if np.dtype(dtype).name not in DTYPES:
            raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
        check_input_sparsity(input_sparsity)
        name = "leaky_slope"
        if alpha is not None:  # the older name of leaky_slope
            if leaky_slope != 0.01 and leaky_slope != alpha:
                raise ValueError(f"leaky_slope={leaky_slope!r} and alpha={alpha!r}: alpha is the older name of "
                                 f"leaky_slope; give one of them")
            name, leaky_slope = "alpha", alpha
        if not 0 <= leaky_slope < 1:
            raise ValueError(f"{name} (leaky relu slope): expected 0 <= {name} < 1, got {leaky_slope!r}")
        self.layer_sizes = [int(s) for s in sizes]
        self.activation = check_activation(activation)
        self.output = output
        self.init = init
        self.leaky_slope = float(leaky_slope)
        self.seed = seed = _checks.check_seed(seed)
        self.dtype = np.dtype(dtype)
        self.ops = get_ops(backend)
        self.input_sparsity = input_sparsity
        self.choose_input_path(None)  # auto: dense until fit decides from the training data
        self.loss: str | None = None
        self.optimizer: Optimizer | None = None
        self.shuffle_rng = np.random.default_rng(None if seed is None else [seed, 1])
        self._allocate_parameters()
        self.set_weights(initial_weights(init, self.layer_sizes, seed, self.dtype))

    # ---- properties ---------------------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self.ops.name

    @property
    def alpha(self) -> float:
        """The older name of :attr:`leaky_slope`."""
        return self.leaky_slope

    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.layer_sizes[-1]

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes) - 1

    # ---- configuration ------------------------------------------------------------------------------------------
    def compile(self, loss: str = "cross_entropy", optimizer="sgd") -> "MLP":
        """Choose the loss ('cross_entropy' or 'mse') and the optimizer (an instance or a name)."""
        self.loss = check_loss_for_head(loss, self.output)
        self.optimizer = make_optimizer(optimizer)
        return self

    def _require_compiled(self) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError("the model is not compiled: call model.compile(loss=..., optimizer=...) first")

    def get_config(self) -> dict:
        """Everything needed to rebuild this model (weights aside)."""
        return {"layer_sizes": self.layer_sizes, "activation": self.activation, "output": self.output,
                "init": self.init, "leaky_slope": self.leaky_slope, "seed": self.seed, "dtype": self.dtype.name,
                "input_sparsity": self.input_sparsity, "loss": self.loss}

    def __repr__(self) -> str:
        return (f"MLP({self.layer_sizes}, activation={self.activation!r}, output={self.output!r}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r})")

    # ---- data in ------------------------------------------------------------------------------------------------
    def to_backend(self, x, y=None, names: tuple[str, str] = ("x", "y")):
        """x (and y) checked and put on the model's backend in its dtype (labels as int32), once: what ``fit``
        does with its data set before the first batch, for loops that drive :meth:`_train_batch` themselves (the
        scikit-learn estimators, the step counter). ``names`` name the arguments in the errors. Returns x on the
        backend, or (x, y) when y is given."""
        x_dev = self._inputs(x, names[0])
        if y is None:
            return x_dev
        return x_dev, self._targets(y, x_dev.shape[0], names[1])

    def _inputs(self, x, what: str = "x"):
        """Validate x and put it on the backend in the model's dtype (no copy when it already is)."""
        self._check_array_kind(x, what)
        _checks.check_features(x, self.n_features, what, self.dtype)
        return self.ops.asarray(x, dtype=self.dtype)

    def _targets(self, y, n_samples: int, what: str = "y"):
        self._check_array_kind(y, what)
        if self.output == "softmax":
            y = _checks.check_labels(y, n_samples, self.n_outputs, what)
            return self.ops.asarray(y, dtype=np.int32)
        y = _checks.check_targets(y, n_samples, self.n_outputs, what, self.dtype)
        return self.ops.asarray(y, dtype=self.dtype)

    def _check_array_kind(self, array, what: str) -> None:
        if hasattr(array, "__cuda_array_interface__") and self.backend != "cupy":
            raise TypeError(f"{what}: got a GPU (CuPy) array for a model on the {self.backend} backend; pass a NumPy "
                            f"array (cupy.asnumpy(x)) or move the model with model.to('cupy')")

    def choose_input_path(self, x) -> dict:
        """Decide, from ``input_sparsity``, the backend and (for "auto") the density of the training inputs ``x``,
        whether training computes the first layer from the inputs' nonzeros; stored in ``self.input_path``
        ({"path": "sparse" or "dense", "reason": ..., "density": fraction of nonzero entries or None}) and
        returned. ``fit`` calls it once at its start with the training data (``x`` is only read for "auto")."""
        self.input_path = decide_input_path(self.input_sparsity, self.ops, x)
        return self.input_path

    def loss_and_gradients(self, x, y) -> tuple[float, list[np.ndarray]]:
        """Mean loss on (x, y) and its gradients for [W1, b1, W2, b2, ...] as NumPy arrays; nothing is updated.

        For gradient checks and research; training uses the same forward and backward code.
        """
        if self.loss is None:
            raise RuntimeError("loss_and_gradients needs a loss: call model.compile(loss=...) first")
        x = self._inputs(x)
        y = self._targets(y, x.shape[0])
        bufs = self._batch_buffers(x.shape[0])
        stats = self.ops.zeros(2, np.float64)
        self._gradients(x, y, bufs, stats, sparse_first_layer(self))
        return float(self.ops.to_host(stats)[0]) / x.shape[0], [self.ops.to_host(g).copy() for g in self._grad_views]

    def train_step(self, x_batch, y_batch) -> float:
        """One update on one batch; returns the batch's mean loss before the update."""
        self._require_compiled()
        x = self._inputs(x_batch, "x_batch")
        y = self._targets(y_batch, x.shape[0], "y_batch")
        stats = self.ops.zeros(2, np.float64)
        self._step(x, y, self._batch_buffers(x.shape[0]), stats, None, training_policy(self))
        return float(self.ops.to_host(stats)[0]) / x.shape[0]

    # ---- training loop ------------------------------------------------------------------------------------------
    def fit(self, x, y, epochs: int = 1, batch_size: int = 64, validation_data=None, shuffle: bool = True,
            verbose: int = 1, callbacks=None, diagnostics: bool = True, log_every: int = 200,
            log_val_samples: int = 2000, checkpoint=None, checkpoint_extra: dict | None = None):
        """Train for ``epochs`` passes over (x, y) in shuffled mini-batches; returns a :class:`mlpx.History`.

        The per-epoch training loss and accuracy are means over the epoch's batches (computed before each batch's
        update, without an extra pass), as Keras reports them. ``callbacks`` receive ``on_epoch_end(model, logs)``.

        - ``log_every``: optimizer steps between log points (``History.iterations``, ``iteration_loss``, ...);
          ``log_val_samples`` caps the validation samples evaluated at each log point (the first ones)
        - ``diagnostics=False`` skips the per-layer statistics at log points (``History.layer_stats``, see
          mlpx.diagnostics)
        - ``checkpoint``: a path written atomically after every epoch (with ``checkpoint_extra``, JSON, stored
          beside), from which :func:`mlpx.training.resume` continues the run exactly
        """
        from .training import fit

        return fit(self, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                   shuffle=shuffle, verbose=verbose, callbacks=callbacks, diagnostics=diagnostics,
                   log_every=log_every, log_val_samples=log_val_samples, checkpoint=checkpoint,
                   checkpoint_extra=checkpoint_extra)

    # ---- persistence --------------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Save config, weights and optimizer state to a .npz file, atomically; loads on any backend."""
        from .serialization import save_model

        save_model(self, path)
