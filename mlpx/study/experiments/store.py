"""The run store: one JSON file per finished run, named by a content key of everything that determines its numbers.

A run of a sweep is a pure function of its task (``mlpx.study.experiments.runs.run_config``), so a finished run never needs to
be trained again while nothing it depends on changes. The store keeps each one as ``FOLDER/<key>.json``, written
atomically (``mlpx._io``) by the client as soon as the run comes back, so a sweep killed at any moment (Ctrl-C,
``kill -9``) loses only the runs in flight.

The key is the SHA-256 (first 24 hex digits) of a canonical JSON text of :func:`key_fields`:

- the configuration without its label (a label names a configuration inside one experiment; the same run appears
  under several labels), with the optimizer expanded to its full ``get_config()`` so that equal runs get equal keys
  (weight decay 0.0 and no weight decay, ``momentum`` and ``sgd`` with momentum 0.9, ...);
- every other task field as the worker sees it (seed, epochs, BLAS threads, log_every, diagnostics, and any field
  added later: a new task field is in the key without a change here), the dtype (float32 unless the task says);
- the backend kind that runs it (``numba``/``numpy`` on the CPU, ``cupy``, ``emulated``), not the name asked for;
  decided on the client, so the run reports the kind it actually used and a result computed on another kind (a
  Dask worker with a GPU, or without Numba) is not stored under this key (:class:`MismatchedRunWarning`);
- the numeric libraries (:func:`library_identity`): the NumPy and Numba versions and NumPy's BLAS (library,
  version, CPU kernel, threading layer), since another BLAS kernel sums in another order; the run reports its own,
  and a result from a worker with other libraries is not stored under this key either;
- the data's identity, not its path: a digest of the dataset's files (or of the bundled sample) and the subset;
- the code: the mlpx version, the CUDA/C++ kernels' source digest (``backend.kernel_sources.source_digest``) and a
  digest of the Python modules on the numeric path (``CODE_MODULES``), so an edit to the training code during
  development is a new key, while an edit to reports or plots is not.

A record holds ``key``, ``fields`` (the key's input, for reading) and ``result``: the run's numbers and its full
history (per-epoch curves, the iteration loss, layer statistics), all the experiment reports need, so they can be
rebuilt from the store alone. No pickle: JSON only. A file that does not parse, is truncated or does not match its
name is reported with a :class:`CorruptRunWarning` and trained again (then overwritten).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from functools import lru_cache
from pathlib import Path

from ..._io import atomic_write_text

FORMAT = "mlpx-run"
FORMAT_VERSION = 1
KEY_LENGTH = 24

# The modules whose code decides a run's numbers (relative to the mlpx package). Reports, plots and the CLI are not
# here: changing them does not change a trained run.
CODE_MODULES = ("model.py", "training.py", "policy.py", "history.py", "optim.py", "losses.py", "activations.py",
                "initializers.py", "callbacks.py", "diagnostics.py", "datasets.py", "metrics.py", "_checks.py",
                "backend", "study/experiments/runs.py", "study/data.py")


class CorruptRunWarning(UserWarning):
    """A run file of the store could not be read; the run is trained again."""


class MismatchedRunWarning(UserWarning):
    """A run came back computed with another backend kind or other libraries than its key says: not stored."""


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


# What the reports read of a stored result (results.summarize, write_results, index.suite_account, the plots,
# schedule.measured_costs): a record lacking one of them, or holding another type, is not reused.
RESULT_NUMBERS = ("test_accuracy", "test_loss", "train_accuracy", "train_loss", "seconds")
HISTORY_SERIES = ("loss", "val_loss", "val_accuracy", "iterations", "iteration_loss")  # lists of numbers


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def result_problem(result) -> str | None:
    """Why a stored ``result`` cannot be reused by the reports (a short text), or None when it can."""
    if not isinstance(result, dict):
        return "no result entry"
    for name in RESULT_NUMBERS:
        if not _number(result.get(name)):
            return f"{name} is {result.get(name)!r}, not a number"
    if "stop_reason" not in result:
        return "no stop_reason"
    if not (result["stop_reason"] is None or isinstance(result["stop_reason"], str)):
        return f"stop_reason is {result['stop_reason']!r}, not a text or null"
    history = result.get("history")
    if not isinstance(history, dict):
        return f"history is {type(history).__name__}, not an object"
    for name in HISTORY_SERIES:
        values = history.get(name)
        if not isinstance(values, list) or not all(v is None or _number(v) for v in values):
            return f"history.{name} is not a list of numbers"
    stats = history.get("layer_stats", [])
    if not isinstance(stats, list) or not all(p is None or (isinstance(p, list) and all(isinstance(d, dict)
                                                                                         for d in p)) for p in stats):
        return "history.layer_stats is not a list of per-layer statistics"
    return None


def stored_result(result: dict) -> dict:
    """A run's result as the store keeps it and reads it back (what every report then uses, so a reused run and a
    freshly trained one give the same tables): JSON values only, without label and optimizer (per experiment, not
    per run) and libraries (in the fields, as the key says)."""
    return json.loads(json.dumps({k: v for k, v in result.items() if k not in ("label", "optimizer", "libraries")}))


class RunStore:
    """A folder of finished runs, ``<key>.json`` each (see the module docstring)."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def keys(self) -> set[str]:
        """The keys of the files present (not checked: :meth:`get` checks)."""
        if not self.folder.is_dir():
            return set()
        return {p.stem for p in self.folder.glob("*.json") if len(p.stem) == KEY_LENGTH}

    def get(self, key: str) -> dict | None:
        """The stored result of run ``key``, or None when it is not stored; an unreadable file is reported with a
        CorruptRunWarning and treated as not stored."""
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            return self._corrupt(path, f"cannot be read ({err})")
        try:
            record = json.loads(text)
        except ValueError as err:
            return self._corrupt(path, f"is not valid JSON, truncated or damaged ({err})")
        if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("key") != key:
            return self._corrupt(path, "is not an mlpx run record for this key")
        problem = result_problem(record.get("result"))
        if problem is not None:
            return self._corrupt(path, f"lacks the run's numbers or history: {problem}")
        return record["result"]

    def records(self):
        """Every readable record as (fields, result), quietly skipping unreadable files (the scheduler's cost
        measurements; :meth:`get` reports the files a sweep needs)."""
        for key in sorted(self.keys()):
            try:
                record = json.loads(self.path(key).read_text(encoding="utf-8"))
                if isinstance(record, dict) and isinstance(record.get("fields"), dict) \
                        and isinstance(record.get("result"), dict):
                    yield record["fields"], record["result"]
            except (OSError, ValueError):
                continue

    def put(self, key: str, fields: dict, result: dict) -> dict:
        """Write run ``key`` atomically; returns the result as it reads back (:func:`stored_result`)."""
        result = stored_result(result)
        atomic_write_text(self.path(key), json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "key": key,
                                                      "fields": fields, "result": result}))
        return result

    @staticmethod
    def _corrupt(path: Path, why: str) -> None:
        warnings.warn(f"run store: {path} {why}; the run is trained again", CorruptRunWarning, stacklevel=3)
        return None
