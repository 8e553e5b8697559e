"""End to end: the real Snakemake on config/smoke.yaml (generated digits), in a temporary copy."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.browser import chromium_or_skip, open_page, screenshot_path, terminal_page
from tests.conftest import copy_project

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
SMOKE_TEST_IMAGES = 1000  # config/smoke.yaml: data.synthetic.n_test


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
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The smoke run, and what it printed (stdout and stderr: what a terminal shows)."""
    proj = copy_project(tmp_path_factory.mktemp("smoke"))
    proc = snakemake(proj)
    return proj, proc.stderr + proc.stdout


@pytest.fixture(scope="module")
def smoke_run(smoke: tuple[Path, str]) -> Path:
    return smoke[0]


def assert_every_model_learned(rows: list[dict[str, str]]) -> None:
    """The generated digits are learnable and the smoke recipes (config/smoke.yaml) let every
    model learn them in 2 epochs: each one's test F1 is at least 0.8 (chance: 0.1). A model that
    stops learning (a learning rate of 0, an average that lags the weights) fails here."""
    low = {r["model"]: float(r["test_f1"]) for r in rows if float(r["test_f1"]) < 0.8}
    assert not low, f"smoke test F1 below 0.8: {low}"


def test_comparison_has_a_row_per_model(smoke_run: Path) -> None:
    """A row per model, each holding what that model's evaluation measured: the macro-F1 of its
    confusion matrix, its network's parameters, its training time."""
    from mnistbench.metrics import macro_f1
    from mnistbench.models import count_parameters
    from mnistbench.use.predict import load_classifier

    with open(smoke_run / "results/synthetic/comparison.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["model"] for r in rows} == MODELS
    for row in rows:
        d = smoke_run / "results/synthetic/models" / row["model"]
        cm = np.loadtxt(d / "test/confusion.csv", delimiter=",", skiprows=1, usecols=range(1, 11))
        assert float(row["test_f1"]) == pytest.approx(macro_f1(cm), abs=1e-5)
        assert int(row["params"]) == count_parameters(load_classifier(d).net)
        summary = json.loads((d / "summary.json").read_text())
        assert float(row["train_seconds"]) == pytest.approx(summary["train_seconds"], abs=0.1)
    f1s = [float(r["test_f1"]) for r in rows]
    assert f1s == sorted(f1s, reverse=True)
    assert_every_model_learned(rows)
    md = (smoke_run / "results/synthetic/comparison.md").read_text()
    assert all(m in md for m in MODELS)


def test_per_model_outputs_hold_the_run(smoke_run: Path) -> None:
    """Each model's files hold that model's run: its checkpoint restores its network, its
    history has both epochs, its predictions agree with its confusion matrix and scores."""
    from mnistbench.use.predict import load_classifier

    for m in MODELS:
        d = smoke_run / "results/synthetic/models" / m
        assert load_classifier(d).hparams["arch"] == m
        assert pd.read_csv(d / "metrics.csv")["epoch"].tolist() == [1, 2]
        assert yaml.safe_load((d / "config.yaml").read_text())["model"]["arch"] == m
        with np.load(d / "test/predictions.npz") as npz:
            labels, preds, proba = npz["labels"], npz["preds"], npz["proba"]
        assert labels.shape == preds.shape == (SMOKE_TEST_IMAGES,)
        assert np.array_equal(preds, proba.argmax(axis=1))
        cm = np.loadtxt(d / "test/confusion.csv", delimiter=",", skiprows=1, usecols=range(1, 11))
        assert cm.sum() == SMOKE_TEST_IMAGES and np.trace(cm) == (preds == labels).sum()
        metrics = json.loads((d / "test/metrics.json").read_text())
        assert metrics["test_accuracy"] == pytest.approx((preds == labels).mean(), abs=1e-6)
        assert (d / "test/confusion.png").read_bytes()[:4] == b"\x89PNG"
        bench = pd.read_csv(
            smoke_run / f"results/synthetic/benchmarks/train_model/{m}.tsv", sep="\t"
        )
        assert len(bench) == 1 and bench["s"].iloc[0] > 0  # Snakemake's record of the job
        # torch uses exactly the threads the train job declared: on 2 cores one each, none of
        # the six jobs being more than half the work (common.smk's train_threads,
        # scheduling.thread_shares)
        assert json.loads((d / "summary.json").read_text())["threads"] == 1
        assert (smoke_run / f"logs/synthetic/train_model/{m}.log").exists()
    figures = [smoke_run / "results/synthetic/figures" / fig for fig in FIGURES]
    for fig in figures:  # a picture, not an empty canvas
        with Image.open(fig) as img:
            assert img.format == "PNG" and min(img.size) >= 200, (fig, img.size)
            assert len(img.convert("L").getcolors(maxcolors=2**16) or range(256)) > 16, fig
    assert len({fig.read_bytes() for fig in figures}) == len(figures)  # five different ones


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
    text, stat = src.read_text(), src.stat()
    src.write_text(text + "\n")
    try:
        out = snakemake(smoke_run, "-n")
    finally:  # the file as it was, older than every output again: the next test sees no edit
        src.write_text(text)
        os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    jobs = planned_jobs(out.stdout)
    assert jobs == {"train_model": 1, "evaluate_model": 1, "build_report": 1, "all": 1}, out.stdout


# cnn            epoch 2/2   train loss 0.2143   val F1 0.9472   0:42 elapsed, ETA 0:00
EPOCH_LINE = (
    r"^{run}\s+epoch {epoch}/2\s+train loss \d+\.\d{{4}}\s+val F1 \d\.\d{{4}}\s+"
    r"\d+:\d\d elapsed, ETA \d+:\d\d$"
)
# The headers of the report's two comparison tables.
SCORES = ["run", "epochs", "val F1", "test F1", "95% CI", "p vs best", "errors", "ref. F1",
          "status"]  # fmt: skip
COSTS = ["run", "params", "MACs", "ms b1", "ms b256", "ckpt MiB", "train", "to ref.", "peak MB"]


def report_command(terminal: str) -> list[str]:
    """The report command the run printed at its end, split as a shell would."""
    found = re.findall(r"^The HTML report \(([^)]+)\): (snakemake --report .+)$", terminal, re.M)
    assert len(found) == 1, terminal[-3000:]
    return shlex.split(found[0][1])


def test_terminal_shows_each_epoch_and_the_closing_table(smoke: tuple[Path, str]) -> None:
    """What the terminal showed: a line per epoch and model among Snakemake's job blocks (not
    Lightning's noise, which is in the logs), then the comparison's rows and where to go next."""
    proj, terminal = smoke
    for m in MODELS:
        for epoch in (1, 2):
            assert re.search(EPOCH_LINE.format(run=m, epoch=epoch), terminal, re.M), (m, epoch)
        log = (proj / f"logs/synthetic/train_model/{m}.log").read_text()
        assert not re.search(EPOCH_LINE.format(run=m, epoch=1), log, re.M)  # the terminal's only
    for noise in ("LOCAL_RANK", "Trainable params", "PossibleUserWarning", "GPU available"):
        assert noise not in terminal
    closing = terminal[terminal.index("Comparison, best test F1 first (6 runs):") :]
    lines = closing.splitlines()
    assert lines[1].startswith("Generated digits (data.source: synthetic")
    assert re.split(r"\s{2,}", lines[2]) == [
        "run", "test F1", "95% CI", "p vs best", "errors", "params", "train", "status"
    ]  # fmt: skip
    with open(proj / "results/synthetic/comparison.csv") as fh:
        order = [row["model"] for row in csv.DictReader(fh)]
    assert [line.split()[0] for line in lines[3 : 3 + len(MODELS)]] == order
    assert lines[3].split()[3] == "best"
    assert "The whole table, costs and legend: results/synthetic/comparison.md" in closing
    assert report_command(terminal) == [
        "snakemake", "--report", "results/synthetic/report.html", "--configfile",
        "config/smoke.yaml",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def html_report(smoke: tuple[Path, str]) -> Path:
    """The report, built with the command the run printed at its end (its --configfile too)."""
    proj, terminal = smoke
    cmd = report_command(terminal)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Missing metadata" not in proc.stderr, proc.stderr[-4000:]
    return proj / cmd[2]


def test_statistics_and_costs_in_the_table(smoke_run: Path) -> None:
    from mnistbench.models import DECLARED_MACS
    from mnistbench.reporting.statistics import mcnemar_exact

    with open(smoke_run / "results/synthetic/comparison.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["mcnemar_p"] == ""  # the best model is the reference of the test
    models = smoke_run / "results/synthetic/models"
    with np.load(models / rows[0]["model"] / "test/predictions.npz") as npz:
        best_correct = npz["preds"] == npz["labels"]
    for row in rows:
        assert float(row["ci_low"]) <= float(row["test_f1"]) <= float(row["ci_high"])
        assert float(row["latency_ms_b256"]) > 0 and float(row["latency_ms_b1"]) > 0
        if row is not rows[0]:  # McNemar's test against the best run, on their predictions
            with np.load(models / row["model"] / "test/predictions.npz") as npz:
                correct = npz["preds"] == npz["labels"]
            _, _, p = mcnemar_exact(correct, best_correct)
            assert float(row["mcnemar_p"]) == pytest.approx(p, rel=1e-2, abs=1e-300)
        metrics = json.loads((models / row["model"] / "test/metrics.json").read_text())
        assert int(row["macs"]) == metrics["macs"] == DECLARED_MACS[row["model"]]
        ckpt = (models / row["model"] / "model.ckpt").stat().st_size
        assert float(row["ckpt_mb"]) == pytest.approx(ckpt / 2**20, abs=1e-3)
    metrics = json.loads((smoke_run / "results/synthetic/models/cnn/test/metrics.json").read_text())
    assert metrics["macs"] == 11_992_448 and metrics["latency_threads"] == 1
    prov = json.loads((smoke_run / "results/synthetic/provenance.json").read_text())
    assert prov["config"]["dataset"] == "synthetic" and len(prov["data"]["sha256"]) == 4
    assert set(prov["hardware"]["training"]) == MODELS


def test_html_report(html_report: Path) -> None:
    html = html_report.read_text()
    # The front page carries the two comparison tables (formatted, from comparison.csv) ...
    assert "test F1</th>" in html and "MACs</th>" in html and "System Message" not in html
    assert "Generated digits" in html and "sha256 t10k-images-idx3-ubyte.gz" in html
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
# Each header cell of each front-page table, as the window shows it without scrolling sideways:
# wholly inside the window, not cut by the table's own scroll box, and not under the sidebar
# (what the browser finds at the cell's left and right ends is the cell).
HIDDEN_HEADERS = """(() => {
  const hidden = [];
  const W = document.documentElement.clientWidth;
  for (const table of document.querySelectorAll("table")) {
    table.scrollIntoView({block: "center", inline: "nearest"});
    if (table.scrollWidth > table.clientWidth + 1)
      hidden.push(`a table scrolls sideways: ${table.scrollWidth} > ${table.clientWidth} px`);
    for (const th of table.querySelectorAll("th")) {
      const r = th.getBoundingClientRect(), y = (r.top + r.bottom) / 2;
      const seen = [r.left + 2, r.right - 2].every(x => {
        const hit = document.elementFromPoint(x, y);
        return hit !== null && (hit === th || th.contains(hit));
      });
      if (r.left < 0 || r.right > W || !seen)
        hidden.push(`${th.innerText.trim()}: ${Math.round(r.left)}-${Math.round(r.right)} of ${W}`);
    }
  }
  const scrolled = [document.scrollingElement, ...document.querySelectorAll("div")];
  const sideways = scrolled.filter(e => e.scrollLeft > 0).length;
  if (sideways) hidden.push(`${sideways} element(s) scrolled sideways to show a table`);
  for (const e of scrolled) e.scrollTop = 0;  // back to the top, for the screenshot
  return hidden;
})()"""


def test_report_opens_in_headless_chromium(html_report: Path, tmp_path: Path) -> None:
    """What a reader sees in a 1400 px window (Playwright, the system's Chromium): no console
    errors or uncaught exceptions; the two comparison tables and the provenance on the front
    page, every column of them visible without scrolling sideways; every figure decodes. The
    screenshot stays in tmp_path, or where MNISTBENCH_SCREENSHOTS says (docs/img/
    make-screenshots.sh: tests/artifacts/, and it copies it to docs/img/)."""
    shot = screenshot_path("report.png", tmp_path)
    page = open_page(
        chromium_or_skip(),
        html_report,
        {
            "tables": FRONT_TABLES,
            "results": DECODE_RESULTS,
            "text": "document.body.innerText",
            "hidden": HIDDEN_HEADERS,
        },
        ready="document.querySelectorAll('table').length >= 3",
        screenshot=shot,
        viewport=(1400, 900),
    )
    print(f"screenshot of the report: {shot}")
    assert page.errors == [], page.errors
    scores, costs, provenance = page.values["tables"][:3]
    assert scores == SCORES
    assert costs[: len(COSTS)] == COSTS
    assert provenance == ["item", "value"]
    assert page.values["hidden"] == []
    assert all(m in page.values["text"] for m in MODELS)
    assert "Generated digits" in page.values["text"]
    decoded = page.values["results"]
    figures = {p.rsplit("/", 1)[-1] for p, width in decoded.items() if p.endswith(".png")}
    assert set(FIGURES) | {"confusion.png"} <= figures
    assert all(width > 100 for p, width in decoded.items() if p.endswith(".png")), decoded
    assert 10_000 < shot.stat().st_size < 300_000


def terminal_excerpt(terminal: str, columns: int = 110, rows: int = 40) -> str:
    """What a terminal ``columns`` wide and ``rows`` high showed while models trained (the
    moment when most epoch lines were on the screen, among Snakemake's job blocks; long lines
    wrapped), then the run's closing lines."""
    lines = terminal.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Comparison, best test"))
    end = next(i for i, line in enumerate(lines) if line.startswith("The HTML report"))
    screen = [
        line[i : i + columns] for line in lines[:start] for i in range(0, len(line) or 1, columns)
    ]
    epoch = [bool(re.search(r"\sepoch \d+/\d+\s", row)) for row in screen]
    last = max(
        (i for i in range(len(screen)) if epoch[i]),
        key=lambda i: (sum(epoch[max(0, i - rows + 1) : i + 1]), i),
    )
    return "\n".join([*screen[max(0, last - rows + 1) : last + 1], "...", *lines[start : end + 1]])


def test_terminal_screenshot(smoke: tuple[Path, str], tmp_path: Path) -> None:
    """The README's picture of the terminal during a smoke run and at its end, taken with
    Playwright from what the run printed (in tmp_path, or where MNISTBENCH_SCREENSHOTS says:
    docs/img/make-screenshots.sh)."""
    _, terminal = smoke
    page = tmp_path / "terminal.html"
    excerpt = terminal_excerpt(terminal)
    assert "epoch 2/2" in excerpt and "--configfile config/smoke.yaml" in excerpt
    shot = screenshot_path("terminal.png", tmp_path)
    viewport = terminal_page(excerpt, page)
    result = open_page(
        chromium_or_skip(), page, {"text": "document.body.innerText"}, "true", shot, viewport,
        full_page=True,
    )  # fmt: skip
    assert result.errors == [] and "The HTML report" in result.values["text"]
    assert 10_000 < shot.stat().st_size < 300_000


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
    assert (
        "| `lenet5-ensemble` (ensemble) |"
        in (seeds_run / "results/synthetic/comparison.md").read_text()
    )
    html = (seeds_run / "report.html").read_text()
    assert "lenet5-ensemble (ensemble)</td>" in html and "lenet5-seed2</td>" in html


def test_dvc_takes_over_the_snakemake_run_without_rerunning(smoke_run: Path, tmp_path) -> None:
    """The README: to hand a Snakemake run to DVC, `dvc commit -f` records its outputs in
    dvc.lock (DVC has nothing to run), then `snakemake --touch` puts their times back in order
    (DVC's copies are newer than what was made from them: Snakemake would evaluate again).
    In a copy of the smoke run, which it makes a git repository with the run's dvc.yaml."""
    from tests.test_dvc import dvc, git_repo, sh

    smoke_run = Path(shutil.copytree(smoke_run, tmp_path / "proj", symlinks=True))
    generate = ("env", "PYTHONPATH=src", sys.executable, "-m", "mnistbench", "dvc-yaml")
    files = ("config/config.yaml", "config/smoke.yaml")
    (smoke_run / "dvc.yaml").write_text(sh(smoke_run, *generate, "--configfile", *files))
    git_repo(smoke_run)
    assert "Data and pipelines are up to date." not in dvc(smoke_run, "status")
    dvc(smoke_run, "commit", "-f")
    snakemake(smoke_run, "--touch")
    assert "Data and pipelines are up to date." in dvc(smoke_run, "status")
    out = snakemake(smoke_run, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr
