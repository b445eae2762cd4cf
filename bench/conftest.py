"""pytest-benchmark suites: ``pytest bench/ --benchmark-only`` (never collected by the plain test run).

Options: ``--bench-threads N`` (BLAS threads, default: all cores), ``--bench-samples N`` (train on the first N images
only, for a quick run), ``--bench-synthetic`` (random data of MNIST's shape when MLPX_DATA_DIR is not set).
At the end, the issue-2 figures: epoch time over BLAS-floor time for SGD and Adam, with their targets.
"""
from __future__ import annotations

import os

import pytest

from .common import EPOCH_MEDIANS, FLOOR_TARGETS, load_data, pin_threads


def pytest_addoption(parser):
    group = parser.getgroup("mlpx benchmarks")
    group.addoption("--bench-threads", type=int, default=os.cpu_count() or 1, help="BLAS threads for all benchmarks")
    group.addoption("--bench-samples", type=int, default=None, help="train on the first N images only")
    group.addoption("--bench-synthetic", action="store_true", help="random data instead of MNIST")


@pytest.fixture(scope="session", autouse=True)
def bench_threads(request):
    limiter = pin_threads(request.config.getoption("--bench-threads"))
    yield request.config.getoption("--bench-threads")
    limiter.restore_original_limits()


@pytest.fixture(scope="session")
def bench_data(request):
    synthetic = request.config.getoption("--bench-synthetic") or not os.environ.get("MLPX_DATA_DIR")
    return load_data(request.config.getoption("--bench-samples"), synthetic=synthetic)


def available_backends(speed_paths_only: bool = False) -> dict:
    """name -> ops for every backend that runs here. The plain NumPy reference is listed apart when the "numpy"
    backend is an accelerated subclass; the emulated CUDA backend (not a speed path) only when asked."""
    import mlpx
    from mlpx.backend import BACKENDS, cupy_status
    from mlpx.backend.numpy_ops import NumpyOps

    found = {"numpy": mlpx.get_ops("numpy")}
    if type(found["numpy"]) is not NumpyOps:
        found["numpy-reference"] = NumpyOps()
    if cupy_status()[0]:
        found["cupy"] = mlpx.get_ops("cupy")
    if not speed_paths_only and "emulated" in BACKENDS:
        try:
            found["emulated"] = mlpx.get_ops("emulated")
        except Exception as err:  # a missing compiler: report it, do not fail the suite
            print(f"bench: emulated backend unavailable ({type(err).__name__}: {err})")
    return found


def pytest_terminal_summary(terminalreporter):
    floor = EPOCH_MEDIANS.get("floor")
    if not floor:
        return
    terminalreporter.section("epoch vs BLAS floor (issue 2 targets)")
    terminalreporter.write_line(f"BLAS floor: {floor:.3f} s per epoch (median)")
    for key, seconds in sorted(EPOCH_MEDIANS.items()):
        if key == "floor":
            continue
        optimizer = key.split("/")[1]
        target = FLOOR_TARGETS.get(optimizer)
        verdict = "" if target is None else (f"  target {target}x: " + ("met" if seconds / floor <= target
                                                                          else "NOT met"))
        terminalreporter.write_line(f"{key}: {seconds:.3f} s = {seconds / floor:.2f}x floor{verdict}")
