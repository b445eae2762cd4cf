"""The experiments as one sweep: content keys, the run store, reuse, resume after kill -9, and the same numbers
inline, with worker processes and on Dask. Tiny: the bundled sample's first 600 images, 1 epoch, 2 seeds, the
activations and optimizers experiments (16 runs, 14 distinct: relu / SGD is in both)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlpx.study.cli import main
from mlpx.study.experiments import _data_spec, make_tasks
from mlpx.study.experiments.schedule import estimate_costs, longest_first
from mlpx.study.experiments.run_key import content_key, key_fields
from mlpx.study.experiments.store import CorruptRunWarning, RunStore
from mlpx.study.experiments.suite import plan, run_suite

NAMES = ["activations", "optimizers"]
TINY = dict(epochs=1, seeds=2, subset=600, sample=True, progress=False)
CLI_TINY = ["--sample", "--subset", "600", "--epochs", "1", "--seeds", "2", "--jobs", "1"]
FAKE = dict(data_id={"dataset": "mnist", "sha256": "0" * 16, "subset": None}, kind="numba")  # keys without data


def _suite(folder: Path) -> dict:
    return json.loads((folder / "suite.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sweep through the CLI: activations alone, then both experiments (reusing the first)."""
    out = tmp_path_factory.mktemp("reference")
    assert main(["experiment", "activations", *CLI_TINY, "--out", str(out)]) == 0
    assert _suite(out)["runs_trained"] == 8
    assert main(["experiment", *NAMES, *CLI_TINY, "--out", str(out)]) == 0
    return out


def test_the_full_grid_has_33_distinct_configurations():
    data = _data_spec("mnist", None, None, True)
    for seeds, total, distinct in ((1, 45, 33), (3, 135, 99)):
        entries = plan(["all"], 15, seeds, data, **FAKE)
        assert (len(entries), len({e.key for e in entries})) == (total, distinct)
    keys = {(e.experiment, e.label): e.key for e in plan(["all"], 15, 1, data, **FAKE)}
    relu_sgd = keys[("activations", "relu")]
    assert relu_sgd == keys[("optimizers", "sgd")] == keys[("losses", "cross_entropy + sgd")] \
        == keys[("learning-rates", "relu lr 0.01")] == keys[("init-grid", "xavier_uniform / relu")]
    assert keys[("weight-decay", "weight decay 0.0")] == keys[("optimizers", "momentum 0.9")] \
        == keys[("losses", "cross_entropy + momentum")]
    assert keys[("weight-decay", "weight decay 0.001")] != keys[("optimizers", "momentum 0.9")]


def test_keys_are_normalized_and_cover_what_changes_the_numbers():
    data = _data_spec("mnist", None, 600, True)
    task = make_tasks("optimizers", 1, 1, data)[1]  # momentum 0.9
    key = content_key(key_fields(task, **{"data_id": FAKE["data_id"], "backend": "numba"}))

    def changed(**what):
        other = {**task, **{k: v for k, v in what.items() if k != "config"}, "config": {**task["config"],
                                                                                         **what.get("config", {})}}
        return content_key(key_fields(other, data_id=FAKE["data_id"], backend="numba"))

    assert changed(config={"label": "another name"}) == key
    assert changed(config={"optimizer": {"name": "momentum", "lr": 0.01, "weight_decay": 0}}) == key
    assert changed(config={"optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}}) == key
    for different in ({"epochs": 2}, {"seed": 1}, {"blas_threads": 2}, {"dtype": "float64"},
                      {"input_sparsity": "dense"}, {"input_sparsity": "sparse"},
                      {"config": {"batch_size": 32}}, {"config": {"init": "he_normal"}}):
        assert changed(**different) != key, different
    fields = key_fields(task, data_id=FAKE["data_id"], backend="numba")
    assert {"mlpx", "kernels", "code", "data", "backend", "dtype", "blas_threads", "epochs", "seed"} <= set(fields)
    assert content_key({**fields, "backend": "numpy"}) != key
    assert content_key({**fields, "data": {**FAKE["data_id"], "subset": 500}}) != key
    real = key_fields(task)  # the data's identity from its file, not its path; the backend found here
    assert real["data"]["dataset"] == "mnist-sample" and real["data"]["subset"] == 600
    assert len(real["data"]["sha256"]) == 16 and real["backend"] in ("numba", "numpy")


def test_input_sparsity_reaches_every_run_and_its_key(tmp_path):
    with pytest.raises(ValueError, match="input_sparsity: expected one of auto, sparse, dense, got 'sparce'"):
        make_tasks("optimizers", 1, 1, _data_spec("mnist", None, 200, True), input_sparsity="sparce")
    out = tmp_path / "dense"
    assert main(["experiment", "optimizers", "--sample", "--subset", "200", "--epochs", "1", "--jobs", "1",
                 "--input-sparsity", "dense", "--out", str(out)]) == 0
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert len(records) == 4
    assert {r["fields"]["input_sparsity"] for r in records} == {"dense"}
    assert {r["result"]["first_layer"] for r in records} == {"dense"}
    assert "input_sparsity dense" in (out / "optimizers" / "results.md").read_text()


def test_longest_runs_first():
    data = _data_spec("mnist", None, None, True)
    fields = [e.fields for e in plan(["optimizers"], 3, 1, data, **FAKE)] + \
             [e.fields for e in plan(["optimizers"], 5, 1, data, **FAKE)]  # sgd, momentum, rmsprop, adam x 3, 5
    order = longest_first(estimate_costs(fields, {}))
    assert order == [5, 6, 7, 4, 1, 2, 3, 0]  # 5 epochs first; plain SGD (no parameter pass) last of each
    from mlpx.study.experiments.schedule import configuration_signature

    measured = {configuration_signature(fields[0]): 10.0, configuration_signature(fields[1]): 1.0}
    # plain SGD measured slow (10 s per epoch), momentum fast: measured numbers win over the weights
    assert longest_first(estimate_costs(fields, measured))[0] == 4


def test_reference_sweep_writes_the_reports(reference):
    suite = _suite(reference)
    records = [json.loads(p.read_text()) for p in (reference / "runs").glob("*.json")]
    # "auto" decides per run from the sample's density (0.19): sparse wherever the kernels exist (Numba)
    expected = "sparse" if records[0]["fields"]["backend"] == "numba" else "dense"
    assert {(r["fields"]["input_sparsity"], r["result"]["first_layer"]) for r in records} == {("auto", expected)}
    assert (suite["runs_total"], suite["runs_distinct"], suite["runs_trained"], suite["runs_reused"]) == (16, 14, 6, 8)
    assert len(list((reference / "runs").glob("*.json"))) == 14
    runs = suite["runs"]
    assert [(r["experiment"], r["label"], r["seed"]) for r in runs[:2]] == [("activations", "sigmoid", 0),
                                                                              ("activations", "sigmoid", 1)]
    by = {(r["experiment"], r["label"], r["seed"]): r for r in runs}
    assert by[("activations", "relu", 1)] == {**by[("optimizers", "sgd", 1)], "experiment": "activations",
                                               "label": "relu"}  # one run, under two names
    index = (reference / "index.md").read_text()
    assert "[activations](activations/results.md)" in index and "| 16 | 14 | 6 | 8 |" in index
    for name in NAMES:
        assert (reference / name / "results.md").read_text().count("\n| ") == 5
        assert len(json.loads((reference / name / "results.json").read_text())["runs"]) == 8
        assert (reference / name / "test_accuracy_per_epoch.png").stat().st_size > 5_000


def test_a_second_invocation_trains_nothing(reference, tmp_path):
    out = shutil.copytree(reference, tmp_path / "again")
    result = run_suite(NAMES, out, jobs=1, **TINY)
    assert (result["suite"]["runs_trained"], result["suite"]["runs_reused"]) == (0, 14)
    assert result["suite"]["runs"] == _suite(reference)["runs"]
    assert (out / "activations" / "results.csv").read_text() == (reference / "activations" / "results.csv").read_text()


def test_other_epochs_reuse_nothing(reference, tmp_path):
    out = shutil.copytree(reference, tmp_path / "longer")
    suite = run_suite(["activations"], out, jobs=1, **{**TINY, "epochs": 2, "seeds": 1})["suite"]
    assert (suite["runs_trained"], suite["runs_reused"]) == (4, 0)


def test_a_corrupt_run_file_is_reported_and_trained_again(reference, tmp_path):
    out = shutil.copytree(reference, tmp_path / "corrupt")
    files = sorted((out / "runs").glob("*.json"))
    text = files[0].read_text()
    files[0].write_text(text[: len(text) // 2])  # truncated
    files[1].write_text(json.dumps({"format": "mlpx-run", "key": "not this one"}))
    with pytest.warns(CorruptRunWarning, match="trained again") as caught:
        suite = run_suite(NAMES, out, jobs=1, **TINY)["suite"]
    messages = [str(w.message) for w in caught]
    assert all(any(str(path) in message for message in messages) for path in files[:2])
    assert (suite["runs_trained"], suite["runs_reused"]) == (2, 12)
    assert suite["runs"] == _suite(reference)["runs"]
    assert RunStore(out / "runs").get(files[0].stem) is not None  # rewritten whole


_KILLABLE = textwrap.dedent("""
    import signal, sys
    import mlpx.study.experiments.suite as suite
    from mlpx.study.cli import main
    calls = []
    def run_config(task):  # the third run never ends: the sweep is killed while it trains
        calls.append(task)
        if len(calls) == 3:
            signal.pause()
        return real(task)
    real, suite.run_config = suite.run_config, run_config
    sys.exit(main(sys.argv[1:]))
""")


def test_a_sweep_killed_with_sigkill_resumes_with_only_the_missing_runs(reference, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, "experiment", *NAMES, *CLI_TINY, "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300  # a failsafe only: the loop ends when a run file exists
        while not list((out / "runs").glob("*.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no run file appeared"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done = len(list((out / "runs").glob("*.json")))
    assert 1 <= done <= 2 and not (out / "suite.json").exists()
    suite = run_suite(NAMES, out, jobs=1, **TINY)["suite"]
    assert (suite["runs_trained"], suite["runs_reused"]) == (14 - done, done)
    assert suite["runs"] == _suite(reference)["runs"]


def test_worker_processes_give_the_same_numbers(reference, tmp_path):
    suite = run_suite(NAMES, tmp_path, jobs=2, **TINY)["suite"]
    assert suite["runs_trained"] == 14
    assert suite["runs"] == _suite(reference)["runs"]


def test_a_dask_cluster_gives_the_same_numbers(reference, local_cluster, tmp_path):
    address = local_cluster.scheduler_address[len("tcp://"):]
    suite = run_suite(NAMES, tmp_path, executor="dask://" + address, **TINY)["suite"]
    assert suite["runs_trained"] == 14 and len(list((tmp_path / "runs").glob("*.json"))) == 14
    assert suite["runs"] == _suite(reference)["runs"]


def test_the_autoencoder_study_runs_alone(tmp_path, capsys):
    assert main(["experiment", "activations", "autoencoder", "--sample", "--out", str(tmp_path)]) == 2
    assert "the autoencoder study runs alone" in capsys.readouterr().err
    assert not tmp_path.joinpath("runs").exists()


# Sweeps with a stand-in run function (no training): what the client does with what comes back.

def _fake_result(task, **changes):
    from mlpx.study.experiments.run_key import library_identity

    history = {"loss": [0.5] * task["epochs"], "val_loss": [0.4] * task["epochs"],
               "val_accuracy": [0.9] * task["epochs"], "iterations": [10], "iteration_loss": [0.5],
               "layer_stats": [], "steps": 10, "stop_reason": None}
    return {"label": task["config"]["label"], "seed": task["seed"], "optimizer": "sgd", "test_accuracy": 0.9,
            "train_accuracy": 0.95, "train_loss": 0.2, "test_loss": 0.3, "seconds": 1.5, "stop_reason": None,
            "history": history, "backend": "numba", "libraries": library_identity(), **changes}


def _fake_entries():
    return plan(["activations"], 1, 1, _data_spec("mnist", None, None, True), **FAKE)  # 4 distinct runs


@pytest.fixture
def fake_runs(monkeypatch):
    """suite.run_config replaced by a stand-in; returns the list of tasks it ran."""
    import mlpx.study.experiments.suite as suite

    ran = []

    def run_config(task):
        ran.append(task)
        return _fake_result(task)

    monkeypatch.setattr(suite, "run_config", run_config)
    return ran


@pytest.mark.parametrize("damage", ["missing train_loss", "history null", "seconds a text", "history.loss a text",
                                    "stop_reason a number", "layer_stats not lists", "test_accuracy true"])
def test_a_stored_run_missing_what_the_reports_read_is_reported_and_trained_again(tmp_path, fake_runs, damage):
    from mlpx.study.experiments.schedule import measured_costs
    from mlpx.study.experiments.suite import run_sweep

    store = RunStore(tmp_path / "runs")
    entries = _fake_entries()
    assert run_sweep(entries, store, jobs=1, progress=False).runs_trained == 4
    path = store.path(entries[0].key)
    record = json.loads(path.read_text())
    result = record["result"]
    if damage == "missing train_loss":
        del result["train_loss"]
    elif damage == "history null":
        result["history"] = None
    elif damage == "seconds a text":
        result["seconds"] = "1.5"
    elif damage == "history.loss a text":
        result["history"]["loss"] = "0.5"
    elif damage == "stop_reason a number":
        result["stop_reason"] = 3
    elif damage == "layer_stats not lists":
        result["history"]["layer_stats"] = [7]
    else:
        result["test_accuracy"] = True
    path.write_text(json.dumps(record))  # valid JSON, the right key: only the result is wrong
    measured_costs(store.records())  # the scheduler skips it quietly (history null raised AttributeError)
    fake_runs.clear()
    with pytest.warns(CorruptRunWarning, match="trained again") as caught:
        sweep = run_sweep(entries, store, jobs=1, progress=False)
    assert any(str(path) in str(w.message) for w in caught)
    assert (sweep.runs_trained, sweep.runs_reused) == (1, 3) and len(fake_runs) == 1
    assert RunStore(store.folder).get(entries[0].key)["train_loss"] == 0.2  # rewritten whole


def test_measured_costs_skip_malformed_records():
    from mlpx.study.experiments.schedule import measured_costs

    fields = _fake_entries()[0].fields
    good = _fake_result({"epochs": 2, "seed": 0, "config": {"label": "x"}}, seconds=4.0)
    records = [(fields, {**good, "history": None}), (fields, {**good, "seconds": "4"}), (fields, "not a result"),
               (fields, good)]
    assert list(measured_costs(records).values()) == [2.0]


def test_runs_finished_before_a_failing_run_are_stored(tmp_path, monkeypatch):
    """Run 0 finishes in the background, run 1 is still running, run 2 fails at once: runs 0 and 1 are stored
    (run 1 after the pool waited for it), run 3 is never started, and the failure is raised."""
    from concurrent.futures import Executor, Future
    from contextlib import contextmanager

    import mlpx.study.executors as executors
    from mlpx.study.experiments.suite import run_sweep

    class Pool(Executor):
        def __init__(self):
            self.futures, self.shutdowns = [], []

        def submit(self, fn, task):
            future = Future()
            future.set_running_or_notify_cancel()  # running: cancel() cannot stop it
            self.futures.append((future, task))
            if len(self.futures) == 3:
                first, task0 = self.futures[0]
                first.set_result(_fake_result(task0))  # finished meanwhile, not collected yet
                future.set_exception(RuntimeError("run 2 failed"))
            return future

        def shutdown(self, wait=True, *, cancel_futures=False):
            self.shutdowns.append((wait, cancel_futures))
            future, task = self.futures[1]
            if wait and not future.done():
                future.set_result(_fake_result(task))  # the running run ends while the pool waits

    pool = Pool()

    @contextmanager
    def make_executor(spec, jobs, backend=None):
        yield pool

    monkeypatch.setattr(executors, "make_executor", make_executor)
    entries = _fake_entries()
    store = RunStore(tmp_path / "runs")
    with pytest.raises(RuntimeError, match="run 2 failed"):
        run_sweep(entries, store, jobs=4, progress=False)
    assert len(pool.futures) == 3 and pool.shutdowns[0] == (True, True)
    stored = {task["config"]["label"] for _, task in pool.futures[:2]}
    assert {p.stem for p in store.folder.glob("*.json")} == {e.key for e in entries if e.label in stored}


def test_keys_hold_the_numeric_libraries_and_are_stable(monkeypatch):
    import numpy

    from mlpx.study.experiments import run_key

    entry = _fake_entries()[0]
    fields = key_fields(entry.task, data_id=FAKE["data_id"], backend="numba")
    libraries = fields["libraries"]
    assert libraries["numpy"] == numpy.__version__ and "numba" in libraries
    assert libraries["blas"] and {"internal_api", "version", "architecture"} <= set(libraries["blas"][0])
    again = key_fields(entry.task, data_id=FAKE["data_id"], backend="numba")
    assert content_key(again) == content_key(fields) == entry.key  # stable within one environment
    run_key.library_identity.cache_clear()
    monkeypatch.setattr(numpy, "__version__", "0.0.1")
    try:
        assert content_key(key_fields(entry.task, data_id=FAKE["data_id"], backend="numba")) != entry.key
        run_key.library_identity.cache_clear()
        monkeypatch.undo()
        monkeypatch.setattr(run_key, "_blas_identity", lambda: [{"internal_api": "openblas", "version": "9.9",
                                                                 "architecture": "Haswell", "threading_layer": "x"}])
        assert content_key(key_fields(entry.task, data_id=FAKE["data_id"], backend="numba")) != entry.key
    finally:
        run_key.library_identity.cache_clear()


@pytest.mark.parametrize("change", [{"backend": "cupy"}, {"libraries": {"numpy": "0.0.1"}}])
def test_a_run_computed_otherwise_than_its_key_says_is_not_stored(tmp_path, monkeypatch, change):
    import mlpx.study.experiments.suite as suite
    from mlpx.study.experiments.store import MismatchedRunWarning

    monkeypatch.setattr(suite, "run_config", lambda task: _fake_result(task, **change))
    store = RunStore(tmp_path / "runs")
    with pytest.warns(MismatchedRunWarning, match="is not stored"):
        sweep = suite.run_sweep(_fake_entries(), store, jobs=1, progress=False)
    assert sweep.runs_trained == 4 and [r["test_accuracy"] for r in sweep.results] == [0.9] * 4
    assert not list(store.folder.glob("*.json"))


@pytest.mark.parametrize("option", ["--out", "--store"])
def test_experiment_destinations_under_a_file_are_refused_before_training(tmp_path, capsys, fake_runs, option):
    (tmp_path / "somefile").write_text("not a folder")
    target = tmp_path / "somefile" / "sub"
    argv = ["experiment", "activations", *CLI_TINY, option, str(target)]
    if option == "--store":
        argv += ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{option} {target}: {tmp_path / 'somefile'} is a file, not a folder" in err
    assert fake_runs == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("error, status", [(PermissionError(13, "Permission denied", "/x/runs/k.json"), 2),
                                           (IsADirectoryError(21, "Is a directory", "/x/index.md"), 2),
                                           (OSError(28, "No space left on device", "/x/runs/k.json"), 1)])
def test_os_errors_become_one_line_naming_the_path(monkeypatch, capsys, error, status):
    import mlpx.study.experiments.suite as suite

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(suite, "run_suite", fail)
    assert main(["experiment", "activations", "--sample"]) == status
    err = capsys.readouterr().err
    assert err == f"mlpx: error: {error.filename}: {error.strerror}\n"
