"""The systems the side-by-side runner times, by name. Imported lazily: a worker for one system loads only its
own library (PyTorch and JAX each take seconds and hundreds of MB to import)."""
from __future__ import annotations

import importlib

from .base import Setup, System, Unavailable

SYSTEMS = {
    "mlpx-numpy": "mlpx_system:MlpxNumpy",
    "mlpx-numpy-dense": "mlpx_system:MlpxNumpyDense",
    "mlpx-numpy-reference": "mlpx_system:MlpxNumpyReference",
    "mlpx-cupy": "mlpx_system:MlpxCupy",
    "torch-eager": "torch_system:TorchSystem",
    "torch-compile": "torch_system:TorchCompile",
    "torch-cuda": "torch_system:TorchCuda",
    "torch-cuda-graphs": "torch_system:TorchCudaGraphs",
    "sklearn": "sklearn_system:SklearnSystem",
    "jax-jit": "jax_system:JaxSystem",
    "course-numpy": "reference_systems:Course",
    "blas-floor": "reference_systems:Floor",
}


def system_class(name: str) -> type[System]:
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; expected one of {', '.join(SYSTEMS)}")
    module, cls = SYSTEMS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


__all__ = ["SYSTEMS", "Setup", "System", "Unavailable", "system_class"]
