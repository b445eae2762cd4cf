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
from mlpx.study.experiments.store import CorruptRunWarning, RunStore, content_key, key_fields
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
                      {"config": {"batch_size": 32}}, {"config": {"init": "he_normal"}}):
        assert changed(**different) != key, different
    fields = key_fields(task, data_id=FAKE["data_id"], backend="numba")
    assert {"mlpx", "kernels", "code", "data", "backend", "dtype", "blas_threads", "epochs", "seed"} <= set(fields)
    assert content_key({**fields, "backend": "numpy"}) != key
    assert content_key({**fields, "data": {**FAKE["data_id"], "subset": 500}}) != key
    real = key_fields(task)  # the data's identity from its file, not its path; the backend found here
    assert real["data"]["dataset"] == "mnist-sample" and real["data"]["subset"] == 600
    assert len(real["data"]["sha256"]) == 16 and real["backend"] in ("numba", "numpy")


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
    assert {str(files[0]), str(files[1])} <= {str(w.message).split(" ")[2] for w in caught}
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
