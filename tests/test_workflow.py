"""End to end: the real Snakemake on config/smoke.yaml (generated digits), in a temporary copy."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chromium import find_chromium, open_page
from tests.conftest import ROOT, copy_project

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
MODELS = {"lenet5", "cnn", "resnet18", "alexnet_small", "simple_cnn", "allconv"}
FIGURES = (
    "learning_curves.png",
    "f1_vs_params.png",
    "f1_ci.png",
    "pareto.png",
    "misclassified.png",
)
# Kept after the run (git-ignored): the screenshot of the report a reader sees first.
ARTIFACTS = ROOT / "tests/artifacts"


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
        # torch uses exactly the threads the train job declared: the 2 cores shared out among
        # the 6 train jobs, at least one each (workflow/rules/common.smk, train_threads).
        assert json.loads((d / "summary.json").read_text())["threads"] == max(1, 2 // len(MODELS))
        assert (smoke_run / f"logs/synthetic/train_model/{m}.log").exists()
    for fig in FIGURES:
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


@pytest.fixture(scope="module")
def html_report(smoke_run: Path) -> Path:
    snakemake(smoke_run, "--report", "results/report.html")
    return smoke_run / "results/report.html"


def test_statistics_and_costs_in_the_table(smoke_run: Path) -> None:
    with open(smoke_run / "results/synthetic/comparison.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["mcnemar_p"] == ""  # the best model is the reference of the test
    for row in rows:
        assert float(row["ci_low"]) <= float(row["test_f1"]) <= float(row["ci_high"])
        assert int(row["macs"]) > 0 and float(row["ckpt_mb"]) > 0
        assert float(row["latency_ms_b256"]) > 0 and float(row["latency_ms_b1"]) > 0
        if row is not rows[0]:
            assert 0.0 <= float(row["mcnemar_p"]) <= 1.0
    metrics = json.loads((smoke_run / "results/synthetic/models/cnn/test/metrics.json").read_text())
    assert metrics["macs"] == 11_992_448 and metrics["latency_threads"] == 1
    prov = json.loads((smoke_run / "results/synthetic/provenance.json").read_text())
    assert prov["config"]["dataset"] == "synthetic" and len(prov["data"]["sha256"]) == 4
    assert set(prov["hardware"]["training"]) == MODELS


def test_html_report(html_report: Path) -> None:
    html = html_report.read_text()
    # The front page carries the comparison table itself (rendered from comparison.csv) ...
    assert "test_f1</th>" in html and "System Message" not in html
    assert "mcnemar_p</th>" in html and "sha256 t10k-images-idx3-ubyte.gz" in html
    for m in MODELS:
        assert f"{m}</td>" in html
    # ... and every figure is embedded as a result.
    for name in (*FIGURES, "confusion.png", "provenance.json"):
        assert name in html


# Run in the page: each embedded result, decoded by the browser (an image's width in pixels).
DECODE_RESULTS = """(async () => {
  const out = {};
  for (const [path, r] of Object.entries(results)) {
    const uri = r.data_uri || "";
    if (!uri.startsWith("data:image/")) { out[path] = uri.slice(0, uri.indexOf(";")); continue; }
    const img = new Image();
    img.src = uri;
    try { await img.decode(); out[path] = img.naturalWidth; } catch (e) { out[path] = 0; }
  }
  return out;
})()"""
FRONT_TABLES = """Array.from(document.querySelectorAll("table")).map(t =>
  Array.from(t.querySelectorAll("th")).map(th => th.innerText.trim()))"""


def test_report_opens_in_headless_chromium(html_report: Path) -> None:
    """What a reader sees: the page loads without console errors or uncaught exceptions, its
    front page shows the comparison (with intervals and p-values) and the provenance, and every
    figure decodes in the browser. The screenshot stays in tests/artifacts/."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium; .ci/run does it)")
    shot = ARTIFACTS / "report.png"
    page = open_page(
        chromium,
        html_report,
        {"tables": FRONT_TABLES, "results": DECODE_RESULTS, "text": "document.body.innerText"},
        ready="document.querySelectorAll('table').length >= 2",
        screenshot=shot,
    )
    print(f"screenshot of the report: {shot}")
    assert page.errors == [], page.errors
    comparison, provenance = page.values["tables"][:2]
    assert {"model", "test_f1", "ci_low", "ci_high", "mcnemar_p", "macs", "status"} <= set(
        comparison
    )
    assert provenance == ["item", "value"]
    assert all(m in page.values["text"] for m in MODELS)
    decoded = page.values["results"]
    figures = {p.rsplit("/", 1)[-1] for p, width in decoded.items() if p.endswith(".png")}
    assert set(FIGURES) | {"confusion.png"} <= figures
    assert all(width > 100 for p, width in decoded.items() if p.endswith(".png")), decoded
    assert shot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def seeds_run(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the smoke run (data and records kept) run again with two seeds of lenet5:
    its two runs, their ensemble and the report, then the HTML report."""
    proj = tmp_path_factory.mktemp("seeds") / "proj"
    shutil.copytree(smoke_run, proj, symlinks=True)
    snakemake(proj, "--config", "seeds=[1, 2]", "only=[lenet5]")
    snakemake(proj, "--config", "seeds=[1, 2]", "only=[lenet5]", "--report", "report.html")
    return proj


def test_seeds_add_an_ensemble_row_to_the_table_and_the_report(seeds_run: Path) -> None:
    with open(seeds_run / "results/synthetic/comparison.csv") as fh:
        rows = {row["model"]: row for row in csv.DictReader(fh)}
    assert set(rows) == {"lenet5-seed1", "lenet5-seed2", "lenet5-ensemble"}
    ens = rows["lenet5-ensemble"]
    assert ens["kind"] == "ensemble" and rows["lenet5-seed1"]["kind"] == "run"
    assert ens["members"] and float(ens["ci_low"]) <= float(ens["test_f1"]) <= float(ens["ci_high"])
    metrics = seeds_run / "results/synthetic/ensembles/lenet5-ensemble/test/metrics.json"
    chosen = json.loads(metrics.read_text())
    assert chosen["selection"]["rule"] == "greedy" and set(chosen["members"]) <= {
        "lenet5-seed1",
        "lenet5-seed2",
    }
    assert (seeds_run / "logs/synthetic/build_ensemble/lenet5-ensemble.log").exists()
    assert "| lenet5-ensemble " in (seeds_run / "results/synthetic/comparison.md").read_text()
    html = (seeds_run / "report.html").read_text()
    assert "lenet5-ensemble</td>" in html and "lenet5-seed2</td>" in html
