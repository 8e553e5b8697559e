"""The report's figures: learning curves, test F1 against size, with intervals, against costs
(Pareto fronts), and the best run's misclassified test digits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mnistbench.data.idx import NUM_CLASSES
from mnistbench.errors import DataError
from mnistbench.io import pyplot, write_figure
from mnistbench.reporting.labels import label_points
from mnistbench.reporting.statistics import load_predictions, pareto_front


def error_floor(histories: Sequence[pd.DataFrame]) -> float:
    """Where an error (1 - F1) of exactly 0 is drawn on the log axis: a third of the smallest
    error above 0 (the axis labels it 0)."""
    errors = [1 - h[c] for h in histories for c in ("val_f1", "train_f1") if c in h]
    positive = [float(e[e > 0].min()) for e in errors if (e > 0).any()]
    return min(positive, default=1e-3) / 3


def plot_learning_curves(model_dirs: Sequence[str | Path], path: str | Path) -> None:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    histories = {Path(d).name: pd.read_csv(Path(d) / "metrics.csv") for d in model_dirs}
    floor = error_floor(list(histories.values()))
    for name, hist in histories.items():
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
            (1 - hist["val_f1"]).clip(lower=floor),
            marker="o",
            color=line.get_color(),
            label=f"{name} val",
        )
        if "train_f1" in hist:
            axes[1].plot(
                hist["epoch"],
                (1 - hist["train_f1"]).clip(lower=floor),
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
    _label_zero(axes[1], floor)
    axes[0].legend(fontsize=7, ncol=2)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    fig.tight_layout()
    write_figure(fig, path)


def _label_zero(ax, floor: float) -> None:  # type: ignore[no-untyped-def]
    """The floor of the error axis is where an error of 0 is drawn: say so on the axis."""
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, floor / 1.5), high)
    ax.axhline(floor, color="0.5", lw=0.8, ls=":")
    ticks = [t for t in ax.get_yticks() if floor * 3 <= t <= high]
    ax.set_yticks([floor, *ticks], ["0", *(f"$10^{{{round(np.log10(t))}}}$" for t in ticks)])
    ax.set_ylim(min(low, floor / 1.5), high)


def plot_f1_vs_params(table: pd.DataFrame, path: str | Path) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    no_kind = pd.Series(False, index=table.index)
    is_ensemble = table["kind"] == "ensemble" if "kind" in table else no_kind
    for mask, label, marker in ((~is_ensemble, "run", "o"), (is_ensemble, "ensemble", "D")):
        if mask.any():
            t = table[mask]
            ax.scatter(t["params"], t["test_f1"], s=40, marker=marker, label=label)
    if is_ensemble.any():
        ax.legend(fontsize=8, loc="best")
    ax.set_xscale("log")
    ax.set(xlabel="parameters (log scale)", ylabel="test macro-F1", title="Test F1 against size")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.1)
    fig.tight_layout()
    label_points(ax, table["params"].tolist(), table["test_f1"].tolist(), table["model"].tolist())
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
    plt = pyplot()

    t = table.iloc[::-1].reset_index(drop=True)  # best at the top
    fig, ax = plt.subplots(figsize=(7.2, 0.45 * len(t) + 1.6))
    y = np.arange(len(t))
    ax.errorbar(t["test_f1"], y, xerr=_errorbars(t), fmt="o", capsize=4, color="tab:blue")
    ax.set_yticks(y, t["model"])
    kinds = t["kind"] if "kind" in t else pd.Series(["run"] * len(t))
    best_run = max((i for i in y if kinds[i] == "run"), default=None)  # the highest run
    for yi, row in zip(y, t.itertuples(index=False), strict=True):
        note = "" if pd.isna(row.mcnemar_p) else f"p = {row.mcnemar_p:.2g}"
        if yi == best_run:
            note = "best run"
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
        "p: McNemar's exact test against the best run (an ensemble: the best of its runs)",
    )
    ax.title.set_fontsize(9)
    ax.set_ylim(-0.7, len(t) - 0.3)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    write_figure(fig, path)


def plot_pareto(table: pd.DataFrame, path: str | Path) -> None:
    """Test F1 against MACs per image and against training time; the Pareto front (no other
    model both cheaper and better) joined and filled, dominated models hollow."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    panels = (
        ("macs", "multiply-accumulates per image (log scale)", "Test F1 against compute"),
        ("train_seconds", "training time, s (log scale)", "Test F1 against training time"),
    )
    labels = []
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
        ax.set_xscale("log")
        ax.set(xlabel=xlabel, ylabel="test macro-F1", title=title)
        ax.margins(x=0.15, y=0.1)
        labels.append((ax, x.tolist(), f1.tolist(), t["model"].tolist()))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    for args in labels:  # once the layout is set: overlaps are found on the page
        label_points(*args)
    write_figure(fig, path)


def plot_misclassified(
    images: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    proba: np.ndarray | None,
    model: str,
    path: str | Path,
    size: int,
    classes: list[str] | None = None,
) -> None:
    """The best model's misclassified test images, most confident mistakes first, each titled
    with its true and predicted class (and the predicted probability)."""
    plt = pyplot()
    name = (lambda i: classes[i]) if classes else str

    wrong = np.flatnonzero(preds != labels)
    if proba is not None and len(wrong):
        wrong = wrong[np.argsort(-proba[wrong, preds[wrong]], kind="stable")]
    shown = wrong[:size]
    cols = max(1, min(10, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    # at least 6.5 inches wide: the title must fit above a single digit too
    fig, axes = plt.subplots(
        rows, cols, figsize=(max(cols * 1.05, 6.5), rows * 1.25 + 0.8), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), shown, strict=False):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        conf = f" ({proba[i, preds[i]]:.2f})" if proba is not None else ""
        ax.set_title(f"true {name(labels[i])}\npred {name(preds[i])}{conf}", fontsize=7)
    if not len(shown):
        axes[0, 0].text(0, 0.5, "no misclassified test image", fontsize=10)
    fig.suptitle(
        f"{model}: {len(shown)} of {len(wrong)} misclassified test images\n"
        "(most confident first; predicted probability in brackets)",
        fontsize=9,
    )
    write_figure(fig, path)


def gallery(
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
    classes = [str(c) for c in pred["classes"]] if "classes" in pred else None
    images, labels = load_split(test_split, len(classes) if classes else NUM_CLASSES)
    if not np.array_equal(labels.numpy(), pred["labels"]):
        raise DataError(
            f"{d / 'test/predictions.npz'}: its labels are not those of {test_split}; "
            "rerun the evaluate step on this test split"
        )
    plot_misclassified(
        images.numpy(), pred["labels"], pred["preds"], pred.get("proba"), best, path, size, classes
    )


def write_figures(
    ok: pd.DataFrame,
    model_dirs: Sequence[str | Path],
    out: dict[str, str | Path],
    settings: dict,
    test_split: str | Path | None,
    ensemble_dirs: Sequence[str | Path] = (),
) -> None:
    """Each figure whose path ``out`` names, of the runs and ensembles with results (``ok``;
    learning curves of the runs only); with none, no stale figure of an earlier run may sit
    next to the table."""
    names = ("curves", "f1_params", "f1_ci", "pareto", "gallery")
    if not len(ok):
        for name in names:
            if name in out:
                Path(out[name]).unlink(missing_ok=True)
        return
    done = [d for d in model_dirs if Path(d).name in set(ok["model"])]
    plot_learning_curves(done, out["curves"])
    plot_f1_vs_params(ok, out["f1_params"])
    if "f1_ci" in out:
        plot_f1_ci(ok, out["f1_ci"], settings["bootstrap_resamples"])
    if "pareto" in out:
        plot_pareto(ok, out["pareto"])
    if "gallery" in out:
        dirs = [*model_dirs, *ensemble_dirs]
        gallery(ok, dirs, test_split, out["gallery"], settings["gallery_size"])
