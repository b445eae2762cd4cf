"""The training loop behind ``MLP.fit``: shuffled mini-batches, per-epoch metrics, validation, callbacks.

Hot-loop rules: the data is converted to the model's dtype and put on the backend once; shuffling is an index
permutation (drawn on the host with the model's seeded generator, so every backend sees the same batches);
batches are gathered into preallocated buffers; loss and accuracy accumulate on the device and are read back
once per epoch (or at ``log_every`` points): no host synchronization per step.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import _checks


@dataclass
class History:
    """What ``fit`` recorded. Per-epoch lists share one index; ``iterations`` holds the step numbers at which
    ``iteration_loss`` (mean training loss over the last ``log_every`` steps) was recorded."""

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    iterations: list = field(default_factory=list)
    iteration_loss: list = field(default_factory=list)

    @property
    def history(self) -> dict:
        """The recorded lists as a dict, Keras-style (``history.history["loss"]``)."""
        return {k: v for k, v in self.__dict__.items() if v}

    def append(self, other: "History") -> None:
        for key, values in other.__dict__.items():
            getattr(self, key).extend(values)


class Callback:
    """Hooks into ``fit``; return True from ``on_epoch_end`` to stop training."""

    def on_train_begin(self, model) -> None:
        pass

    def on_epoch_end(self, model, epoch: int, logs: dict) -> bool | None:
        return None

    def on_train_end(self, model) -> None:
        pass


def fit(model, x, y, epochs=1, batch_size=64, validation_data=None, shuffle=True, verbose=1, callbacks=None,
        log_every: int = 200) -> History:
    """Train ``model`` on (x, y); see ``MLP.fit``."""
    model._require_compiled()
    epochs = _checks.check_positive_int(epochs, "epochs")
    batch_size = _checks.check_positive_int(batch_size, "batch_size")
    x_dev = model._inputs(x, "x")
    n = x_dev.shape[0]
    y_dev = model._targets(y, n, "y")
    if validation_data is not None:
        if len(validation_data) != 2:
            raise ValueError("validation_data: expected a pair (x_val, y_val)")
        x_val = model._inputs(validation_data[0], "x_val")
        y_val = model._targets(validation_data[1], x_val.shape[0], "y_val")
    callbacks = list(callbacks or [])
    ops = model.ops
    history = History()
    steps = math.ceil(n / batch_size)
    pending = ops.zeros(2, np.float64)  # [loss sum, correct] on the device since the last read-back
    window = [0.0, 0]                   # loss sum and samples since the last iteration_loss point (host)
    for cb in callbacks:
        cb.on_train_begin(model)
    for epoch in range(epochs):
        start_time = time.perf_counter()
        order = model.shuffle_rng.permutation(n) if shuffle else np.arange(n)
        order = ops.asarray(order.astype(np.int64))
        totals = np.zeros(2)            # [loss sum, correct] of this epoch (host)
        seen = 0

        def read_back():
            """The one host synchronization: fold the device accumulator into the host totals."""
            values = ops.to_host(pending).copy()
            pending[...] = 0
            totals[:] += values
            window[0] += float(values[0])

        bar = _progress(steps, epoch, epochs, verbose)
        for step in range(steps):
            index = order[step * batch_size:(step + 1) * batch_size]
            bufs = model._batch_buffers(index.shape[0])
            ops.take_rows(x_dev, index, bufs["x"])
            ops.take_rows(y_dev, index, bufs["y"])
            model._step(bufs["x"], bufs["y"], bufs, pending)
            seen += index.shape[0]
            window[1] += index.shape[0]
            if model.optimizer.step_count % log_every == 0:
                read_back()
                history.iterations.append(model.optimizer.step_count)
                history.iteration_loss.append(window[0] / window[1])
                window[:] = [0.0, 0]
            if bar is not None and (step % 50 == 49 or step == steps - 1):
                read_back()
                bar.set_postfix(_running(totals, seen, model.output), refresh=False)
                bar.update(step + 1 - bar.n)
        read_back()
        loss_sum, correct = totals
        logs = {"loss": loss_sum / n}
        if model.output == "softmax":
            logs["accuracy"] = correct / n
        if validation_data is not None:
            logs.update({f"val_{k}": v for k, v in model.evaluate(x_val, y_val).items()})
        logs["seconds"] = time.perf_counter() - start_time
        if bar is not None:
            bar.close()
        _record(history, logs)
        if verbose:
            print(_epoch_line(epoch, epochs, logs), file=sys.stderr if bar is not None else sys.stdout)
        if any([cb.on_epoch_end(model, epoch, logs) for cb in callbacks]):
            break
    for cb in callbacks:
        cb.on_train_end(model)
    return history


def _running(totals, seen: int, head: str) -> dict:
    shown = {"loss": f"{totals[0] / seen:.4f}"}
    if head == "softmax":
        shown["acc"] = f"{totals[1] / seen:.4f}"
    return shown


def _record(history: History, logs: dict) -> None:
    history.loss.append(logs["loss"])
    history.epoch_seconds.append(logs["seconds"])
    for key in ("accuracy", "val_loss", "val_accuracy"):
        if key in logs:
            getattr(history, key).append(logs[key])


def _epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs:
            parts.append(f"{key} {logs[key]:.4f}")
    parts.append(f"{logs['seconds']:.2f}s")
    return "  ".join(parts)


def _progress(steps: int, epoch: int, epochs: int, verbose: int):
    """A tqdm bar on an interactive terminal when verbose, else None."""
    if not verbose or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False)
