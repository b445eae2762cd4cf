"""Where an experiment's runs execute: in this process, in local worker processes, or on a Dask cluster.

All three are ``concurrent.futures`` executors, so the experiment code is the same for each. The runs themselves
are deterministic functions of their task (configuration, seed, data, BLAS thread count: ``run_config`` pins the
count per task, because multi-threaded BLAS sums in a different order), so a sweep gives the same numbers wherever
it runs.

- ``processes`` (default): ``--jobs 1`` runs inline; ``--jobs N`` uses N spawned worker processes.
- ``dask://HOST:PORT``: a running Dask distributed scheduler, through ``Client(address).get_executor()``.
"""
from __future__ import annotations

from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager

from ._checks import check_positive_int


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


@contextmanager
def make_executor(spec: str = "processes", jobs: int = 1, timeout: float = 30.0):
    """A context manager yielding the executor named by ``spec`` (see the module docstring)."""
    jobs = check_positive_int(jobs, "--jobs")
    kind, address = parse_executor(spec)
    if kind == "processes":
        if jobs == 1:
            yield InlineExecutor()
            return
        import multiprocessing

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
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
