"""NumbaOps: the fast CPU backend. NumpyOps with the hot elementwise ops replaced by fused Numba kernels.

Matrix products stay with NumPy's BLAS; NumpyOps remains the readable reference that this class is tested
against. Used for backend "numpy" whenever Numba imports (set MLPX_NUMBA=0 to use the pure NumPy reference).
"""
from __future__ import annotations

import numpy as np

from ..activations import ACT_CODES
from . import blas_pool
from . import numba_kernels as nk
from .cblas import numpy_cblas
from .numpy_ops import NumpyOps


class NumbaOps(NumpyOps):
    """NumPy arrays and BLAS, with fused one-pass CPU kernels for activations, losses and optimizers."""

    needs_scratch = False

    def __init__(self):
        self._cblas = numpy_cblas()

    @property
    def fast_gemm_accumulate(self) -> bool:
        return self._cblas is not None

    def gemm_accumulate(self, a, b, out, alpha, beta, trans_a=False, trans_b=False):
        """NumPy's own BLAS gemm with alpha and beta, no temporary; the reference where it is not reachable."""
        if self._cblas is None or not self._cblas.gemm(a, b, out, alpha, beta, trans_a, trans_b):
            super().gemm_accumulate(a, b, out, alpha, beta, trans_a, trans_b)
        return out

    def training_threads(self, parameter_pass: bool):
        """Share OpenBLAS's threads with the optimizer kernels while ``fit`` trains, when the optimizer has a
        parameter pass to split (see mlpx.backend.blas_pool); otherwise OpenBLAS keeps its own threads."""
        return blas_pool.shared_threads(wanted=parameter_pass)

    def take_rows(self, src, index, out):
        if src.ndim == 2:
            nk.take_rows(src, index, out)
        else:  # labels: a few bytes, NumPy is fine
            super().take_rows(src, index, out)

    def bias_grad(self, dz_bo, out_o):
        nk.bias_grad(dz_bo, out_o)
        return out_o

    def bias_act_forward(self, z_bo, bias_o, act, out_bo, alpha=0.0):
        if act in ("sigmoid", "tanh"):  # NumPy's SIMD tanh beats a scalar loop
            return super().bias_act_forward(z_bo, bias_o, act, out_bo, alpha)
        nk.bias_act_forward(z_bo, bias_o, ACT_CODES[act], float(alpha), out_bo)
        return out_bo

    def act_backward_bias_grad(self, dy_bo, y_bo, act, dz_out_bo, db_out_o, alpha=0.0):
        nk.act_backward_bias_grad(dy_bo, y_bo, ACT_CODES[act], float(alpha), dz_out_bo, db_out_o)

    def softmax_xent(self, z_bk, bias_k, labels_b, grad_out_bk, stats):
        nk.softmax_xent(z_bk, bias_k, labels_b, grad_out_bk, stats)

    def softmax_mse(self, z_bk, bias_k, labels_b, grad_out_bk, stats):
        nk.softmax_mse(z_bk, bias_k, labels_b, grad_out_bk, stats)

    def identity_mse(self, z_bk, bias_k, targets_bk, grad_out_bk, stats):
        nk.identity_mse(z_bk, bias_k, targets_bk, grad_out_bk, stats)

    def sgd_update(self, params, grads, velocity, scratch, *, lr, momentum, dampening, nesterov, weight_decay,
                   first_step):
        kernel = nk.sgd_update_parallel if blas_pool.sharing() else nk.sgd_update
        kernel(params, grads, velocity, float(lr), float(momentum), 1.0 - dampening, bool(nesterov),
               float(weight_decay), bool(first_step), _tiny(params))

    def rmsprop_update(self, params, grads, square_avg, grad_avg, momentum_buf, scratch, *, lr, alpha, eps,
                       weight_decay, momentum, centered):
        kernel = nk.rmsprop_update_parallel if blas_pool.sharing() else nk.rmsprop_update
        kernel(params, grads, square_avg, grad_avg, momentum_buf, float(lr), float(alpha), 1.0 - alpha,
               float(eps), float(weight_decay), float(momentum), bool(centered), _tiny(params))

    def adam_update(self, params, grads, exp_avg, exp_avg_sq, scratch, *, lr, beta1, beta2, eps, weight_decay,
                    step):
        kernel = nk.adam_update_parallel if blas_pool.sharing() else nk.adam_update
        kernel(params, grads, exp_avg, exp_avg_sq, lr / (1.0 - beta1 ** step), float(beta1), 1.0 - beta1,
               float(beta2), 1.0 - beta2, float(eps), float(weight_decay), 1.0 / (1.0 - beta2 ** step) ** 0.5,
               _tiny(params))


_TINY = {np.dtype(t): float(np.finfo(t).tiny) for t in (np.float32, np.float64)}


def _tiny(array):
    """The smallest normal number of the array's dtype: optimizer state below it is stored as zero.
    (A table: np.finfo costs ~2 us, and the bias updates of a folded SGD step call this four times.)"""
    return _TINY[array.dtype]
