"""Values that would turn into inf on the cast to the model's dtype, non-finite weights, and the fused kernels'
length checks (issue 11, items 7 and 8)."""
import numpy as np
import pytest

import mlpx
from mlpx.backend import emulated

try:
    from mlpx.backend.numba_ops import NumbaOps
except ImportError:  # pragma: no cover
    NumbaOps = None


def data(n=32, dtype=np.float64):
    rng = np.random.default_rng(0)
    return rng.random((n, 4)).astype(dtype), rng.integers(0, 3, n)


def test_fit_names_a_float64_value_that_overflows_float32():
    model = mlpx.MLP([4, 5, 3], seed=0).compile(optimizer="sgd")
    x, y = data()
    x[3, 1] = 1e40  # finite in float64, inf once cast to float32
    with pytest.raises(ValueError, match=r"^x: value 1e\+40 overflows float32"):
        model.fit(x, y, verbose=0)
    x[3, 1] = -1e39
    with pytest.raises(ValueError, match=r"^x: value -1e\+39 overflows float32"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"^x_val: value 1e\+40 overflows float32"):
        model.fit(*data(), validation_data=(np.full((4, 4), 1e40), y[:4]), verbose=0)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="x: expected finite values, found 1 NaN or infinite"):
        model.fit(x, y, verbose=0)


def test_float64_models_accept_what_float64_holds():
    model = mlpx.MLP([4, 5, 3], seed=0, dtype="float64")
    x, _ = data()
    x[0, 0] = 1e40
    assert model.predict(x).shape == (32,)


def test_regression_targets_that_overflow_are_named():
    model = mlpx.MLP([4, 5, 2], output="identity", seed=0).compile(loss="mse", optimizer="sgd")
    x, _ = data()
    y = np.zeros((32, 2))
    y[5, 0] = 1e40
    with pytest.raises(ValueError, match=r"^y: value 1e\+40 overflows float32"):
        model.fit(x, y, verbose=0)


@pytest.mark.parametrize("bad, message", [(np.nan, "expected finite values, found 1 NaN"),
                                          (np.inf, "expected finite values, found 1 NaN or infinite"),
                                          (1e40, r"value 1e\+40 overflows float32")])
def test_set_weights_refuses_non_finite_and_overflowing_values_and_changes_nothing(bad, message):
    model = mlpx.MLP([4, 5, 3], seed=0)
    before = model.get_weights()
    weights = [w.astype(np.float64) for w in before]
    weights[3][1] = bad
    with pytest.raises(ValueError, match=rf"^set_weights: b2: {message}"):
        model.set_weights(weights)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    weights[3][1] = 0.5
    weights[0] = weights[0].astype(np.complex64)
    with pytest.raises(TypeError, match="set_weights: W1: expected real numbers, got dtype complex64"):
        model.set_weights(weights)


def fused_backends():
    params = []
    if NumbaOps is not None:
        params.append(pytest.param(NumbaOps, id="numba"))
    if emulated.compiler() is not None:
        params.append(pytest.param(lambda: mlpx.backend.get_ops("emulated"), id="emulated"))
    return params


@pytest.mark.parametrize("make_ops", fused_backends())
def test_fused_kernel_entry_points_refuse_mismatched_lengths(make_ops):
    """Each op's buffers must match the lengths the kernel loops over. The wrong buffers here are all larger
    than needed, so a missing check would show as a failed test, not as a write past a buffer's end."""
    ops = make_ops()
    f32 = np.float32
    z, big = ops.zeros((4, 3), f32), ops.zeros((5, 3), f32)
    bias, long_bias = ops.zeros(3, f32), ops.zeros(4, f32)
    labels, long_labels = ops.zeros(4, np.int32), ops.zeros(5, np.int32)
    stats, long_stats = ops.zeros(2, np.float64), ops.zeros(3, np.float64)
    cases = [
        (lambda: ops.bias_act_forward(z, long_bias, "relu", z), "bias_act_forward: bias_o expected shape (3,)"),
        (lambda: ops.bias_act_forward(z, bias, "relu", big), "bias_act_forward: out_bo expected shape (4, 3)"),
        (lambda: ops.bias_grad(z, long_bias), "bias_grad: out_o expected shape (3,)"),
        (lambda: ops.act_backward_bias_grad(z, big, "relu", z, bias), "y_bo expected shape (4, 3)"),
        (lambda: ops.act_backward_bias_grad(z, z, "relu", z, long_bias), "db_out_o expected shape (3,)"),
        (lambda: ops.softmax_xent(z, long_bias, labels, z, stats), "softmax_xent: bias_k expected shape (3,)"),
        (lambda: ops.softmax_xent(z, bias, long_labels, z, stats), "softmax_xent: targets expected shape (4,)"),
        (lambda: ops.softmax_mse(z, bias, labels, big, stats), "softmax_mse: grad_out_bk expected shape (4, 3)"),
        (lambda: ops.softmax_xent(z, bias, labels, z, long_stats), "softmax_xent: stats expected shape (2,)"),
        (lambda: ops.identity_mse(z, bias, big, z, stats), "identity_mse: targets expected shape (4, 3)"),
        (lambda: ops.take_rows(big, ops.asarray(np.array([0, 1])), big), "take_rows: out expected shape (2, 3)"),
    ]
    p, long, p64 = ops.zeros(10, f32), ops.zeros(11, f32), ops.zeros(10, np.float64)
    adam = dict(lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.0, step=1)
    rmsprop = dict(lr=0.1, decay=0.9, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=True)
    sgd = dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0, first_step=False)
    flat = "expected the parameters' shape (10,) and dtype float32, got"
    cases += [
        (lambda: ops.sgd_update(p, p, long, None, **sgd), f"sgd_update: velocity {flat} (11,) float32"),
        (lambda: ops.rmsprop_update(p, p, p, long, p, None, **rmsprop), f"rmsprop_update: grad_avg {flat} (11,)"),
        (lambda: ops.adam_update(p, long, p, p, None, **adam), f"adam_update: grads {flat} (11,) float32"),
        (lambda: ops.adam_update(p, p, p64, p, None, **adam), f"adam_update: exp_avg {flat} (10,) float64"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert message in str(info.value)
