"""What keeps a training run safe to stop: the divergence guard and the Ctrl-C handler of ``fit``'s loop.

A non-finite loss at a read-back raises :class:`TrainingDiverged` and the loop restores the last weights known to
give a finite loss (:class:`DivergenceGuard`); the first Ctrl-C ends the run after the current step, a second one
at once (:func:`stop_on_ctrl_c`). Both cost the hot loop one test per step or per read-back, nothing more.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator


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
        """At a read-back: raise :class:`TrainingDiverged` if ``loss_sum`` is not finite, else confirm the last
        snapshot as good and take a new one."""
        step = self.model.optimizer.step_count
        if not math.isfinite(loss_sum):
            raise TrainingDiverged(f"the training loss became {loss_sum} between steps {self.candidate_step} "
                                   f"and {step}")
        self.good[...] = self.candidate
        self.candidate[...] = self.model.params
        self.good_step, self.candidate_step = self.candidate_step, step

    def restore(self) -> None:
        """Put the last weights known to be good back into the model."""
        self.model.params[...] = self.good


class TrainingDiverged(ArithmeticError):
    """The loss became NaN or infinite (raised inside fit, turned into a clean stop)."""


class StopFlag:
    """Set by the first Ctrl-C while :func:`stop_on_ctrl_c` is active; the loop tests it once per step."""

    requested = False


@contextmanager
def stop_on_ctrl_c(verbose: int) -> Iterator[StopFlag]:
    """First Ctrl-C: finish the current step and stop cleanly; a second one aborts at once (KeyboardInterrupt).
    Signal handlers can only be installed from the main thread; elsewhere Ctrl-C keeps its usual meaning."""
    flag = StopFlag()
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
