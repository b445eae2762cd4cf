"""mlpx.study.plot writes non-empty PNG files for every figure kind (the pictures themselves were inspected by eye)."""
import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install 'mlpx[plots]')")

from mlpx.study import plot  # noqa: E402
from mlpx.training import History  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=5_000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > min_bytes, (path, len(data))


def history(seed=0, epochs=5):
    rng = np.random.default_rng(seed)
    loss = list(np.linspace(1.0, 0.2, epochs) + rng.random(epochs) * 0.05)
    return History(loss=loss, accuracy=[1 - v / 2 for v in loss], val_loss=[v + 0.05 for v in loss],
                   val_accuracy=[1 - v / 2 - 0.02 for v in loss], iterations=list(range(200, 2001, 200)),
                   iteration_loss=list(np.linspace(1.5, 0.2, 10)), iteration_val_loss=list(np.linspace(1.4, 0.3, 10)))


def test_history_figures(tmp_path):
    h = history()
    assert_png(plot.iteration_loss(h, tmp_path / "it.png", loss_name="cross_entropy"))
    assert_png(plot.epoch_curves(h, tmp_path / "loss.png", "loss"))
    assert_png(plot.epoch_curves(h.to_dict(), tmp_path / "acc.png", "accuracy"))  # a dict from history.json


def test_confusion_matrix_with_an_empty_row(tmp_path):
    cm = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 7]])
    assert_png(plot.confusion_matrix(cm, tmp_path / "cm.png", ["a", "b", "c"]))


def test_misclassified_grid(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 784))
    y = rng.integers(0, 10, 40)
    pred = np.where(rng.random(40) < 0.5, y, (y + 1) % 10)
    assert_png(plot.misclassified(x, y, pred, tmp_path / "wrong.png", n=10))
    assert_png(plot.misclassified(x, y, y, tmp_path / "none.png"), min_bytes=1_000)  # no errors: still a file


def test_compare_overlays_seeds_and_configurations(tmp_path):
    runs = {"a": [history(0), history(1), history(2)], "b": [history(3)]}
    assert_png(plot.compare(runs, tmp_path / "cmp.png", key="val_accuracy", ylabel="test accuracy"))
    assert_png(plot.compare(runs, tmp_path / "it.png", key="iteration_loss", x_key="iterations",
                            xlabel="iteration"))
    assert_png(plot.compare({"short": [History()]}, tmp_path / "empty.png", key="loss"), min_bytes=1_000)
