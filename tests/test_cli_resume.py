"""`mlpx train`: reports that state the updates made and the step size used, `--resume` that refuses options
contradicting the run's saved configuration, and explicit locations checked before any training.

Offline on the bundled sample (the `offline` fixture of conftest.py). The sample has 4,000 training images: with
batch 64 that is ceil(4000 / 64) = 63 optimizer steps per epoch.
"""
import json

import pytest

from mlpx.study.cli import main

from test_cli import small_run


def snapshot(folder):
    """Every file of a run folder with its bytes and modification time: 'nothing written' means equal."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture
def two_epoch_run(offline):
    out = offline / "run"
    assert small_run(out) == 0  # --hidden 16 --epochs 2 --log-every 20, batch 64, lr 0.01
    return out


def test_report_states_the_optimizer_steps_not_the_last_log_point(two_epoch_run):
    history = json.loads((two_epoch_run / "history.json").read_text())
    assert history["steps"] == 2 * 63 and history["iterations"][-1] == 120  # the last log point
    assert "window" not in history
    assert "- updates: 126 mini-batch steps (iteration loss recorded every 20 steps)" in \
        (two_epoch_run / "report.md").read_text()


def test_step_schedule_without_step_size_records_and_reports_the_size_used(offline):
    out = offline / "step"
    assert small_run(out, "--epochs", "6", "--schedule", "step") == 0  # default: a third of the run, 2 epochs
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["step_size"] == 2
    assert "| step_size | `2` |" in (out / "report.md").read_text()
    lr = json.loads((out / "history.json").read_text())["lr"]
    assert lr == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001])


@pytest.mark.parametrize("extra, named", [
    (["--lr", "0.5"], ["--lr 0.5 (the run has 0.01)"]),
    (["--lr", "0.5", "--batch-size", "32", "--hidden", "8", "8"],
     ["--lr 0.5 (the run has 0.01)", "--batch-size 32 (the run has 64)", "--hidden [8, 8] (the run has [16])"]),
    (["--optimizer", "adam", "--epochs", "5"], ["--optimizer adam (the run has sgd)"]),
    (["--batch-size", "64", "--epochs", "1"], ["--epochs 1 (the run has 2; --epochs may only raise the total)"]),
    (["--out", "elsewhere"], ["--out elsewhere (a resumed run writes into its own folder"]),
])
def test_resume_refuses_options_that_contradict_the_saved_run(two_epoch_run, capsys, extra, named):
    before = snapshot(two_epoch_run)
    capsys.readouterr()
    assert main(["train", "--resume", str(two_epoch_run), "--quiet", *extra]) == 2
    out, err = capsys.readouterr()
    assert "contradict the run's saved configuration" in err and str(two_epoch_run / "config.json") in err
    for text in named:
        assert text in err
    assert out == "" and snapshot(two_epoch_run) == before


def test_resume_accepts_typed_options_equal_to_the_saved_ones(two_epoch_run):
    assert main(["train", "--resume", str(two_epoch_run), "--quiet", "--epochs", "3", "--batch-size", "64",
                 "--lr", "0.01", "--hidden", "16"]) == 0
    history = json.loads((two_epoch_run / "history.json").read_text())
    assert len(history["loss"]) == 3 and history["steps"] == 3 * 63


@pytest.mark.parametrize("epochs, message", [
    ("1", "--epochs 1 (the run has 2; --epochs may only raise the total)"),  # the raised total was saved
    ("2", "--epochs 2: {out} has already trained 2 epochs (of 2)"),
    (None, "--resume {out}: the run has already trained all 2 epochs"),  # a plain resume of a finished run
])
def test_resume_with_no_more_epochs_than_done_is_refused(offline, capsys, epochs, message):
    out = offline / "run"
    assert small_run(out, "--epochs", "1") == 0
    assert main(["train", "--resume", str(out), "--quiet", "--epochs", "2"]) == 0  # raising the total works
    assert json.loads((out / "config.json").read_text())["config"]["epochs"] == 2
    before = snapshot(out)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet", *(["--epochs", epochs] if epochs else [])]) == 2
    out_text, err = capsys.readouterr()
    assert message.format(out=out) in err
    assert "resuming" not in out_text + err and snapshot(out) == before


def test_a_raised_total_is_saved_so_a_plain_resume_continues_to_it(offline, capsys, monkeypatch):
    """Raise the total from 1 to 4 epochs, stop in the third epoch (as Ctrl-C would), then resume without
    --epochs: the run continues to the raised total (config.json holds it), not to the first run's 1 epoch."""
    from mlpx import training

    out = offline / "run"
    assert small_run(out, "--epochs", "1") == 0
    real = training._Loop.run_epoch

    def stop_in_the_third_epoch(self, epoch, *args):
        return None if epoch == 2 else real(self, epoch, *args)  # None: the loop's 'interrupted'

    monkeypatch.setattr(training._Loop, "run_epoch", stop_in_the_third_epoch)
    assert main(["train", "--resume", str(out), "--quiet", "--epochs", "4"]) == 130
    assert json.loads((out / "config.json").read_text())["config"]["epochs"] == 4
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 2
    monkeypatch.setattr(training._Loop, "run_epoch", real)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert f"resuming {out} after epoch 2 of 4" in capsys.readouterr().out
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 4 and history["steps"] == 4 * 63 and history["stop_reason"] is None


def test_resume_with_a_corrupt_config_names_the_file(two_epoch_run, capsys):
    (two_epoch_run / "config.json").write_text('{"config": {"lr": 0.0')
    assert main(["train", "--resume", str(two_epoch_run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(two_epoch_run / "config.json") in err and "JSONDecodeError" in err


def test_an_explicit_data_dir_without_the_data_is_refused_not_replaced(offline, capsys):
    assert main(["train", "--data-dir", "typo", "--quiet", "--out", str(offline / "run")]) == 2
    err = capsys.readouterr().err
    assert "data_dir typo does not exist" in err and "train-images-idx3-ubyte.gz" in err
    assert "USING THE BUNDLED SAMPLE" not in err and not (offline / "run").exists()


@pytest.mark.parametrize("option", ["--out", "--save"])
def test_unwritable_destinations_are_refused_before_training(offline, capsys, option):
    (offline / "somefile").write_text("not a folder")
    target = offline / "somefile" / ("run" if option == "--out" else "model.npz")
    argv = ["train", "--hidden", "16", "--epochs", "1", "--quiet", option, str(target)]
    if option == "--save":
        argv += ["--out", str(offline / "run")]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert f"{option} {target}: {offline / 'somefile'} is a file, not a folder" in err
    assert "data:" not in out and not (offline / "run").exists()  # nothing loaded, trained or written


def test_save_to_a_folder_is_refused_before_training(offline, capsys):
    (offline / "models").mkdir()
    assert main(["train", "--quiet", "--save", str(offline / "models"), "--out", str(offline / "run")]) == 2
    assert "is a folder; expected a file name" in capsys.readouterr().err and not (offline / "run").exists()


def test_an_unwritable_resumed_run_folder_is_refused_before_training(two_epoch_run, capsys, monkeypatch):
    """Root may write anywhere, so the failure to create a file is simulated where the check makes it."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    before = snapshot(two_epoch_run)
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    capsys.readouterr()
    assert main(["train", "--resume", str(two_epoch_run), "--quiet", "--epochs", "3"]) == 2
    out, err = capsys.readouterr()
    assert f"--resume {two_epoch_run}: cannot write into {two_epoch_run}: Permission denied" in err
    assert "data:" not in out and snapshot(two_epoch_run) == before


def test_evaluate_a_folder_says_it_is_a_folder(two_epoch_run, capsys):
    assert main(["evaluate", str(two_epoch_run)]) == 2
    err = capsys.readouterr().err
    assert f"{two_epoch_run} is a folder, not a model file" in err and "not found" not in err


def test_bogus_backend_variable_is_refused_by_the_cli(offline, capsys, monkeypatch):
    monkeypatch.setenv("MLPX_BACKEND", "bogus")
    assert main(["train", "--hidden", "16", "--epochs", "1", "--quiet", "--out", str(offline / "run")]) == 2
    assert "MLPX_BACKEND is 'bogus'" in capsys.readouterr().err
    assert not (offline / "run" / "config.json").exists()
