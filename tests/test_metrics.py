"""Metric code against values computed by hand on a small confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest

from mnistbench.metrics import confusion_matrix, scores


def test_confusion_matrix_counts() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 0])
    cm = confusion_matrix(labels, preds, num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_metrics_by_hand() -> None:
    # true\pred: class 0: 1 right, 1 called "1"; class 1: 2 right; class 2: 1 called "0".
    cm = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    m = scores(cm)
    # precision: 1/2, 2/3, 0 (never predicted); recall: 1/2, 1, 0
    # F1: class0 = 0.5; class1 = 2*(2/3*1)/(2/3+1) = 0.8; class2 = 0
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["f1_per_class"] == pytest.approx([0.5, 0.8, 0.0])
    assert m["f1_macro"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["precision_macro"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert m["recall_macro"] == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_metrics_match_torchmetrics() -> None:
    import torch
    from torchmetrics.functional.classification import multiclass_f1_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    preds = np.where(rng.random(500) < 0.8, labels, rng.integers(0, 10, 500))
    ours = scores(confusion_matrix(labels, preds, 10))["f1_macro"]
    theirs = multiclass_f1_score(
        torch.tensor(preds), torch.tensor(labels), num_classes=10, average="macro"
    )
    assert ours == pytest.approx(float(theirs), abs=1e-6)
