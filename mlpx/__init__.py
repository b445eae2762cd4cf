"""mlpx: fast, honest multilayer perceptrons on NumPy (CPU) or CuPy (GPU) from one code base.

Quick start::

    import mlpx
    data = mlpx.datasets.load_mnist()
    model = mlpx.MLP([784, 500, 250, 100, 10], activation="relu", seed=0)
    model.compile(loss="cross_entropy", optimizer=mlpx.optim.SGD(lr=0.01))
    model.fit(data.x_train, data.y_train, epochs=15, batch_size=64)
    model.evaluate(data.x_test, data.y_test)
"""
from . import datasets, optim
from .backend import backend_report, get_ops, require_gpu, set_backend, warmup
from .model import MLP
from .serialization import load
from .threads import set_num_threads
from .callbacks import Callback
from .history import History

__version__ = "0.1.0"
__all__ = ["MLP", "load", "datasets", "optim", "set_backend", "get_ops", "require_gpu", "set_num_threads",
           "History", "Callback", "__version__", "warmup", "backend_report"]
