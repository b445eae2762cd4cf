"""Loss names and which backend op computes each (loss, output head) pair.

- ``cross_entropy``: softmax head only; mean over samples of -log p[label], computed with log-sum-exp; its
  gradient w.r.t. the logits is (p - onehot) / B, without building a one-hot matrix.
- ``mse``: mean over samples of the sum over outputs of (output - target)^2, where output is the softmax
  probabilities (targets one-hot from the labels) for a softmax head and the raw outputs for an identity head.
"""
from __future__ import annotations

LOSSES = ("cross_entropy", "mse")

_OPS = {
    ("cross_entropy", "softmax"): "softmax_xent",
    ("mse", "softmax"): "softmax_mse",
    ("mse", "identity"): "identity_mse",
}


def check_loss_for_head(loss: str, head: str) -> str:
    """Return ``loss`` if it is known and fits the output head, else raise a ValueError saying why."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    if (loss, head) not in _OPS:
        raise ValueError(f"loss {loss!r} needs a softmax output head; this model's head is {head!r} "
                         f"(use loss='mse' for real-valued targets)")
    return loss


def loss_op_name(loss: str, head: str) -> str:
    """Name of the backend op that computes ``loss`` for ``head``."""
    return _OPS[(loss, head)]
