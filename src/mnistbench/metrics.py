"""The metrics, from a confusion matrix: the one definition every number of mnistbench uses.

Training logs (the epoch statistics and validation of ``train.classifier.Classifier``), the
choice of the published weights, the test-set evaluation, the bootstrap intervals and the report
all count a confusion matrix (rows: true class, columns: predicted class) and derive accuracy
and macro-F1 from it here. A class that is never predicted (or never present) scores an F1 of 0.

Every function takes a matrix ``[..., C, C]``: leading axes are independent matrices (the
bootstrap scores a stack of resampled matrices in one call).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs: one ``bincount`` of ``true * C + predicted``; C is
    ``num_classes``, the data set's (a foundation: it knows no data set)."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    counts = np.bincount(labels * num_classes + preds, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 of each class (last axis); 0 where undefined."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    predicted, actual = cm.sum(axis=-2), cm.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        # 2PR / (P + R) = 2 tp / (predicted + actual): 0 where tp is 0.
        f1 = np.where(predicted + actual > 0, 2.0 * tp / (predicted + actual), 0.0)
    return precision, recall, f1


def _one_per_matrix(values: np.ndarray) -> Any:
    """A float for one matrix, an array for a stack of them."""
    return float(values) if np.ndim(values) == 0 else values


def accuracy(cm: np.ndarray) -> Any:
    """The share of images on the diagonal (one value per matrix)."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum(axis=(-2, -1))
    right = np.diagonal(cm, axis1=-2, axis2=-1).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _one_per_matrix(np.where(total > 0, right / total, 0.0))


def macro_f1(cm: np.ndarray) -> Any:
    """The mean F1 over every class (one value per matrix)."""
    return _one_per_matrix(per_class(cm)[2].mean(axis=-1))


def scores(cm: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro precision, recall and F1, and per-class F1 of one matrix."""
    precision, recall, f1 = per_class(cm)
    return {
        "accuracy": accuracy(cm),
        "f1_macro": float(f1.mean()),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_per_class": [float(v) for v in f1],
    }


def test_columns(labels: np.ndarray, preds: np.ndarray, metrics: dict[str, Any]) -> dict[str, Any]:
    """The test columns of a comparison row, for a run (evaluation) and an ensemble alike."""
    return {
        "n_test": int(labels.shape[0]),
        "test_f1": metrics["f1_macro"],
        "test_accuracy": metrics["accuracy"],
        "test_precision": metrics["precision_macro"],
        "test_recall": metrics["recall_macro"],
        "test_errors": int((preds != labels).sum()),
    }
