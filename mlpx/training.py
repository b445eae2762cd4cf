"""The training loop behind ``MLP.fit``: shuffled mini-batches, per-epoch metrics, validation, callbacks.

Hot-loop rules: the data is converted to the model's dtype and put on the backend once; shuffling is an index
permutation (drawn on the host with the model's seeded generator, so every backend sees the same batches);
batches are gathered into preallocated buffers; loss and accuracy accumulate on the device and are read back
once per epoch (or at ``log_every`` points): no host synchronization per step. The per-step Python work is an
integer test for the log point and a flag test for Ctrl-C.

Safety (:mod:`mlpx.run_guards`): a non-finite loss at a read-back stops the run and restores the last weights
known to give a finite loss; Ctrl-C stops at the end of the current step. ``checkpoint=`` writes an atomic
checkpoint after every epoch (:class:`CheckpointWriter`, the file format in :mod:`mlpx.checkpoint`) from which
:func:`resume` continues the run exactly. :func:`resume` (a checkpoint file) and :func:`continue_run` (a loaded
checkpoint, as ``mlpx train --resume`` uses it) are the one way a run continues.

How a step runs on the backend (fold plain SGD into the gemm, share OpenBLAS's threads, sparse first layer) is
decided once per ``fit`` by :func:`mlpx.policy.training_policy`; the step itself is ``MLP._train_batch``.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from . import _checks
from .callbacks import check_callbacks
from .checkpoint import Checkpoint, load_checkpoint, restore_callbacks, save_checkpoint
from .diagnostics import LayerDiagnostics
from .history import History  # noqa: F401  (re-exported: mlpx.training.History)
from .policy import training_policy
from .run_guards import DivergenceGuard, TrainingDiverged, stop_on_ctrl_c


def fit(model, x, y, epochs=1, batch_size=64, validation_data=None, shuffle=True, verbose=1, callbacks=None,
        log_every: int = 200, initial_epoch: int = 0, history: History | None = None, checkpoint=None,
        checkpoint_extra: dict | None = None, log_val_samples: int = 2000, loop_state: dict | None = None,
        diagnostics: bool = True) -> History:
    """Train ``model`` on (x, y); see ``MLP.fit``. Beyond its arguments: ``initial_epoch``, ``history`` and
    ``loop_state`` (the loop's own carry-over, e.g. the partial iteration-loss window, as a checkpoint holds it)
    continue a run (see :func:`continue_run`); ``checkpoint`` is a path written atomically after every
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
    x_dev, y_dev = model.to_backend(x, y)
    model.choose_input_path(x_dev)  # sparse or dense first layer, once per fit (MLP input_sparsity)
    val = None
    if validation_data is not None:
        if len(validation_data) != 2:
            raise ValueError("validation_data: expected a pair (x_val, y_val)")
        val = model.to_backend(*validation_data, names=("x_val", "y_val"))
    callbacks = check_callbacks(callbacks)
    history = history if history is not None else History()
    history.stop_reason = None
    policy = training_policy(model)  # after choose_input_path: how every step of this fit runs
    loop = _Loop(model, x_dev, y_dev, val, batch_size, shuffle, history, log_every, log_val_samples, loop_state,
                 diagnostics=bool(diagnostics), policy=policy)
    writer = None if checkpoint is None else CheckpointWriter(checkpoint, checkpoint_extra)
    with stop_on_ctrl_c(verbose) as stop, model.ops.training_threads(policy.share_blas_threads):
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
                if writer is not None:
                    writer.save(model, history, epoch + 1, callbacks, loop.state_dict())
                if history.stop_reason:
                    break
        except TrainingDiverged as err:
            loop.guard.restore()
            history.stop_reason = f"diverged: {err}"
            _say(True, f"mlpx: training diverged: {err}. Stopped and restored the weights of step "
                       f"{loop.guard.good_step}, the last known to give a finite loss; try a smaller learning rate")
        _end_run(model, callbacks)
    return history


def _end_run(model, callbacks) -> None:
    """How every run ends, trained or resumed after its end: the callbacks' ``on_train_end`` (EarlyStopping puts
    back the best epoch's weights)."""
    for cb in callbacks:
        cb.on_train_end(model)


class CheckpointWriter:
    """Saving a run, the second job of ``fit`` beside the loop: after every epoch, everything :func:`resume`
    needs (model, optimizer, shuffle state, history, loop state, callbacks' states, the caller's ``extra`` JSON)
    is written atomically to ``path`` in the format of :mod:`mlpx.checkpoint`."""

    def __init__(self, path, extra: dict | None = None):
        self.path, self.extra = path, extra

    def save(self, model, history: History, epochs_done: int, callbacks, loop_state: dict) -> None:
        save_checkpoint(self.path, model, history, epochs_done, callbacks, self.extra, loop_state=loop_state)


def continue_run(ckpt: Checkpoint, x, y, epochs: int, callbacks=None, **fit_kwargs):
    """Continue the loaded checkpoint ``ckpt`` (:func:`mlpx.checkpoint.load_checkpoint`) up to ``epochs`` total
    epochs; returns (model, history). The one resume implementation: :func:`resume` and ``mlpx train --resume``
    both end here.

    ``x``, ``y``, batch size, validation data and callbacks must be those of the original run for an exact
    continuation (the callbacks are rebuilt by the caller and get their saved states here). ``fit_kwargs`` go to
    :func:`fit` (``checkpoint`` to keep checkpointing; ``checkpoint_extra`` defaults to the checkpoint's own). A run
    that early stopping ended is not trained further: it ends as a finished run ends (the callbacks'
    ``on_train_end``, e.g. EarlyStopping restoring the best weights) and is returned with its history.
    """
    callbacks = check_callbacks(callbacks)
    restore_callbacks(callbacks, ckpt.callback_states)
    if ckpt.history.stop_reason == "early stopping":  # that run is over: no more epochs, just its ending
        _end_run(ckpt.model, callbacks)
        return ckpt.model, ckpt.history
    fit_kwargs.setdefault("checkpoint_extra", ckpt.extra)
    history = fit(ckpt.model, x, y, epochs=epochs, callbacks=callbacks, initial_epoch=ckpt.epoch,
                  history=ckpt.history, loop_state=ckpt.loop_state, **fit_kwargs)
    return ckpt.model, history


def resume(path, x, y, epochs: int, callbacks=None, backend: str | None = None, **fit_kwargs):
    """Continue the run checkpointed at ``path`` up to ``epochs`` total epochs, checkpointing to the same file
    (see :func:`continue_run`). Returns (model, history)."""
    fit_kwargs.setdefault("checkpoint", path)
    return continue_run(load_checkpoint(path, backend), x, y, epochs, callbacks, **fit_kwargs)


class _Loop:
    """One epoch at a time over device-resident data, with the read-back points of the module docstring."""

    def __init__(self, model, x_dev, y_dev, val, batch_size, shuffle, history, log_every, log_val_samples,
                 loop_state: dict | None = None, diagnostics: bool = False, *, policy):
        self.model, self.x, self.y, self.val, self.policy = model, x_dev, y_dev, val, policy
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
                if self.diagnostics is not None and (model.optimizer.step_count + 1) % self.log_every == 0:
                    # the next step is a log point's: keep W before it (and the batch buffers it will fill)
                    self.diagnostics.before_step(model._batch_buffers(index.shape[0]))
                model._train_batch(self.x, self.y, index, self.pending, policy=self.policy)
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
