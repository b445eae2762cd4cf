"""How a model trains on its backend, decided in one place: the training policy.

Three choices change how a training step runs, never what it computes (beyond rounding where noted); the ops say
what they *can* do, the optimizer what its update *is*, and only this module decides what a step *does*:

- ``fold_sgd``: plain SGD's weight update ``W <- (1 - lr wd) W - lr a^T delta`` runs inside the weight-gradient
  product (``ops.gemm_accumulate`` with BLAS's own scalars), so no gradient is written and no separate pass over
  the weights is made. Only where that product costs no more than the plain one (``ops.fast_gemm_accumulate``:
  NumbaOps with NumPy's BLAS); on the GPU a fold would cost launches, not save them.
- ``share_blas_threads``: during ``fit``, OpenBLAS's parallel jobs run on Numba's thread pool so that the parallel
  twins of the optimizer (and sparse first-layer) kernels find the cores free (mlpx.backend.blas_pool); the
  backend applies it with ``ops.training_threads(share)``.
- ``sparse_first_layer``: the first layer from each batch's nonzero inputs; chosen from the training data by
  :func:`decide_input_path` (``input_sparsity``, through ``MLP.choose_input_path``) once per ``fit`` and reported
  here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingPolicy:
    fold_sgd: bool
    share_blas_threads: bool
    sparse_first_layer: bool


def fold_sgd(optimizer, ops) -> bool:
    """Fold the weight update into the weight-gradient product: the optimizer's update has the form
    ``W <- beta W + alpha dW`` (plain SGD) and the backend's ``gemm_accumulate`` is free."""
    return ops.fast_gemm_accumulate and optimizer.folded_weight_update() is not None


def share_blas_threads(fold: bool, sparse_first_layer: bool) -> bool:
    """Share OpenBLAS's threads with Numba's kernels during ``fit``: when the optimizer makes a pass over all
    parameters each step (its parallel twin then runs on both cores), or when the first layer is sparse (its
    forward, weight-gradient and folded-update kernels have parallel twins, the same bits). Folded plain SGD on the
    dense path has no such pass and would only pay the hand-over of each product. What the sharing gains per
    optimizer and path is measured in mlpx.backend.blas_pool's docstring, the kernels' parallel speed-ups in
    mlpx.backend.sparse_input's."""
    return not fold or sparse_first_layer


def sparse_first_layer(model) -> bool:
    """Compute the first layer from each batch's nonzeros: ``model.input_path`` (``MLP.choose_input_path``) says
    sparse and the backend has the sparse kernels. Also what ``loss_and_gradients`` (no optimizer needed) uses."""
    return model.input_path["path"] == "sparse" and bool(model.ops.sparse_input)


def training_policy(model) -> TrainingPolicy:
    """The policy for the compiled ``model`` on its current backend and input path."""
    fold = fold_sgd(model.optimizer, model.ops)
    sparse = sparse_first_layer(model)
    return TrainingPolicy(fold_sgd=fold, share_blas_threads=share_blas_threads(fold, sparse),
                          sparse_first_layer=sparse)


def decide_input_path(mode: str, ops, x) -> dict:
    """The first layer's path for training with ``input_sparsity=mode`` on ``ops``: {"path": "sparse" or "dense",
    "reason": ..., "density": fraction of nonzero entries of the training inputs ``x`` or None}; ``x`` is only read
    for "auto" (None: no data yet, dense until ``fit`` decides). What ``MLP.choose_input_path`` stores in
    ``model.input_path``."""
    value = None
    if not ops.sparse_input:
        path = "dense"
        reason = (f"input_sparsity={mode!r}, but the {type(ops).__name__} backend has no sparse-input kernels "
                  f"(only the Numba CPU backend has them): dense")
    elif mode != "auto":
        path, reason = mode, f"input_sparsity={mode!r} asked for it"
    elif x is None:  # no training data yet: fit decides when it starts
        path = "dense"
        reason = "input_sparsity='auto': decided from the training data when fit starts (dense until then)"
    else:  # only the Numba backend gets here: the sparse module (and Numba) is imported only where it is used
        from .backend.sparse_input import CROSSOVER_DENSITY, density

        value = density(x)  # sparse-capable backends keep x in host memory: no device read-back
        if value <= CROSSOVER_DENSITY:
            path = "sparse"
            reason = (f"auto: {value:.1%} of the training inputs are nonzero, at or below the measured "
                      f"crossover {CROSSOVER_DENSITY:.0%}")
        else:
            path = "dense"
            reason = (f"auto: {value:.1%} of the training inputs are nonzero, above the measured crossover "
                      f"{CROSSOVER_DENSITY:.0%}")
            if value == 1.0:
                reason += " (no zeros at all, e.g. standardized inputs)"
    return {"path": path, "reason": reason, "density": value}
