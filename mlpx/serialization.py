"""Saving and loading models as .npz files: plain arrays plus a JSON header, no pickle, written atomically.

Layout: ``mlpx_format`` ("mlpx.MLP"), ``format_version``, ``config`` (JSON), ``W1``, ``b1``, ``W2``, ... and, when
the model was compiled, ``optimizer`` (JSON config) and ``optimizer/<state>`` arrays. Files load on any backend.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ._checks import check_array
from ._io import atomic_write
from .backend import get_ops
from .model import MLP
from .optim import make_optimizer

FORMAT = "mlpx.MLP"
FORMAT_VERSION = 1


def model_arrays(model) -> dict:
    """Everything :func:`save_model` writes, as a dict of NumPy arrays (also used by checkpoints)."""
    arrays = {"mlpx_format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION),
              "config": np.array(json.dumps(model.get_config()))}
    arrays.update(zip(_weight_names(model.n_layers), model.get_weights()))
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
    """Read a model file into a dict of arrays, with clear errors for missing, corrupt or foreign files.

    Nothing is unpickled: an entry holding Python objects is refused by name, and NumPy's advice to load such a
    file unsafely (``allow_pickle``) is never passed on; a model file holds only numbers and text.
    """
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a folder, not a model file; expected an .npz such as "
                                f"{path / 'model.npz'}")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    unreadable = f"{path}: not a readable mlpx model file (.npz)"
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{unreadable}: not a zip archive (an .npz file is a zip of .npy arrays)")
    try:
        data = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{unreadable}: {_npy_error(err)}") from None
    arrays = {}
    with data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
                raise ValueError(f"{unreadable}: entry {key}: {_npy_error(err)}") from None
            if not isinstance(arrays[key], np.ndarray):  # a zip member that is not an .npy file
                raise ValueError(f"{unreadable}: entry {key}: not a NumPy array (.npy)")
    if "mlpx_format" not in arrays or _text(arrays["mlpx_format"]) != FORMAT:
        raise ValueError(f"{path}: not an mlpx model file: expected an .npz with mlpx_format={FORMAT!r}, "
                         f"found keys {sorted(arrays)[:8]}")
    version = arrays.get("format_version")
    if version is None or version.shape != () or version.dtype.kind not in "iu" or version < 1:
        got = "nothing" if version is None else f"shape {version.shape} {version.dtype}: {version!r:.40}"
        raise ValueError(f"{path}: entry format_version: expected an integer >= 1 (shape ()), got {got}")
    if int(version) > FORMAT_VERSION:
        raise ValueError(f"{path}: model format version {int(version)} is newer than this mlpx reads "
                         f"({FORMAT_VERSION}); upgrade mlpx")
    return arrays


def _npy_error(err: Exception) -> str:
    """NumPy's reason, except its advice to load pickled data unsafely: say that object arrays are refused."""
    if "pickle" in str(err):
        return ("holds Python objects; object arrays are refused (reading them would run pickle, which can "
                "execute code)")
    return f"{type(err).__name__}: {err}"


def _text(array) -> str | None:
    """The text of a 0-d str array (how mlpx stores its JSON headers), None for anything else."""
    return str(array) if array.shape == () and array.dtype.kind == "U" else None


def json_entry(arrays: dict, key: str, source: str) -> dict:
    """Entry ``key`` decoded as a JSON object, or a ValueError naming ``source``, the entry and what it held."""
    if key not in arrays:
        raise ValueError(f"{source}: entry {key} missing")
    text = _text(arrays[key])
    if text is None:
        raise ValueError(f"{source}: entry {key}: expected JSON text (a str array of shape ()), got shape "
                         f"{arrays[key].shape} {arrays[key].dtype}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: entry {key}: not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{source}: entry {key}: expected a JSON object, got {type(value).__name__}")
    return value


def array_entry(arrays: dict, key: str, shape: tuple, dtype, source: str) -> np.ndarray:
    """Entry ``key``, checked to be exactly ``shape`` and ``dtype`` with finite values (see ``check_array``)."""
    if key not in arrays:
        raise ValueError(f"{source}: entry {key} missing: expected shape {tuple(shape)} {np.dtype(dtype).name}")
    check_array(arrays[key], shape, dtype, f"{source}: entry {key}")
    return arrays[key]


def model_from_arrays(arrays: dict, backend=None, source: str = "model file"):
    """Rebuild a model (weights, loss, optimizer state) from :func:`model_arrays`' dict.

    Every entry is checked against what the configured model expects (shape, dtype, finite values) before it is
    used: the fused kernels trust their buffers' lengths. Errors name ``source`` and the entry.
    """
    ops = get_ops(backend)  # outside the try: a bad backend name is not the file's fault
    config = json_entry(arrays, "config", source)
    try:
        loss = config.pop("loss")
        model = MLP(backend=ops, **config)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: entry config: not a model this mlpx can build: {type(err).__name__}: "
                         f"{err}") from None
    model.set_weights([array_entry(arrays, name, shape, model.dtype, source)
                       for name, shape in zip(_weight_names(model.n_layers), model.parameter_shapes())])
    if loss is None:
        return model
    optimizer = json_entry(arrays, "optimizer", source) if "optimizer" in arrays else "sgd"
    try:
        model.compile(loss=loss, optimizer=make_optimizer(optimizer))
    except (KeyError, TypeError, ValueError) as err:
        entry = "optimizer" if "optimizer" in arrays else "config"
        raise ValueError(f"{source}: entry {entry}: {type(err).__name__}: {err}") from None
    if "optimizer" in arrays:
        prefix = "optimizer/"
        state = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        model.optimizer.load_state_dict(model.ops, state, model.dtype, model.params.size,
                                        f"{source}: entry optimizer")
    return model


def _weight_names(n_layers: int) -> list[str]:
    """The entries of [W1, b1, W2, b2, ...] in a model file."""
    return [f"{kind}{layer}" for layer in range(1, n_layers + 1) for kind in "Wb"]


def load(path, backend: str | None = None):
    """Load a model saved with ``model.save(path)`` onto ``backend`` (default: the usual backend choice)."""
    return model_from_arrays(read_model_file(path), backend=backend, source=str(path))
