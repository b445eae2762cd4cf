"""CupyOps: the GPU backend. It inherits the Ops interface from the NumPy reference and overrides the hot ops with
the fused kernels in kernels/*.cu and cuBLAS matrix products, through a thin device interface (device.py).

All the orchestration is here and device-independent: which kernel, which arguments (shapes carried in the names,
scalars rounded to the parameters' precision on the host), which grid. On a GPU the device is ``CupyDevice``; in CI
it is ``EmulatedDevice``, which runs the same kernel source compiled for the CPU (emulated.py). Nothing here reads
a value back to the host: losses and accuracy accumulate on the device, in the caller's ``stats`` buffer.
"""
from __future__ import annotations

import math

import numpy as np

from ..activations import ACT_CODES, ACTIVATIONS
from .kernel_sources import C_TYPE_OF_DTYPE, kernel_specs
from .numpy_ops import NumpyOps
from .shapes import check_flat
from .shapes import check_loss, check_shapes as _check_shapes



def _check_act(act: str) -> int:
    if act not in ACT_CODES:
        raise ValueError(f"unknown activation {act!r}; expected one of {', '.join(ACTIVATIONS)}")
    return ACT_CODES[act]


class CupyOps(NumpyOps):
    """The fused-kernel backend over a device (``CupyDevice`` on a GPU, ``EmulatedDevice`` on the CPU)."""

    BLOCK = 256             # threads per block for elementwise (grid-stride) kernels
    ROW_BLOCK = 128         # threads per block for one-thread-per-row / per-column kernels
    MAX_BLOCKS = 4096       # grid-stride kernels never launch more blocks than this
    MSE_MAX_BLOCKS = 16     # identity_mse: few threads, so few atomic adds into the loss accumulator

    def __init__(self, device, max_blocks: int | None = None, remake=None):
        self.device = device
        self.xp = device.xp
        self.name = device.name          # "cupy", or "emulated" over the CPU emulation
        self.kernels = kernel_specs()
        if max_blocks is not None:
            self.MAX_BLOCKS = self.MSE_MAX_BLOCKS = int(max_blocks)
        # How a copy of this backend is made in another process: (callable, args). The device holds the cupy
        # module, a compiled module or a loaded library, none of which pickles; a backend is remade by name.
        self._remake = remake or (_backend_by_name, (self.name,))

    def __reduce__(self):
        """Pickle and deepcopy by name: a model moved to another process (or copied) gets that process's backend
        of the same kind (``get_ops("cupy")``), never a copy of the device."""
        return self._remake

    @property
    def counters(self):
        return self.device.counters

    # ---- launching ----------------------------------------------------------------------------------------------
    def _launch(self, kernel: str, dtype, grid: int, block: int, *args) -> None:
        self.device.launch(self.kernels[kernel], C_TYPE_OF_DTYPE[np.dtype(dtype)], grid, block, args)

    def _elementwise(self, kernel: str, dtype, n: int, *args, max_blocks: int | None = None) -> None:
        """Launch a grid-stride kernel over n elements."""
        if n > 0:
            grid = min(math.ceil(n / self.BLOCK), max_blocks or self.MAX_BLOCKS)
            self._launch(kernel, dtype, grid, self.BLOCK, *args)

    def _per_thread(self, kernel: str, dtype, threads: int, *args) -> None:
        """Launch a kernel with one thread per row (or per column)."""
        if threads > 0:
            self._launch(kernel, dtype, math.ceil(threads / self.ROW_BLOCK), self.ROW_BLOCK, *args)

    # ---- arrays -------------------------------------------------------------------------------------------------
    def empty(self, shape, dtype):
        return self.device.empty(shape, dtype)

    def zeros(self, shape, dtype):
        return self.device.zeros(shape, dtype)

    def asarray(self, host_array, dtype=None):
        """Host (NumPy) array -> device array (a copy); a device array of the right dtype passes through."""
        return self.device.asarray(host_array, dtype)

    def to_host(self, array) -> np.ndarray:
        """Device array -> NumPy array (a device-to-host copy: the host waits for the device)."""
        return self.device.to_host(array)

    def is_own_array(self, array) -> bool:
        return self.device.is_device_array(array)

    def synchronize(self) -> None:
        self.device.synchronize()

    def take_rows(self, src, index, out):
        """out = src[index] gathered on the device (index: int64 device array)."""
        rows = index.shape[0]
        cols = int(np.prod(src.shape[1:], dtype=np.int64))
        _check_shapes("take_rows", (rows, *src.shape[1:]), out=out)
        self._elementwise("take_rows", src.dtype, rows * cols, src, index, out, rows, cols, src.shape[0])

    # ---- dense layers -------------------------------------------------------------------------------------------
    def gemm(self, a, b, out, trans_a: bool = False, trans_b: bool = False):
        """out = op(a) @ op(b) by cuBLAS into the preallocated out; transposes are flags, never copies."""
        self.device.gemm(a, b, out, trans_a, trans_b)
        return out

    def bias_act_forward(self, z_bo, bias_o, act: str, out_bo, slope: float = 0.0):
        rows, cols = z_bo.shape
        _check_shapes("bias_act_forward", (cols,), bias_o=bias_o)
        _check_shapes("bias_act_forward", (rows, cols), out_bo=out_bo)
        self._elementwise("bias_act_forward", z_bo.dtype, rows * cols, z_bo, bias_o, out_bo, rows, cols,
                          _check_act(act), slope)
        return out_bo

    def act_backward(self, dy_bo, y_bo, act: str, out_bo, slope: float = 0.0):
        _check_shapes("act_backward", tuple(dy_bo.shape), y_bo=y_bo, out_bo=out_bo)
        self._elementwise("act_backward", dy_bo.dtype, dy_bo.size, dy_bo, y_bo, out_bo, dy_bo.size, _check_act(act),
                          slope)
        return out_bo

    def bias_grad(self, dz_bo, out_o):
        rows, cols = dz_bo.shape
        _check_shapes("bias_grad", (cols,), out_o=out_o)
        self._per_thread("bias_grad", dz_bo.dtype, cols, dz_bo, out_o, rows, cols)
        return out_o

    def act_backward_bias_grad(self, dy_bo, y_bo, act: str, dz_out_bo, db_out_o, slope: float = 0.0):
        """dz = dy * act'(y) and db = column sums of dz, in one kernel (one thread per column)."""
        rows, cols = dy_bo.shape
        _check_shapes("act_backward_bias_grad", (rows, cols), y_bo=y_bo, dz_out_bo=dz_out_bo)
        _check_shapes("act_backward_bias_grad", (cols,), db_out_o=db_out_o)
        self._per_thread("act_backward_bias_grad", dy_bo.dtype, cols, dy_bo, y_bo, dz_out_bo, db_out_o, rows, cols,
                         _check_act(act), slope)

    # ---- output heads and losses (one kernel each; see the NumPy reference for the contract) -------------------
    def _loss(self, kernel: str, z_bk, bias_k, targets, grad_out_bk, stats, scale: float) -> None:
        check_loss(kernel, z_bk, bias_k, targets, grad_out_bk, stats)
        rows, classes = z_bk.shape
        if kernel == "identity_mse":
            self._elementwise(kernel, z_bk.dtype, rows * classes, z_bk, bias_k, targets, grad_out_bk, stats, rows,
                              classes, scale, max_blocks=self.MSE_MAX_BLOCKS)
        else:
            self._per_thread(kernel, z_bk.dtype, rows, z_bk, bias_k, targets, grad_out_bk, stats, rows, classes,
                             scale)

    def softmax_xent(self, z_bk, bias_k, labels_b, grad_out_bk, stats):
        self._loss("softmax_xent", z_bk, bias_k, labels_b, grad_out_bk, stats, 1.0 / z_bk.shape[0])

    def softmax_mse(self, z_bk, bias_k, labels_b, grad_out_bk, stats):
        self._loss("softmax_mse", z_bk, bias_k, labels_b, grad_out_bk, stats, 2.0 / z_bk.shape[0])

    def identity_mse(self, z_bk, bias_k, targets_bk, grad_out_bk, stats):
        self._loss("identity_mse", z_bk, bias_k, targets_bk, grad_out_bk, stats, 2.0 / z_bk.shape[0])

    def softmax(self, z_bk, bias_k, out_bk):
        rows, classes = z_bk.shape
        _check_shapes("softmax", (classes,), bias_k=bias_k)
        _check_shapes("softmax", (rows, classes), out_bk=out_bk)
        self._per_thread("softmax", z_bk.dtype, rows, z_bk, bias_k, out_bk, rows, classes)
        return out_bk

    # ---- optimizers: one launch over the flat parameter buffer ----------------------------------------------------
    def update_scratch(self, params):
        """None: the optimizer kernels keep their temporaries in registers."""
        return None

    # Scalars are computed in double on the host exactly as the NumPy reference computes them; the launch rounds
    # them once to the parameters' precision (``scratch``: None, see update_scratch).

    def sgd_update(self, params, grads, velocity, scratch, *, lr, momentum, dampening, nesterov, weight_decay,
                   first_step):
        check_flat("sgd_update", params, grads=grads, velocity=velocity)
        self._elementwise("sgd_update", params.dtype, params.size, params, grads, velocity, params.size, lr, momentum,
                          1.0 - dampening, weight_decay, int(bool(nesterov)), int(bool(first_step)))

    def rmsprop_update(self, params, grads, square_avg, grad_avg, momentum_buf, scratch, *, lr, decay, eps,
                       weight_decay, momentum, centered):
        check_flat("rmsprop_update", params, grads=grads, square_avg=square_avg, grad_avg=grad_avg,
                   momentum_buf=momentum_buf)
        self._elementwise("rmsprop_update", params.dtype, params.size, params, grads, square_avg, grad_avg,
                          momentum_buf, params.size, lr, decay, 1.0 - decay, eps, weight_decay, momentum,
                          int(bool(centered)))

    def adam_update(self, params, grads, exp_avg, exp_avg_sq, scratch, *, lr, beta1, beta2, eps, weight_decay,
                    step):
        check_flat("adam_update", params, grads=grads, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
        bias_correction1 = 1.0 - beta1 ** step
        bias_correction2_sqrt = (1.0 - beta2 ** step) ** 0.5
        self._elementwise("adam_update", params.dtype, params.size, params, grads, exp_avg, exp_avg_sq, params.size,
                          beta1, 1.0 - beta1, beta2, 1.0 - beta2, 1.0 / bias_correction2_sqrt, eps,
                          lr / bias_correction1, weight_decay)

    # ---- set-up -----------------------------------------------------------------------------------------------
    def warmup(self) -> float:
        """Compile (or load from cache) every kernel now rather than at the first step; returns the seconds."""
        return self.device.compile_all()


def _backend_by_name(name: str):
    """The process's shared backend of that name (what an unpickled CupyOps becomes)."""
    from . import get_ops

    return get_ops(name)


def make_cupy_ops(count_host_reads: bool = False) -> CupyOps:
    """CupyOps on the GPU; fails with the cause when CuPy cannot run here. ``count_host_reads`` makes every host
    read of a device array (``float(a)``, ``a.item()``, ...) count as a synchronization (step counts)."""
    from . import cupy_status
    from .device import CupyDevice

    usable, why = cupy_status()
    if not usable:
        raise RuntimeError(f"backend 'cupy' cannot run here: {why}")
    remake = (make_cupy_ops, (True,)) if count_host_reads else None
    return CupyOps(CupyDevice(count_host_reads=count_host_reads), remake=remake)


def make_emulated_ops(reverse_thread_order: bool = False, max_blocks: int | None = None) -> CupyOps:
    """CupyOps over the CPU emulation of the kernels (needs g++): the GPU code path, checkable without a GPU."""
    from .emulated import EmulatedDevice

    variant = bool(reverse_thread_order) or max_blocks is not None
    remake = (make_emulated_ops, (bool(reverse_thread_order), max_blocks)) if variant else None
    return CupyOps(EmulatedDevice(reverse_thread_order), max_blocks=max_blocks, remake=remake)
