"""Every op, written once and run on every backend: NumPy (the reference), the CuPy backend over the CPU emulation
of its CUDA kernels (same .cu source, g++), the same with tiny grids and threads run in reverse order (exercises
grid-stride loops and catches threads that depend on each other), and real CuPy where a GPU is present.

Each fused backend must match NumpyOps (float32 within 1e-5, float64 within 1e-12, relative to the largest magnitude
of the reference array; elementwise ops also entry by entry), and every backend must match plain float64 textbook
formulas. Outputs are poisoned with NaN first, so an entry a kernel forgets to write shows up.
"""
import inspect

import numpy as np
import pytest

from mlpx.activations import ACTIVATIONS
from mlpx.backend import kernel_sources
from mlpx.backend.cupy_ops import ACT_CODES, CupyOps
from mlpx.backend.numpy_ops import NumpyOps

from conftest import make_ops

try:
    from mlpx.backend.numba_ops import NumbaOps
except ImportError:  # Numba not installed
    NumbaOps = None

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
TEXTBOOK_RTOL = {np.float32: 2e-5, np.float64: 1e-10}
DTYPES = [np.float32, np.float64]
REFERENCE = NumpyOps()


def _make_ops(kind):
    if kind in ("numpy", "cupy"):
        return make_ops(kind)
    ops = make_ops("emulated")
    if kind == "emulated-strided":
        ops = CupyOps(ops.device, max_blocks=2)
        ops.device.set_reverse_thread_order(True)
    else:
        ops.device.set_reverse_thread_order(False)
    return ops


@pytest.fixture(params=["numpy", "emulated", "emulated-strided", pytest.param("cupy", marks=pytest.mark.gpu)])
def ops(request):
    ops = _make_ops(request.param)
    yield ops
    if request.param == "emulated-strided":
        ops.device.set_reverse_thread_order(False)


def run(ops, method, arrays: dict, outputs=(), **kwargs) -> dict:
    """Call ops.<method>(**arrays, **kwargs) on backend copies of ``arrays``, the ``outputs`` poisoned with NaN;
    return every array as it is afterwards, on the host."""
    dev = {}
    for name, array in arrays.items():
        array = np.full_like(array, np.nan) if name in outputs else array.copy()
        dev[name] = ops.asarray(array, dtype=array.dtype)
    getattr(ops, method)(**dev, **kwargs)
    return {name: ops.to_host(value) for name, value in dev.items()}


def assert_close(got, want, dtype, elementwise=False, rtol=None):
    rtol = rtol or RTOL[dtype]
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    assert np.all(np.isfinite(got)), "non-finite entries (an output left unwritten?)"
    scale = max(float(np.max(np.abs(want))), np.finfo(np.float64).tiny) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale)
    if elementwise:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=np.finfo(dtype).tiny)


def check_against_reference(ops, method, arrays, outputs, dtype, elementwise=False, compare=None, exact=False,
                            **kwargs):
    """Run on ``ops`` and on NumpyOps; compare the named arrays (default: all); return the backend's results.
    ``exact``: on the CPU emulation the results must also be bit for bit NumPy's (same operations, same order)."""
    got = run(ops, method, arrays, outputs, **kwargs)
    want = run(REFERENCE, method, arrays, outputs, **kwargs)
    for name in compare or arrays:
        assert_close(got[name], want[name], dtype, elementwise)
        if exact and ops.name == "emulated":
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    return got


SHAPES = [(37, 23), (1, 1), (5, 300), (130, 10)]   # odd sizes; > 128 columns / rows spans several blocks


def textbook_forward(act, z, alpha):
    return {"sigmoid": lambda: 1 / (1 + np.exp(-z)), "tanh": lambda: np.tanh(z), "relu": lambda: np.maximum(z, 0),
            "leaky_relu": lambda: np.where(z > 0, z, alpha * z), "identity": lambda: z}[act]()


def textbook_grad(act, y, alpha):
    return {"sigmoid": lambda: y * (1 - y), "tanh": lambda: 1 - y ** 2, "relu": lambda: (y > 0) * 1.0,
            "leaky_relu": lambda: np.where(y > 0, 1.0, alpha), "identity": lambda: np.ones_like(y)}[act]()


# ---- dense layers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_bias_act_forward(ops, act, dtype, shape):
    rng = np.random.default_rng(1)
    z, bias = (3 * rng.standard_normal(shape)).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    arrays = {"z_bo": z, "bias_o": bias}
    got = run(ops, "bias_act_forward", {**arrays, "out_bo": z}, ("out_bo",), act=act, slope=0.05)["out_bo"]
    want = run(REFERENCE, "bias_act_forward", {**arrays, "out_bo": z}, ("out_bo",), act=act, slope=0.05)["out_bo"]
    # (1 + tanh(z/2)) / 2 cancels for very negative z: there one ulp of tanh is a large relative error, whatever the
    # implementation, so sigmoid is compared at the array's scale only.
    assert_close(got, want, dtype, elementwise=act != "sigmoid")
    z64 = z.astype(np.float64) + bias
    assert_close(got, textbook_forward(act, z64, 0.05), dtype, rtol=TEXTBOOK_RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_act_backward_and_bias_grad(ops, act, dtype, shape):
    rng = np.random.default_rng(2)
    y = textbook_forward(act, 3 * rng.standard_normal(shape), 0.05).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    want_dz = dy.astype(np.float64) * textbook_grad(act, y.astype(np.float64), np.float64(dtype(0.05)))
    got = check_against_reference(ops, "act_backward", {"dy_bo": dy, "y_bo": y, "out_bo": dy}, ("out_bo",), dtype,
                                  elementwise=True, act=act, slope=0.05)
    assert_close(got["out_bo"], want_dz, dtype, rtol=TEXTBOOK_RTOL[dtype])
    arrays = {"dy_bo": dy, "y_bo": y, "dz_out_bo": dy, "db_out_o": dy[0]}
    got = check_against_reference(ops, "act_backward_bias_grad", arrays, ("dz_out_bo", "db_out_o"), dtype, act=act,
                                  slope=0.05, compare=("dz_out_bo", "db_out_o"))
    assert_close(got["db_out_o"], want_dz.sum(axis=0), dtype, rtol=TEXTBOOK_RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_bias_grad(ops, dtype, shape):
    dz = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    got = check_against_reference(ops, "bias_grad", {"dz_bo": dz, "out_o": dz[0]}, ("out_o",), dtype)
    assert_close(got["out_o"], dz.astype(np.float64).sum(axis=0), dtype, rtol=TEXTBOOK_RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True)])
def test_gemm(ops, dtype, trans_a, trans_b):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((37, 23)).astype(dtype), rng.standard_normal((23, 11)).astype(dtype)
    a_stored, b_stored = (a.T.copy() if trans_a else a), (b.T.copy() if trans_b else b)
    out = np.empty((37, 11), dtype)
    got = check_against_reference(ops, "gemm", {"a": a_stored, "b": b_stored, "out": out}, ("out",), dtype,
                                  trans_a=trans_a, trans_b=trans_b)
    assert_close(got["out"], a.astype(np.float64) @ b, dtype, rtol=TEXTBOOK_RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("alpha, beta", [(-0.01, 1.0), (0.5, 0.99), (2.0, 0.0)])
def test_gemm_accumulate(ops, dtype, trans_a, trans_b, alpha, beta):
    """out = beta out + alpha op(a) op(b): plain SGD's weight update folded into the weight-gradient product."""
    rng = np.random.default_rng(14)
    a, b = rng.standard_normal((37, 23)).astype(dtype), rng.standard_normal((23, 11)).astype(dtype)
    a_stored, b_stored = (a.T.copy() if trans_a else a), (b.T.copy() if trans_b else b)
    out = rng.standard_normal((37, 11)).astype(dtype)
    got = check_against_reference(ops, "gemm_accumulate", {"a": a_stored, "b": b_stored, "out": out}, (), dtype,
                                  alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    want = beta * out.astype(np.float64) + alpha * (a.astype(np.float64) @ b)
    assert_close(got["out"], want, dtype, rtol=TEXTBOOK_RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_ops_give_the_same_in_place(ops, act, dtype):
    """The model runs both activation ops in place (out is the input); results must equal the out-of-place ones."""
    rng = np.random.default_rng(15)
    z, bias = (3 * rng.standard_normal((37, 300))).astype(dtype), rng.standard_normal(300).astype(dtype)
    y = textbook_forward(act, z.astype(np.float64), 0.05).astype(dtype)
    separate = {"z": ops.asarray(z.copy()), "out": ops.asarray(np.full_like(z, np.nan)), "db": ops.asarray(z[0].copy())}
    shared = {"z": ops.asarray(z.copy()), "db": ops.asarray(z[0].copy())}
    ops.bias_act_forward(separate["z"], ops.asarray(bias), act, separate["out"], 0.05)
    ops.bias_act_forward(shared["z"], ops.asarray(bias), act, shared["z"], 0.05)
    np.testing.assert_array_equal(ops.to_host(shared["z"]), ops.to_host(separate["out"]))
    dy, y_dev = ops.asarray(z.copy()), ops.asarray(y)
    out = ops.asarray(np.full_like(z, np.nan))
    ops.act_backward_bias_grad(dy, y_dev, act, out, separate["db"], 0.05)
    ops.act_backward_bias_grad(dy, y_dev, act, dy, shared["db"], 0.05)
    np.testing.assert_array_equal(ops.to_host(dy), ops.to_host(out))
    np.testing.assert_array_equal(ops.to_host(shared["db"]), ops.to_host(separate["db"]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_take_rows(ops, dtype):
    rng = np.random.default_rng(5)
    src = (100 * rng.standard_normal((41, 7))).astype(dtype)
    index = rng.integers(0, 41, 19).astype(np.int64)
    for source in (src, src[:, 0].copy()):                  # a feature matrix, and labels (1-D)
        out = np.zeros((19, *source.shape[1:]), dtype)
        got = run(ops, "take_rows", {"src": source, "index": index, "out": out},
                  () if dtype == np.int32 else ("out",))
        np.testing.assert_array_equal(got["out"], source[index])


# ---- losses and heads -------------------------------------------------------------------------------------------
def _logits(rng, rows, classes, dtype):
    z = (3 * rng.standard_normal((rows, classes))).astype(dtype)
    return z, rng.standard_normal(classes).astype(dtype), rng.integers(0, classes, rows).astype(np.int32)


def textbook_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, classes", [(64, 10), (37, 3), (130, 10), (1, 1)])
@pytest.mark.parametrize("loss", ["softmax_xent", "softmax_mse"])
def test_softmax_losses(ops, loss, dtype, rows, classes):
    rng = np.random.default_rng(6)
    z, bias, labels = _logits(rng, rows, classes, dtype)
    stats = np.array([1.5, 2.0])                                    # the op adds into it
    arrays = {"z_bk": z, "bias_k": bias, "labels_b": labels, "grad_out_bk": z, "stats": stats}
    got = check_against_reference(ops, loss, arrays, ("grad_out_bk",), dtype)
    zb = z.astype(np.float64) + bias
    p, onehot = textbook_softmax(zb), np.eye(classes)[labels]
    if loss == "softmax_xent":
        loss_sum = np.sum(-np.log(p[np.arange(rows), labels]))
        grad = (p - onehot) / rows
    else:
        loss_sum = np.sum((p - onehot) ** 2)
        g = 2 * (p - onehot) / rows
        grad = p * (g - np.sum(g * p, axis=1, keepdims=True))      # J^T g with J = diag(p) - p p^T
    assert_close(got["grad_out_bk"], grad, dtype, rtol=TEXTBOOK_RTOL[dtype])
    assert_close(got["z_bk"], zb, dtype, rtol=TEXTBOOK_RTOL[dtype])  # the bias stays added, as documented
    assert got["stats"][1] == 2.0 + np.count_nonzero(zb.argmax(axis=1) == labels)
    assert got["stats"][0] == pytest.approx(1.5 + loss_sum, rel=TEXTBOOK_RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["softmax_xent", "softmax_mse", "identity_mse"])
def test_loss_with_row_weights_is_the_weighted_mean(ops, dtype, loss):
    """row_weights w: stats[0] gets sum(w_i loss_i), the gradient is that of sum(w_i loss_i) / sum(w) (row i of the
    unweighted mean's gradient times w_i B / sum(w)), the correct count stays unweighted; same on every backend."""
    rng = np.random.default_rng(11)
    rows, classes = 37, 7
    z, bias, labels = _logits(rng, rows, classes, dtype)
    targets = labels if loss != "identity_mse" else rng.standard_normal((rows, classes)).astype(dtype)
    weights = rng.random(rows).astype(dtype) * 3
    weights[4] = 0.0
    target_name = "targets_bk" if loss == "identity_mse" else "labels_b"
    arrays = {"z_bk": z, "bias_k": bias, target_name: targets, "grad_out_bk": z, "stats": np.array([1.5, 2.0])}
    weighted = {"z_bk": z, "bias_k": bias, "targets": targets, "grad_out_bk": z, "stats": np.array([1.5, 2.0]),
                "row_weights_b": weights}
    got = check_against_reference(ops, "weighted_loss", weighted, ("grad_out_bk",), dtype, op=loss)
    plain = run(REFERENCE, loss, arrays, ("grad_out_bk",))
    zb = z.astype(np.float64) + bias
    if loss == "identity_mse":
        losses = np.sum((zb - targets) ** 2, axis=1)
    else:
        p = textbook_softmax(zb)
        onehot = np.eye(classes)[labels]
        losses = -np.log(p[np.arange(rows), labels]) if loss == "softmax_xent" else np.sum((p - onehot) ** 2, 1)
    scale = weights.astype(np.float64) * rows / weights.astype(np.float64).sum()
    assert_close(got["grad_out_bk"], plain["grad_out_bk"] * scale[:, None], dtype, rtol=TEXTBOOK_RTOL[dtype])
    assert got["stats"][0] == pytest.approx(1.5 + np.sum(weights * losses), rel=TEXTBOOK_RTOL[dtype])
    assert got["stats"][1] == plain["stats"][1]


@pytest.mark.parametrize("loss", ["softmax_xent", "softmax_mse"])
def test_accuracy_ties_pick_the_first_maximum(ops, loss):
    z = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [0.0, 5.0, 5.0]])
    labels = np.array([1, 1, 2], dtype=np.int32)       # right, wrong (first max is 0), wrong (first max is 1)
    arrays = {"z_bk": z, "bias_k": np.zeros(3), "labels_b": labels, "grad_out_bk": z, "stats": np.zeros(2)}
    assert run(ops, loss, arrays, ("grad_out_bk",))["stats"][1] == 1.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, cols", [(64, 1), (37, 23), (3, 784)])
def test_identity_mse(ops, dtype, rows, cols):
    rng = np.random.default_rng(7)
    z, bias, targets = (rng.standard_normal((rows, cols)).astype(dtype), rng.standard_normal(cols).astype(dtype),
                        rng.standard_normal((rows, cols)).astype(dtype))
    arrays = {"z_bk": z, "bias_k": bias, "targets_bk": targets, "grad_out_bk": z, "stats": np.array([0.5, 3.0])}
    got = check_against_reference(ops, "identity_mse", arrays, ("grad_out_bk",), dtype)
    diff = z.astype(np.float64) + bias - targets
    assert_close(got["grad_out_bk"], 2 * diff / rows, dtype, rtol=TEXTBOOK_RTOL[dtype])
    assert got["stats"][0] == pytest.approx(0.5 + np.sum(diff ** 2), rel=TEXTBOOK_RTOL[dtype])
    assert got["stats"][1] == 3.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, classes", [(64, 10), (130, 7)])
def test_softmax_inference(ops, dtype, rows, classes):
    z, bias, _ = _logits(np.random.default_rng(8), rows, classes, dtype)
    got = check_against_reference(ops, "softmax", {"z_bk": z, "bias_k": bias, "out_bk": z}, ("out_bk",), dtype)
    assert_close(got["out_bk"], textbook_softmax(z.astype(np.float64) + bias), dtype, rtol=TEXTBOOK_RTOL[dtype])


# ---- optimizers ---------------------------------------------------------------------------------------------------
N_PARAMS = 1001


def _flat(rng, dtype, positive=False):
    values = rng.standard_normal(N_PARAMS)
    return (np.abs(values) if positive else values).astype(dtype)


SGD_CASES = [dict(lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, first_step=True),
             dict(lr=0.05, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.01, first_step=True),
             dict(lr=0.05, momentum=0.9, dampening=0.1, nesterov=False, weight_decay=0.0, first_step=False),
             dict(lr=0.05, momentum=0.8, dampening=0.0, nesterov=True, weight_decay=0.1, first_step=False)]


def textbook_sgd(p, g, v, lr, momentum, dampening, nesterov, weight_decay, first_step):
    g = g + weight_decay * p
    if momentum:
        v = g if first_step else momentum * v + (1 - dampening) * g
        g = g + momentum * v if nesterov else v
    return p - lr * g, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SGD_CASES)
def test_sgd_update(ops, dtype, case):
    rng = np.random.default_rng(9)
    p, g, v = (_flat(rng, dtype) for _ in range(3))
    arrays = {"params": p, "grads": g, "velocity": v, "scratch": p}
    got = check_against_reference(ops, "sgd_update", arrays, ("scratch",), dtype, elementwise=True,
                                  compare=("params", "velocity"), exact=True, **case)
    want_p, want_v = textbook_sgd(*(a.astype(np.float64) for a in (p, g, v)), **case)
    assert_close(got["params"], want_p, dtype, rtol=TEXTBOOK_RTOL[dtype])
    if case["momentum"]:
        assert_close(got["velocity"], want_v, dtype, rtol=TEXTBOOK_RTOL[dtype])


RMSPROP_CASES = [dict(lr=0.01, decay=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False),
                 dict(lr=0.01, decay=0.9, eps=1e-6, weight_decay=0.01, momentum=0.9, centered=True)]


def textbook_rmsprop(p, g, s, a, b, lr, decay, eps, weight_decay, momentum, centered):
    g = g + weight_decay * p
    s = decay * s + (1 - decay) * g * g
    a = decay * a + (1 - decay) * g if centered else a
    step = g / (np.sqrt(s - a * a if centered else s) + eps)
    b = momentum * b + step if momentum else b
    return p - lr * (b if momentum else step), s, a, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", RMSPROP_CASES)
def test_rmsprop_update(ops, dtype, case):
    rng = np.random.default_rng(10)
    p, g, b = (_flat(rng, dtype) for _ in range(3))
    s, a = 1 + _flat(rng, dtype, positive=True), (0.1 * _flat(rng, dtype)).astype(dtype)  # s - a^2 > 0
    arrays = {"params": p, "grads": g, "square_avg": s, "grad_avg": a, "momentum_buf": b, "scratch": p}
    got = check_against_reference(ops, "rmsprop_update", arrays, ("scratch",), dtype, elementwise=True,
                                  compare=("params", "square_avg", "grad_avg", "momentum_buf"), exact=True,
                                  **case)
    want = textbook_rmsprop(*(x.astype(np.float64) for x in (p, g, s, a, b)), **case)
    for name, value in zip(("params", "square_avg", "grad_avg", "momentum_buf"), want):
        assert_close(got[name], value, dtype, rtol=TEXTBOOK_RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("step, weight_decay", [(1, 0.0), (7, 0.01)])
def test_adam_update(ops, dtype, step, weight_decay):
    rng = np.random.default_rng(11)
    p, g, m = (_flat(rng, dtype) for _ in range(3))
    v = _flat(rng, dtype, positive=True)
    hyper = dict(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay, step=step)
    arrays = {"params": p, "grads": g, "exp_avg": m, "exp_avg_sq": v, "scratch": p}
    got = check_against_reference(ops, "adam_update", arrays, ("scratch",), dtype, elementwise=True,
                                  compare=("params", "exp_avg", "exp_avg_sq"), exact=True, **hyper)
    p64, g64 = p.astype(np.float64), g.astype(np.float64) + weight_decay * p.astype(np.float64)
    m64, v64 = 0.9 * m + 0.1 * g64, 0.999 * v.astype(np.float64) + 0.001 * g64 * g64
    want_p = p64 - 0.001 / (1 - 0.9 ** step) * m64 / (np.sqrt(v64) / np.sqrt(1 - 0.999 ** step) + 1e-8)
    assert_close(got["params"], want_p, dtype, rtol=TEXTBOOK_RTOL[dtype])
    assert_close(got["exp_avg"], m64, dtype, rtol=TEXTBOOK_RTOL[dtype])


# ---- the interface itself ---------------------------------------------------------------------------------------
def test_cupy_ops_keeps_the_reference_signatures():
    """A fused op must be callable exactly like its NumPy reference (thinc's rule: no signature drift)."""
    overridden = [name for name, member in vars(CupyOps).items()
                  if callable(member) and not name.startswith("_") and hasattr(NumpyOps, name)]
    assert {"gemm", "bias_act_forward", "act_backward_bias_grad", "softmax_xent", "adam_update"} <= set(overridden)
    for name in overridden:
        assert inspect.signature(getattr(CupyOps, name)) == inspect.signature(getattr(NumpyOps, name)), name


# Public ops of the NumPy reference that a backend may inherit, with the reason. Anything else the reference has,
# each backend must define itself: an op the GPU backend forgot would otherwise run NumPy code on device arrays
# (silently, on the emulated device, whose arrays are NumPy arrays). Adding an op to NumpyOps fails here until every
# backend implements it or it is listed below with its reason.
BACKEND_NEUTRAL = {
    # written with ``self.xp`` / array methods only, so they run on the device of any backend
    "gemm_accumulate",    # xp.matmul + in-place scaling (fast backends override it where BLAS's scalars help)
    "sum_squares",        # diagnostics reductions at log points
    "activation_stats",
    "weighted_loss",      # sample weights: the backend's own unweighted loss op, then xp arithmetic
    # no array work at all
    "training_threads",   # a null context; NumbaOps overrides it to share OpenBLAS's threads
}
INHERITS_FROM_NUMPY = {
    # NumbaOps computes on NumPy arrays with NumPy's BLAS: the reference's array handling and products are its own
    "NumbaOps": (BACKEND_NEUTRAL - {"gemm_accumulate", "training_threads", "sum_squares"})
                | {"empty", "zeros", "asarray", "to_host", "is_own_array", "synchronize", "gemm",
                   "act_backward",   # training calls the fused act_backward_bias_grad
                   "softmax"},       # inference only, NumPy's vectorized exp
    "CupyOps": BACKEND_NEUTRAL,
}


def _public_ops(cls) -> set:
    return {name for name, member in inspect.getmembers(cls) if not name.startswith("_") and callable(member)}


@pytest.mark.parametrize("backend", [CupyOps, NumbaOps] if NumbaOps is not None else [CupyOps],
                         ids=lambda cls: cls.__name__)
def test_backends_define_every_reference_op(backend):
    """Each public op of NumpyOps is defined by the backend's own class (not inherited), except the allowlist."""
    own = {name for klass in backend.__mro__ if klass is not NumpyOps and klass is not object
           for name in vars(klass)}
    missing = sorted(_public_ops(NumpyOps) - own - INHERITS_FROM_NUMPY[backend.__name__])
    assert not missing, f"{backend.__name__} inherits the NumPy reference of {missing}: override them or list " \
                        f"them in INHERITS_FROM_NUMPY with the reason"
    stale = sorted(INHERITS_FROM_NUMPY[backend.__name__] & own)
    assert not stale, f"{backend.__name__} overrides {stale}: drop them from the allowlist"


@pytest.mark.parametrize("backend", [NumbaOps] if NumbaOps is not None else [], ids=lambda cls: cls.__name__)
def test_numba_ops_keep_the_reference_signatures(backend):
    """As for CupyOps (annotations aside): parameter names, kinds and defaults as the reference's."""
    def shape(function):
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    for name in sorted(_public_ops(NumpyOps) & set(vars(backend))):
        assert shape(getattr(backend, name)) == shape(getattr(NumpyOps, name)), name


def test_activation_codes_match_the_kernel_source():
    assert kernel_sources.activation_codes_in_source() == ACT_CODES
    assert list(ACT_CODES) == list(ACTIVATIONS)


def test_every_kernel_has_a_caller_and_typed_parameters():
    specs = kernel_sources.kernel_specs()
    source = inspect.getsource(CupyOps)
    for name, spec in specs.items():
        assert f'"{name}"' in source, f"kernel {name} is never launched by CupyOps"
        assert all(p.c_type in ("T", "int", "long long", "double") for p in spec.params), name
