"""Checkpoints: exact resume on the CPU, atomic writes that survive a kill mid-write, clear errors."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mlpx
from mlpx import checkpoint
from mlpx.callbacks import Callback, EarlyStopping, StepLR
from mlpx.training import fit


@pytest.fixture(scope="module")
def small():
    data = mlpx.datasets.load_mnist_sample()
    return data.x_train[:500], data.y_train[:500], data.x_test[:200], data.y_test[:200]


def make_model(optimizer):
    model = mlpx.MLP([784, 20, 16, 10], activation="tanh", seed=3, backend="numpy")
    return model.compile(optimizer=mlpx.optim.make_optimizer(optimizer, lr=0.01))


class CtrlCAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, model, epoch, logs):
        if epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("optimizer", ["momentum", "adam", "rmsprop"])
def test_interrupted_then_resumed_equals_uninterrupted_bitwise(small, tmp_path, optimizer):
    """Bitwise, not to a tolerance: on the CPU the resumed run performs the same float operations on the same
    values in the same order (same batches from the restored shuffle generator, same optimizer state and step
    count, same learning rate from the restored schedule)."""
    x, y, xv, yv = small
    kwargs = dict(epochs=5, batch_size=32, validation_data=(xv, yv), verbose=0, log_every=7)

    def callbacks():
        return [StepLR(2, gamma=0.5), EarlyStopping(patience=10)]

    straight = make_model(optimizer)
    expected = fit(straight, x, y, callbacks=callbacks(), **kwargs)

    path = tmp_path / "checkpoint.npz"
    cut = make_model(optimizer)
    partial = fit(cut, x, y, callbacks=callbacks() + [CtrlCAfter(1)], checkpoint=path, **kwargs)
    assert partial.stop_reason == "interrupted" and len(partial.loss) == 2
    ckpt = checkpoint.load_checkpoint(path)
    assert ckpt.epoch == 2 and ckpt.model.optimizer.step_count == cut.optimizer.step_count

    restarted = callbacks() + [CtrlCAfter(-1)]
    model, history = checkpoint.resume(path, x, y, callbacks=restarted, **kwargs)
    np.testing.assert_array_equal(model.params, straight.params)
    for name in ("loss", "accuracy", "val_loss", "lr", "iterations", "iteration_loss", "iteration_val_loss"):
        assert getattr(history, name) == getattr(expected, name), name
    for key, value in straight.optimizer.state_dict(straight.ops).items():
        np.testing.assert_array_equal(model.optimizer.state_dict(model.ops)[key], value)


def _write_checkpoint(path, small, epochs):
    x, y, _, _ = small
    model = make_model("momentum")
    fit(model, x[:100], y[:100], epochs=epochs, verbose=0, checkpoint=path)
    return model


def test_failure_inside_the_writer_leaves_the_old_checkpoint(small, tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    old = _write_checkpoint(path, small, epochs=1)

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full (injected)")

    monkeypatch.setattr(checkpoint.np, "savez", broken_savez)
    with pytest.raises(OSError, match="injected"):
        _write_checkpoint(path, small, epochs=2)
    monkeypatch.undo()
    loaded = checkpoint.load_checkpoint(path)
    assert loaded.epoch == 1
    np.testing.assert_array_equal(loaded.model.params, old.params)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]  # no temporary file left behind


def test_process_killed_mid_write_leaves_the_old_checkpoint(small, tmp_path):
    """A child process writes half of a new checkpoint, then is killed with SIGKILL (no cleanup runs)."""
    path = tmp_path / "checkpoint.npz"
    old = _write_checkpoint(path, small, epochs=1)
    child = textwrap.dedent(f"""
        import os, signal, sys
        import numpy as np
        import mlpx
        from mlpx import checkpoint
        from mlpx.training import History

        def killed_savez(f, **arrays):
            f.write(b"PK\\x03\\x04" + bytes(100_000))
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        checkpoint.np.savez = killed_savez
        model = mlpx.MLP([784, 20, 16, 10], activation="tanh", seed=9, backend="numpy").compile()
        checkpoint.save_checkpoint({str(path)!r}, model, History(), 7)
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "checkpoint.npz"]
    assert leftovers and all(name.endswith(".tmp") for name in leftovers)  # the half-written temporary file
    loaded = checkpoint.load_checkpoint(path)
    assert loaded.epoch == 1
    np.testing.assert_array_equal(loaded.model.params, old.params)


def test_clear_errors_for_foreign_files(small, tmp_path):
    model = _write_checkpoint(tmp_path / "c.npz", small, epochs=1)
    model.save(tmp_path / "model.npz")
    with pytest.raises(ValueError, match="a saved model, not a training checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "model.npz")
    with pytest.raises(FileNotFoundError, match="not found"):
        checkpoint.load_checkpoint(tmp_path / "missing.npz")
    ckpt = checkpoint.load_checkpoint(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="callbacks"):
        checkpoint.restore_callbacks([EarlyStopping()], ckpt.callback_states)


def test_resume_is_exact_on_the_emulated_gpu_path_too(small, tmp_path):
    """The CuPy backend's code over the g++-compiled CPU emulation of its kernels: same loop, same guarantee."""
    from mlpx.backend import backend_report

    status = backend_report().get("emulated", "")
    if not status.startswith("available"):
        pytest.skip(f"emulated backend unavailable here: {status}")
    x, y, xv, yv = small

    def model():
        m = mlpx.MLP([784, 24, 10], activation="relu", seed=1, backend="emulated")
        return m.compile(optimizer=mlpx.optim.make_optimizer("adam", lr=0.01))

    kwargs = dict(batch_size=32, validation_data=(xv, yv), verbose=0, log_every=6)
    straight = model()
    expected = fit(straight, x, y, epochs=3, callbacks=[StepLR(1, 0.5)], **kwargs)
    fit(model(), x, y, epochs=2, callbacks=[StepLR(1, 0.5)], checkpoint=tmp_path / "c.npz", **kwargs)
    resumed, history = checkpoint.resume(tmp_path / "c.npz", x, y, epochs=3, callbacks=[StepLR(1, 0.5)],
                                         backend="emulated", **kwargs)
    assert resumed.backend == "emulated"
    np.testing.assert_array_equal(resumed.ops.to_host(resumed.params), straight.ops.to_host(straight.params))
    assert history.iteration_loss == expected.iteration_loss and history.val_loss == expected.val_loss


def test_resuming_a_run_that_early_stopping_ended_trains_no_more_and_gives_its_best_weights(small, tmp_path):
    x, y, xv, yv = small
    kwargs = dict(epochs=30, batch_size=32, validation_data=(xv, yv), verbose=0)
    path = tmp_path / "checkpoint.npz"
    model = mlpx.MLP([784, 20, 10], activation="relu", seed=0, backend="numpy").compile(
        optimizer=mlpx.optim.SGD(lr=2.0))   # too large a step: validation loss soon stops improving
    history = fit(model, x, y, callbacks=[EarlyStopping(patience=1)], checkpoint=path, **kwargs)
    assert history.stop_reason == "early stopping" and len(history.loss) < 30
    best = np.argmin(history.val_loss)
    assert best < len(history.loss) - 1        # the last epoch was worse, so best and last weights differ
    resumed, resumed_history = checkpoint.resume(path, x, y, callbacks=[EarlyStopping(patience=1)], **kwargs)
    assert len(resumed_history.loss) == len(history.loss)
    assert resumed_history.stop_reason == "early stopping"
    np.testing.assert_array_equal(resumed.params, model.params)   # fit ended on the best epoch's weights too
    assert not np.array_equal(checkpoint.load_checkpoint(path).model.params, model.params)


def test_the_partial_loss_window_is_loop_state_in_the_checkpoint_not_history(small, tmp_path):
    """500 samples in batches of 32: 16 steps per epoch, log points every 7 steps, so after epoch 1 the window
    holds steps 15 and 16 (32 + 20 samples). It is kept beside the history, which holds only documented fields."""
    import json

    x, y, _, _ = small
    path = tmp_path / "checkpoint.npz"
    fit(make_model("momentum"), x, y, epochs=1, batch_size=32, verbose=0, log_every=7, checkpoint=path)
    with np.load(path) as data:
        header = json.loads(str(data["checkpoint"]))
    assert "window" not in header["history"]
    assert header["loop"]["window"][1] == 52 and header["loop"]["window"][0] > 0
    assert checkpoint.load_checkpoint(path).loop_state == header["loop"]


def test_checkpoints_with_the_window_in_the_history_still_resume_exactly(small, tmp_path):
    """Checkpoints written before the window moved out of the history resume as before."""
    import json

    x, y, _, _ = small
    kwargs = dict(batch_size=32, verbose=0, log_every=7)
    straight = make_model("momentum")
    expected = fit(straight, x, y, epochs=2, **kwargs)
    path = tmp_path / "checkpoint.npz"
    fit(make_model("momentum"), x, y, epochs=1, checkpoint=path, **kwargs)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["checkpoint"]))
    header["history"]["window"] = header.pop("loop")["window"]  # the old layout
    del header["history"]["steps"]                               # which did not count steps in the history
    arrays["checkpoint"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    model, history = checkpoint.resume(path, x, y, epochs=2, **kwargs)
    np.testing.assert_array_equal(model.params, straight.params)
    assert history.iteration_loss == expected.iteration_loss
    assert history.steps == expected.steps == model.optimizer.step_count
