"""What a reader sees: the per-epoch terminal line, the comparison's tables and legend, the
closing summary of a run, and the figures' labels and colours."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mnistbench.evaluate.scores import text_colour
from mnistbench.progress import Progress, clock
from mnistbench.reporting.display import closing, costs_columns, scores_columns, shown
from mnistbench.reporting.figures import error_floor
from mnistbench.reporting.labels import label_points
from mnistbench.reporting.tables import markdown, write_tables

TABLE = pd.DataFrame(
    {
        "model": ["resnet18", "cnn", "lenet5"],
        "epochs": [2, 2, 2],
        "val_f1": [1.0, 0.91335, 0.47442],
        "test_f1": [0.999, 0.89393, 0.44264],
        "ci_low": [0.9968, 0.87394, 0.41283],
        "ci_high": [1.0, 0.91214, 0.47031],
        "mcnemar_p": [np.nan, 4.93e-32, 4.77e-153],
        "test_accuracy": [0.999, 0.894, 0.492],
        "test_errors": [1, 106, 508],
        "params": [11175370, 1199882, 61706],
        "macs": [33010944, 11992448, 416520],
        "latency_ms_b1": [28.5681, 1.2, 0.3],
        "latency_ms_b256": [1.16912, 0.1, 0.01],
        "ckpt_mb": [170.7, 13.8, 0.7],
        "train_seconds": [75.2, 30.0, 12.0],
        "reference_f1": [0.9933, 0.9891, np.nan],
        "time_to_ref_s": [61.0, np.nan, np.nan],
        "peak_mem_mb": [1206.0, 800.0, 700.0],
        "precision": ["bf16-mixed", "32-true", "32-true"],
        "status": ["ok", "ok", "ok"],
    }
)
SYNTHETIC = {"data": {"source": "synthetic"}}


def test_clock() -> None:
    assert [clock(s) for s in (0, 42.4, 725, 3723)] == ["0:00", "0:42", "12:05", "1:02:03"]
    assert clock(float("nan")) == "?"


def test_progress_lines_are_whole_lines_to_the_descriptor() -> None:
    read, write = os.pipe()
    try:
        progress = Progress.open(write, "cnn")
        assert progress is not None
        progress.epoch(2, 6, 0.21434, 0.94721, 42.0, run=2)
        progress.epoch(4, 6, 0.1, 0.97, 60.0, run=1)  # resumed after epoch 3: one epoch ran
        progress.line("done")
        os.close(write)
        lines = os.read(read, 10_000).decode().splitlines()
    finally:
        os.close(read)
    expected = "cnn epoch 2/6 train loss 0.2143 val F1 0.9472 0:42 elapsed, ETA 1:24"
    assert " ".join(lines[0].split()) == expected
    assert lines[0].index("epoch") == 15  # names padded: the columns of several jobs line up
    assert lines[1].endswith("1:00 elapsed, ETA 2:00")  # 60 s per epoch, 2 to go
    assert lines[2].split() == ["cnn", "done"]


def test_progress_needs_an_open_descriptor() -> None:
    read, write = os.pipe()
    os.close(read)
    os.close(write)
    assert Progress.open(None, "cnn") is None and Progress.open(write, "cnn") is None


def test_tables_fit_short_headers_with_separators() -> None:
    scores = shown(TABLE, scores_columns(TABLE))
    assert list(scores.columns) == [
        "run", "epochs", "val F1", "test F1", "95% CI", "p vs best", "errors", "ref. F1", "status"
    ]  # fmt: skip
    assert scores.iloc[0].tolist() == [
        "resnet18", "2", "1.0000", "0.9990", "0.9968–1.0000", "best", "1", "0.9933", "ok"
    ]  # fmt: skip
    assert scores["p vs best"].tolist()[1:] == ["4.9e-32", "4.8e-153"]
    costs = shown(TABLE, costs_columns(TABLE))
    assert costs.iloc[0, 1:4].tolist() == ["11,175,370", "33,010,944", "28.568"]
    assert costs["train"].tolist() == ["1:15", "0:30", "0:12"] and costs["to ref."][1] == ""


def test_markdown_labels_generated_digits_and_explains_its_headers() -> None:
    md = markdown(TABLE, SYNTHETIC)
    assert md.startswith("**Generated digits") and "say nothing about MNIST" in md
    assert "| `resnet18` | 2 | 1.0000 | 0.9990 | 0.9968–1.0000 | best |" in md
    assert "| `resnet18` | 11,175,370 | 33,010,944 |" in md  # the costs' own table
    for header in ("95% CI", "p vs best", "MACs", "ref. F1", "ckpt MiB", "to ref."):
        assert f"**{header}" in md, header  # each short header in the legend
    assert "Generated" not in markdown(TABLE, {"data": {"source": "mnist"}})


def test_front_page_tables_are_written(tmp_path: Path) -> None:
    out = {"csv": tmp_path / "c.csv", "md": tmp_path / "c.md"}
    out |= {"scores_table": tmp_path / "t/scores.csv", "costs_table": tmp_path / "t/costs.csv"}
    write_tables(TABLE, out, SYNTHETIC)
    scores = pd.read_csv(out["scores_table"], dtype=str, keep_default_na=False)
    assert scores["p vs best"][0] == "best" and scores["run"].tolist() == TABLE["model"].tolist()
    assert pd.read_csv(out["costs_table"], dtype=str)["params"][0] == "11,175,370"


def test_closing_summary_shows_top_rows_and_paths() -> None:
    paths = {
        "md": "results/synthetic/comparison.md",
        "report": "results/synthetic/report.html",
        "report_command": "snakemake --report results/synthetic/report.html "
        "--configfile config/smoke.yaml",
    }
    text = closing(TABLE, SYNTHETIC, paths, top=2)
    lines = text.splitlines()
    assert lines[0] == "Comparison, best test F1 first (top 2 of 3):"
    assert lines[1].startswith("Generated digits (data.source: synthetic")
    assert lines[2].split()[:4] == ["run", "test", "F1", "95%"]
    assert lines[3].split()[:4] == ["resnet18", "0.9990", "0.9968–1.0000", "best"]
    assert "lenet5" not in text  # the top rows only
    assert paths["md"] in text and paths["report_command"] in text


def test_labels_of_close_points_do_not_overlap() -> None:
    from mnistbench.io import pyplot

    fig, ax = pyplot().subplots(figsize=(6.4, 4.4))
    xs, ys = [1.0e6, 1.2e6, 6e4], [0.8945, 0.8939, 0.44]  # simple_cnn and cnn in the smoke run
    ax.scatter(xs, ys)
    ax.set_xscale("log")
    fig.tight_layout()
    label_points(ax, xs, ys, ["simple_cnn", "cnn", "lenet5"])
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == 3
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


@pytest.mark.parametrize(
    ("rgba", "colour"), [((1.0, 1.0, 1.0, 1), "black"), ((0.03, 0.19, 0.42, 1), "white")]
)
def test_cell_text_contrasts_with_its_colour(rgba: tuple, colour: str) -> None:
    assert text_colour(rgba) == colour


def test_error_floor_is_below_every_error() -> None:
    hist = pd.DataFrame({"val_f1": [0.9, 0.999, 1.0], "train_f1": [0.8, 0.99, 0.995]})
    assert error_floor([hist]) == pytest.approx(0.001 / 3)
