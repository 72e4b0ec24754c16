"""Confusion matrix and per-class accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.metrics import confusion_matrix, per_class_accuracy


def test_confusion_matrix_counts_pairs():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert cm.dtype == np.int64
    assert cm.sum() == 6 and np.trace(cm) == 4


def test_confusion_matrix_agrees_with_a_plain_loop():
    rng = np.random.default_rng(3)
    t, p = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    expected = np.zeros((10, 10), dtype=np.int64)
    for a, b in zip(t, p, strict=True):
        expected[a, b] += 1
    np.testing.assert_array_equal(confusion_matrix(t, p, 10), expected)


def test_per_class_accuracy_is_row_recall_and_nan_for_absent_classes():
    cm = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 2]])
    acc = per_class_accuracy(cm)
    assert acc[0] == pytest.approx(0.75) and acc[2] == pytest.approx(0.5)
    assert np.isnan(acc[1])


@pytest.mark.parametrize(
    "t,p,match",
    [
        ([0, 1], [0], "shape"),
        ([0, 3], [0, 1], r"y_true holds labels outside \[0, 3\)"),
        ([0, 1], [-1, 1], "y_pred holds labels outside"),
        ([0.0, 1.0], [0, 1], "integer"),
    ],
)
def test_bad_labels_are_named(t, p, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(np.array(t), np.array(p), 3)
