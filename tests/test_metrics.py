"""mlpx.metrics against hand-computed cases and, where installed, scikit-learn."""
import numpy as np
import pytest

from mlpx import metrics

# 3 classes: true 0 0 0 1 1 2 ; pred 0 1 0 1 2 2
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 1, 0, 1, 2, 2]


def test_accuracy_and_confusion_matrix_by_hand():
    assert metrics.accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert metrics.confusion_matrix([1], [1], n_classes=4).shape == (4, 4)


def test_precision_recall_f1_by_hand():
    s = metrics.precision_recall_f1(Y_TRUE, Y_PRED)
    # class 0: tp 2, predicted 2, true 3 ; class 1: tp 1, predicted 2, true 2 ; class 2: tp 1, predicted 2, true 1
    np.testing.assert_allclose(s["precision"], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(s["recall"], [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(s["f1"], [0.8, 0.5, 2 / 3])
    np.testing.assert_array_equal(s["support"], [3, 2, 1])


def test_class_never_predicted_scores_zero_not_nan():
    s = metrics.precision_recall_f1([0, 1, 2], [0, 0, 0], n_classes=4)
    assert np.all(np.isfinite(s["f1"]))
    assert s["precision"][1] == 0 and s["recall"][3] == 0 and s["support"][3] == 0


def test_report_dict_averages_by_hand():
    rep = metrics.classification_report(Y_TRUE, Y_PRED, target_names=["a", "b", "c"], output_dict=True)
    assert rep["a"]["support"] == 3 and rep["accuracy"] == pytest.approx(4 / 6)
    assert rep["macro avg"]["precision"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert rep["weighted avg"]["recall"] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1 * 1.0) / 6)
    text = metrics.classification_report(Y_TRUE, Y_PRED, target_names=["a", "b", "c"])
    assert "macro avg" in text and "weighted avg" in text and "0.6667" in text


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="same length"):
        metrics.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="1-d"):
        metrics.confusion_matrix([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="n_classes=2"):
        metrics.confusion_matrix([0, 5], [0, 1], n_classes=2)
    with pytest.raises(ValueError, match="target_names"):
        metrics.classification_report([0, 1], [0, 1], target_names=["x"], n_classes=2)


def test_against_scikit_learn_on_random_labels():
    skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    rng = np.random.default_rng(0)
    t = rng.integers(0, 10, 500)
    p = np.where(rng.random(500) < 0.7, t, rng.integers(0, 10, 500))
    p[p == 7] = 3  # class 7 never predicted: the zero-division case
    labels = list(range(10))
    assert metrics.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    np.testing.assert_array_equal(metrics.confusion_matrix(t, p, 10), skm.confusion_matrix(t, p, labels=labels))
    ours = metrics.classification_report(t, p, n_classes=10, output_dict=True)
    theirs = skm.classification_report(t, p, labels=labels, output_dict=True, zero_division=0)
    for key in [str(i) for i in labels] + ["macro avg", "weighted avg"]:
        for m, sk_name in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"),
                           ("support", "support")):
            assert ours[key][m] == pytest.approx(theirs[key][sk_name]), (key, m)
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"])
