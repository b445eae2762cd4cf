"""Callbacks for ``fit``: early stopping with best-weight restore and per-epoch learning-rate schedules.

A callback sees the model at epoch boundaries only, so none of them adds a host synchronization to the hot loop.
Callbacks that carry state across epochs expose it through ``state_dict``/``load_state_dict`` (JSON values and
NumPy arrays) so that a checkpointed run resumes exactly.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import check_positive_int


class Callback:
    """Hooks into ``fit``; return True from ``on_epoch_end`` to stop training."""

    param_arrays: tuple[str, ...] = ()  # state arrays that copy the flat parameter buffer (checked on resume)

    def on_train_begin(self, model) -> None:
        pass

    def on_epoch_begin(self, model, epoch: int) -> None:
        pass

    def on_epoch_end(self, model, epoch: int, logs: dict) -> bool | None:
        return None

    def on_train_end(self, model) -> None:
        pass

    def state_dict(self) -> dict:
        """What a checkpoint must keep for an exact resume (JSON values and NumPy arrays)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def check_callbacks(callbacks, what: str = "callbacks") -> list[Callback]:
    """None or a list/tuple of :class:`Callback` instances, as a new list. Checked before training: otherwise a
    wrong value fails at the first hook with an internal message that does not name the parameter."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{what} must be a list of mlpx.Callback instances (or None), got "
                        f"{type(callbacks).__name__} {callbacks!r}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"{what}[{i}] must be an mlpx.Callback instance (subclass mlpx.Callback), got "
                            f"{type(cb).__name__} {cb!r}")
    return list(callbacks)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model ends training with the weights of its best epoch (kept as a device copy
    of the flat parameter buffer, taken at epoch ends only).
    """

    param_arrays = ("best_params",)

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = True):
        patience = check_positive_int(patience, "EarlyStopping: patience")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.sign = -1.0 if mode == "max" or (mode == "auto" and "acc" in monitor) else 1.0
        self.restore_best_weights = restore_best_weights
        self.best, self.best_epoch, self.wait, self.stopped_epoch = math.inf, None, 0, None
        self._best_params = self._ops = None
        self._resumed = False

    def on_epoch_end(self, model, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r} but the epoch logs have only "
                             f"{', '.join(sorted(logs))}; pass validation data (or --validation-split) to fit")
        score = self.sign * float(logs[self.monitor])
        if score < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = score, epoch, 0
            if self.restore_best_weights:
                self._best_params, self._ops = model.params.copy(), model.ops
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, model):
        if self.restore_best_weights and self._best_params is not None:
            model.params[...] = self._best_params

    @property
    def best_value(self) -> float:
        return self.sign * self.best

    def state_dict(self):
        state = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}
        if self._best_params is not None:
            state["best_params"] = np.array(self._ops.to_host(self._best_params))
        return state

    def load_state_dict(self, state):
        self.best, self.best_epoch, self.wait = float(state["best"]), state["best_epoch"], int(state["wait"])
        self._best_params = state.get("best_params")
        self._resumed = True

    def on_train_begin(self, model):
        if not self._resumed:  # a fresh run starts from scratch, as Keras does
            self.best, self.best_epoch, self.wait, self.stopped_epoch = math.inf, None, 0, None
            self._best_params = None
        elif self._best_params is not None:  # restored from a checkpoint: put it on the model's backend
            self._best_params, self._ops = model.ops.asarray(self._best_params, dtype=model.dtype), model.ops
        self._resumed = False


class LRScheduler(Callback):
    """Sets ``optimizer.lr`` at the start of every epoch from the learning rate the run started with."""

    def __init__(self):
        self.base_lr: float | None = None

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def on_train_begin(self, model):
        if self.base_lr is None:
            self.base_lr = model.optimizer.lr

    def on_epoch_begin(self, model, epoch):
        model.optimizer.lr = self.lr_at(epoch)

    def state_dict(self):
        return {"base_lr": self.base_lr}

    def load_state_dict(self, state):
        self.base_lr = state["base_lr"]


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size), as ``torch.optim.lr_scheduler.StepLR`` stepped per epoch."""

    def __init__(self, step_size: int, gamma: float = 0.1):
        super().__init__()
        step_size = check_positive_int(step_size, "StepLR: step_size (epochs)")
        if not 0 < gamma <= 1:
            raise ValueError(f"StepLR: gamma must lie in (0, 1], got {gamma!r}")
        self.step_size, self.gamma = step_size, float(gamma)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(LRScheduler):
    """Cosine annealing from base_lr to ``eta_min`` over ``t_max`` epochs (``CosineAnnealingLR``, no restarts)."""

    def __init__(self, t_max: int, eta_min: float = 0.0):
        super().__init__()
        t_max = check_positive_int(t_max, "CosineLR: t_max (epochs)")
        if not eta_min >= 0:
            raise ValueError(f"CosineLR: eta_min must be >= 0, got {eta_min!r}")
        self.t_max, self.eta_min = t_max, float(eta_min)

    def lr_at(self, epoch):
        progress = min(epoch, self.t_max) / self.t_max
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2


def default_step_size(epochs: int) -> int:
    """The epochs per step of ``make_schedule('step', ...)`` when none is given: a third of the run, at least 1
    (public so that a run's config and report can state the step size actually used)."""
    return max(1, epochs // 3)


def make_schedule(name: str | None, epochs: int, step_size: int | None = None, gamma: float = 0.1):
    """A scheduler from a CLI name: None/'none', 'step' (every ``step_size`` epochs, default
    :func:`default_step_size`) or 'cosine' (over the run's ``epochs``)."""
    if name in (None, "none"):
        return None
    if name == "step":
        return StepLR(step_size or default_step_size(epochs), gamma)
    if name == "cosine":
        return CosineLR(epochs)
    raise ValueError(f"unknown learning-rate schedule {name!r}; expected none, step or cosine")
