"""NumbaOps: the fast CPU backend. NumpyOps with the hot elementwise ops replaced by fused Numba kernels.

Matrix products stay with NumPy's BLAS; NumpyOps remains the readable reference that this class is tested
against. Used for backend "numpy" whenever Numba imports (set MLPX_NUMBA=0 to use the pure NumPy reference).
"""
from __future__ import annotations

import numpy as np

from ..activations import ACT_CODES
from . import blas_pool
from . import numba_kernels as nk
from . import sparse_input as si
from .cblas import numpy_cblas
from .numpy_ops import NumpyOps
from .shapes import check_flat, check_loss, check_shapes


class NumbaOps(NumpyOps):
    """NumPy arrays and BLAS, with fused one-pass CPU kernels for activations, losses and optimizers."""

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

    def training_threads(self, share: bool):
        """Share OpenBLAS's threads with the Numba kernels while ``fit`` trains, when the training policy says so
        (mlpx.policy.share_blas_threads; see mlpx.backend.blas_pool); otherwise OpenBLAS keeps its own threads.
        The kernels below pick their parallel twins from ``blas_pool.sharing()``: whether OpenBLAS's jobs run on
        Numba's pool is process-wide state (the hook is installed once per process, counted across fits), so it is
        read there rather than copied onto this shared backend object."""
        return blas_pool.shared_threads(wanted=share)

    def update_scratch(self, params):
        """None: the fused optimizer kernels keep their temporaries in registers."""
        return None

    # ---- the first layer from the batch's nonzero inputs (mlpx/backend/sparse_input.py) ----------------------------
    # The parallel twins only while OpenBLAS's jobs run on Numba's pool (as the optimizer kernels, see there).
    sparse_input = True

    def sparse_batch(self, rows, cols, dtype):
        """Preallocated nonzero lists for batches of ``rows`` x ``cols`` inputs."""
        return si.SparseBatch(rows, cols, dtype)

    def sparse_index(self, x_bi, batch):
        """Fill ``batch`` (from :meth:`sparse_batch`) with x's nonzeros; returns it."""
        return batch.build(x_bi)

    def sparse_forward(self, batch, w_io, out):
        """out = x @ W over the batch's nonzeros."""
        check_shapes("sparse_forward", (batch.shape[0], w_io.shape[1]), out=out)
        check_shapes("sparse_forward", (batch.shape[1], w_io.shape[1]), w_io=w_io)
        kernel = si.forward_parallel if blas_pool.sharing() else si.forward
        kernel(batch.row_ptr, batch.col_idx, batch.row_val, w_io, out, batch.scratch_like(out))
        return out

    def sparse_weight_grad(self, batch, delta_bo, dw_io, dirty):
        """dW = x^T delta over the batch's nonzeros; zero rows where ``dirty`` (a bool per row, updated) says an
        earlier gradient may remain."""
        check_shapes("sparse_weight_grad", (batch.shape[0], dw_io.shape[1]), delta_bo=delta_bo)
        check_shapes("sparse_weight_grad", (batch.shape[1], dw_io.shape[1]), dw_io=dw_io)  # kernel: pair_ptr[p + 1]
        check_shapes("sparse_weight_grad", (batch.shape[1],), dirty=dirty)
        kernel = si.weight_grad_parallel if blas_pool.sharing() else si.weight_grad
        kernel(*batch.pair_lists, delta_bo, dw_io, dirty)
        return dw_io

    def sparse_weight_update(self, batch, delta_bo, w_io, alpha, beta):
        """W = beta W + alpha x^T delta over the batch's nonzeros (plain SGD folded)."""
        check_shapes("sparse_weight_update", (batch.shape[0], w_io.shape[1]), delta_bo=delta_bo)
        check_shapes("sparse_weight_update", (batch.shape[1], w_io.shape[1]), w_io=w_io)
        kernel = si.weight_update_parallel if blas_pool.sharing() else si.weight_update
        kernel(*batch.pair_lists, delta_bo, w_io, float(alpha), float(beta))
        return w_io

    def take_rows(self, src, index, out):
        if src.ndim == 2:
            check_shapes("take_rows", (index.shape[0], src.shape[1]), out=out)
            nk.take_rows(src, index, out)
        else:  # labels: a few bytes, NumPy is fine
            super().take_rows(src, index, out)

    def sum_squares(self, x, out_1):
        out_1[0] = nk.sum_squares(x.reshape(-1))

    def bias_grad(self, dz_bo, out_o):
        check_shapes("bias_grad", dz_bo.shape[1:], out_o=out_o)
        nk.bias_grad(dz_bo, out_o)
        return out_o

    def bias_act_forward(self, z_bo, bias_o, act, out_bo, slope: float = 0.0):
        check_shapes("bias_act_forward", z_bo.shape[1:], bias_o=bias_o)
        check_shapes("bias_act_forward", z_bo.shape, out_bo=out_bo)
        if act in ("sigmoid", "tanh"):  # NumPy's SIMD tanh beats a scalar loop
            return super().bias_act_forward(z_bo, bias_o, act, out_bo, slope)
        nk.bias_act_forward(z_bo, bias_o, ACT_CODES[act], float(slope), out_bo)
        return out_bo

    def act_backward_bias_grad(self, dy_bo, y_bo, act, dz_out_bo, db_out_o, slope: float = 0.0):
        check_shapes("act_backward_bias_grad", dy_bo.shape, y_bo=y_bo, dz_out_bo=dz_out_bo)
        check_shapes("act_backward_bias_grad", dy_bo.shape[1:], db_out_o=db_out_o)
        nk.act_backward_bias_grad(dy_bo, y_bo, ACT_CODES[act], float(slope), dz_out_bo, db_out_o)

    def softmax_xent(self, z_bk, bias_k, labels_b, grad_out_bk, stats):
        check_loss("softmax_xent", z_bk, bias_k, labels_b, grad_out_bk, stats)
        nk.softmax_xent(z_bk, bias_k, labels_b, grad_out_bk, stats)

    def softmax_mse(self, z_bk, bias_k, labels_b, grad_out_bk, stats):
        check_loss("softmax_mse", z_bk, bias_k, labels_b, grad_out_bk, stats)
        nk.softmax_mse(z_bk, bias_k, labels_b, grad_out_bk, stats)

    def identity_mse(self, z_bk, bias_k, targets_bk, grad_out_bk, stats):
        check_loss("identity_mse", z_bk, bias_k, targets_bk, grad_out_bk, stats)
        nk.identity_mse(z_bk, bias_k, targets_bk, grad_out_bk, stats)

    def sgd_update(self, params, grads, velocity, scratch, *, lr, momentum, dampening, nesterov, weight_decay,
                   first_step):
        check_flat("sgd_update", params, grads=grads, velocity=velocity)
        kernel = nk.sgd_update_parallel if _parallel(params) else nk.sgd_update
        kernel(params, grads, velocity, float(lr), float(momentum), 1.0 - dampening, bool(nesterov),
               float(weight_decay), bool(first_step), _tiny(params))

    def rmsprop_update(self, params, grads, square_avg, grad_avg, momentum_buf, scratch, *, lr, decay, eps,
                       weight_decay, momentum, centered):
        check_flat("rmsprop_update", params, grads=grads, square_avg=square_avg, grad_avg=grad_avg,
                   momentum_buf=momentum_buf)
        kernel = nk.rmsprop_update_parallel if _parallel(params) else nk.rmsprop_update
        kernel(params, grads, square_avg, grad_avg, momentum_buf, float(lr), float(decay), 1.0 - decay,
               float(eps), float(weight_decay), float(momentum), bool(centered), _tiny(params))

    def adam_update(self, params, grads, exp_avg, exp_avg_sq, scratch, *, lr, beta1, beta2, eps, weight_decay,
                    step):
        check_flat("adam_update", params, grads=grads, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
        kernel = nk.adam_update_parallel if _parallel(params) else nk.adam_update
        kernel(params, grads, exp_avg, exp_avg_sq, lr / (1.0 - beta1 ** step), float(beta1), 1.0 - beta1,
               float(beta2), 1.0 - beta2, float(eps), float(weight_decay), 1.0 / (1.0 - beta2 ** step) ** 0.5,
               _tiny(params))


# Below this many parameters an optimizer pass runs serially even while fit shares OpenBLAS's threads: the bias
# ranges of a folded SGD step (10-500 values, four passes a step) cost more to hand to the pool than to compute
# (measured on 2 cores, sparse first layer: 15 us a step when the other core was free, 2.9 ms when another process
# held it). Elementwise kernels: the same bits either way.
PARALLEL_MIN_PARAMS = 1 << 15


def _parallel(params) -> bool:
    return params.size >= PARALLEL_MIN_PARAMS and blas_pool.sharing()


_TINY = {np.dtype(t): float(np.finfo(t).tiny) for t in (np.float32, np.float64)}


def _tiny(array):
    """The smallest normal number of the array's dtype: optimizer state below it is stored as zero.
    (A table: np.finfo costs ~2 us, and the bias updates of a folded SGD step call this four times.)"""
    return _TINY[array.dtype]
