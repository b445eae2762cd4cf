"""The training loop: callbacks, schedules, divergence, Ctrl-C, recording, and no per-step host syncs."""
import os
import signal

import numpy as np
import pytest

import mlpx
from mlpx.callbacks import Callback, CosineLR, EarlyStopping, StepLR, make_schedule
from mlpx.training import fit


@pytest.fixture(scope="module")
def small():
    data = mlpx.datasets.load_mnist_sample()
    return data.x_train[:600], data.y_train[:600], data.x_test[:300], data.y_test[:300]


def make_model(seed=0, optimizer="sgd", lr=0.05, activation="relu"):
    model = mlpx.MLP([784, 24, 10], activation=activation, seed=seed, backend="numpy")
    return model.compile(optimizer=mlpx.optim.make_optimizer(optimizer, lr=lr))


class Recorder(Callback):
    """Copies the weights at every epoch end."""

    def __init__(self):
        self.params = []

    def on_epoch_end(self, model, epoch, logs):
        self.params.append(model.params.copy())


class ScriptedValLoss(Callback):
    """Replaces val_loss with a scripted sequence (runs before EarlyStopping, which reads the same logs)."""

    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, model, epoch, logs):
        logs["val_loss"] = self.values[epoch]


def test_early_stopping_stops_and_restores_best_weights(small):
    x, y, xv, yv = small
    model, rec = make_model(), Recorder()
    stopper = EarlyStopping(patience=2)
    history = model.fit(x, y, epochs=8, batch_size=50, validation_data=(xv, yv), verbose=0,
                        callbacks=[ScriptedValLoss([1.0, 0.6, 0.7, 0.65, 0.5, 0.4, 0.3, 0.2]), stopper, rec])
    # best at epoch 1 (0.6); no improvement at 2 and 3 -> stop after epoch 3 with the epoch-1 weights
    assert len(history.loss) == 4 and history.stop_reason == "early stopping"
    assert stopper.best_epoch == 1 and stopper.best_value == 0.6
    np.testing.assert_array_equal(model.params, rec.params[1])
    assert not np.array_equal(model.params, rec.params[3])


def test_early_stopping_without_validation_says_what_is_missing(small):
    x, y, _, _ = small
    with pytest.raises(ValueError, match="val_loss.*validation"):
        make_model().fit(x, y, epochs=1, verbose=0, callbacks=[EarlyStopping()])


def test_schedules_set_the_learning_rate_per_epoch(small):
    x, y, _, _ = small
    history = make_model(lr=0.1).fit(x[:100], y[:100], epochs=5, verbose=0, callbacks=[StepLR(2, gamma=0.5)])
    np.testing.assert_allclose(history.lr, [0.1, 0.1, 0.05, 0.05, 0.025])
    cosine = make_model(lr=0.1).fit(x[:100], y[:100], epochs=5, verbose=0, callbacks=[CosineLR(4)])
    np.testing.assert_allclose(cosine.lr, [0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05,
                                           0.1 * (1 + np.cos(3 * np.pi / 4)) / 2, 0.0], atol=1e-12)
    assert isinstance(make_schedule("cosine", 10), CosineLR) and make_schedule("none", 10) is None
    with pytest.raises(ValueError, match="expected none, step or cosine"):
        make_schedule("linear", 3)


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_divergence_stops_with_a_clear_message_and_finite_weights(small, capsys):
    x, y, _, _ = small
    model = make_model(lr=1e4, activation="leaky_relu")
    history = fit(model, x, y, epochs=5, batch_size=20, verbose=0, log_every=5)
    assert history.stop_reason.startswith("diverged: the training loss became")
    assert "training diverged" in capsys.readouterr().err
    assert np.all(np.isfinite(model.params)) and len(history.loss) < 5


def test_poisoned_weights_are_replaced_by_the_last_good_ones(small):
    x, y, _, _ = small

    class Poison(Callback):
        def on_epoch_begin(self, model, epoch):
            if epoch == 2:  # first-layer biases: every step uses them (NaN weights of an always-zero pixel
                model.b[0][:5] = np.nan  # would never reach the loss on the sparse first-layer path)

    model, rec = make_model(), Recorder()
    history = fit(model, x, y, epochs=4, batch_size=50, verbose=0, callbacks=[Poison(), rec])
    assert history.stop_reason.startswith("diverged") and len(history.loss) == 2
    assert np.all(np.isfinite(model.params))
    # the read-back at the end of epoch 2 confirmed the snapshot of the end of epoch 1 (step 12)
    np.testing.assert_array_equal(model.params, rec.params[0])


def test_ctrl_c_stops_cleanly_and_keeps_the_work_done(small, capsys):
    x, y, _, _ = small

    class CtrlC(Callback):
        def on_epoch_end(self, model, epoch, logs):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    model = make_model()
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN when started as a background job
    history = model.fit(x, y, epochs=6, batch_size=50, verbose=1, callbacks=[CtrlC()])
    assert history.stop_reason == "interrupted" and len(history.loss) == 2
    assert model.optimizer.step_count == 2 * 12
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # handler given back


def test_iteration_points_carry_the_validation_loss(small):
    x, y, xv, yv = small
    history = fit(make_model(), x, y, epochs=2, batch_size=30, validation_data=(xv, yv), verbose=0,
                  log_every=7, log_val_samples=100)
    assert history.iterations == list(range(7, 41, 7))
    assert len(history.iteration_loss) == len(history.iteration_val_loss) == 5
    assert all(np.isfinite(history.iteration_val_loss))
    first = make_model()
    assert history.iteration_val_loss[0] != first.evaluate(xv[:100], yv[:100])["loss"]  # measured after training


def test_no_host_sync_per_step(small, monkeypatch):
    """Read-backs happen once per epoch (plus evaluations), never per step."""
    x, y, _, _ = small
    model = make_model()
    calls = []
    real = model.ops.to_host
    monkeypatch.setattr(model.ops, "to_host", lambda a: calls.append(a.shape) or real(a))
    fit(model, x, y, epochs=3, batch_size=10, verbose=0, log_every=10_000)  # 60 steps per epoch
    assert len(calls) == 3


def test_mlp_fit_signature_is_unchanged(small):
    x, y, xv, yv = small
    history = make_model().fit(x, y, epochs=1, batch_size=64, validation_data=(xv, yv), shuffle=False, verbose=0,
                               callbacks=None)
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "lr"}


def test_progress_bar_path_reads_back_more_often_but_trains_the_same(small, monkeypatch, capsys):
    x, y, _, _ = small
    quiet = make_model()
    fit(quiet, x, y, epochs=2, batch_size=5, verbose=0)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    shown = make_model()
    history = fit(shown, x, y, epochs=2, batch_size=5, verbose=1)  # 120 steps per epoch: bar refreshed every 50
    np.testing.assert_array_equal(shown.params, quiet.params)
    err = capsys.readouterr().err
    assert "epoch 1/2:" in err and "/120" in err and "epoch 2/2  loss" in err and len(history.loss) == 2


def test_history_counts_optimizer_steps_not_log_points(small):
    """600 samples in batches of 64: ceil(600 / 64) = 10 steps per epoch, 30 in 3 epochs; the last log point
    (every 7 steps) is step 28, which is what the report used to call the number of updates."""
    x, y, _, _ = small
    model = make_model()
    history = fit(model, x, y, epochs=3, batch_size=64, verbose=0, log_every=7)
    assert history.iterations[-1] == 28
    assert history.steps == model.optimizer.step_count == 30
    fit(model, x, y, epochs=4, batch_size=64, verbose=0, log_every=7, initial_epoch=3, history=history)
    assert history.steps == 40  # a continued history keeps counting


def test_history_steps_after_ctrl_c_mid_epoch(small):
    x, y, _, _ = small
    model = make_model()
    step, made = model._step, []

    def step_then_ctrl_c(*args):
        step(*args)
        made.append(1)
        if len(made) == 17:  # in the middle of epoch 2 (10 steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)

    model._step = step_then_ctrl_c
    history = fit(model, x, y, epochs=3, batch_size=64, verbose=0, log_every=5)
    assert history.stop_reason == "interrupted"
    assert history.steps == model.optimizer.step_count == 17 and history.iterations[-1] == 15


def test_history_holds_only_documented_fields(small):
    """history.json is History.to_dict(): every key is named in the class docstring, and the loop's running
    loss window (internal state) is not among them."""
    x, y, xv, yv = small
    history = fit(make_model(), x, y, epochs=1, batch_size=64, validation_data=(xv, yv), verbose=0, log_every=7)
    keys = set(history.to_dict())
    assert "window" not in keys
    undocumented = [k for k in keys if f"``{k}``" not in mlpx.History.__doc__]
    assert not undocumented
