"""Classification metrics on host label arrays: confusion matrix and per-class accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np


def _labels(name: str, y: Any) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D integer array, got shape {arr.shape} {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """``cm[i, j]`` = how many samples of true class ``i`` were predicted as class ``j``.

    Shapes: ``y_true`` (N,), ``y_pred`` (N,) integers in ``[0, n_classes)`` -> int64
    (n_classes, n_classes); row sums are the class counts, the trace is the number correct.
    """
    t, p = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(
                f"{name} holds labels outside [0, {n_classes}): min {arr.min()}, max {arr.max()}"
            )
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class, ``cm[i, i] / sum_j cm[i, j]``; NaN for a class with no samples."""
    counts = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.diag(cm) / np.maximum(counts, 1), np.nan)


__all__ = ["confusion_matrix", "per_class_accuracy"]
