"""How sure each number of the comparison is: bootstrap intervals, McNemar's test, Pareto fronts.

A single run's test F1 is one draw: on 10,000 test images an accuracy near 99.5% has a 95%
interval of about +-0.14%, so a difference of 0.1% between two models may be noise. The
bootstrap interval resamples the test images (the models stay fixed); McNemar's exact test
asks whether two models that saw the same images disagree more often one way than the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mnistbench.data.idx import NUM_CLASSES
from mnistbench.metrics import macro_f1


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` x ``n`` image indices drawn with replacement. Shared by every model of a
    comparison, so all intervals come from the same resampled test sets."""
    if n < 1 or resamples < 1:
        raise ValueError(f"bootstrap needs n >= 1 and resamples >= 1 (got {n}, {resamples})")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n), dtype=np.int64)


def bootstrap_f1(
    labels: np.ndarray,
    preds: np.ndarray,
    indices: np.ndarray,
    num_classes: int = NUM_CLASSES,
    chunk: int = 200,
) -> np.ndarray:
    """Macro-F1 of each resample (one row of ``indices`` each), without a Python loop over
    resamples: the confusion matrices of all resamples in a chunk come from one ``bincount``
    over ``(resample * C + true) * C + predicted``, scored by ``metrics.macro_f1`` as a stack.
    Chunks bound the memory to a few ``chunk x n`` arrays."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and predictions {preds.shape} must be 1-D, equal")
    scores = np.empty(indices.shape[0], dtype=np.float64)
    cells = num_classes * num_classes
    for start in range(0, indices.shape[0], chunk):
        idx = indices[start : start + chunk]
        rows = idx.shape[0]
        offset = (np.arange(rows, dtype=np.int64) * cells)[:, None]
        keys = offset + labels[idx] * num_classes + preds[idx]
        cms = np.bincount(keys.ravel(), minlength=rows * cells)
        scores[start : start + rows] = macro_f1(cms.reshape(rows, num_classes, num_classes))
    return scores


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap samples (percentile method)."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(np.asarray(samples, dtype=np.float64), [tail, 100.0 - tail])
    return float(low), float(high)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    """McNemar's exact test of two classifiers on the same images: (b, c, two-sided p).

    b counts images only A got right, c those only B got right. Under the null hypothesis (equal
    error rates) each of the b + c discordant images goes either way with probability 1/2, so the
    p-value is the two-sided binomial tail: min(1, 2 * P[X <= min(b, c)]), X ~ Bin(b + c, 1/2).
    Exact integer arithmetic: no normal approximation, no continuity correction.
    """
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape:
        raise ValueError(f"McNemar needs the same images: shapes {a.shape} and {b_.shape}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    n = b + c
    if n == 0:
        return b, c, 1.0
    from math import comb

    tail = sum(comb(n, i) for i in range(min(b, c) + 1))
    return b, c, min(1.0, 2 * tail / 2**n)  # int / int: exact, then rounded once


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> np.ndarray:
    """Which points no other point beats: one is dominated when another costs no more and scores
    no less, and is strictly better in one of the two. Lower cost and higher score are better."""
    cost = np.asarray(costs, dtype=np.float64)
    score = np.asarray(scores, dtype=np.float64)
    no_worse = (cost[None, :] <= cost[:, None]) & (score[None, :] >= score[:, None])
    better = (cost[None, :] < cost[:, None]) | (score[None, :] > score[:, None])
    return ~np.any(no_worse & better, axis=1)
