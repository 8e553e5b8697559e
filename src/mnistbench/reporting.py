"""The comparison table and the figures of the report.

Inputs are the files the train and evaluate steps publish (``summary.json``,
``metrics.csv``, test ``metrics.json``), so the table can be rebuilt from results alone,
by Snakemake or DVC alike.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

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
]


def comparison_table(model_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """One row per model, best test F1 first."""
    rows = []
    for d in map(Path, model_dirs):
        summary = read_json(d / "summary.json")
        test = read_json(d / "test" / "metrics.json")
        row = {**summary, **{k: v for k, v in test.items() if k.startswith("test_")}}
        row["params"] = test["params"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table = table[[c for c in COLUMNS if c in table.columns]]
    return table.sort_values(["test_f1", "model"], ascending=[False, True]).reset_index(drop=True)


def _markdown(table: pd.DataFrame) -> str:
    shown = table.copy()
    for col in ("val_f1", "test_f1", "test_accuracy"):
        if col in shown:
            shown[col] = shown[col].map(lambda v: f"{v:.4f}")
    shown["params"] = shown["params"].map(lambda v: f"{v:,}")
    shown["train_seconds"] = shown["train_seconds"].map(lambda v: f"{v:.0f}")
    shown["peak_mem_mb"] = shown["peak_mem_mb"].map(lambda v: f"{v:.0f}")
    return shown.to_markdown(index=False) + "\n"


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
) -> pd.DataFrame:
    table = comparison_table(model_dirs)
    rounded = table.round({"val_f1": 5, "test_f1": 5, "test_accuracy": 5, "train_seconds": 1})
    with atomic_path(csv_path) as tmp:
        rounded.to_csv(tmp, index=False)
    write_text(md_path, _markdown(table))
    if summary_path is not None:
        write_json(summary_path, summary(rounded))
    plot_learning_curves(model_dirs, curves_path)
    plot_f1_vs_params(table, f1_params_path)
    log.info("comparison of %d models written to %s", len(table), csv_path)
    return table
