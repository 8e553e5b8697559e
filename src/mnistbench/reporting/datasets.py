"""The summary across data sets (``datasets: [...]``): one row per model, one column per data
set, each cell its test F1 with the 95% bootstrap interval, from each data set's
comparison.csv. results/datasets.csv holds the long form (model, dataset, test_f1, ci_low,
ci_high, status), results/datasets.md the table a reader compares."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mnistbench.data.registry import layout
from mnistbench.errors import DataError
from mnistbench.io import atomic_path, write_text
from mnistbench.reporting.tables import OK

COLUMNS = ["model", "dataset", "test_f1", "ci_low", "ci_high", "status"]


def read_comparisons(tables: Mapping[str, str | Path]) -> pd.DataFrame:
    """Each data set's comparison.csv (data set -> path), in the long form of ``COLUMNS``."""
    parts = []
    for dataset, path in tables.items():
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: missing; run the report of data set {dataset!r} first")
        table = pd.read_csv(path)
        missing = [c for c in COLUMNS if c not in (*table.columns, "dataset")]
        if missing:
            raise DataError(
                f"{path}: no column {', '.join(missing)}; rebuild the report of {dataset!r}"
            )
        parts.append(table.assign(dataset=dataset)[COLUMNS])
    return pd.concat(parts, ignore_index=True)


def _cell(row: pd.Series) -> str:
    if row["status"] != OK or pd.isna(row["test_f1"]):
        return str(row["status"]) if isinstance(row["status"], str) else ""
    if pd.isna(row["ci_low"]):
        return f"{row['test_f1']:.4f}"
    return f"{row['test_f1']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"


def wide(long: pd.DataFrame, datasets: list[str]) -> pd.DataFrame:
    """Model x data set, cells ``F1 [low, high]``; the models by their mean test F1, best first."""
    cells = long.assign(cell=long.apply(_cell, axis=1))
    table = cells.pivot(index="model", columns="dataset", values="cell").reindex(columns=datasets)
    order = long.groupby("model")["test_f1"].mean().sort_values(ascending=False, kind="stable")
    table = table.reindex(order.index).fillna("")
    table.columns = [layout(d).title for d in datasets]
    return table.reset_index()


def summarize_datasets(
    tables: Mapping[str, str | Path], out: Mapping[str, str | Path]
) -> pd.DataFrame:
    """results/datasets.csv (long form) and results/datasets.md (model x data set) from each
    data set's comparison.csv; returns the long form."""
    long = read_comparisons(tables)
    with atomic_path(out["csv"]) as tmp:
        long.round({"test_f1": 5, "ci_low": 5, "ci_high": 5}).to_csv(tmp, index=False)
    shown = wide(long, list(tables))
    text = (
        "Test F1 per model and data set, with its 95% bootstrap interval in brackets "
        "(each data set's own comparison.md has every column).\n\n"
        + shown.to_markdown(index=False)
        + "\n"
    )
    write_text(out["md"], text)
    return long
