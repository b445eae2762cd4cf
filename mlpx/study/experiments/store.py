"""The run store: one JSON file per finished run, named by its content key (``run_key.py``).

A run of a sweep is a pure function of its task, so a finished run never needs to be trained again while nothing
it depends on changes. The store keeps each one as ``FOLDER/<key>.json``, written atomically (``mlpx._io``) by the
client as soon as the run comes back, so a sweep killed at any moment (Ctrl-C, ``kill -9``) loses only the runs in
flight.

A record holds ``key``, ``fields`` (the key's input, for reading) and ``result``: the run's numbers and its full
history (per-epoch curves, the iteration loss, layer statistics), all the experiment reports need, so they can be
rebuilt from the store alone. No pickle: JSON only. A file that does not parse, is truncated or does not match its
name is reported with a :class:`CorruptRunWarning` and trained again (then overwritten).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..._io import atomic_write_text
from .run_key import KEY_LENGTH

FORMAT = "mlpx-run"
FORMAT_VERSION = 1


class CorruptRunWarning(UserWarning):
    """A run file of the store could not be read; the run is trained again."""


class MismatchedRunWarning(UserWarning):
    """A run came back computed with another backend kind or other libraries than its key says: not stored."""


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
