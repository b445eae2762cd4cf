"""CPU kernels compiled with Numba: the fused one-pass loops that NumPy cannot express.

They mirror the CUDA kernels in kernels/: bias + activation in one pass, activation backward fused with the bias
gradient, softmax + loss + gradient in one pass per row, and each optimizer as one pass over the
flat parameter buffer. NumPy would need 2-12 separate passes for each, and on a 2-core machine those passes, not the
matrix products, dominated an epoch. Formulas are the same as the NumPy reference (mlpx/activations.py and
NumpyOps), written per element; activation codes (mlpx.activations.ACT_CODES): 0 sigmoid, 1 tanh, 2 relu,
3 leaky_relu, 4 identity.
Compiled on first use and cached on disk by Numba (``cache=True``). Single-threaded, except the optimizer kernels'
``*_parallel`` twins, which run only while mlpx.backend.blas_pool has OpenBLAS's jobs on Numba's own threads:
otherwise Numba's thread pool and OpenBLAS's spinning threads fight over the cores (measured: 5x slower steps),
and the other kernels are too short to split (64 rows a step). error_model="numpy" drops the
division-by-zero checks that kept LLVM from vectorizing the loops (measured: Adam pass 2.2 ms -> 0.56 ms). No
fastmath: fused multiply-adds changed the rounding of near-cancelling updates away from the NumPy reference.
Kernels that may run in place (out is the input) first copy each input row to a small local array: LLVM vectorizes
a loop only when its runtime check finds the arrays it reads and writes apart, and in place it falls back to scalar
code (measured at 64 x 500: bias+relu 42 -> 8 us, relu backward + bias gradient 108 -> 22 us).
Scalars arrive as Python floats and are cast to the arrays' dtype inside (``cast = x.dtype.type``): float32
arithmetic stays float32, as in the reference, and Numba's dispatcher unboxes a Python float in a fraction of the
time a NumPy scalar takes (~0.2 vs ~1 us each; Adam has ten).
"""
from __future__ import annotations

import math
import types

import numpy as np
from numba import njit, prange


@njit(cache=True, error_model="numpy")
def bias_act_forward(z_bo, bias_o, act, slope, out_bo):
    """out = act(z + bias) for relu (2), leaky relu (3) and identity (4); out may be z."""
    rows, cols = z_bo.shape
    slope = z_bo.dtype.type(slope)
    row = np.empty(cols, z_bo.dtype)  # in-place safe copy of the input row (see the module docstring)
    for i in range(rows):
        for j in range(cols):
            row[j] = z_bo[i, j]
        for j in range(cols):
            v = row[j] + bias_o[j]
            if act == 2:
                v = v if v > 0 else v * 0   # max(v, 0), NaN stays NaN as in np.maximum
            elif act == 3:
                v = max(v, v * slope)
            out_bo[i, j] = v


@njit(cache=True, error_model="numpy")
def take_rows(src_nf, index_b, out_bf):
    """out = src[index]: gather a batch of rows (2.5x faster than np.take at batch 64 x 784, measured)."""
    cols = src_nf.shape[1]
    for i in range(index_b.shape[0]):
        row, out = src_nf[index_b[i]], out_bf[i]
        for j in range(cols):
            out[j] = row[j]


@njit(cache=True, error_model="numpy")
def bias_grad(dz_bo, db_out_o):
    """db = column sums of dz (5x faster than np.sum(axis=0) on a 64 x 10 block: no reduction set-up)."""
    db_out_o[:] = 0
    for i in range(dz_bo.shape[0]):
        row = dz_bo[i]
        for j in range(dz_bo.shape[1]):
            db_out_o[j] += row[j]


@njit(cache=True, error_model="numpy")
def sum_squares(x_n):
    """sum of x * x in float64 (diagnostics' squared norms) without NumPy's float64 copy of x (astype + dot: 1.0 ms
    for the reference network's weights, this 0.36 ms, measured); four running sums so that the adds overlap; the
    same order every call."""
    s0 = s1 = s2 = s3 = 0.0
    n4 = x_n.size - x_n.size % 4
    for i in range(0, n4, 4):
        a, b, c, d = np.float64(x_n[i]), np.float64(x_n[i + 1]), np.float64(x_n[i + 2]), np.float64(x_n[i + 3])
        s0 += a * a
        s1 += b * b
        s2 += c * c
        s3 += d * d
    for i in range(n4, x_n.size):
        a = np.float64(x_n[i])
        s0 += a * a
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, error_model="numpy")
def act_backward_bias_grad(dy_bo, y_bo, act, slope, dz_out_bo, db_out_o):
    """dz = dy * act'(y) from the saved output y, and db = column sums of dz, in one pass."""
    rows, cols = dy_bo.shape
    slope = dy_bo.dtype.type(slope)
    db_out_o[:] = 0
    row = np.empty(cols, dy_bo.dtype)  # in-place safe copy of the input row (see the module docstring)
    for i in range(rows):
        for j in range(cols):
            row[j] = dy_bo[i, j]
        for j in range(cols):
            y = y_bo[i, j]
            d = row[j]
            if act == 0:        # sigmoid' = y (1 - y)
                d = d * (y * (1 - y))
            elif act == 1:      # tanh' = 1 - y^2
                d = d * (1 - y * y)
            elif act == 2:      # relu' = 1 if y > 0 else 0
                d = d if y > 0 else d * 0
            elif act == 3:      # leaky relu' = 1 if y > 0 else slope
                d = d if y > 0 else d * slope
            dz_out_bo[i, j] = d
            db_out_o[j] += d


@njit(cache=True, error_model="numpy")
def _softmax_row(z_k, bias_k, p_k):
    """p = softmax(z + bias) for one row (z gets the bias added); returns (log-sum-exp, argmax)."""
    best = 0
    for k in range(z_k.shape[0]):
        z_k[k] += bias_k[k]
        if z_k[k] > z_k[best]:
            best = k
    top = z_k[best]
    total = 0.0
    for k in range(z_k.shape[0]):
        p_k[k] = math.exp(z_k[k] - top)
        total += p_k[k]
    for k in range(z_k.shape[0]):
        p_k[k] = p_k[k] / total
    return top + math.log(total), best


@njit(cache=True, error_model="numpy")
def softmax_xent(z_bk, bias_k, labels_b, grad_out_bk, stats):
    """Cross-entropy on softmax(z + bias): loss and correct count into stats, grad = (p - onehot) / B."""
    rows = z_bk.shape[0]
    scale = 1.0 / rows
    loss, correct = 0.0, 0
    for i in range(rows):
        label = labels_b[i]
        lse, best = _softmax_row(z_bk[i], bias_k, grad_out_bk[i])
        loss += lse - z_bk[i, label]
        correct += best == label
        grad_out_bk[i, label] -= 1
        for k in range(z_bk.shape[1]):
            grad_out_bk[i, k] *= scale
    stats[0] += loss
    stats[1] += correct


@njit(cache=True, error_model="numpy")
def softmax_mse(z_bk, bias_k, labels_b, grad_out_bk, stats):
    """sum_k (p_k - onehot_k)^2 on softmax(z + bias); dz_j = p_j (g_j - sum_k g_k p_k), g = 2 (p - t) / B."""
    rows, cols = z_bk.shape
    scale = 2.0 / rows
    loss, correct = 0.0, 0
    for i in range(rows):
        label = labels_b[i]
        p = grad_out_bk[i]
        _, best = _softmax_row(z_bk[i], bias_k, p)
        correct += best == label
        inner = 0.0
        for k in range(cols):
            diff = p[k] - (1.0 if k == label else 0.0)
            loss += diff * diff
            inner += scale * diff * p[k]
        for k in range(cols):
            diff = p[k] - (1.0 if k == label else 0.0)
            p[k] = p[k] * (scale * diff - inner)
    stats[0] += loss
    stats[1] += correct


@njit(cache=True, error_model="numpy")
def identity_mse(z_bk, bias_k, targets_bk, grad_out_bk, stats):
    """y = z + bias; loss sum_k (y_k - t_k)^2 into stats; grad = 2 (y - t) / B."""
    rows, cols = z_bk.shape
    scale = 2.0 / rows
    loss = 0.0
    for i in range(rows):
        for k in range(cols):
            z_bk[i, k] += bias_k[k]
            diff = z_bk[i, k] - targets_bk[i, k]
            loss += diff * diff
            grad_out_bk[i, k] = scale * diff
    stats[0] += loss


# ---- optimizers: one pass over the flat parameters; the formulas of torch.optim -----------------------------------
# Scalars arrive in the parameters' dtype, with 1 - beta etc. precomputed, so that float32 math stays float32 (SIMD).
# Optimizer state decays geometrically where gradients are zero (Adam's first moment by 0.9 a step), and on MNIST
# thousands of entries reached the subnormal range within an epoch; arithmetic on subnormals is slow on x86, and the
# Adam step grew from 0.6 ms to 2.6 ms (measured). So state values below the smallest normal number (``tiny``) are
# stored as zero, as the GPU kernels do (CuPy compiles with -ftz=true); the difference is below 1.2e-38 in float32.
# The optimizer loops use prange: the kernels below are serial (prange is range there), and each has a twin compiled
# with parallel=True (``*_parallel``) that splits the loop over Numba's threads; NumbaOps uses the twins only while
# mlpx.backend.blas_pool shares OpenBLAS's threads with Numba (see there why only then). Elementwise: the twins give
# the same bits.
@njit(cache=True, error_model="numpy", inline="always")
def _flush(x, tiny):
    """x, or a zero of x's sign when x is subnormal (|x| < tiny), as CUDA's flush-to-zero; NaN and infinities pass
    unchanged. A multiply, not a branch: LLVM vectorizes it in the parallel twins as well (a branch there: the Adam
    twin took 740 us, slower than the serial kernel)."""
    return x * (abs(x) >= tiny)


@njit(cache=True, error_model="numpy")
def sgd_update(params, grads, velocity, lr, momentum, one_minus_dampening, nesterov, weight_decay, first_step,
               tiny):
    cast = params.dtype.type
    lr, momentum, one_minus_dampening, weight_decay, tiny = (cast(lr), cast(momentum), cast(one_minus_dampening),
                                                             cast(weight_decay), cast(tiny))
    for i in prange(params.shape[0]):
        g = grads[i] + weight_decay * params[i]
        if momentum != 0:
            v = _flush(g if first_step else momentum * velocity[i] + one_minus_dampening * g, tiny)
            velocity[i] = v
            g = g + momentum * v if nesterov else v
        params[i] -= lr * g


@njit(cache=True, error_model="numpy")
def rmsprop_update(params, grads, square_avg, grad_avg, momentum_buf, lr, decay, one_minus_decay, eps,
                   weight_decay, momentum, centered, tiny):
    cast = params.dtype.type
    lr, decay, one_minus_decay, eps = cast(lr), cast(decay), cast(one_minus_decay), cast(eps)
    weight_decay, momentum, tiny = cast(weight_decay), cast(momentum), cast(tiny)
    for i in prange(params.shape[0]):
        g = grads[i] + weight_decay * params[i]
        sq = _flush(decay * square_avg[i] + (g * g) * one_minus_decay, tiny)
        square_avg[i] = sq
        if centered:
            ga = _flush(decay * grad_avg[i] + one_minus_decay * g, tiny)
            grad_avg[i] = ga
            sq = sq - ga * ga
        step = g / (math.sqrt(sq) + eps)
        if momentum != 0:
            step = _flush(momentum * momentum_buf[i] + step, tiny)
            momentum_buf[i] = step
        params[i] -= lr * step


@njit(cache=True, error_model="numpy")
def adam_update(params, grads, exp_avg, exp_avg_sq, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                weight_decay, inv_bias_correction2_sqrt, tiny):
    """step_size = lr / (1 - beta1^t); the denominator is sqrt(v) / sqrt(1 - beta2^t) + eps, as torch.optim.Adam."""
    cast = params.dtype.type
    step_size, beta1, one_minus_beta1, beta2 = cast(step_size), cast(beta1), cast(one_minus_beta1), cast(beta2)
    one_minus_beta2, eps, weight_decay = cast(one_minus_beta2), cast(eps), cast(weight_decay)
    inv_bias_correction2_sqrt, tiny = cast(inv_bias_correction2_sqrt), cast(tiny)
    for i in prange(params.shape[0]):
        g = grads[i] + weight_decay * params[i]
        m = _flush(beta1 * exp_avg[i] + one_minus_beta1 * g, tiny)
        v = _flush(beta2 * exp_avg_sq[i] + (g * g) * one_minus_beta2, tiny)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        params[i] -= (m / (math.sqrt(v) * inv_bias_correction2_sqrt + eps)) * step_size


def parallel_twin(kernel):
    """``kernel`` compiled with parallel=True, under its own name: Numba's disk cache keys entries by name and would
    otherwise hand the parallel build the serial one's machine code (seen with numba 0.68)."""
    fn = kernel.py_func
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel", fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    return njit(cache=True, error_model="numpy", parallel=True)(twin)


sgd_update_parallel = parallel_twin(sgd_update)
rmsprop_update_parallel = parallel_twin(rmsprop_update)
adam_update_parallel = parallel_twin(adam_update)
