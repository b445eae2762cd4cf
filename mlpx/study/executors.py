"""Where an experiment's runs execute: in this process, in local worker processes, or on a Dask cluster.

All three are ``concurrent.futures`` executors, so the experiment code is the same for each. The runs themselves
are deterministic functions of their task (configuration, seed, data, BLAS thread count: ``run_config`` pins the
count per task, because multi-threaded BLAS sums in a different order), so a sweep gives the same numbers wherever
it runs.

- ``processes`` (default): ``--jobs 1`` runs inline; ``--jobs N`` uses N spawned worker processes.
- ``dask://HOST:PORT``: a running Dask distributed scheduler, through ``Client(address).get_executor()``.

On GPU machines (``--backend cupy``), local workers share the visible GPUs round-robin, one device each
(``CUDA_VISIBLE_DEVICES`` per worker); on Dask, each worker is started with its own GPU (docs/workflow.md).
"""
from __future__ import annotations

import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager

from .._checks import check_positive_int


class InlineExecutor(Executor):
    """Runs each task at submit time in this process (``--jobs 1``): no pickling, no worker start-up."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001  (delivered through the future, as executors do)
            future.set_exception(err)
            if isinstance(err, KeyboardInterrupt):
                raise
        return future


def parse_executor(spec: str) -> tuple[str, str | None]:
    """('processes', None) or ('dask', 'tcp://HOST:PORT') from an ``--executor`` value."""
    if spec in (None, "", "processes"):
        return "processes", None
    if isinstance(spec, str) and spec.startswith("dask://"):
        address = spec[len("dask://"):]
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--executor {spec!r}: expected dask://HOST:PORT (the scheduler's address, e.g. "
                             f"dask://10.0.0.5:8786)")
        return "dask", f"tcp://{address}"
    raise ValueError(f"unknown executor {spec!r}; expected 'processes' or 'dask://HOST:PORT'")


def visible_gpus(backend: str | None) -> list[str]:
    """The GPUs worker processes share for ``backend``: ``CUDA_VISIBLE_DEVICES``'s entries when set, else every
    device CuPy counts; none for CPU backends. ``emulated`` stands in for ``cupy`` (it pins the same way, so the
    assignment is tested without a GPU): it uses CUDA_VISIBLE_DEVICES, or one pretend device."""
    if backend in (None, "auto"):
        from ..backend import resolve_backend

        backend = resolve_backend(backend)[0]
    if backend not in ("cupy", "emulated"):
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    if backend == "emulated":
        return ["0"]
    try:
        import cupy

        return [str(i) for i in range(cupy.cuda.runtime.getDeviceCount())]
    except Exception:  # noqa: BLE001  (no device: the workers then fail with the usual cause)
        return []


def gpu_for_worker(index: int, devices: list[str]) -> str:
    """Worker ``index`` gets device ``devices[index % len(devices)]``: round-robin, so N workers share the GPUs."""
    return devices[index % len(devices)]


def _pin_worker(counter, devices) -> None:
    """Worker initializer (installed only when GPUs are visible): this process sees one GPU (before CUDA starts in
    it) and runs one BLAS thread."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_for_worker(index, devices)
    os.environ["MLPX_WORKER_INDEX"] = str(index)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    except Exception:  # noqa: BLE001  (run_config pins each run's BLAS threads anyway)
        pass


@contextmanager
def make_executor(spec: str = "processes", jobs: int = 1, timeout: float = 30.0, backend: str | None = None):
    """A context manager yielding the executor named by ``spec`` (see the module docstring).

    With ``backend="cupy"`` and ``--jobs N`` the N worker processes share the visible GPUs round-robin: each is
    pinned to one device through ``CUDA_VISIBLE_DEVICES`` (:func:`gpu_for_worker`) and runs one BLAS thread."""
    jobs = check_positive_int(jobs, "--jobs")
    kind, address = parse_executor(spec)
    if kind == "processes":
        if jobs == 1:
            yield InlineExecutor()
            return
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        devices = visible_gpus(backend)
        pinning = {}
        if devices:
            pinning = {"initializer": _pin_worker, "initargs": (context.Value("i", 0), devices)}
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, **pinning) as pool:
            yield pool
        return
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("--executor dask://... needs Dask distributed: pip install 'mlpx[dask]'") from None
    try:
        client = Client(address, timeout=timeout)
    except OSError as err:
        raise RuntimeError(f"cannot reach the Dask scheduler at {address}: {err}") from None
    try:
        yield client.get_executor()
    finally:
        client.close()
