"""End to end: the real Snakemake on config/smoke.yaml (generated digits), in a temporary copy."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_project

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
MODELS = {"lenet5", "cnn", "resnet18", "alexnet_small", "simple_cnn", "allconv"}


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--configfile", "config/smoke.yaml", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        logs = (
            "\n".join(
                f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((cwd / "logs").rglob("*.log"))
            )
            if (cwd / "logs").exists()
            else ""
        )
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n{logs}"
        )
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    jobs: dict[str, int] = {}
    for line in output.splitlines():
        m = re.fullmatch(r"\s*([a-z_]+)\s+(\d+)\s*", line)
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proj = copy_project(tmp_path_factory.mktemp("smoke"))
    snakemake(proj)
    return proj


def test_comparison_has_a_row_per_model(smoke_run: Path) -> None:
    with open(smoke_run / "results/synthetic/comparison.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["model"] for r in rows} == MODELS
    for row in rows:
        assert 0.0 <= float(row["test_f1"]) <= 1.0
        assert int(row["params"]) > 0 and float(row["train_seconds"]) > 0
    f1s = [float(r["test_f1"]) for r in rows]
    assert f1s == sorted(f1s, reverse=True)
    # The generated digits are learnable: the best model is far above chance after 2 epochs.
    assert max(f1s) > 0.8
    md = (smoke_run / "results/synthetic/comparison.md").read_text()
    assert all(m in md for m in MODELS)


def test_per_model_outputs_exist(smoke_run: Path) -> None:
    for m in MODELS:
        d = smoke_run / "results/synthetic/models" / m
        for name in (
            "model.ckpt",
            "metrics.csv",
            "config.yaml",
            "summary.json",
            "test/metrics.json",
            "test/confusion.csv",
            "test/confusion.png",
            "test/predictions.npz",
        ):
            assert (d / name).stat().st_size > 0, d / name
        assert (smoke_run / f"results/synthetic/benchmarks/train_model/{m}.tsv").exists()
        # torch uses exactly the threads the train job declared (2 with --cores 2).
        assert json.loads((d / "summary.json").read_text())["threads"] == 2
        assert (smoke_run / f"logs/synthetic/train_model/{m}.log").exists()
    for fig in ("learning_curves.png", "f1_vs_params.png"):
        assert (smoke_run / "results/synthetic/figures" / fig).stat().st_size > 1000


def test_second_run_does_nothing(smoke_run: Path) -> None:
    out = snakemake(smoke_run, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_one_models_hyperparameter_reruns_only_that_model(smoke_run: Path) -> None:
    out = snakemake(smoke_run, "-n", "--config", "models={cnn: {train: {optimizer: {lr: 0.002}}}}")
    jobs = planned_jobs(out.stdout)
    assert jobs == {"train_model": 1, "evaluate_model": 1, "build_report": 1, "all": 1}, out.stdout
    assert "model=cnn" in out.stdout.replace(": ", "=").replace(" ", "")


def test_one_models_code_reruns_only_that_model(smoke_run: Path) -> None:
    src = smoke_run / "src/mnistbench/models/lenet5.py"
    src.write_text(src.read_text() + "\n")
    try:
        out = snakemake(smoke_run, "-n")
    finally:
        os.utime(src, (0, 0))  # older than every output again
    jobs = planned_jobs(out.stdout)
    assert jobs == {"train_model": 1, "evaluate_model": 1, "build_report": 1, "all": 1}, out.stdout


def test_html_report(smoke_run: Path) -> None:
    snakemake(smoke_run, "--report", "results/report.html")
    html = (smoke_run / "results/report.html").read_text()
    # The front page carries the comparison table itself (rendered from comparison.csv) ...
    assert "test_f1</th>" in html and "System Message" not in html
    for m in MODELS:
        assert f"{m}</td>" in html
    # ... and every figure is embedded as a result.
    for name in ("learning_curves.png", "f1_vs_params.png", "confusion.png"):
        assert name in html
