"""The comparison table and the figures of the report.

Inputs are the files the train and evaluate steps publish (``summary.json``,
``metrics.csv``, test ``metrics.json`` and ``predictions.npz``), so the table can be rebuilt
from results alone, by Snakemake or DVC alike. The statistics (bootstrap interval of test F1,
McNemar's test against the best model) come from the per-image predictions
(``mnistbench.stats``); the costs (MACs, CPU latency, checkpoint size) from the evaluate step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mnistbench.errors import DataError
from mnistbench.io import atomic_path, read_json, write_figure, write_json, write_text
from mnistbench.stats import (
    bootstrap_f1,
    bootstrap_indices,
    mcnemar_exact,
    pareto_front,
    percentile_interval,
)

log = logging.getLogger(__name__)
ERROR_FLOOR = 1e-5  # where an error of exactly 0 is drawn on the log-scale error axis

# What a reader compares; precision/recall per class and the selection details stay in each
# model's test/metrics.json and summary.json. Narrow enough for the report's front page.
COLUMNS = [
    "model",
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
    "status",
]
COUNTS = ("epochs", "test_errors", "params", "macs")  # integers, also beside blank cells
OK = "ok"
CI_LEVEL = 0.95
# Costs copied from each model's test/metrics.json (the evaluate step measures them).
COSTS = ("macs", "latency_ms_b1", "latency_ms_b256")
PACKAGES = (
    "torch",
    "lightning",
    "torchvision",
    "torchmetrics",
    "numpy",
    "pandas",
    "matplotlib",
    "snakemake",
    "dvc",
)


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
    row["status"] = OK
    return row


def load_predictions(d: Path) -> dict[str, np.ndarray] | None:
    """A model's per-image test predictions (evaluate step), or None where there are none."""
    path = d / "test" / "predictions.npz"
    if not path.exists():
        return None
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def add_statistics(
    table: pd.DataFrame, model_dirs: Sequence[Path], resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """The 95% bootstrap interval of each model's test F1 (``ci_low``, ``ci_high``; every model
    on the same resamples of the test images) and McNemar's exact p-value against the best
    model, the first row (``mcnemar_p``; blank for the best itself). Models without
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
    best = str(table.iloc[0]["model"])
    for i, m in enumerate(table["model"]):
        if m not in preds:
            continue
        scores = bootstrap_f1(labels, preds[m]["preds"], indices)
        table.loc[i, ["ci_low", "ci_high"]] = percentile_interval(scores, CI_LEVEL)
        if m != best and best in preds:
            _, _, p = mcnemar_exact(preds[m]["preds"] == labels, preds[best]["preds"] == labels)
            table.loc[i, "mcnemar_p"] = p
    return table


def comparison_table(
    model_dirs: Sequence[str | Path],
    failed: Mapping[str, str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per model, best test F1 first; models in ``failed`` (name -> why, e.g. the log
    of the failed job) come last, with only their name and status, so none goes missing."""
    failed = dict(failed or {})
    dirs = [d for d in map(Path, model_dirs) if d.name not in failed]
    rows = [_model_row(d) for d in dirs]
    table = pd.DataFrame(rows, columns=COLUMNS if not rows else None)
    table = table.sort_values(["test_f1", "model"], ascending=[False, True])
    table = table.reset_index(drop=True)
    if rows:
        table = add_statistics(table, dirs, resamples, seed)
    table = table.reindex(columns=COLUMNS)
    if failed:
        missing = pd.DataFrame([{"model": m, "status": why} for m, why in failed.items()])
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
    """Each model's reference score (``models.<m>.reference.test_f1``) and the training seconds
    its validation F1 took to reach it (``time_to_ref_s``, from metrics.csv; blank if never)."""
    table = table.copy()
    models = (config or {}).get("models") or {}
    by_name = {Path(d).name: Path(d) for d in model_dirs}
    for i, name in enumerate(table["model"]):
        ref = (models.get(name) or {}).get("reference") or {}
        if "test_f1" not in ref:
            continue
        table.loc[i, "reference_f1"] = float(ref["test_f1"])
        history = by_name.get(name, Path("-")) / "metrics.csv"
        if history.is_file():
            table.loc[i, "time_to_ref_s"] = time_to_score(pd.read_csv(history), ref["test_f1"])
    return table


def _markdown(table: pd.DataFrame) -> str:
    shown = table.copy().astype(object)

    def fmt(spec: str):  # type: ignore[no-untyped-def]
        return lambda v: "" if pd.isna(v) else spec.format(v)

    formats = {
        "val_f1": "{:.4f}",
        "test_f1": "{:.4f}",
        "ci_low": "{:.4f}",
        "ci_high": "{:.4f}",
        "mcnemar_p": "{:.2g}",
        "test_accuracy": "{:.4f}",
        "test_errors": "{:.0f}",
        "epochs": "{:.0f}",
        "params": "{:,.0f}",
        "macs": "{:,.0f}",
        "latency_ms_b1": "{:.3f}",
        "latency_ms_b256": "{:.4f}",
        "ckpt_mb": "{:.2f}",
        "train_seconds": "{:.0f}",
        "reference_f1": "{:.4f}",
        "time_to_ref_s": "{:.0f}",
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
    write_figure(fig, path)


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
    write_figure(fig, path)


def _errorbars(table: pd.DataFrame) -> np.ndarray:
    """Distances from test F1 to the interval's ends (matplotlib's ``xerr``/``yerr``); 0 where
    a model has no interval."""
    f1 = table["test_f1"].to_numpy(dtype=float)
    low = table["ci_low"].to_numpy(dtype=float)
    high = table["ci_high"].to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([f1 - low, high - f1]), nan=0.0).clip(min=0.0)


def plot_f1_ci(table: pd.DataFrame, path: str | Path, resamples: int) -> None:
    """Test F1 of each model with its 95% bootstrap interval, and McNemar's p against the best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table.iloc[::-1].reset_index(drop=True)  # best at the top
    fig, ax = plt.subplots(figsize=(7.2, 0.45 * len(t) + 1.6))
    y = np.arange(len(t))
    ax.errorbar(t["test_f1"], y, xerr=_errorbars(t), fmt="o", capsize=4, color="tab:blue")
    ax.set_yticks(y, t["model"])
    for yi, row in zip(y, t.itertuples(index=False), strict=True):
        note = (
            "best"
            if yi == len(t) - 1
            else ("" if pd.isna(row.mcnemar_p) else f"p = {row.mcnemar_p:.2g}")
        )
        ax.annotate(
            note,
            (row.test_f1, yi),
            xytext=(0, 7),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
    ax.set(
        xlabel="test macro-F1",
        title=f"Test F1 with 95% bootstrap interval ({resamples} resamples of the test images);\n"
        "p: McNemar's exact test against the best model",
    )
    ax.title.set_fontsize(9)
    ax.set_ylim(-0.7, len(t) - 0.3)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    write_figure(fig, path)


def plot_pareto(table: pd.DataFrame, path: str | Path) -> None:
    """Test F1 against MACs per image and against training time; the Pareto front (no other
    model both cheaper and better) joined and filled, dominated models hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    panels = (
        ("macs", "multiply-accumulates per image (log scale)", "Test F1 against compute"),
        ("train_seconds", "training time, s (log scale)", "Test F1 against training time"),
    )
    for ax, (cost, xlabel, title) in zip(axes, panels, strict=True):
        t = table[table[cost].notna() & table["test_f1"].notna()].reset_index(drop=True)
        if not len(t):
            ax.text(0.5, 0.5, f"no {cost} recorded", ha="center", transform=ax.transAxes)
            ax.set(title=title)
            continue
        x = t[cost].to_numpy(dtype=float)
        f1 = t["test_f1"].to_numpy(dtype=float)
        front = pareto_front(x, f1)
        ax.errorbar(x, f1, yerr=_errorbars(t), fmt="none", ecolor="0.6", capsize=3)
        ax.scatter(x[front], f1[front], s=45, color="tab:red", label="Pareto front", zorder=3)
        ax.scatter(
            x[~front],
            f1[~front],
            s=45,
            facecolors="none",
            edgecolors="tab:blue",
            label="dominated",
            zorder=3,
        )
        order = np.argsort(x[front])
        ax.step(x[front][order], f1[front][order], where="post", color="tab:red", alpha=0.6)
        for xi, fi, name in zip(x, f1, t["model"], strict=True):
            ax.annotate(name, (xi, fi), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set(xlabel=xlabel, ylabel="test macro-F1", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    write_figure(fig, path)


def plot_misclassified(
    images: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    proba: np.ndarray | None,
    model: str,
    path: str | Path,
    size: int = 40,
) -> None:
    """The best model's misclassified test digits, most confident mistakes first, each titled
    with its true and predicted label (and the predicted probability)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(preds != labels)
    if proba is not None and len(wrong):
        wrong = wrong[np.argsort(-proba[wrong, preds[wrong]], kind="stable")]
    shown = wrong[:size]
    cols = max(1, min(10, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.05, rows * 1.25 + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), shown, strict=False):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        conf = f" ({proba[i, preds[i]]:.2f})" if proba is not None else ""
        ax.set_title(f"true {labels[i]}\npred {preds[i]}{conf}", fontsize=7)
    if not len(shown):
        axes[0, 0].text(0, 0.5, "no misclassified test digit", fontsize=10)
    fig.suptitle(
        f"{model}: {len(shown)} of {len(wrong)} misclassified test digits "
        "(most confident first; predicted probability in brackets)",
        fontsize=9,
    )
    fig.tight_layout()
    write_figure(fig, path)


def _git_commit(cwd: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(
    model_dirs: Sequence[str | Path],
    manifest: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Where the numbers come from: code (git commit), packages, data (sha256 of the raw files,
    from the download step's manifest), hardware (each training job's, from its config.yaml
    snapshot, and this host's CPU) and the whole configuration."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    data: dict[str, Any] = {}
    if manifest is not None and Path(manifest).exists():
        m = read_json(manifest)
        data = {
            "source": m.get("source"),
            "origin": m.get("origin"),
            "sha256": {f["name"]: f["sha256"] for f in m.get("files", {}).values()},
        }
    training = {}
    speed = {}
    for d in map(Path, model_dirs):
        snapshot = d / "config.yaml"
        if snapshot.exists():
            env = (yaml.safe_load(snapshot.read_text()) or {}).get("environment", {})
            training[d.name] = env
        if (d / "summary.json").exists():  # how precision and memory format were chosen
            run = read_json(d / "summary.json")
            speed[d.name] = {k: run.get(k) for k in ("precision", "channels_last", "speed")}
    config_text = json.dumps(config or {}, sort_keys=True, default=str)
    return {
        "git_commit": _git_commit(Path.cwd()),
        "packages": packages,
        "data": data,
        "hardware": {
            "host_cpu": _cpu_model(),
            "host_cores": os.cpu_count(),
            "platform": platform.platform(),
            "training": training,
        },
        "speed": speed,
        "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
        "config": config or {},
    }


def provenance_rows(prov: Mapping[str, Any]) -> pd.DataFrame:
    """The provenance as short key/value rows for the report's front page."""
    rows = [("git commit", prov["git_commit"])]
    rows.append(("packages", ", ".join(f"{k} {v}" for k, v in prov["packages"].items())))
    data = prov.get("data") or {}
    if data:
        rows.append(("data source", f"{data.get('source')} ({data.get('origin') or '-'})"))
        rows += [(f"sha256 {name}", digest) for name, digest in data["sha256"].items()]
    hw = prov["hardware"]
    rows.append(("host (report step)", f"{hw['host_cpu']}, {hw['host_cores']} cores"))
    rows.append(("platform", hw["platform"]))
    seen: dict[str, list[str]] = {}
    for model, env in hw["training"].items():
        device = env.get("cuda_device") or f"CPU, {env.get('torch_threads')} threads"
        cpu = env.get("cpu") or env.get("processor")
        if env.get("cpu_capability"):  # bf16 is emulated (slow) without native support
            bf16 = "native bf16" if env.get("native_bf16") else "no native bf16"
            cpu = f"{cpu} ({env['cpu_capability']}, {bf16})"
        key = f"{cpu}, {device}; torch {env.get('torch')}"
        seen.setdefault(key, []).append(model)
    for key, models in seen.items():
        rows.append((f"training hardware ({', '.join(models)})", key))
    for model, run in (prov.get("speed") or {}).items():
        layout = ", channels-last" if run.get("channels_last") else ""
        reason = (run.get("speed") or {}).get("reason")
        rows.append(
            (
                f"precision ({model})",
                f"{run.get('precision')}{layout}" + (f": {reason}" if reason else ""),
            )
        )
    rows.append(("config sha256", f"{prov['config_sha256']} (whole config in provenance.json)"))
    return pd.DataFrame(rows, columns=["item", "value"])


def summary(table: pd.DataFrame) -> dict[str, Any]:
    """The comparison in one line, as a DVC metrics file (``dvc metrics show/diff``); each
    model's own numbers are its test/metrics.json, a metrics file too."""
    best = table.iloc[0]
    return {
        "best_model": str(best["model"]),
        "best_test_f1": float(best["test_f1"]),
        "n_models": len(table),
    }


SEED_RUN = re.compile(r"^(?P<model>.+)-seed(?P<seed>-?\d+)$")
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


def build_report(
    model_dirs: Sequence[str | Path],
    csv_path: str | Path,
    md_path: str | Path,
    curves_path: str | Path,
    f1_params_path: str | Path,
    summary_path: str | Path | None = None,
    failed: Mapping[str, str] | None = None,
    *,
    f1_ci_path: str | Path | None = None,
    pareto_path: str | Path | None = None,
    gallery_path: str | Path | None = None,
    test_split: str | Path | None = None,
    provenance_csv: str | Path | None = None,
    provenance_json: str | Path | None = None,
    seeds_csv: str | Path | None = None,
    manifest: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Write the table and figures. With ``failed`` (after a failed run), the failed models are
    listed as such and the figures show the others; nothing looks like a complete comparison.
    The statistics' settings are the config's ``report`` block (defaults without a config).
    Each optional output is written when its path is given."""
    failed = dict(failed or {})
    settings = {"bootstrap_resamples": 1000, "seed": 0, "gallery_size": 40}
    settings.update((config or {}).get("report", {}))
    resamples = int(settings["bootstrap_resamples"])
    table = comparison_table(model_dirs, failed, resamples, int(settings["seed"]))
    table = add_references(table, model_dirs, config)
    rounded = table.round(
        {
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
    )
    rounded["mcnemar_p"] = rounded["mcnemar_p"].map(_significant)
    with atomic_path(csv_path) as tmp:
        rounded.to_csv(tmp, index=False)
    text = _markdown(table)
    if seeds_csv is not None:
        over_seeds = seed_summary(table)
        with atomic_path(seeds_csv) as tmp:
            over_seeds.round(6).round({"train_seconds_mean": 1}).to_csv(tmp, index=False)
        if (over_seeds["n_seeds"] > 1).any():
            shown = over_seeds.round(5).astype(object).where(over_seeds.notna(), "")
            text += "\n**Over seeds** (mean and sample std):\n\n"
            text += shown.to_markdown(index=False) + "\n"
    write_text(md_path, text)
    if summary_path is not None:
        write_json(summary_path, summary(rounded))
    done = [d for d in model_dirs if Path(d).name not in failed]
    ok = table[table["status"] == OK].reset_index(drop=True)
    figures = [p for p in (curves_path, f1_params_path, f1_ci_path, pareto_path, gallery_path) if p]
    if done:
        plot_learning_curves(done, curves_path)
        plot_f1_vs_params(ok, f1_params_path)
        if f1_ci_path:
            plot_f1_ci(ok, f1_ci_path, resamples)
        if pareto_path:
            plot_pareto(ok, pareto_path)
        if gallery_path:
            _gallery(ok, model_dirs, test_split, gallery_path, int(settings["gallery_size"]))
    else:  # no stale figure of an earlier run may sit next to this table
        for path in figures:
            Path(path).unlink(missing_ok=True)
    if provenance_csv or provenance_json:
        prov = provenance(done, manifest, config)
        if provenance_json:
            write_json(provenance_json, prov)
        if provenance_csv:
            with atomic_path(provenance_csv) as tmp:
                provenance_rows(prov).to_csv(tmp, index=False)
    if failed:
        # Dated 1970: older than any input, so the next run rebuilds the report even if the
        # failed models' outputs appear without Snakemake knowing (e.g. made by hand).
        for path in (csv_path, md_path, seeds_csv):
            if path is not None:
                os.utime(path, (0, 0))
        log.warning("partial comparison written to %s; failed: %s", csv_path, ", ".join(failed))
    else:
        log.info("comparison of %d models written to %s", len(table), csv_path)
    return table


def _gallery(
    ok: pd.DataFrame,
    model_dirs: Sequence[str | Path],
    test_split: str | Path | None,
    path: str | Path,
    size: int,
) -> None:
    """The misclassified digits of the best model (first row) on the test images."""
    if test_split is None:
        raise DataError("the misclassified-digits gallery needs the test split (--test test.pt)")
    from mnistbench.data.prepare import load_split

    best = str(ok.iloc[0]["model"])
    d = next(Path(d) for d in model_dirs if Path(d).name == best)
    pred = load_predictions(d)
    if pred is None:
        raise DataError(f"{d / 'test/predictions.npz'}: missing; run the evaluate step first")
    images, labels = load_split(test_split)
    if not np.array_equal(labels.numpy(), pred["labels"]):
        raise DataError(
            f"{d / 'test/predictions.npz'}: its labels are not those of {test_split}; "
            "rerun the evaluate step on this test split"
        )
    plot_misclassified(
        images.numpy(), pred["labels"], pred["preds"], pred.get("proba"), best, path, size
    )
