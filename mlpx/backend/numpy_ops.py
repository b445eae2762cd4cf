"""NumpyOps: the reference backend. Every op mlpx needs, written plainly in NumPy, float32 or float64, in place.

The model, losses and optimizers call only these methods, never numpy directly, so a backend that overrides them
(CupyOps) runs the very same training code. Array arguments carry their shape in their names where it helps:
``x_bi`` is (batch, in), ``w_io`` is (in, out), ``b_o`` is (out,).
"""
from __future__ import annotations

import contextlib

import numpy as np

from .. import activations as act_ref


class NumpyOps:
    """Array operations on the CPU with NumPy (and its BLAS for matrix products)."""

    name = "numpy"
    xp = np
    fast_gemm_accumulate = False  # gemm_accumulate costs no more than gemm (mlpx.policy may then fold plain SGD)
    sparse_input = False  # has the sparse first-layer ops (sparse_batch ... sparse_weight_update): NumbaOps only

    # ---- arrays -------------------------------------------------------------------------------------------------
    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def asarray(self, host_array, dtype=None):
        """Host (NumPy) array -> backend array; no copy when it already fits."""
        return np.ascontiguousarray(host_array, dtype=dtype)

    def to_host(self, array) -> np.ndarray:
        """Backend array -> NumPy array (a copy only where the backend needs one)."""
        return np.asarray(array)

    def is_own_array(self, array) -> bool:
        return isinstance(array, np.ndarray)

    def synchronize(self) -> None:
        """Wait for queued work to finish (nothing to wait for on the CPU)."""

    def training_threads(self, share: bool):
        """A context manager around a training run (``fit``) for backends that arrange their threads for it;
        ``share`` is the training policy's ``share_blas_threads`` (mlpx.policy). Nothing to arrange here."""
        return contextlib.nullcontext()

    def update_scratch(self, params):
        """The parameter-sized temporary the ``*_update`` ops need for ``params`` (an optimizer allocates it once),
        or None on backends whose fused kernels keep their temporaries in registers."""
        return self.empty(params.shape, params.dtype)

    def take_rows(self, src, index, out):
        """out = src[index]: gather a batch of rows into a preallocated buffer."""
        np.take(src, index, axis=0, out=out)

    # ---- dense layers -------------------------------------------------------------------------------------------
    def gemm(self, a, b, out, trans_a: bool = False, trans_b: bool = False):
        """out = op(a) @ op(b), op = transpose where asked; transposes are views, never copies."""
        np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)
        return out

    def gemm_accumulate(self, a, b, out, alpha: float, beta: float, trans_a: bool = False, trans_b: bool = False):
        """out = beta * out + alpha * (op(a) @ op(b)): BLAS gemm with its scalars (here with a temporary)."""
        product = self.xp.matmul(a.T if trans_a else a, b.T if trans_b else b)
        out *= beta
        product *= alpha
        out += product
        return out

    def bias_act_forward(self, z_bo, bias_o, act: str, out_bo, slope: float = 0.0):
        """out = act(z + bias) (out may be z)."""
        np.add(z_bo, bias_o, out=out_bo)
        act_ref.FORWARD[act](out_bo, out_bo, slope)
        return out_bo

    def act_backward(self, dy_bo, y_bo, act: str, out_bo, slope: float = 0.0):
        """out = dy * act'(y), from the saved activation output y (out may be dy)."""
        act_ref.BACKWARD[act](dy_bo, y_bo, out_bo, slope)
        return out_bo

    def bias_grad(self, dz_bo, out_o):
        """out = column sums of dz: the bias gradient."""
        np.sum(dz_bo, axis=0, out=out_o)
        return out_o

    def act_backward_bias_grad(self, dy_bo, y_bo, act: str, dz_out_bo, db_out_o, slope: float = 0.0):
        """dz = dy * act'(y) and db = column sums of dz; one pass on backends with a fused kernel."""
        self.act_backward(dy_bo, y_bo, act, dz_out_bo, slope)
        self.bias_grad(dz_out_bo, db_out_o)

    # ---- output heads and losses -------------------------------------------------------------------------------
    # Each loss op takes the output layer's pre-bias product z (batch, classes), adds the bias in place, writes the
    # gradient of the *mean* loss w.r.t. z into grad_out, and adds [sum of per-sample losses, correct predictions]
    # into the 2-element accumulator ``stats`` (it stays on the device: no host synchronization per step).
    # With row weights (sample weights) the model calls :meth:`weighted_loss` instead, on every backend the same
    # definition built on the backend's unweighted op.

    def _softmax_rows(self, logits_bk, out_bk):
        """Numerically stable row softmax of logits into out; returns (row max, row sum of exp)."""
        row_max = logits_bk.max(axis=1, keepdims=True)
        np.subtract(logits_bk, row_max, out=out_bk)
        np.exp(out_bk, out=out_bk)
        row_sum = out_bk.sum(axis=1, keepdims=True)
        out_bk /= row_sum
        return row_max, row_sum

    @staticmethod
    def _count_correct(logits_bk, labels_b):
        return np.count_nonzero(logits_bk.argmax(axis=1) == labels_b)

    def softmax_xent(self, z_bk, bias_k, labels_b, grad_out_bk, stats):
        """Softmax + cross-entropy: loss_i = logsumexp(z_i) - z_i[label_i]; grad = (p - onehot) / B."""
        batch = z_bk.shape[0]
        z_bk += bias_k
        row_max, row_sum = self._softmax_rows(z_bk, grad_out_bk)
        rows = np.arange(batch)
        loss_sum = np.sum(np.log(row_sum[:, 0]) + row_max[:, 0] - z_bk[rows, labels_b])
        stats[0] += loss_sum
        stats[1] += self._count_correct(z_bk, labels_b)
        grad_out_bk[rows, labels_b] -= 1.0
        grad_out_bk *= 1.0 / batch

    def softmax_mse(self, z_bk, bias_k, labels_b, grad_out_bk, stats):
        """MSE on softmax probabilities against one-hot labels: loss_i = sum_k (p_ik - t_ik)^2.

        With g = 2 (p - t) / B, the softmax Jacobian gives dz_j = p_j (g_j - sum_k g_k p_k).
        """
        batch = z_bk.shape[0]
        z_bk += bias_k
        probs = grad_out_bk
        self._softmax_rows(z_bk, probs)
        rows = np.arange(batch)
        diff = probs.copy()
        diff[rows, labels_b] -= 1.0
        stats[0] += np.sum(diff * diff)
        stats[1] += self._count_correct(z_bk, labels_b)
        diff *= 2.0 / batch
        inner = np.sum(diff * probs, axis=1, keepdims=True)
        np.subtract(diff, inner, out=diff)
        np.multiply(probs, diff, out=grad_out_bk)

    def identity_mse(self, z_bk, bias_k, targets_bk, grad_out_bk, stats):
        """Identity head with MSE on real-valued targets: loss_i = sum_k (y_ik - t_ik)^2, grad = 2 (y - t) / B."""
        batch = z_bk.shape[0]
        z_bk += bias_k
        np.subtract(z_bk, targets_bk, out=grad_out_bk)
        stats[0] += np.sum(grad_out_bk * grad_out_bk)
        grad_out_bk *= 2.0 / batch

    def softmax(self, z_bk, bias_k, out_bk):
        """Inference: probabilities = softmax(z + bias)."""
        z_bk += bias_k
        self._softmax_rows(z_bk, out_bk)
        return out_bk

    def weighted_loss(self, op: str, z_bk, bias_k, targets, grad_out_bk, stats, row_weights_b) -> None:
        """Loss op ``op`` ("softmax_xent", "softmax_mse", "identity_mse") with one weight per row: stats[0] gets
        sum(w_i loss_i) and the gradient is that of sum(w_i loss_i) / sum(w); the correct count stays unweighted.
        Built on this backend's unweighted op and written with ``self.xp`` (so it runs on the device of any
        backend): the unweighted op adds the bias into z and writes the mean loss's gradient; each gradient row is
        then scaled by w_i B / sum(w), and the weighted loss sum is taken from the per-row losses of z. Sample
        weights are a scikit-learn feature: this path favours one definition for every backend over a fused
        kernel."""
        xp, batch = self.xp, z_bk.shape[0]
        counts = self.zeros(2, np.float64)
        getattr(self, op)(z_bk, bias_k, targets, grad_out_bk, counts)
        total = row_weights_b.sum(dtype=np.float64)
        grad_out_bk *= (row_weights_b * (batch / total)).astype(grad_out_bk.dtype, copy=False).reshape(-1, 1)
        if op == "identity_mse":
            diff = z_bk - targets
            losses = (diff * diff).sum(axis=1)
        else:
            row_max = z_bk.max(axis=1)
            exp = xp.exp(z_bk - row_max[:, None])
            row_sum = exp.sum(axis=1)
            rows = xp.arange(batch)
            if op == "softmax_xent":
                losses = xp.log(row_sum) + row_max - z_bk[rows, targets]
            else:
                diff = exp / row_sum[:, None]
                diff[rows, targets] -= 1
                losses = (diff * diff).sum(axis=1)
        stats[0:1] += (row_weights_b * losses).sum()
        stats[1:2] += counts[1:2]

    # ---- diagnostics (mlpx/diagnostics.py): reductions at log points only ------------------------------------------
    # Written with ``self.xp``, so the GPU backend runs them on the device: each result goes into a slice of a
    # float64 device vector (slice assignment, never a host scalar), which the loop reads back with its loss totals.

    def sum_squares(self, x, out_1):
        """out_1[0] = sum of x * x, summed in float64 (a squared norm); ``out_1``: a 1-element float64 view."""
        flat = x.reshape(-1).astype(np.float64, copy=False)
        out_1[0:1] = self.xp.dot(flat, flat)

    def activation_stats(self, y_bo, act: str, out_3):
        """From a hidden layer's outputs y (batch x units) into the float64 view out_3: [mean of y, fraction of
        outputs saturated (sigmoid y < 0.01 or > 0.99, tanh |y| > 0.99; else 0), fraction of units with
        y <= 0 on every row of the batch (relu, leaky_relu; else 0)]."""
        out_3[0:1] = y_bo.mean(dtype=np.float64)
        if act == "sigmoid":
            out_3[1:2] = ((y_bo < 0.01) | (y_bo > 0.99)).mean(dtype=np.float64)
        elif act == "tanh":
            out_3[1:2] = (self.xp.abs(y_bo) > 0.99).mean(dtype=np.float64)
        else:
            out_3[1:2] = 0.0
        if act in ("relu", "leaky_relu"):
            out_3[2:3] = (y_bo.max(axis=0) <= 0).mean(dtype=np.float64)
        else:
            out_3[2:3] = 0.0

    # ---- optimizers: one pass over the flat parameter buffer ------------------------------------------------------
    # ``scratch`` is a preallocated buffer the size of the parameters; ``grads`` may be overwritten.
    # Formulas and defaults follow torch.optim exactly (weight decay added to the gradient).

    def sgd_update(self, params, grads, velocity, scratch, *, lr, momentum, dampening, nesterov, weight_decay,
                   first_step):
        g = grads
        if weight_decay:
            np.multiply(params, weight_decay, out=scratch)
            g += scratch
        if momentum:
            if first_step:
                np.copyto(velocity, g)
            else:
                velocity *= momentum
                np.multiply(g, 1.0 - dampening, out=scratch)
                velocity += scratch
            if nesterov:
                np.multiply(velocity, momentum, out=scratch)
                g += scratch
            else:
                g = velocity
        np.multiply(g, lr, out=scratch)
        params -= scratch

    def rmsprop_update(self, params, grads, square_avg, grad_avg, momentum_buf, scratch, *, lr, decay, eps,
                       weight_decay, momentum, centered):
        g = grads
        if weight_decay:
            np.multiply(params, weight_decay, out=scratch)
            g += scratch
        square_avg *= decay
        np.multiply(g, g, out=scratch)
        scratch *= 1.0 - decay
        square_avg += scratch
        if centered:
            grad_avg *= decay
            np.multiply(g, 1.0 - decay, out=scratch)
            grad_avg += scratch
            np.multiply(grad_avg, grad_avg, out=scratch)
            np.subtract(square_avg, scratch, out=scratch)
            np.sqrt(scratch, out=scratch)
        else:
            np.sqrt(square_avg, out=scratch)
        scratch += eps
        np.divide(g, scratch, out=scratch)
        if momentum:
            momentum_buf *= momentum
            momentum_buf += scratch
            np.multiply(momentum_buf, lr, out=scratch)
        else:
            scratch *= lr
        params -= scratch

    def adam_update(self, params, grads, exp_avg, exp_avg_sq, scratch, *, lr, beta1, beta2, eps, weight_decay,
                    step):
        g = grads
        if weight_decay:
            np.multiply(params, weight_decay, out=scratch)
            g += scratch
        exp_avg *= beta1
        np.multiply(g, 1.0 - beta1, out=scratch)
        exp_avg += scratch
        exp_avg_sq *= beta2
        np.multiply(g, g, out=scratch)
        scratch *= 1.0 - beta2
        exp_avg_sq += scratch
        bias_correction1 = 1.0 - beta1 ** step
        bias_correction2_sqrt = (1.0 - beta2 ** step) ** 0.5
        np.sqrt(exp_avg_sq, out=scratch)
        scratch *= 1.0 / bias_correction2_sqrt
        scratch += eps
        np.divide(exp_avg, scratch, out=scratch)
        scratch *= lr / bias_correction1
        params -= scratch
