"""The comparison as a reader sees it: formatted numbers under short headers, in two tables
that each fit a screen (what was scored, what it cost), a legend, and what the data were.

The comparison.csv keeps every column as a number, for programs; comparison.md, the report's
front page (``tables/scores.csv``, ``tables/costs.csv``), the terminal at the end of a run and
the docs' generated tables all show these two tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from mnistbench.progress import clock

Row = pd.Series
Cell = Callable[[Row], str]


def fmt(value: object, spec: str) -> str:
    return "" if pd.isna(value) else spec.format(value)


def _duration(value: object) -> str:
    return "" if pd.isna(value) else clock(float(value))  # type: ignore[arg-type]


def _interval(row: Row) -> str:
    if pd.isna(row["ci_low"]):
        return ""
    return f"{row['ci_low']:.4f}–{row['ci_high']:.4f}"


def _p_vs_best(best: str) -> Cell:
    return lambda r: "best" if r["model"] == best else fmt(r["mcnemar_p"], "{:.2g}")


def _run_name(row: Row) -> str:
    return str(row["model"]) + (" (ensemble)" if row.get("kind") == "ensemble" else "")


def scores_columns(table: pd.DataFrame) -> dict[str, Cell]:
    """What each run scored (the best single run is the first row that is no ensemble)."""
    runs = table[table["kind"] != "ensemble"] if "kind" in table else table
    best = str(runs["model"].iloc[0]) if len(runs) else ""
    return {
        "run": _run_name,
        "epochs": lambda r: fmt(r["epochs"], "{:.0f}"),
        "val F1": lambda r: fmt(r["val_f1"], "{:.4f}"),
        "test F1": lambda r: fmt(r["test_f1"], "{:.4f}"),
        "95% CI": _interval,
        "p vs best": _p_vs_best(best),
        "errors": lambda r: fmt(r["test_errors"], "{:,.0f}"),
        "ref. F1": lambda r: fmt(r["reference_f1"], "{:.4f}"),
        "status": lambda r: str(r["status"]),
    }


def costs_columns(table: pd.DataFrame) -> dict[str, Cell]:
    """What each run cost to train and to run."""
    return {
        "run": _run_name,
        "params": lambda r: fmt(r["params"], "{:,.0f}"),
        "MACs": lambda r: fmt(r["macs"], "{:,.0f}"),
        "ms b1": lambda r: fmt(r["latency_ms_b1"], "{:.3f}"),
        "ms b256": lambda r: fmt(r["latency_ms_b256"], "{:.4f}"),
        "ckpt MiB": lambda r: fmt(r["ckpt_mb"], "{:.1f}"),
        "train": lambda r: _duration(r["train_seconds"]),
        "to ref.": lambda r: _duration(r["time_to_ref_s"]),
        "peak MB": lambda r: fmt(r["peak_mem_mb"], "{:,.0f}"),
        "precision": lambda r: fmt(r["precision"], "{}"),
    }


LEGEND = {
    "test F1": "macro-F1 on the test set (val F1: on the validation split, which chose "
    "the weights)",
    "95% CI": "95% bootstrap interval of test F1 (the test images resampled)",
    "p vs best": "McNemar's exact test against the best run (first row, marked best) on the "
    "same test images: a small p says the error rates differ beyond chance",
    "errors": "misclassified test images",
    "ref. F1": "the test F1 of the model's reference project (config), to beat",
    "MACs": "multiply-accumulates per image",
    "ms b1, ms b256": "CPU milliseconds per image at batch 1 and 256 (the evaluate job's threads)",
    "ckpt MiB": "size of model.ckpt (weights, optimiser and callback state)",
    "train": "wall time of training (m:ss)",
    "to ref.": "training time until val F1 first reached ref. F1 (blank: never)",
    "peak MB": "peak resident memory of the training process",
}


def shown(table: pd.DataFrame, columns: Mapping[str, Cell]) -> pd.DataFrame:
    """The table as text: one column per header, one row per run."""
    rows = [[cell(row) for cell in columns.values()] for _, row in table.iterrows()]
    return pd.DataFrame(rows, columns=list(columns))


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table of text cells, the run names as code."""
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    body = ""
    for values in frame.itertuples(index=False):
        cells = list(values)
        if (
            frame.columns[0] == "run"
        ):  # the name as code, a mark after it: `cnn-ensemble` (ensemble)
            name, _, mark = str(values[0]).partition(" ")
            cells[0] = f"`{name}`" + (f" {mark}" if mark else "")
        body += "| " + " | ".join(str(c) for c in cells) + " |\n"
    return head + body


def data_note(config: Mapping[str, Any] | None) -> str:
    """A line that says the numbers are not MNIST's, for runs on generated digits."""
    data = (config or {}).get("data") or {}
    if data.get("source") != "synthetic":
        return ""
    return (
        "Generated digits (`data.source: synthetic`, the smoke test): these numbers check "
        "the workflow and say nothing about MNIST."
    )


def verdicts(table: pd.DataFrame) -> list[str]:
    """A line per ensemble: better than the best run it was chosen from, or (in bold) not."""
    lines = []
    rows = table[table["verdict"].notna()] if "verdict" in table else table.iloc[:0]
    for _, row in rows.iterrows():
        text = f"`{row['model']}` (ensemble): {row['verdict']}."
        lines.append(f"**{text}**" if row["verdict"].startswith("not") else text)
    return ["\n".join(f"- {line}" for line in lines)] if lines else []


def legend() -> str:
    return "Columns: " + "; ".join(f"**{name}**: {text}" for name, text in LEGEND.items()) + "."


def plain_table(frame: pd.DataFrame) -> str:
    """Aligned columns for the terminal."""
    widths = [max([len(c), *(len(v) for v in frame[c])]) for c in frame.columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(frame.columns, widths, strict=True))]
    for values in frame.itertuples(index=False):
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(values, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


TERMINAL = ("run", "test F1", "95% CI", "p vs best", "errors", "params", "train", "status")


def closing(
    table: pd.DataFrame, config: Mapping[str, Any] | None, paths: Mapping[str, str], top: int = 10
) -> str:
    """What a run prints at its end: the comparison's top rows, then where the table and the
    report are (``paths``: ``md``, ``report`` and ``report_command``)."""
    columns = {**scores_columns(table), **costs_columns(table)}
    head = f"top {top} of {len(table)}" if len(table) > top else f"{len(table)} runs"
    lines = [f"Comparison, best test F1 first ({head}):"]
    note = data_note(config).replace("`", "")
    lines += [note] if note else []
    lines.append(plain_table(shown(table.head(top), {k: columns[k] for k in TERMINAL})))
    lines.append(f"The whole table, costs and legend: {paths['md']}")
    lines.append(f"The HTML report ({paths['report']}): {paths['report_command']}")
    return "\n".join(lines) + "\n"
