"""The CuPy backend's host-side behaviour, checked on the CPU over the emulated device: a model on the GPU backend
pickles and deep-copies (the backend goes by name, never as a copy of the device), and host reads of device arrays
are counted by the same counting class the CuPy device uses."""
import copy
import pickle

import numpy as np
import pytest

import mlpx
from mlpx.backend import device, get_ops
from mlpx.backend.cupy_ops import CupyOps, make_emulated_ops

from conftest import needs_gxx

pytestmark = needs_gxx


def _trained(backend, optimizer="adam"):
    x, y = np.random.default_rng(1).random((40, 5)), np.arange(40) % 3
    model = mlpx.MLP([5, 4, 3], seed=2, dtype="float64", backend=backend)
    model.compile(optimizer=optimizer)
    model.train_step(x, y)
    return model, x, y


@pytest.mark.parametrize("clone", ["pickle", "deepcopy"])
@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_a_model_on_the_gpu_backend_pickles_and_deep_copies_by_backend_name(clone, optimizer):
    """Finding 1: CupyOps held the device (cupy module, compiled module; here a loaded library), which does not
    pickle. The copy gets this process's backend of the same name and trains exactly like the original."""
    model, x, y = _trained("emulated", optimizer)
    twin = pickle.loads(pickle.dumps(model)) if clone == "pickle" else copy.deepcopy(model)
    assert twin.ops is get_ops("emulated") and twin.backend == "emulated"
    assert twin.ops.is_own_array(twin.params)
    assert all(np.shares_memory(w, twin.params) for w in twin.W + twin.b)
    before = model.get_weights()
    twin.train_step(x, y)
    for a, b in zip(model.get_weights(), before):          # the original is untouched
        np.testing.assert_array_equal(a, b)
    model.train_step(x, y)
    for a, b in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_unpickled_models_reads_are_counted_on_this_processes_device():
    model, x, _ = _trained("emulated")
    twin = pickle.loads(pickle.dumps(model))
    counters = get_ops("emulated").device.counters
    before = counters.snapshot()
    float(twin.params[0])
    assert counters.since(before)["syncs"] == 1


def test_the_backend_itself_pickles_by_name_and_variants_keep_their_settings():
    ops = get_ops("emulated")
    assert pickle.loads(pickle.dumps(ops)) is ops and copy.deepcopy(ops) is ops
    strided = make_emulated_ops(reverse_thread_order=True, max_blocks=2)
    again = pickle.loads(pickle.dumps(strided))
    assert isinstance(again, CupyOps) and again.MAX_BLOCKS == 2 and again is not strided
    again.device.set_reverse_thread_order(False)           # the library's order is process-wide: put it back


# ---- host reads counted (finding 4): the class the CuPy device wraps its arrays in, over NumPy here ----------------
@pytest.fixture
def counted():
    cls = device.counting_array_class(np.ndarray)
    counters = device.Counters()
    array = np.arange(6, dtype=np.float64).view(cls)
    array._counters = counters
    return array, counters


def _entry(a):
    """a[1] as CuPy gives it: a 0-d device array (NumPy would give a host scalar)."""
    return a[1:2].reshape(())


@pytest.mark.parametrize("read", [
    lambda a: float(_entry(a)), lambda a: int(_entry(a)), lambda a: bool(_entry(a)), lambda a: _entry(a).item(),
    lambda a: a.tolist(), lambda a: np.asarray(a.__array__()), lambda a: a.tobytes(), lambda a: repr(a),
    lambda a: str(a), lambda a: f"{_entry(a):.2f}", lambda a: range(3)[_entry(a).astype(np.int64)],
], ids=["float", "int", "bool", "item", "tolist", "__array__", "tobytes", "repr", "str", "format", "index"])
def test_every_kind_of_host_read_counts_one_sync(counted, read):
    array, counters = counted
    read(array)
    assert counters.syncs == 1


def test_views_inherit_the_counters_and_nested_reads_count_once(counted):
    array, counters = counted
    view = array[2:].reshape(2, 2)
    assert view._counters is counters
    view.tolist()                      # tolist may read through other counted methods: still one sync
    assert counters.syncs == 1
    _ = array.shape, array.dtype, array[1:3]   # metadata and views: no read
    assert counters.syncs == 1


def test_the_cupy_step_count_counts_host_reads(monkeypatch):
    """step_counts on the cupy backend builds a counting device (the GPU test asserts 0 syncs per step on it)."""
    from mlpx.backend import cupy_ops, step_counts

    made = []

    def fake_make_cupy_ops(count_host_reads=False):
        made.append(count_host_reads)
        return make_emulated_ops()

    monkeypatch.setattr(cupy_ops, "make_cupy_ops", fake_make_cupy_ops)
    rows = step_counts.reference_counts("cupy", batch=8, sizes=(6, 5, 3), cases=step_counts.CASES[:1])
    assert made == [True] and rows[0]["syncs"] == 0
