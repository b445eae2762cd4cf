"""Per-epoch training checkpoints: the file format, saved and loaded (resuming is :func:`mlpx.training.resume`).

A checkpoint is a model file (``serialization.model_arrays``: weights, optimizer config and state with its step
count) plus what the training loop needs to carry on as if never stopped: the epoch reached, the shuffle
generator's state, the history so far, the loop's own state (the partial iteration-loss window: a log point's
mean can span epochs), the callbacks' states and the caller's own JSON (``extra``, e.g. the CLI's run config).
It is written atomically (``_io.atomic_write``), so a crash mid-write leaves the previous checkpoint intact. On the
CPU a resumed run is bitwise identical to an uninterrupted one (same operations in the same order on the same
values; tested).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_write
from . import callbacks as builtin_callbacks
from ._checks import check_array, check_finite
from .history import History
from .serialization import json_entry, model_arrays, model_from_arrays, read_model_file

CHECKPOINT_FORMAT = "mlpx.checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (compiled, optimizer state restored) and the loop state."""

    model: object
    epoch: int
    history: History
    callback_states: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    loop_state: dict = field(default_factory=dict)


def save_checkpoint(path, model, history: History, epoch: int, callbacks=(), extra: dict | None = None,
                    loop_state: dict | None = None) -> Path:
    """Write everything needed to resume after ``epoch`` completed epochs to ``path`` (.npz), atomically;
    ``loop_state`` is the training loop's own carry-over (``fit`` passes it), kept out of the history."""
    arrays = model_arrays(model)
    callback_states = []
    for i, cb in enumerate(callbacks):
        state = cb.state_dict()
        json_part = {}
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                arrays[f"callback{i}/{key}"] = value
            else:
                json_part[key] = value
        callback_states.append({"class": type(cb).__name__, "state": json_part})
    header = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": int(epoch),
              "shuffle_rng": model.shuffle_rng.bit_generator.state, "history": history.to_dict(),
              "callbacks": callback_states, "extra": extra or {}, "loop": loop_state or {}}
    arrays["checkpoint"] = np.array(json.dumps(header))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path, backend: str | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for missing, corrupt or foreign files."""
    arrays = read_model_file(path)
    if "checkpoint" not in arrays:
        raise ValueError(f"{path}: a saved model, not a training checkpoint (no 'checkpoint' entry); "
                         f"resume needs the checkpoint.npz that training writes every epoch")
    header = json_entry(arrays, "checkpoint", str(path))
    version = header.get("version")
    if header.get("format") != CHECKPOINT_FORMAT or not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint format {header.get('format')!r} version "
                         f"{header.get('version')!r}; expected {CHECKPOINT_FORMAT!r} <= {CHECKPOINT_VERSION}")
    _check_header(header, path)
    model = model_from_arrays(arrays, backend=backend, source=str(path))
    try:
        model.shuffle_rng.bit_generator.state = header["shuffle_rng"]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: entry checkpoint: shuffle_rng is not a PCG64 generator state: {err}") from None
    states = []
    for i, entry in enumerate(header["callbacks"]):
        state = dict(entry["state"])
        state.update(_callback_arrays(arrays, i, entry["class"], model, path))
        states.append({"class": entry["class"], "state": state})
    loop_state = _loop_state(header)
    history = History.from_dict(header["history"])
    if "steps" not in header["history"]:  # written before History counted steps: the optimizer's count is the same
        history.steps = model.optimizer.step_count
    return Checkpoint(model, int(header["epoch"]), history, states, header["extra"], loop_state)


def _check_header(header: dict, path) -> None:
    """The header fields that resume uses have their types: a damaged header is named, not a KeyError later."""
    for key, kind in {"epoch": int, "shuffle_rng": dict, "history": dict, "callbacks": list, "extra": dict}.items():
        value = header.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (key == "epoch" and value < 0):
            raise ValueError(f"{path}: entry checkpoint: field {key!r}: expected {kind.__name__}"
                             f"{' >= 0' if key == 'epoch' else ''}, got {value!r:.60}")
    for entry in header["callbacks"]:
        if not (isinstance(entry, dict) and isinstance(entry.get("class"), str) and isinstance(entry.get("state"),
                                                                                                 dict)):
            raise ValueError(f"{path}: entry checkpoint: field 'callbacks': expected {{'class': name, 'state': "
                             f"{{...}}}} items, got {entry!r:.60}")
    _check_history(header["history"], path)
    loop = header.get("loop")
    if loop is not None and not isinstance(loop, dict):
        raise ValueError(f"{path}: entry checkpoint: field 'loop': expected a JSON object, got {loop!r:.60}")
    window = _loop_state(header).get("window")
    if window is not None:
        _check_window(window, path, "loop.window" if loop else "history.window")


def _loop_state(header: dict) -> dict:
    """The training loop's carry-over: the header's ``loop``; checkpoints written before the loop state moved out of
    the history kept the partial loss window there."""
    return header.get("loop") or {"window": header["history"].get("window", [0.0, 0])}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a JSON integer beyond float's range
        return False


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# History's fields as a checkpoint holds them: (check, what the message says was expected). Recorded values may be
# NaN or infinite (a diverged run's last loss); their types are what the loop and the reports rely on.
_HISTORY_FIELDS = {
    **{name: (lambda v: isinstance(v, list) and all(_is_number(x) for x in v), "a list of numbers")
       for name in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds", "iteration_loss",
                    "iteration_val_loss")},
    "iterations": (lambda v: isinstance(v, list) and all(_is_count(x) for x in v), "a list of integers >= 0"),
    "layer_stats": (lambda v: isinstance(v, list) and all(
        x is None or (isinstance(x, list) and all(isinstance(d, dict) for d in x)) for x in v),
        "a list of (null or a list of per-layer objects)"),
    "steps": (_is_count, "an integer >= 0"),
    "stop_reason": (lambda v: v is None or isinstance(v, str), "a string or null"),
}


def _check_history(history: dict, path) -> None:
    """Each History field the checkpoint holds has its type (missing ones take History's defaults)."""
    for name, (valid, expected) in _HISTORY_FIELDS.items():
        if name in history and not valid(history[name]):
            raise ValueError(f"{path}: entry checkpoint: field 'history.{name}': expected {expected}, got "
                             f"{history[name]!r:.60}")


def _check_window(window, path, name: str) -> None:
    """The partial iteration-loss window: [loss sum (finite), samples (integer >= 0)]."""
    if not (isinstance(window, list) and len(window) == 2 and _is_number(window[0])
            and _finite(window[0]) and _is_count(window[1])):
        raise ValueError(f"{path}: entry checkpoint: field {name!r}: expected [loss sum (a finite number), "
                         f"samples (an integer >= 0)], got {window!r:.60}")


def _callback_arrays(arrays: dict, index: int, kind: str, model, path) -> dict:
    """Callback ``index``'s array state, checked as it loads. Arrays that a built-in callback declares as copies of
    the flat parameter buffer (``param_arrays``, e.g. EarlyStopping's best weights, written back into the model)
    must match it exactly; any other must hold real, finite numbers."""
    cls = getattr(builtin_callbacks, kind, None)
    declared = cls.param_arrays if isinstance(cls, type) and issubclass(cls, builtin_callbacks.Callback) else ()
    prefix, state = f"callback{index}/", {}
    for key, value in arrays.items():
        if not key.startswith(prefix):
            continue
        if key[len(prefix):] in declared:
            check_array(value, model.params.shape, model.dtype, f"{path}: entry {key}")
        elif value.dtype.kind not in "fiub":
            raise ValueError(f"{path}: entry {key}: expected real numbers, got dtype {value.dtype}")
        elif value.dtype.kind == "f":
            check_finite(value, f"{path}: entry {key}")
        state[key[len(prefix):]] = value
    return state


def restore_callbacks(callbacks, states: list) -> None:
    """Load saved states into freshly built callbacks (the same kinds, in the same order as when saved)."""
    callbacks = list(callbacks)
    kinds = [type(cb).__name__ for cb in callbacks]
    saved = [s["class"] for s in states]
    if kinds != saved:
        raise ValueError(f"resume: the callbacks {kinds} differ from the checkpoint's {saved}; rebuild the same "
                         f"callbacks in the same order")
    for cb, entry in zip(callbacks, states):
        cb.load_state_dict(entry["state"])


def __getattr__(name: str):
    """``mlpx.checkpoint.resume``, the older home of :func:`mlpx.training.resume`: this module only saves and
    loads; continuing a run is the training loop's job."""
    if name == "resume":
        from .training import resume

        return resume
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
