"""Saving and loading models as .npz files: plain arrays plus a JSON header, no pickle, written atomically.

Layout: ``mlpx_format`` ("mlpx.MLP"), ``format_version``, ``config`` (JSON), ``W1``, ``b1``, ``W2``, ... and, when
the model was compiled, ``optimizer`` (JSON config) and ``optimizer/<state>`` arrays. Files load on any backend.
"""
from __future__ import annotations

import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

try:  # the module behind numpy.lib.format, whose (3, 0) header reader has no public name
    from numpy.lib import _format_impl as npy_format
except ImportError:  # NumPy < 2
    from numpy.lib import format as npy_format

from ._checks import check_array
from ._io import atomic_write
from .backend import get_ops
from .model import MLP
from .optim import make_optimizer
from .parameters import parameter_shapes, weight_names

FORMAT = "mlpx.MLP"
FORMAT_VERSION = 1


def model_arrays(model) -> dict:
    """Everything :func:`save_model` writes, as a dict of NumPy arrays (also used by checkpoints)."""
    arrays = {"mlpx_format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION),
              "config": np.array(json.dumps(model.get_config()))}
    arrays.update(zip(weight_names(model.n_layers), model.get_weights()))
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
        members = {info.filename: info for info in data.zip.infolist()}
        for key in data.files:
            info = members.get(f"{key}.npy")
            if info is None:  # a zip member that is not an .npy file
                raise ValueError(f"{unreadable}: entry {key}: not a NumPy array (.npy)")
            try:
                _check_declared_size(data.zip, info)
                arrays[key] = data[key]
            except _SizeMismatch as err:
                raise ValueError(f"{unreadable}: entry {key}: {err}") from None
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, zlib.error) as err:
                raise ValueError(f"{unreadable}: entry {key}: {_npy_error(err)}") from None
            except MemoryError:
                raise ValueError(f"{unreadable}: entry {key}: too large to hold in memory") from None
            if not isinstance(arrays[key], np.ndarray):
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


# Deflate cannot expand its input more than about 1032 times (a 258-byte match per 2 bits at best); the margin
# covers the few bytes of block and stream headers of a tiny member.
_DEFLATE_MAX_RATIO, _DEFLATE_SLACK = 1032, 1024


class _SizeMismatch(ValueError):
    """An .npy member declares more data than it can hold (its own message, without the exception's name)."""


def _check_declared_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse an .npy member whose header declares more data than the member can hold, before NumPy allocates
    the declared array (it does so before reading a byte of it: a 200-byte member that says shape (10**12,)
    would ask for terabytes). A stored member must hold its declared bytes; a deflated one cannot inflate to more
    than its uncompressed size, nor to more than deflate's maximum ratio of its compressed size (np.savez and
    np.savez_compressed write nothing else). Object arrays are left to NumPy, which refuses them unread."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _SizeMismatch(f"zip compression method {info.compress_type}: an .npz holds stored or deflated "
                            f"members (np.savez, np.savez_compressed)")
    with archive.open(info) as member:
        version = npy_format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(member)
        else:  # (3, 0): utf-8 field names, read like (2, 0) by NumPy's own reader
            shape, _, dtype = npy_format._read_array_header(member, version)
        header = member.tell() if member.seekable() else None
    if dtype.hasobject:
        return
    declared = math.prod(shape) * dtype.itemsize
    holds = info.file_size - (header or 0)
    if info.compress_type == zipfile.ZIP_STORED:
        holds = min(holds, info.compress_size - (header or 0))
    else:
        holds = min(holds, _DEFLATE_MAX_RATIO * info.compress_size + _DEFLATE_SLACK)
    if declared > holds:
        raise _SizeMismatch(f"its .npy header declares shape {tuple(shape)} {dtype} ({declared} bytes), but the "
                         f"member holds at most {max(holds, 0)} bytes: a damaged or forged header")


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
    _check_weight_shapes(arrays, config, source)  # before MLP(**config) allocates what the config claims
    try:
        loss = config.pop("loss")
        model = MLP(backend=ops, **config)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: entry config: not a model this mlpx can build: {type(err).__name__}: "
                         f"{err}") from None
    model.set_weights([array_entry(arrays, name, shape, model.dtype, source)
                       for name, shape in zip(weight_names(model.n_layers), model.parameter_shapes())])
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


def _check_weight_shapes(arrays: dict, config: dict, source: str) -> None:
    """The W and b entries have the shapes that the config's ``layer_sizes`` give them, checked before the model
    is built: building allocates (and initializes) every parameter the config claims, so a config that says
    [784, 100000, 100000] beside small arrays would otherwise ask for 10**10 parameters before any entry is
    looked at. The model's allocation is then no larger than the arrays already read from the file."""
    sizes = config.get("layer_sizes")
    if not (isinstance(sizes, list) and len(sizes) >= 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)):
        raise ValueError(f"{source}: entry config: layer_sizes: expected a list of at least 2 positive integers "
                         f"(inputs ... outputs), got {sizes!r:.80}")
    try:
        dtype = f" {np.dtype(config.get('dtype', 'float32')).name}"
    except (TypeError, ValueError):
        dtype = ""
    for name, shape in zip(weight_names(len(sizes) - 1), parameter_shapes(sizes)):
        if name not in arrays:
            raise ValueError(f"{source}: entry {name} missing: expected shape {shape}{dtype}")
        if arrays[name].shape != shape:
            raise ValueError(f"{source}: entry {name}: expected shape {shape}{dtype} (config layer_sizes "
                             f"{sizes!r:.60}), got shape {arrays[name].shape} {arrays[name].dtype}")


def load(path, backend: str | None = None):
    """Load a model saved with ``model.save(path)`` onto ``backend`` (default: the usual backend choice)."""
    return model_from_arrays(read_model_file(path), backend=backend, source=str(path))
