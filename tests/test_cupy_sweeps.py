"""Sweeps on GPU machines: ``--backend cupy --jobs N`` runs N worker processes that share the visible GPUs
round-robin, each pinned to one device (CUDA_VISIBLE_DEVICES) with one BLAS thread; the emulated backend pins the
same way, so the assignment is tested here without a GPU."""
import functools
import multiprocessing
import os


from mlpx.study import executors


def test_round_robin_assignment():
    assert [executors.gpu_for_worker(i, ["0", "1"]) for i in range(5)] == ["0", "1", "0", "1", "0"]
    assert [executors.gpu_for_worker(i, ["3", "5", "7"]) for i in range(2)] == ["3", "5"]


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert executors.visible_gpus("emulated") == ["2", "3"]
    assert executors.visible_gpus("numpy") == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert executors.visible_gpus("emulated") == ["0"]


def _where_am_i(barrier, _):
    if barrier is not None:  # each worker holds its task until all have one: every worker takes exactly one
        barrier.wait(timeout=120)
    from threadpoolctl import threadpool_info

    blas = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return (os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("MLPX_WORKER_INDEX"), blas)


def test_each_worker_is_pinned_to_one_device_round_robin(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    with multiprocessing.get_context("spawn").Manager() as manager, \
            executors.make_executor("processes", 3, backend="emulated") as pool:
        seen = list(pool.map(functools.partial(_where_am_i, manager.Barrier(3)), range(3)))
    by_worker = {index: (pid, device, blas) for pid, device, index, blas in seen}
    assert len({pid for pid, *_ in seen}) == 3, seen
    assert {index: device for index, (_, device, _) in by_worker.items()} == {"0": "4", "1": "6", "2": "4"}
    assert all(threads == [1] * len(threads) for _, _, threads in by_worker.values())
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,6"      # the parent keeps every device


def test_cpu_sweeps_are_not_pinned(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    with executors.make_executor("processes", 2, backend="numpy") as pool:
        assert all(index is None for _, _, index, _ in pool.map(functools.partial(_where_am_i, None), range(2)))
