"""A run's content key: everything that determines its numbers, as one canonical JSON text and its digest.

A run of a sweep is a pure function of its task (``mlpx.study.experiments.runs.run_config``), so the run store
(``store.py``) keeps it under the SHA-256 (first 24 hex digits) of a canonical JSON text of :func:`key_fields`:

- the configuration without its label (a label names a configuration inside one experiment; the same run appears
  under several labels), with the optimizer expanded to its full ``get_config()`` so that equal runs get equal keys
  (weight decay 0.0 and no weight decay, ``momentum`` and ``sgd`` with momentum 0.9, ...);
- every other task field as the worker sees it (seed, epochs, BLAS threads, log_every, diagnostics, and any field
  added later: a new task field is in the key without a change here), the dtype (float32 unless the task says);
- the backend kind that runs it (``numba``/``numpy`` on the CPU, ``cupy``, ``emulated``), not the name asked for;
  decided on the client, so the run reports the kind it actually used and a result computed on another kind (a
  Dask worker with a GPU, or without Numba) is not stored under this key (:func:`mismatch`);
- the numeric libraries (:func:`library_identity`): the NumPy and Numba versions and NumPy's BLAS (library,
  version, CPU kernel, threading layer), since another BLAS kernel sums in another order; the run reports its own,
  and a result from a worker with other libraries is not stored under this key either;
- the data's identity, not its path: a digest of the dataset's files (or of the bundled sample) and the subset;
- the code: the mlpx version, the CUDA/C++ kernels' source digest (``backend.kernel_sources.source_digest``) and a
  digest of the Python modules on the numeric path (``CODE_MODULES``), so an edit to the training code during
  development is a new key, while an edit to reports or plots is not.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path

KEY_LENGTH = 24

# The modules whose code decides a run's numbers (relative to the mlpx package). Reports, plots and the CLI are not
# here: changing them does not change a trained run.
CODE_MODULES = ("model.py", "training.py", "policy.py", "history.py", "optim.py", "losses.py", "activations.py",
                "initializers.py", "callbacks.py", "diagnostics.py", "datasets.py", "metrics.py", "_checks.py",
                "backend", "study/experiments/runs.py", "study/data.py")


def _blas_identity() -> list[dict]:
    """NumPy's BLAS as threadpoolctl sees it (the copy NumPy's wheel carries, else the only one loaded, else every
    one, sorted): library, version, CPU kernel and threading layer, the things that change its sums."""
    from ...threads import blas_info

    try:
        infos = blas_info()
    except Exception:  # noqa: BLE001  (threadpoolctl missing or failing: the key says so rather than failing)
        return [{"internal_api": "unknown"}]
    own = [i for i in infos if "numpy" in str(i.get("filepath", ""))]
    chosen = own or infos
    entries = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "threading_layer")} for i in chosen]
    return sorted(entries, key=lambda e: json.dumps(e, sort_keys=True))


@lru_cache(maxsize=1)
def library_identity() -> dict:
    """The numeric libraries' identity in this process: NumPy's and Numba's versions (None without Numba) and
    NumPy's BLAS (:func:`_blas_identity`). Part of every key; a run reports the one of the process it ran in."""
    from importlib.metadata import PackageNotFoundError, version

    import numpy

    try:
        numba = version("numba") if importlib.util.find_spec("numba") is not None else None
    except (PackageNotFoundError, ValueError):
        numba = None
    return {"numpy": numpy.__version__, "numba": numba, "blas": _blas_identity()}


def ops_kind(ops) -> str:
    """The backend kind of an ops object, as keys name it: ``numba`` (NumbaOps), ``numpy``, ``cupy``, ``emulated``."""
    return "numba" if type(ops).__name__ == "NumbaOps" else ops.name


def mismatch(fields: dict, result: dict) -> str | None:
    """Why ``result`` was not computed as its key's ``fields`` say (another backend kind, other libraries), or None.
    Compared as JSON, as the store holds them."""
    if result.get("backend") != fields.get("backend"):
        return f"it ran on the {result.get('backend')!r} backend, the key says {fields.get('backend')!r}"
    ran, key = (json.loads(json.dumps(x, sort_keys=True)) for x in (result.get("libraries"), fields.get("libraries")))
    if ran != key:
        return f"it ran with the libraries {ran}, the key says {key}"
    return None


@lru_cache(maxsize=1)
def code_identity() -> dict:
    """mlpx's version, the kernels' source digest and a digest of ``CODE_MODULES``'s sources."""
    from ... import __version__
    from ...backend.kernel_sources import source_digest

    package = Path(__file__).resolve().parents[2]  # mlpx/
    digest = hashlib.sha256()
    for entry in CODE_MODULES:
        path = package / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            if file.is_file():
                digest.update(str(file.relative_to(package)).encode() + b"\0" + file.read_bytes() + b"\0")
    try:
        kernels = source_digest()
    except FileNotFoundError:  # a wheel without the sources cannot run the GPU backends either
        kernels = None
    return {"mlpx": __version__, "kernels": kernels, "code": digest.hexdigest()[:16]}


def backend_kind(backend: str | None) -> str:
    """The backend that will run a task asked to run on ``backend``: ``numba`` or ``numpy`` (CPU), ``cupy``,
    ``emulated``. Decided here, on the client, by the same rules as ``mlpx.backend``."""
    from ...backend import _env_choice, resolve_backend

    name = resolve_backend(backend)[0]
    if name != "numpy":
        return name
    numba = _env_choice("MLPX_NUMBA", ("0", "1")) != "0" and importlib.util.find_spec("numba") is not None
    return "numba" if numba else "numpy"


@lru_cache(maxsize=16)
def _files_digest(paths: tuple[str, ...], stamps: tuple) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def data_identity(data: dict) -> dict:
    """What the data of a task is, independent of where it lies: the dataset, a digest of its files (the four IDX
    files, or the bundled sample's .npz) and the subset. ``data`` is the task's data spec (``_data_spec``)."""
    from ... import datasets

    if data.get("sample"):
        paths = [datasets.SAMPLE_FILE]
        name = "mnist-sample"
    else:
        folder = datasets.find_dataset(data["dataset"], data.get("data_dir"))
        paths = [folder / f for f in datasets.FILES]
        name = data["dataset"]
    paths = tuple(str(p) for p in paths)
    stamps = tuple((s.st_size, s.st_mtime_ns) for s in map(os.stat, paths))  # re-hash a file that changed
    identity = {"dataset": name, "sha256": _files_digest(paths, stamps), "subset": data.get("subset")}
    extra = {k: v for k, v in data.items() if k not in ("dataset", "data_dir", "sample", "allow_sample", "subset")}
    return {**identity, **extra}  # a data option added later (normalization, split) is part of the key too


def _normal_numbers(value):
    """Floats that are whole numbers and ints compare equal in JSON only when written alike: 0 and 0.0 -> 0.0."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {k: _normal_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal_numbers(v) for v in value]
    return value


def normal_config(config: dict) -> dict:
    """The configuration as a run sees it: no label, the optimizer with every default filled in, numbers as floats
    where they are hyper-parameters."""
    from ...optim import make_optimizer

    config = {k: v for k, v in config.items() if k != "label"}
    config["optimizer"] = _normal_numbers(make_optimizer(config["optimizer"]).get_config())
    config["hidden"] = [int(h) for h in config["hidden"]]
    config["batch_size"] = int(config["batch_size"])
    return config


def key_fields(task: dict, data_id: dict | None = None, backend: str | None = None) -> dict:
    """Everything that determines a task's numbers, normalized (see the module docstring). ``data_id`` and
    ``backend`` (the kind) may be given when already known, to save the work of finding them per task."""
    fields = {k: v for k, v in task.items() if k not in ("config", "data", "backend")}
    fields.setdefault("dtype", "float32")
    fields["config"] = normal_config(task["config"])
    fields["data"] = data_id if data_id is not None else data_identity(task["data"])
    fields["backend"] = backend if backend is not None else backend_kind(task.get("backend"))
    fields["libraries"] = library_identity()
    fields.update(code_identity())
    return fields


def content_key(fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]
