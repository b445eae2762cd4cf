"""The mlpx command line: train run folders, resume, evaluate, info, and clear errors for bad arguments.

Every test runs offline on the bundled MNIST sample: MLPX_DATA_DIR points at an empty folder and downloads fail.
"""
import json

import numpy as np
import pytest

import mlpx
from mlpx import datasets
from mlpx.study.cli import main

RUN_FILES = ("model.npz", "checkpoint.npz", "history.json", "config.json", "metrics.json", "report.md",
             "loss_per_iteration.png", "loss_per_epoch.png", "accuracy_per_epoch.png", "confusion_matrix.png",
             "misclassified.png")


def small_run(out, *extra):
    return main(["train", "--hidden", "16", "--epochs", "2", "--log-every", "20", "--quiet", "--out", str(out),
                 *extra])


def test_train_without_arguments_trains_the_reference_network_on_the_sample_loudly(offline, capsys):
    assert main(["train", "--quiet"] + ["--epochs", "1"]) == 0  # only --epochs shortened; the rest are defaults
    out, err = capsys.readouterr()
    assert "USING THE BUNDLED SAMPLE" in err
    assert "MLP([784, 500, 250, 100, 10], activation='relu'" in out and "lr=0.01" in out
    (folder,) = (offline / "runs").iterdir()
    config = json.loads((folder / "config.json").read_text())["config"]
    assert config["batch_size"] == 64 and config["optimizer"] == "sgd" and config["hidden"] == [500, 250, 100]


def test_run_folder_holds_everything_and_the_report_states_the_right_numbers(offline):
    out = offline / "run"
    assert small_run(out, "--validation-split", "0.1") == 0
    for name in RUN_FILES:
        assert (out / name).stat().st_size > 0, name
    for name in RUN_FILES[6:]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    model = mlpx.load(out / "model.npz")
    data = datasets.load_mnist_sample(validation_split=0.1)
    expected = model.evaluate(data.x_test, data.y_test)
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"])
    cm = np.array(metrics["confusion_matrix"])
    assert cm.sum() == len(data.y_test) and np.trace(cm) / cm.sum() == pytest.approx(expected["accuracy"])
    report = (out / "report.md").read_text()
    assert f"| test | {expected['loss']:.4f} | {expected['accuracy']:.4f} | {len(data.y_test)} |" in report
    assert "| macro avg |" in report and "| weighted avg |" in report and "| true \\ predicted |" in report
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 2 and len(history["iteration_val_loss"]) == len(history["iterations"]) > 0


def test_resume_continues_exactly(offline):
    assert small_run(offline / "straight", "--epochs", "3") == 0
    assert small_run(offline / "cut", "--epochs", "2") == 0
    assert main(["train", "--resume", str(offline / "cut"), "--epochs", "3", "--quiet"]) == 0
    a, b = mlpx.load(offline / "straight" / "model.npz"), mlpx.load(offline / "cut" / "model.npz")
    np.testing.assert_array_equal(a.params, b.params)
    h = json.loads((offline / "cut" / "history.json").read_text())
    assert h == json.loads((offline / "straight" / "history.json").read_text()) | {"epoch_seconds":
                                                                                    h["epoch_seconds"]}


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_divergence_exits_1_and_still_writes_the_run(offline, capsys):
    code = small_run(offline / "div", "--lr", "10000", "--activation", "leaky_relu")
    assert code == 1 and "training diverged" in capsys.readouterr().err
    assert np.all(np.isfinite(mlpx.load(offline / "div" / "model.npz").params))
    assert "diverged" in (offline / "div" / "report.md").read_text()


def test_evaluate_and_info(offline, capsys):
    assert small_run(offline / "run") == 0
    capsys.readouterr()
    assert main(["evaluate", str(offline / "run" / "model.npz")]) == 0
    out = capsys.readouterr().out
    assert "## Confusion matrix" in out and "| macro avg |" in out
    assert main(["evaluate", str(offline / "run" / "model.npz"), "--out", str(offline / "ev")]) == 0
    assert (offline / "ev" / "confusion_matrix.png").stat().st_size > 5_000
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "BLAS" in out and "chosen backend" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--early-stopping", "3"], "--early-stopping watches the validation loss"),
    (["train", "--optimizer", "adam", "--momentum", "0.9"], "adam has no momentum"),
    (["train", "--resume", "nowhere"], "expected a run folder with config.json"),
    (["evaluate", "missing.npz"], "model file not found"),
])
def test_bad_arguments_give_clear_errors(offline, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "expected a positive integer"),
    (["train", "--lr", "-1"], "argument --lr: must be a finite number > 0, got -1.0"),
    (["train", "--validation-split", "1.5"], "argument --validation-split: must be a finite number in [0, 1), got 1.5"),
    (["train", "--validation-split", "nan"], "argument --validation-split: must be a finite number in [0, 1), got nan"),
    (["train", "--activation", "swish"], "invalid choice: 'swish'"),
    (["experiment", "dropout"], "invalid choice: 'dropout'"),
])
def test_argparse_errors_name_the_argument(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_second_run_into_the_same_folder_is_refused(offline, capsys):
    assert small_run(offline / "run") == 0
    assert small_run(offline / "run") == 2
    assert "already holds a run" in capsys.readouterr().err


def test_resuming_an_early_stopped_run_trains_no_further(offline, capsys):
    out = offline / "es"
    # patience 1 and a large learning rate on the small sample: the validation loss soon fails to improve
    assert small_run(out, "--epochs", "12", "--lr", "0.5", "--validation-split", "0.2", "--early-stopping", "1") == 0
    history = json.loads((out / "history.json").read_text())
    assert history["stop_reason"] == "early stopping" and len(history["loss"]) < 12
    before = mlpx.load(out / "model.npz").params.copy()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert "already stopped early" in capsys.readouterr().out
    np.testing.assert_array_equal(mlpx.load(out / "model.npz").params, before)
    assert json.loads((out / "history.json").read_text())["loss"] == history["loss"]


def test_experiment_autoencoder_runs_the_study(tmp_path):
    """`mlpx experiment autoencoder` runs mlpx.study.autoencoder.run_study (tiny: the bundled sample, 1 epoch)."""
    from mlpx.study.cli import main

    out = tmp_path / "ae"
    assert main(["experiment", "autoencoder", "--sample", "--epochs", "1", "--subset", "400", "--out", str(out)]) == 0
    assert {"results.md", "results.csv", "reconstructions.png"} <= {p.name for p in out.iterdir()}
    assert "relu" in (out / "results.md").read_text()


@pytest.mark.parametrize("init", ["torch_default", "lecun_uniform", "lecun_normal"])
def test_train_accepts_the_framework_initializers(offline, monkeypatch, init):
    import mlpx.model

    drawn = []
    original = mlpx.model.initial_weights
    monkeypatch.setattr(mlpx.model, "initial_weights", lambda name, *a: drawn.append(original(name, *a)) or drawn[-1])
    out = offline / init
    assert main(["train", "--hidden", "16", "--epochs", "1", "--quiet", "--init", init, "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["init"] == init
    assert mlpx.load(out / "model.npz").get_config()["init"] == init
    w1, b1, w2, b2 = drawn[0]  # the run's model (loading it draws again, then overwrites)
    bound = {"torch_default": 1 / np.sqrt(784), "lecun_uniform": np.sqrt(3 / 784),
             "lecun_normal": 2 / np.sqrt(784) / 0.87962566103423978}[init]
    assert 0.9 * bound < np.abs(w1).max() <= np.float32(bound)
    assert bool(b1.any()) == bool(b2.any()) == (init == "torch_default")  # PyTorch draws the biases too
