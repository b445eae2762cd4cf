"""Saving and loading models as .npz files: plain arrays plus a JSON header, no pickle, written atomically.

Layout: ``mlpx_format`` ("mlpx.MLP"), ``format_version``, ``config`` (JSON), ``W1``, ``b1``, ``W2``, ... and, when
the model was compiled, ``optimizer`` (JSON config) and ``optimizer/<state>`` arrays. Files load on any backend.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ._io import atomic_write

FORMAT = "mlpx.MLP"
FORMAT_VERSION = 1


def model_arrays(model) -> dict:
    """Everything :func:`save_model` writes, as a dict of NumPy arrays (also used by checkpoints)."""
    arrays = {"mlpx_format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION),
              "config": np.array(json.dumps(model.get_config()))}
    for i, array in enumerate(model.get_weights()):
        arrays[f"{'W' if i % 2 == 0 else 'b'}{i // 2 + 1}"] = array
    if model.optimizer is not None:
        arrays["optimizer"] = np.array(json.dumps(model.optimizer.get_config()))
        for key, value in model.optimizer.state_dict(model.ops).items():
            arrays[f"optimizer/{key}"] = np.asarray(value)
    return arrays


def save_model(model, path) -> Path:
    """Write ``model`` to ``path`` (.npz) atomically: a crash never leaves a half-written file."""
    arrays = model_arrays(model)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def read_model_file(path) -> dict:
    """Read a model file into a dict of arrays, with clear errors for missing, corrupt or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise ValueError(f"{path}: not a readable mlpx model file (.npz): {type(err).__name__}: {err}") from None
    if "mlpx_format" not in arrays or "format_version" not in arrays or str(arrays["mlpx_format"]) != FORMAT:
        raise ValueError(f"{path}: not an mlpx model file: expected an .npz with mlpx_format={FORMAT!r}, "
                         f"found keys {sorted(arrays)[:8]}")
    version = int(arrays["format_version"])
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: model format version {version} is newer than this mlpx reads "
                         f"({FORMAT_VERSION}); upgrade mlpx")
    return arrays


def model_from_arrays(arrays: dict, backend=None, source: str = "model file"):
    """Rebuild a model (weights, loss, optimizer state) from :func:`model_arrays`' dict."""
    from .model import MLP
    from .optim import make_optimizer

    try:
        config = json.loads(str(arrays["config"]))
        loss = config.pop("loss")
        model = MLP(backend=backend, **config)
        n_layers = model.n_layers
        weights = []
        for layer in range(1, n_layers + 1):
            weights += [arrays[f"W{layer}"], arrays[f"b{layer}"]]
        model.set_weights(weights)
        if loss is not None and "optimizer" in arrays:
            model.compile(loss=loss, optimizer=make_optimizer(json.loads(str(arrays["optimizer"]))))
            prefix = "optimizer/"
            state = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            model.optimizer.load_state_dict(model.ops, state, model.dtype)
        elif loss is not None:
            model.compile(loss=loss)
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{source}: corrupt mlpx model file: {type(err).__name__}: {err}") from None
    return model


def load(path, backend: str | None = None):
    """Load a model saved with ``model.save(path)`` onto ``backend`` (default: the usual backend choice)."""
    return model_from_arrays(read_model_file(path), backend=backend, source=str(path))
