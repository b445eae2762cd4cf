"""Executors: parsing, the inline executor, and a tiny sweep on a Dask LocalCluster on loopback."""
import pytest

from mlpx.study.executors import InlineExecutor, make_executor, parse_executor
from mlpx.study.experiments import run_experiment

NUMBERS = ("test_accuracy", "train_accuracy", "train_loss", "test_loss")


def test_parse_executor():
    assert parse_executor("processes") == ("processes", None)
    assert parse_executor("dask://10.0.0.5:8786") == ("dask", "tcp://10.0.0.5:8786")
    for bad in ("dask://nohost", "dask://:8786", "threads"):
        with pytest.raises(ValueError, match="dask://HOST:PORT"):
            parse_executor(bad)


def test_inline_executor_delivers_results_and_errors():
    with make_executor("processes", 1) as pool:
        assert isinstance(pool, InlineExecutor)
        assert pool.submit(pow, 2, 10).result() == 1024
        with pytest.raises(ZeroDivisionError):
            pool.submit(divmod, 1, 0).result()
    with pytest.raises(ValueError, match="--jobs"):
        with make_executor("processes", 0):
            pass


def test_dask_sweep_matches_the_local_run(local_cluster, tmp_path):
    address = local_cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    kwargs = dict(epochs=1, seeds=2, subset=150, sample=True, progress=False)
    local = run_experiment("optimizers", tmp_path / "local", **kwargs)["results"]
    remote = run_experiment("optimizers", tmp_path / "dask", executor="dask://" + address[len("tcp://"):],
                            **kwargs)["results"]
    assert [(r["label"], r["seed"]) for r in remote] == [(r["label"], r["seed"]) for r in local]
    for a, b in zip(local, remote):
        assert [a[k] for k in NUMBERS] == [b[k] for k in NUMBERS], a["label"]
        assert a["history"]["iteration_loss"] == b["history"]["iteration_loss"]
    assert (tmp_path / "dask" / "results.md").read_text().count("\n| ") == 5


def test_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("distributed", reason="Dask distributed is not installed (mlpx[dask])")
    with pytest.raises(RuntimeError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with make_executor("dask://127.0.0.1:9", timeout=1):
            pass
