"""The comparison table (one row per run, best test F1 first), its Markdown form, the summary
over seeds and the one-line DVC metric, from the files the train and evaluate steps publish."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mnistbench.config.runs import SEED_RUN
from mnistbench.errors import DataError
from mnistbench.io import atomic_path, read_json, write_json, write_text
from mnistbench.reporting.display import (
    costs_columns,
    data_note,
    legend,
    markdown_table,
    scores_columns,
    shown,
    verdicts,
)
from mnistbench.reporting.statistics import add_statistics, add_verdicts, validation_evidence

# What a reader compares; precision/recall per class and the selection details stay in each
# model's test/metrics.json and summary.json. Narrow enough for the report's front page.
COLUMNS = [
    "model",
    "kind",
    "epochs",
    "val_f1",
    "test_f1",
    "ci_low",
    "ci_high",
    "mcnemar_p",
    "test_accuracy",
    "test_errors",
    "params",
    "macs",
    "latency_ms_b1",
    "latency_ms_b256",
    "ckpt_mb",
    "train_seconds",
    "reference_f1",
    "time_to_ref_s",
    "peak_mem_mb",
    "precision",
    "members",
    "status",
    "verdict",
]
COUNTS = ("epochs", "test_errors", "params", "macs")  # integers, also beside blank cells
OK = "ok"
RUN, ENSEMBLE = "run", "ensemble"  # the kinds of row
# Costs copied from each model's test/metrics.json (the evaluate step measures them).
COSTS = ("macs", "latency_ms_b1", "latency_ms_b256")


def _model_row(d: Path) -> dict:
    try:
        summary = read_json(d / "summary.json")
        test = read_json(d / "test" / "metrics.json")
    except FileNotFoundError as exc:
        raise DataError(
            f"{exc.filename}: missing; train and evaluate model {d.name!r} first (snakemake "
            "does it), or leave it out of the report"
        ) from None
    row = {**summary, **{k: v for k, v in test.items() if k.startswith("test_")}}
    row["params"] = test["params"]
    # Results evaluated before the cost columns existed leave them blank.
    row.update({k: test.get(k) for k in COSTS})
    row["ckpt_mb"] = test["ckpt_bytes"] / 2**20 if "ckpt_bytes" in test else None
    row["kind"] = RUN
    row["status"] = OK
    return row


def _ensemble_row(d: Path) -> dict:
    """An ensemble's row (build_ensemble stage): its scores, the costs summed over its members,
    the members with their weights, and the runs it was chosen from (``pool_runs``)."""
    try:
        test = read_json(d / "test" / "metrics.json")
    except FileNotFoundError as exc:
        raise DataError(
            f"{exc.filename}: missing; build ensemble {d.name!r} first (snakemake does it)"
        ) from None
    row = {k: v for k, v in test.items() if k.startswith("test_") or k in COLUMNS}
    row["ckpt_mb"] = test["ckpt_bytes"] / 2**20 if test.get("ckpt_bytes") is not None else None
    row["members"] = " ".join(f"{r}:{w:.2g}" for r, w in test["members"].items())
    row["pool_runs"] = [r for runs in test["pools"].values() for r in runs]
    row["chosen_on_val"] = validation_evidence(test["selection"])
    row.update(kind=ENSEMBLE, status=OK)
    return row


def comparison_table(
    model_dirs: Sequence[str | Path],
    failed: Mapping[str, str],
    resamples: int,
    seed: int,
    ensemble_dirs: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """One row per run and per ensemble (``kind``), best test F1 first; models in ``failed``
    (name -> why, e.g. the log of the failed job) come last, with only their name and status,
    so none goes missing, and so do the ensembles they leave without a result."""
    dirs = [d for d in map(Path, model_dirs) if d.name not in failed]
    rows = [_model_row(d) for d in dirs]
    unbuilt = {}
    for d in map(Path, ensemble_dirs):
        if failed and not (d / "test" / "metrics.json").is_file():
            unbuilt[d.name] = "not run (a member failed)"
            continue
        row = _ensemble_row(d)
        lost = [r for r in row["pool_runs"] if r in failed]
        if lost:  # an older result: it must not stand beside the failed run
            unbuilt[d.name] = f"not run ({lost[0]} failed)"
            continue
        rows.append(row)
        dirs.append(d)
    failed = {**failed, **unbuilt}
    table = pd.DataFrame(rows, columns=COLUMNS if not rows else None)
    table = table.sort_values(["test_f1", "model"], ascending=[False, True])
    table = table.reset_index(drop=True)
    if rows:
        table = add_verdicts(add_statistics(table, dirs, resamples, seed))
    table = table.reindex(columns=COLUMNS)
    if failed:
        missing = pd.DataFrame(
            [
                {"model": m, "kind": ENSEMBLE if m in unbuilt else RUN, "status": why}
                for m, why in failed.items()
            ]
        )
        table = pd.concat([table, missing], ignore_index=True) if len(table) else missing
        table = table.reindex(columns=COLUMNS)
    for col in COUNTS:  # counts stay integers beside blanks
        table[col] = table[col].astype("Int64")
    return table.reset_index(drop=True)


def time_to_score(history: pd.DataFrame, score: float) -> float:
    """Training seconds until the validation F1 first reached ``score`` (NaN: never)."""
    if not {"val_f1", "elapsed_s"} <= set(history.columns):
        return float("nan")
    reached = history[history["val_f1"] >= score]
    return float(reached["elapsed_s"].iloc[0]) if len(reached) else float("nan")


def add_references(
    table: pd.DataFrame, model_dirs: Sequence[str | Path], config: Mapping[str, Any] | None
) -> pd.DataFrame:
    """Each model's reference score (``models.<m>.reference.test_f1``, where the run's data set
    is the reference's) and the training seconds its validation F1 took to reach it
    (``time_to_ref_s``, from metrics.csv; blank if never)."""
    table = table.copy()
    models = (config or {}).get("models") or {}
    by_name = {Path(d).name: Path(d) for d in model_dirs}
    for i, name in enumerate(table["model"]):
        ref = (models.get(name) or {}).get("reference") or {}
        if "test_f1" not in ref or ref.get("dataset") != config.get("dataset"):
            continue
        table.loc[i, "reference_f1"] = float(ref["test_f1"])
        history = by_name.get(name, Path("-")) / "metrics.csv"
        if history.is_file():
            table.loc[i, "time_to_ref_s"] = time_to_score(pd.read_csv(history), ref["test_f1"])
    return table


def markdown(table: pd.DataFrame, config: Mapping[str, Any] | None = None) -> str:
    """comparison.md: what the data were (when generated), the scores and the costs of each
    run under short headers, and the legend of those headers."""
    parts = [f"**{note}**" for note in [data_note(config)] if note]
    if "kind" in table and (table["kind"] == ENSEMBLE).any():
        parts.append(
            "Rows marked (ensemble) combine runs: the mean of the members' softmax outputs "
            "(comparison.csv's members: run:weight), chosen and weighted on the validation split "
            "only; params, MACs, latency and training time are summed over the members; their p "
            "is against the best single run they were chosen from (docs/ensembles.md)."
        )
    bad = table[table["status"] != OK]["model"].tolist() if "status" in table else []
    if bad:
        parts.append(
            f"**Incomplete: {len(bad)} of {len(table)} models have no result "
            f"({', '.join(bad)}); see the status column and the logs it names.**"
        )
    ok = table[table["status"] == OK]
    parts.append(markdown_table(shown(table, scores_columns(table))))
    parts += verdicts(ok)
    parts.append(markdown_table(shown(ok, costs_columns(ok))))
    parts.append(legend())
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def summary(table: pd.DataFrame) -> dict[str, Any]:
    """The comparison in a few numbers, as a DVC metrics file (``dvc metrics show``, one column
    each in ``dvc exp show``): the best test F1, the number of runs and each run's test F1
    (``test_f1.<run>``). Numbers only: the best run's name is comparison.csv's first row."""
    ok = table[table["status"] == OK]
    return {
        "best_test_f1": float(ok["test_f1"].iloc[0]) if len(ok) else None,
        "n_models": len(table),
        "test_f1": {str(r["model"]): float(r["test_f1"]) for _, r in ok.iterrows()},
    }


SEED_COLUMNS = [
    "model",
    "n_seeds",
    "seeds",
    "test_f1_mean",
    "test_f1_std",
    "test_accuracy_mean",
    "test_accuracy_std",
    "val_f1_mean",
    "train_seconds_mean",
]


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds of each model's completed runs: runs named
    ``<model>-seed<k>`` (``seeds:`` in the config) are one model; any other run is a model with
    one seed (blank std). Best mean test F1 first."""
    ok = table[table["status"] == OK].copy()
    if "kind" in ok:
        ok = ok[ok["kind"] != ENSEMBLE]
    if not len(ok):
        return pd.DataFrame(columns=SEED_COLUMNS)
    matches = ok["model"].map(SEED_RUN.match)
    ok["base"] = [
        m.group("model") if m else name for m, name in zip(matches, ok["model"], strict=True)
    ]
    ok["seed"] = [m.group("seed") if m else "" for m in matches]
    rows = []
    for base, runs in ok.groupby("base", sort=False):
        row: dict[str, Any] = {
            "model": base,
            "n_seeds": len(runs),
            "seeds": " ".join(sorted((s for s in runs["seed"] if s), key=int)),
        }
        for col in ("test_f1", "test_accuracy"):
            values = runs[col].astype(float)
            row[f"{col}_mean"] = values.mean()
            row[f"{col}_std"] = values.std(ddof=1) if len(values) > 1 else np.nan
        row["val_f1_mean"] = runs["val_f1"].astype(float).mean()
        row["train_seconds_mean"] = runs["train_seconds"].astype(float).mean()
        rows.append(row)
    out = pd.DataFrame(rows, columns=SEED_COLUMNS)
    return out.sort_values(["test_f1_mean", "model"], ascending=[False, True]).reset_index(
        drop=True
    )


def _significant(value: float, digits: int = 3) -> float:
    return value if pd.isna(value) or value == 0 else float(f"{value:.{digits}g}")


# Decimals kept in comparison.csv (the Markdown table formats for reading instead).
ROUNDING = {
    "val_f1": 5,
    "test_f1": 5,
    "ci_low": 5,
    "ci_high": 5,
    "test_accuracy": 5,
    "latency_ms_b1": 4,
    "latency_ms_b256": 5,
    "ckpt_mb": 3,
    "train_seconds": 1,
    "time_to_ref_s": 1,
}


def write_tables(
    table: pd.DataFrame, out: Mapping[str, str | Path], config: Mapping[str, Any] | None = None
) -> None:
    """comparison.csv, comparison.md (with the summary over seeds when runs have several),
    seeds.csv, the report's front tables and the DVC metric summary.json: each one whose path
    ``out`` names."""
    rounded = table.round(ROUNDING)
    rounded["mcnemar_p"] = rounded["mcnemar_p"].map(_significant)
    with atomic_path(out["csv"]) as tmp:
        rounded.to_csv(tmp, index=False)
    ok = table[table["status"] == OK]
    for name, frame in (("scores", shown(table, scores_columns(table))),
                        ("costs", shown(ok, costs_columns(ok)))):  # fmt: skip
        if f"{name}_table" in out:
            with atomic_path(out[f"{name}_table"]) as tmp:
                frame.to_csv(tmp, index=False)
    text = markdown(table, config)
    if "seeds" in out:
        over_seeds = seed_summary(table)
        with atomic_path(out["seeds"]) as tmp:
            over_seeds.round(6).round({"train_seconds_mean": 1}).to_csv(tmp, index=False)
        if (over_seeds["n_seeds"] > 1).any():
            rows = over_seeds.round(5).astype(object).where(over_seeds.notna(), "")
            text += "\n**Over seeds** (mean and sample std):\n\n"
            text += rows.to_markdown(index=False) + "\n"
    write_text(out["md"], text)
    if "summary" in out:
        write_json(out["summary"], summary(rounded))
