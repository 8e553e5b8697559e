"""The comparison table and the figures of the report.

Inputs are the files the train and evaluate steps publish (``summary.json``,
``metrics.csv``, test ``metrics.json``), so the table can be rebuilt from results alone,
by Snakemake or DVC alike.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mnistbench.errors import DataError
from mnistbench.io import atomic_path, read_json, write_json, write_text

log = logging.getLogger(__name__)
ERROR_FLOOR = 1e-5  # where an error of exactly 0 is drawn on the log-scale error axis

# What a reader compares; precision/recall per class and the selection details stay in each
# model's test/metrics.json and summary.json. Narrow enough for the report's front page.
COLUMNS = [
    "model",
    "epochs",
    "val_f1",
    "test_f1",
    "test_accuracy",
    "test_errors",
    "params",
    "train_seconds",
    "peak_mem_mb",
    "precision",
    "status",
]
OK = "ok"


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
    row["status"] = OK
    return row


def comparison_table(
    model_dirs: Sequence[str | Path], failed: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per model, best test F1 first; models in ``failed`` (name -> why, e.g. the log
    of the failed job) come last, with only their name and status, so none goes missing."""
    failed = dict(failed or {})
    rows = [_model_row(d) for d in map(Path, model_dirs) if d.name not in failed]
    table = pd.DataFrame(rows, columns=COLUMNS if not rows else None)
    table = table[[c for c in COLUMNS if c in table.columns]]
    table = table.sort_values(["test_f1", "model"], ascending=[False, True])
    if failed:
        missing = pd.DataFrame([{"model": m, "status": why} for m, why in failed.items()])
        table = pd.concat([table, missing], ignore_index=True) if len(table) else missing
        table = table.reindex(columns=[c for c in COLUMNS])
        for col in ("epochs", "test_errors", "params"):  # counts stay integers beside blanks
            table[col] = table[col].astype("Int64")
    return table.reset_index(drop=True)


def _markdown(table: pd.DataFrame) -> str:
    shown = table.copy().astype(object)

    def fmt(spec: str):  # type: ignore[no-untyped-def]
        return lambda v: "" if pd.isna(v) else spec.format(v)

    formats = {
        "val_f1": "{:.4f}",
        "test_f1": "{:.4f}",
        "test_accuracy": "{:.4f}",
        "test_errors": "{:.0f}",
        "epochs": "{:.0f}",
        "params": "{:,.0f}",
        "train_seconds": "{:.0f}",
        "peak_mem_mb": "{:.0f}",
        "precision": "{}",
    }
    for col, spec in formats.items():
        if col in shown:
            shown[col] = shown[col].map(fmt(spec))
    text = shown.to_markdown(index=False) + "\n"
    bad = table[table["status"] != OK]["model"].tolist() if "status" in table else []
    if bad:
        text = (
            f"**Incomplete: {len(bad)} of {len(table)} models have no result "
            f"({', '.join(bad)}); see the status column and the logs it names.**\n\n" + text
        )
    return text


def _save_png(fig, path: str | Path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def plot_learning_curves(model_dirs: Sequence[str | Path], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for d in map(Path, model_dirs):
        hist = pd.read_csv(d / "metrics.csv")
        name = d.name
        (line,) = axes[0].plot(hist["epoch"], hist["val_loss"], marker="o", label=f"{name} val")
        if "train_loss" in hist:
            axes[0].plot(
                hist["epoch"],
                hist["train_loss"],
                ls="--",
                color=line.get_color(),
                label=f"{name} train",
            )
        # 1 - F1 on a log scale: every model ends between 0.97 and 1.0 F1, where a linear axis
        # hides the differences that matter. A perfect epoch (error 0) is drawn at the floor.
        axes[1].plot(
            hist["epoch"],
            (1 - hist["val_f1"]).clip(lower=ERROR_FLOOR),
            marker="o",
            color=line.get_color(),
            label=f"{name} val",
        )
        if "train_f1" in hist:
            axes[1].plot(
                hist["epoch"],
                (1 - hist["train_f1"]).clip(lower=ERROR_FLOOR),
                ls="--",
                color=line.get_color(),
            )
    axes[0].set(
        xlabel="epoch", ylabel="cross-entropy loss", title="Loss (solid: val, dashed: train)"
    )
    axes[0].set_yscale("log")
    axes[1].set(
        xlabel="epoch",
        ylabel="1 - macro-F1 (log scale)",
        title="Error: 1 - macro-F1 (solid: val, dashed: train)",
    )
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7, ncol=2)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_png(fig, path)


def plot_f1_vs_params(table: pd.DataFrame, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter(table["params"], table["test_f1"], s=40)
    for _, row in table.iterrows():
        ax.annotate(
            row["model"],
            (row["params"], row["test_f1"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set(xlabel="parameters (log scale)", ylabel="test macro-F1", title="Test F1 against size")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_png(fig, path)


def summary(table: pd.DataFrame) -> dict[str, Any]:
    """The comparison in one line, as a DVC metrics file (``dvc metrics show/diff``); each
    model's own numbers are its test/metrics.json, a metrics file too."""
    best = table.iloc[0]
    return {
        "best_model": str(best["model"]),
        "best_test_f1": float(best["test_f1"]),
        "n_models": len(table),
    }


def build_report(
    model_dirs: Sequence[str | Path],
    csv_path: str | Path,
    md_path: str | Path,
    curves_path: str | Path,
    f1_params_path: str | Path,
    summary_path: str | Path | None = None,
    failed: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Write the table and figures. With ``failed`` (after a failed run), the failed models are
    listed as such and the figures show the others; nothing looks like a complete comparison."""
    failed = dict(failed or {})
    table = comparison_table(model_dirs, failed)
    rounded = table.round({"val_f1": 5, "test_f1": 5, "test_accuracy": 5, "train_seconds": 1})
    with atomic_path(csv_path) as tmp:
        rounded.to_csv(tmp, index=False)
    write_text(md_path, _markdown(table))
    if summary_path is not None:
        write_json(summary_path, summary(rounded))
    done = [d for d in model_dirs if Path(d).name not in failed]
    if done:
        plot_learning_curves(done, curves_path)
        plot_f1_vs_params(table[table["status"] == OK], f1_params_path)
    else:  # no stale figure of an earlier run may sit next to this table
        for path in (curves_path, f1_params_path):
            Path(path).unlink(missing_ok=True)
    if failed:
        # Dated 1970: older than any input, so the next run rebuilds the report even if the
        # failed models' outputs appear without Snakemake knowing (e.g. made by hand).
        for path in (csv_path, md_path):
            os.utime(path, (0, 0))
        log.warning("partial comparison written to %s; failed: %s", csv_path, ", ".join(failed))
    else:
        log.info("comparison of %d models written to %s", len(table), csv_path)
    return table
