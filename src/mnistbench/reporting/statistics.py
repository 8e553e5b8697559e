"""The comparison's uncertainty: a bootstrap interval of each run's (and ensemble's) test F1
and McNemar's test against the best single run, from the per-image test predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mnistbench.errors import DataError
from mnistbench.stats import bootstrap_f1, bootstrap_indices, mcnemar_exact, percentile_interval

CI_LEVEL = 0.95


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
