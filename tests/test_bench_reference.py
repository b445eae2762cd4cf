"""The benchmark's yardsticks compute what they claim: the course implementation is the same SGD as mlpx, and the
BLAS floor multiplies exactly the matrices an mlpx training step multiplies."""
import numpy as np
import pytest

import mlpx
from bench.course_mlp import Network
from bench.floor import BlasFloor, epoch_flops, step_products
from mlpx.backend.numpy_ops import NumpyOps

SIZES = [12, 7, 5, 3]


def test_course_network_takes_the_same_sgd_step_as_mlpx_in_float64():
    rng = np.random.default_rng(3)
    x, y = rng.random((8, SIZES[0])), rng.integers(0, SIZES[-1], 8)
    model = mlpx.MLP(SIZES, activation="relu", seed=1, dtype="float64", backend=NumpyOps())
    model.compile(loss="cross_entropy", optimizer=mlpx.optim.SGD(lr=0.1))
    course = Network(SIZES, seed=0)
    course.set_weights(model.get_weights())
    course_loss = course.train_batch(x, y, lr=0.1)
    mlpx_loss = model.train_step(x, y)
    assert course_loss == pytest.approx(mlpx_loss, rel=1e-10)
    for ours, theirs in zip(model.get_weights(), course.get_weights()):
        np.testing.assert_allclose(theirs, ours, rtol=1e-10, atol=1e-12)


def test_course_network_learns_a_separable_problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    net = Network([4, 16, 2], seed=0)
    for _ in range(20):
        net.train_epoch(x, y, 32, 0.1, rng)
    assert net.accuracy(x, y) > 0.95


def test_floor_multiplies_exactly_what_an_mlpx_step_multiplies():
    ops = NumpyOps()
    seen = []
    original = ops.gemm

    def recording_gemm(a, b, out, trans_a=False, trans_b=False):
        seen.append(((a.T if trans_a else a).shape, (b.T if trans_b else b).shape))
        return original(a, b, out, trans_a=trans_a, trans_b=trans_b)

    ops.gemm = recording_gemm
    model = mlpx.MLP(SIZES, activation="relu", seed=0, backend=ops)
    model.compile(loss="cross_entropy", optimizer=mlpx.optim.SGD(lr=0.1))
    batch = 6
    model.train_step(np.random.default_rng(0).random((batch, SIZES[0])), np.arange(batch) % SIZES[-1])
    assert seen == [(a, b) for _, a, b in step_products(SIZES, batch)]


def test_floor_epoch_runs_every_batch_including_the_partial_one_and_counts_flops():
    floor = BlasFloor(SIZES, batch=4, n_samples=10)
    calls = []
    floor.product = lambda kind, a, b, out: calls.append((kind, a.shape[0] if kind != "weight_grad" else a.shape[1]))
    floor.epoch()
    rows = [n for kind, n in calls if kind == "forward"]
    assert rows == [4] * len(SIZES[1:]) * 2 + [2] * len(SIZES[1:])
    # forward and weight gradient for every layer, input gradient for all but the first: 2 flops per multiply-add
    macs = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    assert epoch_flops(SIZES, 10) == 2 * 10 * (3 * macs - SIZES[0] * SIZES[1])


def test_floor_products_stay_finite_over_many_steps():
    floor = BlasFloor(SIZES, batch=5, n_samples=500)
    floor.epoch()
    bufs = floor._bufs[5]
    assert all(np.isfinite(a).all() for a in bufs["a"] + bufs["delta"] + floor.dW)
