"""The comparison's statistics, cost columns, new figures and provenance, on made-up results."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mnistbench.errors import DataError
from mnistbench.io import write_json, write_text
from mnistbench.reporting import build_report
from mnistbench.reporting.statistics import mcnemar_exact

N = 400
LABELS = np.arange(N) % 10


def _mkdir(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return d


def fake_model(root: Path, name: str, errors: int, seed: int) -> Path:
    """A model's published results with ``errors`` wrong test predictions (and its costs)."""
    d = root / name
    rng = np.random.default_rng(seed)
    preds = LABELS.copy()
    wrong = rng.choice(N, errors, replace=False)
    preds[wrong] = (preds[wrong] + 1) % 10
    proba = np.full((N, 10), 0.01, dtype=np.float32)
    proba[np.arange(N), preds] = 0.91
    np.savez_compressed(
        _mkdir(d / "test") / "predictions.npz",
        labels=LABELS.astype(np.uint8),
        preds=preds.astype(np.uint8),
        proba=proba,
    )
    f1 = 1 - errors / N
    write_json(
        d / "summary.json",
        {
            "model": name,
            "epochs": 2,
            "val_f1": f1,
            "train_seconds": 10.0 * (seed + 1),
            "peak_mem_mb": 500.0,
            "precision": "32-true",
        },
    )
    write_json(
        d / "test/metrics.json",
        {
            "test_f1": f1,
            "test_accuracy": f1,
            "test_errors": errors,
            "params": 1000 * (seed + 1),
            "macs": 10_000 * (seed + 1),
            "latency_ms_b1": 0.5,
            "latency_ms_b256": 0.01,
            "latency_threads": 1,
            "ckpt_bytes": 3 * 2**20,
        },
    )
    write_text(d / "metrics.csv", "epoch,val_loss,val_f1\n1,0.4,0.85\n2,0.2,0.9\n")
    write_text(
        d / "config.yaml",
        "environment: {processor: x86_64, torch: '2.11', cuda_device: null, torch_threads: 2}\n",
    )
    return d


@pytest.fixture()
def report(tmp_path: Path) -> dict[str, Path]:
    dirs = [
        fake_model(tmp_path / "m", "a", 4, 0),
        fake_model(tmp_path / "m", "b", 30, 1),
        fake_model(tmp_path / "m", "c", 6, 2),
    ]
    torch.save(
        {
            "images": torch.randint(0, 256, (N, 28, 28), dtype=torch.uint8),
            "labels": torch.as_tensor(LABELS, dtype=torch.int64),
        },
        tmp_path / "test.pt",
    )
    write_json(
        tmp_path / "manifest.json",
        {
            "source": "synthetic",
            "files": {"test_images": {"name": "t10k-images-idx3-ubyte.gz", "sha256": "ab" * 32}},
        },
    )
    out = {
        "csv": tmp_path / "comparison.csv",
        "md": tmp_path / "comparison.md",
        "curves": tmp_path / "fig/curves.png",
        "f1_params": tmp_path / "fig/f1_params.png",
        "f1_ci": tmp_path / "fig/f1_ci.png",
        "pareto": tmp_path / "fig/pareto.png",
        "gallery": tmp_path / "fig/misclassified.png",
        "provenance_csv": tmp_path / "provenance.csv",
        "provenance_json": tmp_path / "provenance.json",
        "seeds": tmp_path / "seeds.csv",
    }
    config = {"dataset": "x", "report": {"bootstrap_resamples": 200, "seed": 3, "gallery_size": 8}}
    build_report(
        dirs,
        out,
        config,
        test_split=tmp_path / "test.pt",
        manifest=tmp_path / "manifest.json",
    )
    return {**out, "root": tmp_path}


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_table_has_intervals_p_values_and_costs(report: dict[str, Path]) -> None:
    table = {r["model"]: r for r in rows(report["csv"])}
    assert list(table) == ["a", "c", "b"]
    for r in table.values():
        assert float(r["ci_low"]) <= float(r["test_f1"]) <= float(r["ci_high"])
        assert r["macs"].isdigit() and float(r["ckpt_mb"]) == 3.0
        assert float(r["latency_ms_b1"]) == 0.5 and r["status"] == "ok"
    assert table["a"]["mcnemar_p"] == ""  # the best model is not tested against itself
    # b is clearly worse than a: its p-value is the exact test on the same images.
    a = np.load(report["root"] / "m/a/test/predictions.npz")
    b = np.load(report["root"] / "m/b/test/predictions.npz")
    _, _, p = mcnemar_exact(a["preds"] == a["labels"], b["preds"] == b["labels"])
    assert float(table["b"]["mcnemar_p"]) == pytest.approx(p, rel=1e-2) and p < 1e-3
    assert float(table["c"]["mcnemar_p"]) > 0.05
    md = report["md"].read_text()
    assert "| 95% CI | p vs best |" in md and "nan" not in md
    assert "| `a` | 2 |" in md and "| best |" in md  # the best row says so, its p is no blank
    assert "**p vs best**: McNemar" in md and "**MACs**:" in md  # the legend of the headers


def test_new_figures_and_provenance_are_written(report: dict[str, Path]) -> None:
    for key in ("f1_ci", "pareto", "gallery"):
        assert report[key].stat().st_size > 5000, key
    prov = json.loads(report["provenance_json"].read_text())
    assert prov["data"]["sha256"] == {"t10k-images-idx3-ubyte.gz": "ab" * 32}
    assert prov["config"]["report"]["seed"] == 3 and len(prov["config_sha256"]) == 64
    assert set(prov["hardware"]["training"]) == {"a", "b", "c"}
    assert "torch" in prov["packages"]
    items = {r["item"]: r["value"] for r in rows(report["provenance_csv"])}
    assert "git commit" in items and items["sha256 t10k-images-idx3-ubyte.gz"] == "ab" * 32
    assert any(k.startswith("training hardware (a, b, c)") for k in items)
    assert [r["n_seeds"] for r in rows(report["seeds"])] == ["1", "1", "1"]


def test_intervals_are_reproducible(report: dict[str, Path], tmp_path: Path) -> None:
    first = report["csv"].read_text()
    dirs = [report["root"] / "m" / m for m in "abc"]
    again = tmp_path / "again.csv"
    build_report(
        dirs,
        {"csv": again, "md": tmp_path / "x.md", "curves": tmp_path / "c.png"}
        | {"f1_params": tmp_path / "p.png"},
        config={"report": {"bootstrap_resamples": 200, "seed": 3}},
    )
    cols = lambda text: [ln.split(",")[:7] for ln in text.splitlines()]  # noqa: E731
    assert cols(again.read_text()) == cols(first)


def test_predictions_of_other_test_images_are_refused(report: dict[str, Path]) -> None:
    root = report["root"]
    d = root / "m/c/test/predictions.npz"
    with np.load(d) as npz:
        parts = dict(npz)
    parts["labels"] = np.roll(parts["labels"], 1)
    np.savez_compressed(d, **parts)
    with pytest.raises(DataError, match="other test images"):
        build_report(
            [root / "m" / m for m in "abc"],
            {"csv": root / "z.csv", "md": root / "z.md", "curves": root / "z1.png"}
            | {"f1_params": root / "z2.png"},
        )


def test_a_reference_is_shown_only_beside_runs_on_its_data_set() -> None:
    """The reference projects' scores are MNIST scores: beside a Fashion-MNIST run they would
    read as a target it missed."""
    from mnistbench.reporting.tables import add_references

    table = pd.DataFrame({"model": ["cnn", "lenet5"], "reference_f1": [np.nan, np.nan]})
    models = {"cnn": {"reference": {"test_f1": 0.9891, "dataset": "mnist"}}, "lenet5": {}}
    on_mnist = add_references(table, [], {"dataset": "mnist", "models": models})
    assert on_mnist["reference_f1"].iloc[0] == 0.9891 and pd.isna(on_mnist["reference_f1"].iloc[1])
    on_fashion = add_references(table, [], {"dataset": "fashion_mnist", "models": models})
    assert on_fashion["reference_f1"].isna().all()
