"""How sure each number of the comparison is: a bootstrap interval of each run's (and
ensemble's) test F1, McNemar's exact test against the best single run, and Pareto fronts, from
the per-image test predictions.

A single run's test F1 is one draw: on 10,000 test images an accuracy near 99.5% has a 95%
interval of about +-0.14%, so a difference of 0.1% between two models may be noise. The
bootstrap interval resamples the test images (the models stay fixed); McNemar's exact test
asks whether two models that saw the same images disagree more often one way than the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mnistbench.data.idx import NUM_CLASSES
from mnistbench.errors import DataError
from mnistbench.metrics import macro_f1

CI_LEVEL = 0.95


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


def load_predictions(d: Path) -> dict[str, np.ndarray] | None:
    """A model's per-image test predictions (evaluate step), or None where there are none."""
    path = d / "test" / "predictions.npz"
    if not path.exists():
        return None
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def add_statistics(
    table: pd.DataFrame, model_dirs: Sequence[Path], resamples: int, seed: int
) -> pd.DataFrame:
    """The 95% bootstrap interval of each row's test F1 (``ci_low``, ``ci_high``; every row on
    the same resamples of the test images) and McNemar's exact p-value against the best single
    run (``mcnemar_p``): a run against the best run of the table (blank for that run itself), an
    ensemble (a ``pool_runs`` list) against the best of the runs it was chosen from. Rows without
    ``predictions.npz`` get blanks."""
    table = table.copy()
    for col in ("ci_low", "ci_high", "mcnemar_p"):
        table[col] = np.nan
    by_name = {d.name: d for d in model_dirs}
    preds = {m: load_predictions(by_name[m]) for m in table["model"] if m in by_name}
    preds = {m: p for m, p in preds.items() if p is not None}
    if not preds:
        return table
    first, labels = next(iter(preds.items()))[0], next(iter(preds.values()))["labels"]
    for m, p in preds.items():
        if p["labels"].shape != labels.shape or not np.array_equal(p["labels"], labels):
            raise DataError(
                f"{by_name[m] / 'test/predictions.npz'}: scored on other test images than "
                f"{first!r}; evaluate every model on the same test.pt (rerun the evaluate step)"
            )
    indices = bootstrap_indices(labels.shape[0], resamples, seed)
    num_classes = next(iter(preds.values()))["proba"].shape[1]
    pools = table["pool_runs"] if "pool_runs" in table else pd.Series([np.nan] * len(table))
    runs = [m for m, pool in zip(table["model"], pools, strict=True) if not isinstance(pool, list)]
    for i, (m, pool) in enumerate(zip(table["model"], pools, strict=True)):
        if m not in preds:
            continue
        scores = bootstrap_f1(labels, preds[m]["preds"], indices, num_classes)
        table.loc[i, ["ci_low", "ci_high"]] = percentile_interval(scores, CI_LEVEL)
        # the table is sorted by test F1: the first of the runs is the best
        best = next((r for r in runs if r in (pool if isinstance(pool, list) else runs)), None)
        if best is not None and m != best and best in preds:
            _, _, p = mcnemar_exact(preds[m]["preds"] == labels, preds[best]["preds"] == labels)
            table.loc[i, "mcnemar_p"] = p
    return table


def validation_evidence(selection: dict) -> str:
    """What chose an ensemble (its metrics.json ``selection``): its validation score against
    that of the best single candidate, the greedy choice's first step."""
    first, last = selection["steps"][0], selection["steps"][-1]
    score = "calibrated log-loss {:.4f}, F1 {:.4f}"
    mine = score.format(last["val_calibrated_log_loss"], last["val_f1"])
    if selection["rule"] != "greedy" or len(selection["steps"]) == 1:
        return f"{selection['rule']} weights, validation {mine}"
    alone = score.format(first["val_calibrated_log_loss"], first["val_f1"])
    return f"validation {mine}, against {alone} for {first['added']} alone"


def add_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Each ensemble's ``verdict``: better or not than the best run it was chosen from (the
    first of its ``pool_runs`` in the table, best test F1 first) on the test set, with the
    errors, McNemar's p and the validation evidence that chose it. An ensemble no better than
    its best run is published as such, never silently."""
    table = table.copy()
    table["verdict"] = None
    pools = table["pool_runs"] if "pool_runs" in table else [None] * len(table)
    for i, pool in enumerate(pools):
        if not isinstance(pool, list):
            continue
        ran = table[table["model"].isin(pool)]
        if ran.empty:
            continue
        row, best = table.loc[i], ran.iloc[0]
        better = row["test_errors"] < best["test_errors"]
        table.loc[i, "verdict"] = (
            f"{'better' if better else 'not better'} than {best['model']} on the test set: "
            f"{row['test_errors']} errors against {best['test_errors']} (F1 "
            f"{row['test_f1']:.4f} against {best['test_f1']:.4f}, McNemar p = "
            f"{row['mcnemar_p']:.2g}); chosen on {row['chosen_on_val']}"
        )
    return table
