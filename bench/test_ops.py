"""Per-op micro-benchmarks: each backend op against the unfused composition of plain array operations that code
without fused ops would write (temporaries, one-hot matrices, per-layer optimizer loops), on every backend here,
at batch 64 and 1024. Activation ops use the widest hidden layer (500 units); the optimizers update all 543,860
parameters of 784-500-250-100-10 (batch-independent, so benchmarked once)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from .common import LAYERS, n_parameters
from .conftest import available_backends

BACKENDS = available_backends()
BATCHES = (64, 1024)
WIDTH, CLASSES = 500, 10
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


def run(benchmark, ops, fn):
    """Benchmark ``fn`` with the device synchronized after each call (a no-op on the CPU)."""
    def call():
        fn()
        ops.synchronize()
    benchmark(call)


def arrays(ops, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [ops.asarray(rng.standard_normal(s).astype(np.float32)) for s in shapes]


def layer_views(flat, layers=LAYERS):
    """Per-layer [W, b, ...] views into a flat buffer, as a per-layer optimizer would see them."""
    views, offset = [], 0
    for fan_in, fan_out in zip(layers[:-1], layers[1:]):
        for shape in ((fan_in, fan_out), (fan_out,)):
            size = math.prod(shape)
            views.append(flat[offset:offset + size].reshape(shape))
            offset += size
    return views


@pytest.fixture(params=list(BACKENDS))
def ops(request):
    return BACKENDS[request.param]


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("fused", [True, False], ids=["op", "unfused"])
@pytest.mark.parametrize("act", ["relu", "sigmoid"])
def test_bias_act_forward(benchmark, ops, batch, fused, act):
    benchmark.group = f"bias_act_forward {act} batch {batch}"
    z, bias = arrays(ops, (batch, WIDTH), (WIDTH,))
    out = ops.empty((batch, WIDTH), np.float32)
    xp = ops.xp
    if fused:
        run(benchmark, ops, lambda: ops.bias_act_forward(z, bias, act, out))
    elif act == "relu":
        run(benchmark, ops, lambda: xp.maximum(z + bias, 0))
    else:
        run(benchmark, ops, lambda: 1 / (1 + xp.exp(-(z + bias))))


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("fused", [True, False], ids=["op", "unfused"])
def test_act_backward_bias_grad(benchmark, ops, batch, fused):
    benchmark.group = f"act_backward+bias_grad relu batch {batch}"
    dy, z = arrays(ops, (batch, WIDTH), (batch, WIDTH))
    y = ops.xp.maximum(z, 0)
    dz, db = ops.empty((batch, WIDTH), np.float32), ops.empty(WIDTH, np.float32)
    if fused:
        run(benchmark, ops, lambda: ops.act_backward_bias_grad(dy, y, "relu", dz, db))
    else:
        def unfused():
            grad = dy * (y > 0)
            return grad, grad.sum(axis=0)
        run(benchmark, ops, unfused)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("fused", [True, False], ids=["op", "unfused"])
def test_softmax_xent(benchmark, ops, batch, fused):
    benchmark.group = f"softmax_xent batch {batch}"
    xp = ops.xp
    (z,) = arrays(ops, (batch, CLASSES))
    bias = ops.zeros(CLASSES, np.float32)             # zero: the op adds it to z in place on every call
    labels = ops.asarray(np.random.default_rng(1).integers(0, CLASSES, batch).astype(np.int32))
    grad, stats = ops.empty((batch, CLASSES), np.float32), ops.zeros(2, np.float64)
    if fused:
        run(benchmark, ops, lambda: ops.softmax_xent(z, bias, labels, grad, stats))
    else:
        def unfused():
            logits = z + bias
            e = xp.exp(logits - logits.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            loss = -xp.log(p[xp.arange(batch), labels]).sum()
            correct = (logits.argmax(axis=1) == labels).sum()
            onehot = xp.eye(CLASSES, dtype=np.float32)[labels]
            return loss, correct, (p - onehot) / batch
        run(benchmark, ops, unfused)


def optimizer_buffers(ops, n_state):
    n = n_parameters(LAYERS)
    params, grads = arrays(ops, (n,), (n,))
    grads *= 1e-3
    state = [ops.zeros(n, np.float32) for _ in range(n_state)]
    return params, grads, state, ops.empty(n, np.float32)


@pytest.mark.parametrize("fused", [True, False], ids=["op", "unfused"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_update(benchmark, ops, fused, momentum):
    benchmark.group = f"sgd_update momentum {momentum}"
    params, grads, (velocity,), scratch = optimizer_buffers(ops, 1)
    if fused:
        run(benchmark, ops, lambda: ops.sgd_update(params, grads, velocity, scratch, lr=LR, momentum=momentum,
                                                   dampening=0.0, nesterov=False, weight_decay=0.0,
                                                   first_step=False))
        return
    pairs = list(zip(layer_views(params), layer_views(grads), layer_views(velocity)))

    def unfused():
        for p, g, v in pairs:
            if momentum:
                v *= momentum
                v += g
                p -= LR * v
            else:
                p -= LR * g
    run(benchmark, ops, unfused)


@pytest.mark.parametrize("fused", [True, False], ids=["op", "unfused"])
def test_rmsprop_update(benchmark, ops, fused):
    benchmark.group = "rmsprop_update"
    params, grads, (sq, avg, mom), scratch = optimizer_buffers(ops, 3)
    xp = ops.xp
    if fused:
        run(benchmark, ops, lambda: ops.rmsprop_update(params, grads, sq, avg, mom, scratch, lr=LR, alpha=0.99,
                                                       eps=EPS, weight_decay=0.0, momentum=0.0, centered=False))
        return
    triples = list(zip(layer_views(params), layer_views(grads), layer_views(sq)))

    def unfused():
        for p, g, s in triples:
            s *= 0.99
            s += 0.01 * g * g
            p -= LR * g / (xp.sqrt(s) + EPS)
    run(benchmark, ops, unfused)


@pytest.mark.parametrize("fused", [True, False], ids=["op", "unfused"])
def test_adam_update(benchmark, ops, fused):
    benchmark.group = "adam_update"
    params, grads, (m, v), scratch = optimizer_buffers(ops, 2)
    xp, step = ops.xp, 10
    if fused:
        run(benchmark, ops, lambda: ops.adam_update(params, grads, m, v, scratch, lr=LR, beta1=B1, beta2=B2,
                                                    eps=EPS, weight_decay=0.0, step=step))
        return
    quads = list(zip(layer_views(params), layer_views(grads), layer_views(m), layer_views(v)))
    bc1, bc2 = 1 - B1 ** step, 1 - B2 ** step

    def unfused():
        for p, g, m_, v_ in quads:
            m_ *= B1
            m_ += (1 - B1) * g
            v_ *= B2
            v_ += (1 - B2) * g * g
            p -= (LR / bc1) * m_ / (xp.sqrt(v_ / bc2) + EPS)
    run(benchmark, ops, unfused)
