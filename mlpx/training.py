"""The training loop behind ``MLP.fit``: shuffled mini-batches, per-epoch metrics, validation, callbacks.

Hot-loop rules: the data is converted to the model's dtype and put on the backend once; shuffling is an index
permutation (drawn on the host with the model's seeded generator, so every backend sees the same batches);
batches are gathered into preallocated buffers; loss and accuracy accumulate on the device and are read back
once per epoch (or at ``log_every`` points): no host synchronization per step. The per-step Python work is an
integer test for the log point and a flag test for Ctrl-C.

Safety: a non-finite loss at a read-back stops the run and restores the last weights known to give a finite loss
(:class:`DivergenceGuard`); Ctrl-C stops at the end of the current step; ``checkpoint=`` writes an atomic
checkpoint after every epoch from which :func:`mlpx.checkpoint.resume` continues the run exactly.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

import numpy as np

from . import _checks
from .callbacks import Callback, check_callbacks  # noqa: F401  (Callback re-exported: mlpx.Callback)
from .diagnostics import LayerDiagnostics


@dataclass
class History:
    """What ``fit`` recorded; ``to_dict()`` is history.json, so every field is documented here.

    Per epoch (one entry per completed epoch, same index in every list):

    - ``loss``, ``accuracy``: mean training loss and accuracy over the epoch's batches (accuracy: softmax heads)
    - ``val_loss``, ``val_accuracy``: on the whole validation set at the epoch's end (with validation data)
    - ``lr``: the learning rate the epoch trained with (after any schedule)
    - ``epoch_seconds``: wall time of the epoch, validation included

    Per log point (every ``log_every`` optimizer steps, counted over the whole run):

    - ``iterations``: the optimizer's step count at the point
    - ``iteration_loss``: mean training loss per sample since the previous point (it may span an epoch boundary)
    - ``iteration_val_loss``: validation loss at the point, on the first ``log_val_samples`` validation samples
    - ``layer_stats``: with ``diagnostics`` (the default), one list per point of one dict per layer from the step
      at that point: ``grad_norm``, ``bias_grad_norm``, ``weight_norm``, ``update_ratio``; for hidden layers also
      ``activation_mean`` and ``saturated_fraction`` (sigmoid, tanh) or ``inactive_fraction`` (relu family); see
      :mod:`mlpx.diagnostics`. Empty when no point had diagnostics, None at points without them otherwise

    For the whole run:

    - ``steps``: optimizer steps (mini-batch updates) made, ceil(n / batch_size) per full epoch, fewer when the
      run stopped mid-epoch; reports state this, not the last log point
    - ``stop_reason``: why the run ended early ('early stopping', 'interrupted', 'diverged: ...'), None when it
      ran all its epochs
    """

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    iterations: list = field(default_factory=list)
    iteration_loss: list = field(default_factory=list)
    iteration_val_loss: list = field(default_factory=list)
    layer_stats: list = field(default_factory=list)
    steps: int = 0
    stop_reason: str | None = None

    @property
    def history(self) -> dict:
        """The recorded lists as a dict, Keras-style (``history.history["loss"]``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if isinstance(getattr(self, f.name), list) and getattr(self, f.name)}

    def to_dict(self) -> dict:
        """Every field, JSON-ready (for history.json and checkpoints)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """A History from ``to_dict()``'s dict; unknown keys (e.g. the ``window`` of older files) are dropped."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class DivergenceGuard:
    """Keeps the last weights known to be good: at each read-back whose loss is finite, the snapshot taken at the
    previous read-back is confirmed (the first step after it produced a finite loss). Two device copies of the
    flat parameter buffer per read-back, no extra synchronization."""

    def __init__(self, model):
        self.model = model
        self.good = model.params.copy()
        self.candidate = model.params.copy()
        self.good_step = self.candidate_step = model.optimizer.step_count

    def check(self, loss_sum: float) -> None:
        step = self.model.optimizer.step_count
        if not math.isfinite(loss_sum):
            raise TrainingDiverged(f"the training loss became {loss_sum} between steps {self.candidate_step} "
                                   f"and {step}")
        self.good[...] = self.candidate
        self.candidate[...] = self.model.params
        self.good_step, self.candidate_step = self.candidate_step, step

    def restore(self) -> None:
        self.model.params[...] = self.good


class TrainingDiverged(ArithmeticError):
    """The loss became NaN or infinite (raised inside fit, turned into a clean stop)."""


class _StopFlag:
    requested = False


@contextmanager
def _stop_on_ctrl_c(verbose: int):
    """First Ctrl-C: finish the current step and stop cleanly; a second one aborts at once (KeyboardInterrupt).
    Signal handlers can only be installed from the main thread; elsewhere Ctrl-C keeps its usual meaning."""
    flag = _StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        if verbose:
            print("\nmlpx: Ctrl-C: stopping after this step (press again to abort at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def fit(model, x, y, epochs=1, batch_size=64, validation_data=None, shuffle=True, verbose=1, callbacks=None,
        log_every: int = 200, initial_epoch: int = 0, history: History | None = None, checkpoint=None,
        checkpoint_extra: dict | None = None, log_val_samples: int = 2000, loop_state: dict | None = None,
        diagnostics: bool = True) -> History:
    """Train ``model`` on (x, y); see ``MLP.fit``. Beyond its arguments: ``initial_epoch``, ``history`` and
    ``loop_state`` (the loop's own carry-over, e.g. the partial iteration-loss window, as a checkpoint holds it)
    continue a run (see :func:`mlpx.checkpoint.resume`); ``checkpoint`` is a path written atomically after every
    epoch (with ``checkpoint_extra``, JSON, stored beside); ``log_val_samples`` caps the validation samples evaluated
    at each ``log_every`` point (the first ones of the validation set; the per-epoch validation uses all of them).
    ``diagnostics`` records ``History.layer_stats`` at the log points (:mod:`mlpx.diagnostics`). On by default: it
    costs a fixed few milliseconds per log point (about a logged step's worth more; ~0.7% of the 200 steps between
    two points on the reference network, timed with bench/diagnostics_cost.py), needs no extra host synchronization
    and leaves the trained weights bitwise unchanged; turn it off for a very small ``log_every``."""
    model._require_compiled()
    epochs = _checks.check_positive_int(epochs, "epochs")
    batch_size = _checks.check_positive_int(batch_size, "batch_size")
    log_every = _checks.check_positive_int(log_every, "log_every")
    x_dev = model._inputs(x, "x")
    model.choose_input_path(x_dev)  # sparse or dense first layer, once per fit (MLP input_sparsity)
    y_dev = model._targets(y, x_dev.shape[0], "y")
    val = None
    if validation_data is not None:
        if len(validation_data) != 2:
            raise ValueError("validation_data: expected a pair (x_val, y_val)")
        x_val = model._inputs(validation_data[0], "x_val")
        val = (x_val, model._targets(validation_data[1], x_val.shape[0], "y_val"))
    callbacks = check_callbacks(callbacks)
    history = history if history is not None else History()
    history.stop_reason = None
    loop = _Loop(model, x_dev, y_dev, val, batch_size, shuffle, history, log_every, log_val_samples, loop_state,
                 diagnostics=bool(diagnostics))
    parameter_pass = model.optimizer.folded_weight_update(model.ops) is None
    with _stop_on_ctrl_c(verbose) as stop, model.ops.training_threads(parameter_pass):
        for cb in callbacks:
            cb.on_train_begin(model)
        try:
            for epoch in range(initial_epoch, epochs):
                for cb in callbacks:
                    cb.on_epoch_begin(model, epoch)
                logs = loop.run_epoch(epoch, epochs, verbose, stop)
                if logs is None:
                    history.stop_reason = "interrupted"
                    _say(verbose, f"mlpx: interrupted in epoch {epoch + 1} after step "
                                  f"{model.optimizer.step_count}: stopped cleanly, keeping the weights of that step")
                    break
                _record(history, logs)
                if verbose:
                    print(_epoch_line(epoch, epochs, logs), file=sys.stderr if loop.bar_shown else sys.stdout)
                if any([cb.on_epoch_end(model, epoch, logs) for cb in callbacks]):
                    history.stop_reason = "early stopping"
                if checkpoint is not None:
                    from .checkpoint import save_checkpoint

                    save_checkpoint(checkpoint, model, history, epoch + 1, callbacks, checkpoint_extra,
                                    loop_state=loop.state_dict())
                if history.stop_reason:
                    break
        except TrainingDiverged as err:
            loop.guard.restore()
            history.stop_reason = f"diverged: {err}"
            _say(True, f"mlpx: training diverged: {err}. Stopped and restored the weights of step "
                       f"{loop.guard.good_step}, the last known to give a finite loss; try a smaller learning rate")
        for cb in callbacks:
            cb.on_train_end(model)
    return history


class _Loop:
    """One epoch at a time over device-resident data, with the read-back points of the module docstring."""

    def __init__(self, model, x_dev, y_dev, val, batch_size, shuffle, history, log_every, log_val_samples,
                 loop_state: dict | None = None, diagnostics: bool = False):
        self.model, self.x, self.y, self.val = model, x_dev, y_dev, val
        self.batch_size, self.shuffle, self.history, self.log_every = batch_size, shuffle, history, log_every
        self.val_log = None if val is None else (val[0][:log_val_samples], val[1][:log_val_samples])
        # [loss sum, correct] on the device since the last read-back; with diagnostics, the head of their device
        # vector, so that a log point reads both back in one transfer
        self.diagnostics = LayerDiagnostics(model) if diagnostics else None
        self.pending = model.ops.zeros(2, np.float64) if self.diagnostics is None else self.diagnostics.pending
        if self.diagnostics is not None or history.layer_stats:  # keep layer_stats[i] at iterations[i]
            history.layer_stats += [None] * (len(history.iterations) - len(history.layer_stats))
        self.guard = DivergenceGuard(model)
        self.bar_shown = False
        # [loss sum, samples] since the last log point: a log point's window can span epochs, so a checkpoint
        # keeps the partial one (state_dict) for an exact resume; it is loop state, not a recorded number
        self.window = [float(v) for v in (loop_state or {}).get("window", [0.0, 0])]
        self.window[1] = int(self.window[1])
        self.steps_before, self.first_step = history.steps, model.optimizer.step_count

    def state_dict(self) -> dict:
        """What a checkpoint must keep of the loop itself (JSON): the partial iteration-loss window."""
        return {"window": list(self.window)}

    def count_steps(self) -> None:
        """Bring ``history.steps`` up to the optimizer's steps made so far (this call's plus the earlier ones)."""
        self.history.steps = self.steps_before + self.model.optimizer.step_count - self.first_step

    def read_back(self, totals, whole: bool = False):
        """The one host synchronization: fold the device accumulator into the host totals, check for NaN.
        ``whole`` brings back the diagnostics' values in the same transfer; returns what was read."""
        values = self.model.ops.to_host(self.diagnostics.readback if whole else self.pending).copy()
        self.pending[...] = 0
        self.guard.check(float(values[0]))
        totals[:] += values[:2]
        self.window[0] += float(values[0])
        return values

    def log_point(self, totals) -> None:
        model, history = self.model, self.history
        measured = self.diagnostics is not None and self.diagnostics.measure()  # device work, read back below
        values = self.read_back(totals, whole=measured)
        if self.diagnostics is not None or history.layer_stats:
            history.layer_stats.append(self.diagnostics.finish(values[2:]) if measured else None)
        history.iterations.append(model.optimizer.step_count)
        history.iteration_loss.append(self.window[0] / self.window[1])
        self.window[:] = [0.0, 0]
        if self.val_log is not None:
            history.iteration_val_loss.append(model.evaluate(*self.val_log)["loss"])

    def run_epoch(self, epoch, epochs, verbose, stop) -> dict | None:
        """Train one epoch; the epoch's logs, or None when Ctrl-C stopped it."""
        model, ops, n, bs = self.model, self.model.ops, self.x.shape[0], self.batch_size
        start_time = time.perf_counter()
        order = model.shuffle_rng.permutation(n) if self.shuffle else np.arange(n)
        order = ops.asarray(order.astype(np.int64))
        totals = np.zeros(2)            # [loss sum, correct] of this epoch (host)
        steps, seen = math.ceil(n / bs), 0
        bar = _progress(steps, epoch, epochs, verbose)
        self.bar_shown = bar is not None
        try:
            for step in range(steps):
                if stop.requested:
                    self.read_back(totals)
                    return None
                index = order[step * bs:(step + 1) * bs]
                bufs = model._batch_buffers(index.shape[0])
                ops.take_rows(self.x, index, bufs["x"])
                ops.take_rows(self.y, index, bufs["y"])
                if self.diagnostics is not None and (model.optimizer.step_count + 1) % self.log_every == 0:
                    self.diagnostics.before_step(bufs)  # the next step is a log point's: keep W before it
                model._step(bufs["x"], bufs["y"], bufs, self.pending)
                seen += index.shape[0]
                self.window[1] += index.shape[0]
                if model.optimizer.step_count % self.log_every == 0:
                    self.log_point(totals)
                if bar is not None and (step % 50 == 49 or step == steps - 1):
                    self.read_back(totals)
                    bar.set_postfix(_running(totals, seen, model.output), refresh=False)
                    bar.update(step + 1 - bar.n)
            self.read_back(totals)
        finally:
            self.count_steps()  # also when Ctrl-C or a divergence ends the epoch early
            if bar is not None:
                bar.close()
        logs = {"loss": totals[0] / n}
        if model.output == "softmax":
            logs["accuracy"] = totals[1] / n
        if self.val is not None:
            logs.update({f"val_{k}": v for k, v in model.evaluate(*self.val).items()})
        logs["lr"] = model.optimizer.lr
        logs["seconds"] = time.perf_counter() - start_time
        return logs


def _say(verbose, message: str) -> None:
    if verbose:
        print(message, file=sys.stderr)


def _running(totals, seen: int, head: str) -> dict:
    shown = {"loss": f"{totals[0] / seen:.4f}"}
    if head == "softmax":
        shown["acc"] = f"{totals[1] / seen:.4f}"
    return shown


def _record(history: History, logs: dict) -> None:
    history.loss.append(float(logs["loss"]))
    history.epoch_seconds.append(logs["seconds"])
    history.lr.append(logs["lr"])
    for key in ("accuracy", "val_loss", "val_accuracy"):
        if key in logs:
            getattr(history, key).append(float(logs[key]))


def _epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs:
            parts.append(f"{key} {logs[key]:.4f}")
    parts.append(f"lr {logs['lr']:.3g}")
    parts.append(f"{logs['seconds']:.2f}s")
    return "  ".join(parts)


def _progress(steps: int, epoch: int, epochs: int, verbose: int):
    """A tqdm bar on an interactive terminal when verbose, else None."""
    if not verbose or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False)
