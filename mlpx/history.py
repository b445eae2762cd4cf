"""``History``: what a training run recorded, epoch by epoch and log point by log point (history.json).

Only recorded numbers live here; the loop's own carry-over (e.g. the partial iteration-loss window) is loop state,
kept in checkpoints beside the history (``mlpx.training``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields


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
