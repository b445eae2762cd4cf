"""Test configuration: the `slow` marker is opt-in (--runslow); `gpu` tests run only where CuPy sees a GPU.

Also shared by the test modules (``from conftest import make_ops, needs_gxx``): the backends' ops objects by name,
and the skip marker of the tests that build the CPU emulation of the CUDA kernels with g++."""
import os

import pytest

from mlpx.backend import emulated

NO_GXX = "no C++ compiler (g++) for the kernel emulation"
needs_gxx = pytest.mark.skipif(emulated.compiler() is None, reason=NO_GXX)


def make_ops(name):
    """A new ops object of a backend under test: "numpy" (the reference, NumpyOps), "numba", "emulated" (CupyOps over
    the CPU emulation of the CUDA kernels) or "cupy" (a GPU); skips the test when Numba or g++ is missing."""
    if name == "numpy":
        from mlpx.backend.numpy_ops import NumpyOps

        return NumpyOps()
    if name == "numba":
        return pytest.importorskip("mlpx.backend.numba_ops").NumbaOps()
    if name == "emulated":
        if emulated.compiler() is None:
            pytest.skip(NO_GXX)
        from mlpx.backend.cupy_ops import make_emulated_ops

        return make_emulated_ops()
    if name == "cupy":
        from mlpx.backend.cupy_ops import make_cupy_ops

        return make_cupy_ops()
    raise ValueError(f"unknown backend {name!r}")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the long tests (full 15-epoch trainings)")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--runslow"):
        skip_slow = pytest.mark.skip(reason="long run: opt in with --runslow")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip_slow)
    if any("gpu" in item.keywords for item in items):
        from mlpx.backend import cupy_status

        usable, why = cupy_status()
        if not usable:
            skip_gpu = pytest.mark.skip(reason=f"no GPU: {why}")
            for item in items:
                if "gpu" in item.keywords:
                    item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def mnist():
    """Full MNIST from MLPX_DATA_DIR (skips with the reason when it is not set up)."""
    import mlpx

    if not os.environ.get("MLPX_DATA_DIR"):
        pytest.skip("MLPX_DATA_DIR is not set: point it at a folder with the MNIST IDX files")
    return mlpx.datasets.load_mnist(download=False)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """The command line's tests run offline in tmp_path: MLPX_DATA_DIR and the cache are an empty folder and
    downloads fail, so the data is the bundled MNIST sample."""
    from mlpx import datasets

    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("MLPX_DATA_DIR", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(empty))

    def no_network(name, folder, timeout=30.0):
        raise OSError("no network in tests")

    monkeypatch.setattr(datasets, "download_dataset", no_network)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def local_cluster():
    """A local Dask cluster of two single-thread worker processes (tests of the Dask executor and sweeps)."""
    distributed = pytest.importorskip("distributed", reason="Dask distributed is not installed (mlpx[dask])")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    try:
        yield cluster
    finally:
        cluster.close()
