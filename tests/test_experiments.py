"""The seed studies' experiments: configurations as the issue lists them, tiny runs of each, tables and plots."""
import csv
import statistics

import pytest

from mlpx.study.cli import main
from mlpx.study.experiments import EXPERIMENTS, experiment_configs, run_experiment

NUMBERS = ("test_accuracy", "train_accuracy", "train_loss", "test_loss")


def test_configurations_follow_the_issue():
    acts = ["sigmoid", "tanh", "relu", "leaky_relu"]
    assert [c["activation"] for c in experiment_configs("activations")] == acts
    assert all(c["optimizer"] == {"name": "sgd", "lr": 0.01} for c in experiment_configs("activations"))
    opts = experiment_configs("optimizers")
    assert [(c["optimizer"]["name"], c["optimizer"]["lr"], c["optimizer"].get("momentum")) for c in opts] == [
        ("sgd", 0.01, None), ("sgd", 0.01, 0.9), ("rmsprop", 0.001, None), ("adam", 0.001, None)]
    assert {(c["loss"], c["optimizer"].get("momentum")) for c in experiment_configs("losses")} == {
        ("cross_entropy", None), ("cross_entropy", 0.9), ("mse", None), ("mse", 0.9)}
    assert [c["optimizer"]["weight_decay"] for c in experiment_configs("weight-decay")] == [0.5, 0.1, 0.01, 0.001, 0]
    assert {(c["activation"], c["optimizer"]["lr"]) for c in experiment_configs("learning-rates")} == {
        (a, lr) for a in acts for lr in (0.001, 0.01, 0.1)}
    assert {(c["init"], c["activation"]) for c in experiment_configs("init-grid")} == {
        (i, a) for i in ("zeros", "small_random", "he_normal", "xavier_uniform") for a in acts}
    for name in EXPERIMENTS:
        configs = experiment_configs(name)
        assert all(c["hidden"] == [500, 250, 100] and c["batch_size"] == 64 for c in configs)
        assert len({c["label"] for c in configs}) == len(configs)  # labels tell configurations apart
    with pytest.raises(ValueError, match="expected one of activations"):
        experiment_configs("dropout")


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_each_experiment_runs_tiny_through_the_cli(name, tmp_path):
    out = tmp_path / name  # --out is the sweep's folder: each experiment in OUT/NAME/
    assert main(["experiment", name, "--epochs", "1", "--subset", "150", "--sample", "--jobs", "1",
                 "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["configuration"] for r in rows] == [c["label"] for c in experiment_configs(name)]
    for row in rows:
        assert 0 <= float(row["test_accuracy_mean"]) <= 1 and float(row["seconds_mean"]) > 0
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == len(rows) + 1 and "test accuracy %" in table
    for png in ("test_accuracy_per_epoch.png", "train_loss_per_epoch.png", "test_loss_per_epoch.png",
                "loss_per_iteration.png"):
        assert (out / png).stat().st_size > 5_000


def test_seeds_give_mean_and_spread(tmp_path):
    result = run_experiment("optimizers", tmp_path, epochs=1, seeds=2, subset=120, sample=True, progress=False)
    runs = result["results"]
    assert [(r["label"], r["seed"]) for r in runs[:2]] == [("sgd", 0), ("sgd", 1)]
    assert runs[0]["test_loss"] != runs[1]["test_loss"]  # the seed matters
    row = result["rows"][0]
    assert row["seeds"] == 2
    assert row["test_loss_mean"] == pytest.approx(statistics.fmean(r["test_loss"] for r in runs[:2]))
    assert row["test_loss_std"] == pytest.approx(statistics.stdev(r["test_loss"] for r in runs[:2]))
    assert " ± " in (tmp_path / "results.md").read_text()
    assert len(list(csv.DictReader((tmp_path / "runs.csv").open()))) == 8


def test_worker_processes_give_the_same_numbers_as_inline(tmp_path):
    kwargs = dict(epochs=1, seeds=1, subset=150, sample=True, progress=False)
    inline = run_experiment("activations", tmp_path / "a", jobs=1, **kwargs)["results"]
    pooled = run_experiment("activations", tmp_path / "b", jobs=2, **kwargs)["results"]
    for a, b in zip(inline, pooled):
        assert a["label"] == b["label"]
        assert [a[k] for k in NUMBERS] == [b[k] for k in NUMBERS]
        assert a["history"]["loss"] == b["history"]["loss"]


def test_bad_options_are_named(tmp_path, capsys):
    assert main(["experiment", "optimizers", "--executor", "ssh://box", "--out", str(tmp_path)]) == 2
    assert "unknown executor 'ssh://box'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "optimizers", "--seeds", "0"])
    assert "expected a positive integer" in capsys.readouterr().err


def test_init_option_changes_every_configuration_or_the_grid():
    """--init reproduces a study's setup with another initialization, e.g. PyTorch's nn.Linear defaults."""
    assert {c["init"] for c in experiment_configs("activations")} == {"xavier_uniform"}
    configs = experiment_configs("optimizers", "torch_default")
    assert {c["init"] for c in configs} == {"torch_default"}
    assert [c["label"] for c in configs] == [c["label"] for c in experiment_configs("optimizers")]
    grid = experiment_configs("init-grid", ["torch_default", "lecun_normal", "lecun_uniform"])
    assert [(c["init"], c["activation"]) for c in grid] == [
        (i, a) for i in ("torch_default", "lecun_normal", "lecun_uniform")
        for a in ("sigmoid", "tanh", "relu", "leaky_relu")]
    with pytest.raises(ValueError, match=r"unknown initializer 'kaiming'; expected one of zeros"):
        experiment_configs("activations", "kaiming")
    with pytest.raises(ValueError, match=r"--init: experiment losses uses one initializer .* got 2"):
        experiment_configs("losses", ["torch_default", "lecun_normal"])
    with pytest.raises(ValueError, match=r"--init: expected at least one initializer for experiment init-grid"):
        experiment_configs("init-grid", [])


def test_experiment_cli_trains_with_the_initializer_given(tmp_path, monkeypatch):
    import json

    import mlpx.model

    used = []
    original = mlpx.model.initial_weights
    monkeypatch.setattr(mlpx.model, "initial_weights", lambda name, *a: used.append(name) or original(name, *a))
    out = tmp_path / "torch"
    assert main(["experiment", "activations", "--init", "torch_default", "--epochs", "1", "--subset", "100",
                 "--sample", "--jobs", "1", "--out", str(out)]) == 0  # runs in this process, where the spy sees them
    assert used == ["torch_default"] * 4
    out = out / "activations"
    assert json.loads((out / "results.json").read_text())["settings"]["initialization"] == "torch_default"
    out = tmp_path / "grid"
    assert main(["experiment", "init-grid", "--init", "lecun_normal", "lecun_uniform", "--epochs", "1",
                 "--subset", "100", "--sample", "--jobs", "1", "--out", str(out)]) == 0
    out = out / "init-grid"
    assert used[4:] == ["lecun_normal"] * 4 + ["lecun_uniform"] * 4
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["configuration"] for r in rows][:2] == ["lecun_normal / sigmoid", "lecun_normal / tanh"]
