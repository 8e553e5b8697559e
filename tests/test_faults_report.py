"""The comparison after a failed run lists every model: failed ones as failed, never missing."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mnistbench import reporting
from mnistbench.errors import DataError
from mnistbench.io import write_json, write_text
from mnistbench.reporting import build_report


def fake_model(root: Path, name: str, f1: float) -> Path:
    d = root / name
    write_json(
        d / "summary.json",
        {
            "model": name,
            "epochs": 2,
            "val_f1": f1,
            "train_seconds": 3.0,
            "peak_mem_mb": 500.0,
            "precision": "32-true",
        },
    )
    write_json(
        d / "test/metrics.json",
        {"test_f1": f1, "test_accuracy": f1, "test_errors": 7, "params": 1000},
    )
    write_text(
        d / "metrics.csv",
        "epoch,train_loss,train_f1,val_loss,val_f1\n1,0.5,0.8,0.4,0.85\n2,0.3,0.9,0.2,0.9\n",
    )
    return d


def outputs(tmp_path: Path) -> dict[str, Path]:
    return {
        "csv": tmp_path / "comparison.csv",
        "md": tmp_path / "comparison.md",
        "curves": tmp_path / "figures/learning_curves.png",
        "f1_params": tmp_path / "figures/f1_vs_params.png",
    }


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_complete_table_has_status_ok(tmp_path: Path) -> None:
    dirs = [fake_model(tmp_path / "m", "a", 0.9), fake_model(tmp_path / "m", "b", 0.95)]
    out = outputs(tmp_path)
    build_report(dirs, out)
    table = rows(out["csv"])
    assert [r["model"] for r in table] == ["b", "a"] and {r["status"] for r in table} == {"ok"}
    assert not out["md"].read_text().startswith("**Incomplete")


def test_failed_models_are_listed_last_and_the_table_says_incomplete(tmp_path: Path) -> None:
    dirs = [fake_model(tmp_path / "m", "a", 0.9), tmp_path / "m/broken", tmp_path / "m/later"]
    out = outputs(tmp_path)
    failed = {"broken": "failed (see logs/x/train_model/broken.log)", "later": "not run"}
    build_report(dirs, out, failed=failed)
    table = rows(out["csv"])
    assert [(r["model"], r["status"]) for r in table] == [("a", "ok"), *failed.items()]
    assert table[1]["test_f1"] == "" and table[1]["params"] == ""
    md = out["md"].read_text()
    assert md.startswith("**Incomplete: 2 of 3 models have no result (broken, later)")
    assert "broken.log" in md and "nan" not in md
    assert out["curves"].exists() and out["f1_params"].exists()


def test_no_stale_figures_when_every_model_failed(tmp_path: Path) -> None:
    out = outputs(tmp_path)
    build_report([fake_model(tmp_path / "m", "a", 0.9)], out)
    build_report([tmp_path / "m/a"], out, failed={"a": "failed (see a.log)"})
    assert not out["curves"].exists() and not out["f1_params"].exists()
    assert [r["status"] for r in rows(out["csv"])] == ["failed (see a.log)"]


def test_missing_results_without_failed_status_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="summary.json: missing; train and evaluate model 'x'"):
        build_report([tmp_path / "x"], outputs(tmp_path))


def test_a_partial_comparison_has_files_of_its_own_and_a_complete_one_removes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failed run the comparison goes to results/<dataset>/partial/, never over the
    report's own outputs (Snakemake's record of them must stay true); the next complete
    comparison removes it."""
    from mnistbench import commands
    from mnistbench.config.load import load_validated
    from tests.conftest import ROOT

    config = load_validated(ROOT / "config/config.yaml", ROOT / "config/smoke.yaml")
    config["models"] = {m: config["models"][m] for m in ("lenet5", "cnn")}
    monkeypatch.chdir(tmp_path)
    figures: list[dict] = []  # where the figures would go (the gallery needs real predictions)
    monkeypatch.setattr(reporting, "write_figures", lambda ok, dirs, out, *a: figures.append(out))
    models = tmp_path / "results/synthetic/models"
    fake_model(models, "lenet5", 0.9)
    commands.report(config, {"cnn": "failed (see logs/synthetic/train_model/cnn.log)"})
    partial = tmp_path / "results/synthetic/partial"
    assert [(r["model"], r["status"]) for r in rows(partial / "comparison.csv")] == [
        ("lenet5", "ok"),
        ("cnn", "failed (see logs/synthetic/train_model/cnn.log)"),
    ]
    assert figures[0]["curves"] == "results/synthetic/partial/figures/learning_curves.png"
    assert not (partial / "summary.json").exists()  # DVC's metric: of a complete run only
    assert sorted(p.name for p in (tmp_path / "results/synthetic").iterdir()) == [
        "models",
        "partial",
    ]

    fake_model(models, "cnn", 0.95)
    commands.report(config)
    assert [r["model"] for r in rows(tmp_path / "results/synthetic/comparison.csv")] == [
        "cnn",
        "lenet5",
    ]
    assert not partial.exists()
    assert figures[1]["curves"] == "results/synthetic/figures/learning_curves.png"
