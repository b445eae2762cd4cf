"""The sparse first layer (mlpx/backend/sparse_input.py): kernels against the NumPy reference, the training path
against the dense one (100 MNIST steps), the input_sparsity choice, its persistence and its reports."""
import os

import numpy as np
import pytest

import mlpx
from mlpx.backend import sparse_input as si
from mlpx.backend.numpy_ops import NumpyOps

numba_ops = pytest.importorskip("mlpx.backend.numba_ops")
LAYERS = [784, 500, 250, 100, 10]


def _sparse_x(rng, rows, cols, density, dtype):
    x = rng.random((rows, cols)).astype(dtype)
    x[rng.random((rows, cols)) >= density] = 0
    return x


def _kernels(parallel):
    if parallel:
        return si.forward_parallel, si.weight_grad_parallel, si.weight_update_parallel
    return si.forward, si.weight_grad, si.weight_update


CASES = [(64, 784, 500, 0.19), (1, 1, 1, 1.0), (3, 7, 5, 0.5), (17, 33, 13, 0.3), (5, 9, 3, 0.0), (64, 784, 500, 0.0)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows, cols, width, density", CASES)
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_kernels_match_reference(dtype, rows, cols, width, density, parallel):
    rng = np.random.default_rng(rows * 1000 + cols)
    tol = 1e-5 if dtype == "float32" else 1e-13
    x = _sparse_x(rng, rows, cols, density, dtype)
    w = rng.standard_normal((cols, width)).astype(dtype)
    delta = rng.standard_normal((rows, width)).astype(dtype)
    forward, weight_grad, weight_update = _kernels(parallel)
    b = si.SparseBatch(rows, cols, dtype).build(x)
    assert b.nnz == np.count_nonzero(x)
    out = np.full((rows, width), np.nan, dtype)
    forward(b.row_ptr, b.col_idx, b.row_val, w, out, np.empty_like(out))
    np.testing.assert_allclose(out, si.reference_forward(x, w, np.empty_like(out)), rtol=tol, atol=tol)
    np.testing.assert_allclose(out, x @ w, rtol=tol, atol=tol)
    dw = np.full((cols, width), np.nan, dtype)
    dirty = np.ones(cols, np.bool_)
    weight_grad(*b.pair_lists, delta, dw, dirty)
    np.testing.assert_allclose(dw, si.reference_weight_grad(x, delta, np.empty_like(dw)), rtol=tol, atol=tol)
    np.testing.assert_allclose(dw, x.T @ delta, rtol=tol, atol=tol)
    assert not np.isnan(dw).any()
    np.testing.assert_array_equal(dirty, _touched_pairs(x))  # both rows of a pair with a nonzero are written
    for beta in (1.0, 0.999):
        w_sparse, w_ref = w.copy(), w.copy()
        weight_update(*b.pair_lists, delta, w_sparse, -0.01, beta)
        si.reference_weight_update(x, delta, w_ref, -0.01, beta)
        np.testing.assert_allclose(w_sparse, w_ref, rtol=tol, atol=tol)
        untouched = ~(x != 0).any(axis=0)
        if beta == 1.0:  # rows of pixels zero in the whole batch are not touched at all
            np.testing.assert_array_equal(w_sparse[untouched], w[untouched])


@pytest.mark.parametrize("rows, cols, width", [(64, 784, 500), (17, 41, 13), (4, 7, 3)])
def test_forward_sums_the_same_parts_on_one_thread_and_two(rows, cols, width):
    """The forward adds each row's lower and upper parts (pixels below / from _upper_start on) last, serially or
    with the parts on two threads: the same bits; rows with nonzeros on one side of the split only included."""
    rng = np.random.default_rng(cols)
    x = _sparse_x(rng, rows, cols, 0.3, np.float32)
    split = si._upper_start(cols)
    x[0, split:] = 0                                   # lower part only
    x[-1, :split] = 0                                  # upper part only (empty when the split is past the end)
    w = rng.standard_normal((cols, width)).astype(np.float32)
    b = si.SparseBatch(rows, cols, np.float32).build(x)
    serial, parallel = (np.full((rows, width), np.nan, np.float32) for _ in range(2))
    si.forward(b.row_ptr, b.col_idx, b.row_val, w, serial, np.full_like(serial, np.nan))
    si.forward_parallel(b.row_ptr, b.col_idx, b.row_val, w, parallel, np.full_like(parallel, np.nan))
    np.testing.assert_array_equal(serial, parallel)
    np.testing.assert_allclose(serial, x @ w, rtol=1e-5, atol=1e-5)
    assert split == (400 if cols == 784 else 32 if cols == 41 else cols)


def _touched_pairs(x):
    """Per pixel: whether its pair (pixels 2p, 2p + 1) has a nonzero in x."""
    cols = x.shape[1]
    pair_touched = np.add.reduceat((x != 0).any(axis=0), np.arange(0, cols, 2)) > 0
    return np.repeat(pair_touched, 2)[:cols]


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_half_empty_pairs_and_an_odd_last_pixel(parallel):
    """Pixel pairs with one pixel empty in the whole batch, and the lone last pixel of an odd width: the empty
    pixel's gradient row is exactly 0, its weights unchanged without weight decay, the lone pixel's row right."""
    rng = np.random.default_rng(9)
    x = np.zeros((6, 7))
    x[[0, 2, 5], 0] = [0.5, -1.0, 2.0]     # pair (0, 1): pixel 1 empty
    x[[1, 2], 3] = [0.25, 3.0]             # pair (2, 3): pixel 2 empty
    x[[0, 4], 6] = [1.5, -0.75]            # pixel 6: alone in the last pair
    delta, w = rng.standard_normal((6, 4)), rng.standard_normal((7, 4))
    forward, weight_grad, weight_update = _kernels(parallel)
    b = si.SparseBatch(6, 7, np.float64).build(x)
    assert b.nnz == 7
    out = np.empty((6, 4))
    forward(b.row_ptr, b.col_idx, b.row_val, w, out, np.empty_like(out))
    np.testing.assert_allclose(out, x @ w, rtol=1e-15, atol=0)
    dw, dirty = np.full((7, 4), np.nan), np.ones(7, np.bool_)
    weight_grad(*b.pair_lists, delta, dw, dirty)
    np.testing.assert_allclose(dw, x.T @ delta, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(dw[[1, 2, 4, 5]], 0)
    np.testing.assert_array_equal(dirty, [True, True, True, True, False, False, True])
    w2 = w.copy()
    weight_update(*b.pair_lists, delta, w2, -0.1, 1.0)
    np.testing.assert_allclose(w2, w - 0.1 * (x.T @ delta), rtol=1e-15, atol=0)
    np.testing.assert_array_equal(w2[[1, 2, 4, 5]], w[[1, 2, 4, 5]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parallel_twins_give_the_same_bits(dtype):
    rng = np.random.default_rng(3)
    x = _sparse_x(rng, 64, 784, 0.2, dtype)
    w = rng.standard_normal((784, 500)).astype(dtype)
    delta = rng.standard_normal((64, 500)).astype(dtype)
    b = si.SparseBatch(64, 784, dtype).build(x)
    results = []
    for parallel in (False, True):
        forward, weight_grad, weight_update = _kernels(parallel)
        out, dw, w2 = np.empty((64, 500), dtype), np.empty((784, 500), dtype), w.copy()
        forward(b.row_ptr, b.col_idx, b.row_val, w, out, np.empty_like(out))
        weight_grad(*b.pair_lists, delta, dw, np.ones(784, np.bool_))
        weight_update(*b.pair_lists, delta, w2, -0.01, 0.999)
        results.append((out, dw, w2))
    for serial, parallel in zip(*results):
        np.testing.assert_array_equal(serial, parallel)


def test_single_nonzero_and_dirty_rows_across_batches():
    """Rows written by one batch are zeroed by the next batch that leaves their pixel empty, and only then."""
    rng = np.random.default_rng(4)
    dw = np.full((9, 4), np.nan)
    dirty = np.ones(9, np.bool_)
    b = si.SparseBatch(3, 9, np.float64)
    for x in (_sparse_x(rng, 3, 9, 0.4, np.float64), np.eye(3, 9) * 0, np.zeros((3, 9)), _one_nonzero(),
              _sparse_x(rng, 3, 9, 0.6, np.float64)):
        delta = rng.standard_normal((3, 4))
        b.build(x)
        si.weight_grad(*b.pair_lists, delta, dw, dirty)
        np.testing.assert_allclose(dw, x.T @ delta, rtol=1e-14, atol=0)
    x = _one_nonzero()
    out = np.empty((3, 4))
    w = rng.standard_normal((9, 4))
    b.build(x)
    si.forward(b.row_ptr, b.col_idx, b.row_val, w, out, np.empty_like(out))
    np.testing.assert_array_equal(out, x @ w)  # one product per element: exact


def _one_nonzero():
    x = np.zeros((3, 9))
    x[1, 5] = 0.25
    return x


def test_density_counts_nonzeros():
    x = np.zeros((3000, 784), np.float32)
    x[::7, ::3] = 1
    assert si.density(x) == np.count_nonzero(x) / x.size
    assert si.density(np.zeros((0, 4))) == 0.0


# ---- training: sparse against dense --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data6400(request):
    """The first 6400 MNIST training images (100 steps of 64), or the bundled sample repeated to 6400."""
    if os.environ.get("MLPX_DATA_DIR"):
        d = request.getfixturevalue("mnist")  # the session's copy (conftest.py)
        return d.x_train[:6400], d.y_train[:6400]
    d = mlpx.datasets.load_mnist_sample()
    reps = -(-6400 // len(d.x_train))
    return np.tile(d.x_train, (reps, 1))[:6400], np.tile(d.y_train, reps)[:6400]


OPTIMIZERS = {
    "sgd": {"name": "sgd", "lr": 0.05},
    "sgd-wd": {"name": "sgd", "lr": 0.05, "weight_decay": 1e-3},
    "momentum": {"name": "sgd", "lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
    "rmsprop": {"name": "rmsprop", "lr": 1e-3},
    "rmsprop-centered": {"name": "rmsprop", "lr": 1e-3, "momentum": 0.5, "centered": True},
    "adam": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4},
}


def _train(data, path, dtype, optimizer, reverse_pixels=False):
    """Weights after 100 steps (W1 in the original pixel order) and the epoch loss. ``reverse_pixels`` trains the
    same network on the pixels in reverse order (W1's rows likewise): the same maths, other rounding."""
    x, y = data
    model = mlpx.MLP(LAYERS, seed=0, dtype=dtype, input_sparsity=path, backend="numpy")
    if reverse_pixels:
        weights = model.get_weights()
        weights[0] = weights[0][::-1]
        model.set_weights(weights)
        x = np.ascontiguousarray(x[:, ::-1])
    model.compile(optimizer=optimizer)
    history = model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert model.optimizer.step_count == 100
    assert model.input_path["path"] == path
    weights = model.get_weights()
    if reverse_pixels:
        weights[0] = weights[0][::-1]
    return weights, history.loss[0]


def _relative(a, b):
    return max(np.abs(x - y).max() / np.abs(x).max() for x, y in zip(a, b))


def _frobenius(a, b):
    return max(np.linalg.norm(x - y) / np.linalg.norm(x) for x, y in zip(a, b))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_100_steps_match_dense(data6400, dtype, optimizer):
    """After 100 MNIST steps the weights are those of the dense path, and every run gives the same bits.

    Plain SGD (with and without weight decay): within 1e-12 (float64) / 1e-5 (float32) of each array's largest
    weight (measured: 1.1e-15 / 4.9e-7, 1 and 2 threads). Momentum, RMSProp and Adam amplify rounding: RMSProp and
    Adam divide each gradient by its own running size, and in float32 a ReLU unit at its kink on one sample flips
    either way (measured: one step from identical weights differs by 1e-5 at such a tie). So their trajectories
    are bounded in float64 in the Frobenius norm, 1e-10 (measured 2e-16 to 1.8e-12), and in float32 by the loss,
    1e-2 relative (measured up to 2.4e-3; weights up to 0.2 Frobenius for RMSProp, whose dense path alone moves
    by 0.56 when fed the pixels in reverse order). Each step's exactness is test_loss_and_gradients_match_dense's
    job, in float64."""
    if type(mlpx.MLP([2, 1]).ops).__name__ != "NumbaOps":
        pytest.skip("the sparse kernels need the Numba backend")
    if dtype == "float32" and not os.environ.get("MLPX_DATA_DIR"):
        # measured on the tiled sample: float32 SGD meets a rounding-sensitive tie (a unit at its ReLU kink) within
        # 100 steps, so even the dense path with the pixels reversed ends 3.7e-2 away; on MNIST it is 3e-7
        pytest.skip("the float32 bounds are checked on MNIST (set MLPX_DATA_DIR); float64 runs on the sample too")
    spec = OPTIMIZERS[optimizer]
    dense, dense_loss = _train(data6400, "dense", dtype, spec)
    sparse, sparse_loss = _train(data6400, "sparse", dtype, spec)
    again, _ = _train(data6400, "sparse", dtype, spec)
    for s, a in zip(sparse, again):
        np.testing.assert_array_equal(s, a)  # same bits on every run
    tol = 1e-12 if dtype == "float64" else 1e-5
    if spec["name"] == "sgd" and not spec.get("momentum"):
        assert _relative(dense, sparse) <= tol
        assert sparse_loss == pytest.approx(dense_loss, rel=tol)
    elif dtype == "float64":
        assert _frobenius(dense, sparse) <= 1e-10
        assert sparse_loss == pytest.approx(dense_loss, rel=tol)
    else:
        assert sparse_loss == pytest.approx(dense_loss, rel=1e-2)


def test_loss_and_gradients_match_dense(data6400):
    x, y = data6400[0][:64], data6400[1][:64]
    x = x.copy()
    x[:, :100] = 0  # some rows of W1 get no gradient
    grads = {}
    for path in ("dense", "sparse"):
        model = mlpx.MLP(LAYERS, seed=1, dtype="float64", input_sparsity=path, backend="numpy")
        model.compile()
        model.loss_and_gradients(data6400[0][64:128], data6400[1][64:128])  # dirty every row of dW1 first
        grads[path] = model.loss_and_gradients(x, y)[1]
    for d, s in zip(grads["dense"], grads["sparse"]):
        np.testing.assert_allclose(s, d, rtol=1e-12, atol=1e-15)
    assert not grads["sparse"][0][:100].any()


def test_all_zero_batch_trains_like_dense():
    x, y = np.zeros((64, 784), np.float32), np.arange(64) % 10
    weights = {}
    for path in ("dense", "sparse"):
        model = mlpx.MLP(LAYERS, seed=2, input_sparsity=path, backend="numpy")
        model.compile(optimizer={"name": "sgd", "lr": 0.1, "weight_decay": 0.01})
        model.train_step(x, y)
        weights[path] = model.get_weights()
    for d, s in zip(weights["dense"], weights["sparse"]):
        np.testing.assert_allclose(s, d, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs_refused(bad):
    model = mlpx.MLP(LAYERS, input_sparsity="sparse", backend="numpy").compile()
    x = np.zeros((64, 784), np.float32)
    x[3, 5] = bad
    with pytest.raises(ValueError, match="finite"):
        model.fit(x, np.zeros(64, int), verbose=0)
    with pytest.raises(ValueError, match="finite"):
        model.train_step(x, np.zeros(64, int))


def test_the_step_follows_the_policy_it_is_given(monkeypatch):
    """The batch step takes the first-layer path from the training policy passed in (decided once per fit), not
    from the model's input_path again: a dense policy on a sparse model never indexes the batch, a sparse policy on
    a dense model does."""
    from mlpx.policy import TrainingPolicy

    model = mlpx.MLP([20, 8, 3], seed=0, input_sparsity="sparse", backend="numpy").compile()
    if not model.ops.sparse_input:
        pytest.skip("the sparse kernels need the Numba backend")
    rng = np.random.default_rng(0)
    x_dev = model.ops.asarray(_sparse_x(rng, 16, 20, 0.2, np.float32))
    y_dev = model.ops.asarray(rng.integers(0, 3, 16))
    index = np.arange(16, dtype=np.int64)
    calls = []
    real_index = type(model.ops).sparse_index
    monkeypatch.setattr(type(model.ops), "sparse_index",
                        lambda self, x, batch: calls.append(1) or real_index(self, x, batch))
    dense = TrainingPolicy(fold_sgd=False, share_blas_threads=False, sparse_first_layer=False)
    model._train_batch(x_dev, y_dev, index, model.ops.zeros(2, np.float64), policy=dense)
    assert calls == []
    model.input_sparsity = "dense"
    model.choose_input_path(None)
    sparse = TrainingPolicy(fold_sgd=False, share_blas_threads=False, sparse_first_layer=True)
    model._train_batch(x_dev, y_dev, index, model.ops.zeros(2, np.float64), policy=sparse)
    assert calls == [1]


def test_sparse_ops_refuse_mismatched_shapes_and_dtypes():
    """sparse_weight_grad refuses a dW whose rows are not the batch's columns (the kernel reads col_ptr[j + 1]
    for every row j of dW); SparseBatch.build refuses inputs of another dtype than the lists it holds."""
    ops = numba_ops.NumbaOps()
    batch = ops.sparse_batch(4, 6, np.float64).build(np.eye(4, 6))
    delta = np.ones((4, 3))
    with pytest.raises(ValueError, match="dw_io"):
        ops.sparse_weight_grad(batch, delta, np.zeros((5, 3)), np.ones(6, np.bool_))
    with pytest.raises(ValueError, match="dw_io"):  # (one row too many: the kernel would read past col_ptr)
        ops.sparse_weight_grad(batch, delta, np.zeros((7, 3)), np.ones(6, np.bool_))
    dw = ops.sparse_weight_grad(batch, delta, np.full((6, 3), np.nan), np.ones(6, np.bool_))
    np.testing.assert_array_equal(dw, np.eye(4, 6).T @ delta)
    with pytest.raises(ValueError, match="float32"):
        batch.build(np.eye(4, 6, dtype=np.float32))
    with pytest.raises(ValueError, match="dtype"):
        si.SparseBatch(4, 6, np.float32).build(np.eye(4, 6))


# ---- the choice ------------------------------------------------------------------------------------------------------
def test_auto_picks_by_density():
    rng = np.random.default_rng(0)
    model = mlpx.MLP([20, 8, 3], backend="numpy").compile()
    assert model.input_path["path"] == "dense" and "decided" in model.input_path["reason"]
    sparse_x = _sparse_x(rng, 200, 20, 0.1, np.float32)
    model.fit(sparse_x, rng.integers(0, 3, 200), verbose=0)
    assert model.input_path["path"] == "sparse"
    assert model.input_path["density"] == pytest.approx(np.count_nonzero(sparse_x) / sparse_x.size)
    standardized = rng.standard_normal((200, 20)).astype(np.float32)
    model.fit(standardized, rng.integers(0, 3, 200), verbose=0)
    assert model.input_path["path"] == "dense"
    assert "no zeros" in model.input_path["reason"]
    half = _sparse_x(rng, 200, 20, 0.7, np.float32)
    model.fit(half, rng.integers(0, 3, 200), verbose=0)
    assert model.input_path["path"] == "dense" and "above" in model.input_path["reason"]


def test_reference_backend_trains_dense_and_says_so():
    model = mlpx.MLP([20, 8, 3], input_sparsity="sparse", backend=NumpyOps()).compile()
    assert model.input_path["path"] == "dense"
    assert "NumpyOps" in model.input_path["reason"]
    model.fit(np.zeros((10, 20)), np.zeros(10, int), verbose=0)
    assert model.input_path["path"] == "dense"


def test_input_sparsity_validated_and_saved(tmp_path):
    with pytest.raises(ValueError, match="input_sparsity"):
        mlpx.MLP([4, 2], input_sparsity="yes")
    model = mlpx.MLP([4, 3, 2], input_sparsity="sparse", backend="numpy").compile()
    assert model.get_config()["input_sparsity"] == "sparse"
    model.save(tmp_path / "m.npz")
    loaded = mlpx.load(tmp_path / "m.npz")
    assert loaded.input_sparsity == "sparse" and loaded.input_path["path"] == "sparse"


def test_old_model_files_without_the_key_load(tmp_path):
    import json

    from mlpx import serialization

    model = mlpx.MLP([4, 3, 2], backend="numpy").compile()
    arrays = serialization.model_arrays(model)
    config = json.loads(str(arrays["config"]))
    del config["input_sparsity"]
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "old.npz", **arrays)
    assert mlpx.load(tmp_path / "old.npz").input_sparsity == "auto"


# ---- threads: the parallel twins while fit shares OpenBLAS's threads ------------------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "sgd-wd", "adam"])
def test_sparse_fit_shares_threads_and_gives_the_same_bits(data6400, monkeypatch, optimizer):
    """On the sparse path fit shares OpenBLAS's threads with Numba's pool also for plain SGD (the sparse kernels'
    parallel twins then run, mlpx.policy.share_blas_threads); weights and losses are bit for bit those of a run
    without sharing (MLPX_SHARED_BLAS_POOL=0: serial twins, OpenBLAS's own threads)."""
    from threadpoolctl import threadpool_limits

    from mlpx.backend import blas_pool

    if type(mlpx.MLP([2, 1]).ops).__name__ != "NumbaOps":
        pytest.skip("the sparse kernels need the Numba backend")
    if os.cpu_count() < 2:
        pytest.skip("one CPU: nothing to share")

    class Spy(mlpx.callbacks.Callback):
        seen = None

        def on_epoch_begin(self, model, epoch):
            Spy.seen = blas_pool.sharing()

    x, y = data6400[0][:1280], data6400[1][:1280]
    runs = []
    with threadpool_limits(limits=2, user_api="blas"):
        if blas_pool.unavailable_reason() is not None:
            pytest.skip(f"OpenBLAS's threads cannot be shared here: {blas_pool.unavailable_reason()}")
        for switch in ("0", "1"):
            monkeypatch.setenv(blas_pool.ENV_SWITCH, switch)
            model = mlpx.MLP(LAYERS, seed=0, input_sparsity="sparse", backend="numpy")
            model.compile(optimizer=OPTIMIZERS[optimizer])
            history = model.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[Spy()])
            runs.append((model.get_weights(), history.loss, Spy.seen))
    assert [seen for _, _, seen in runs] == [False, True]
    assert runs[0][1] == runs[1][1]
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)


def test_training_without_numba_never_imports_the_sparse_kernels():
    """The NumPy reference backend (MLPX_NUMBA=0) trains where Numba cannot import: choosing the input path must
    not pull in the Numba-compiled sparse module (it did, on every fit)."""
    import subprocess
    import sys

    script = """
import sys
sys.modules["numba"] = None          # Numba cannot be imported in this interpreter
import numpy as np, mlpx
model = mlpx.MLP([6, 4, 3], seed=0, input_sparsity="sparse")
model.compile(optimizer="sgd")
model.fit(np.eye(6, dtype=np.float32), np.arange(6) % 3, epochs=1, batch_size=2, verbose=0)
assert model.input_path["path"] == "dense", model.input_path
assert "mlpx.backend.sparse_input" not in sys.modules
"""
    env = {**os.environ, "MLPX_NUMBA": "0", "MLPX_BACKEND": "numpy"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
