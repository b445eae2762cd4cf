"""mlpx itself, on the NumPy or the CuPy backend, trained through the public ``fit``."""
from __future__ import annotations

import mlpx

from .base import Setup, System, Unavailable


class MlpxSystem(System):
    backend = "numpy"
    input_sparsity = "auto"

    def __init__(self, setup: Setup, data):
        super().__init__(setup, data)
        if self.backend == "cupy":
            usable, why = mlpx.backend.cupy_status()
            if not usable:
                raise Unavailable(why)
        self.model = mlpx.MLP(list(setup.layers), activation="relu", init="xavier_uniform", seed=0,
                              backend=self.ops(), input_sparsity=self.input_sparsity)
        self.model.compile(loss="cross_entropy", optimizer=mlpx.optim.make_optimizer(setup.optimizer))
        n = setup.samples
        # On the GPU the data is put on the device once, as a user of the CuPy backend would.
        self.x = self.model.ops.asarray(data.x_train[:n])
        self.y = self.model.ops.asarray(data.y_train[:n])
        self.model.choose_input_path(self.x)  # as every fit on this data will: info() reports the path that runs

    def ops(self):
        """The backend: its name, or an ops object."""
        return self.backend

    def epoch(self) -> None:
        self.model.fit(self.x, self.y, epochs=1, batch_size=self.setup.batch, verbose=0)
        self.model.ops.synchronize()

    def accuracy(self, x, y) -> float:
        return float(self.model.evaluate(x, y)["accuracy"])

    def n_parameters(self) -> int:
        return int(self.model.params.size)

    def info(self) -> dict:
        return {"version": mlpx.__version__, "backend": self.model.backend, "ops": type(self.model.ops).__name__,
                "input_sparsity": self.input_sparsity, "first_layer": self.model.input_path,
                "notes": "MLP.fit(epochs=1); loss and accuracy accumulated every step"}


class MlpxNumpy(MlpxSystem):
    name, label, backend = "mlpx-numpy", "mlpx NumPy", "numpy"


class MlpxNumpyDense(MlpxSystem):
    """The same with the first layer's dense products (input_sparsity="dense"): what the sparse path saves."""

    name, label, input_sparsity = "mlpx-numpy-dense", "mlpx NumPy, dense first layer", "dense"


class MlpxCupy(MlpxSystem):
    name, label, backend = "mlpx-cupy", "mlpx CuPy (GPU)", "cupy"


class MlpxNumpyReference(MlpxSystem):
    """The plain NumpyOps reference (no fused kernels), to show what the accelerated CPU ops buy."""

    name, label, backend = "mlpx-numpy-reference", "mlpx NumPy, reference ops", "numpy"

    def ops(self):
        from mlpx.backend.numpy_ops import NumpyOps

        return NumpyOps()
