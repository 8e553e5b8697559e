"""DVC: the real `dvc` in a temporary git repository holding a copy of the project.

The end-to-end tests (marked slow) write dvc.yaml for a two-seed smoke comparison
(`mnistbench dvc-yaml --configfile config/config.yaml config/smoke.yaml <overlay>`: two small
models, two seeds each, one epoch), run `dvc repro` once (a module fixture), then check what a
second run, a parameter change, `dvc metrics show` and a push/pull round trip do. A test that
changes the project (an experiment, a parameter, a push and pull) works on its own copy, so the
tests pass in any order. The comparison of the DVC
stages with the Snakemake jobs is tests/test_pipeline.py.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnistbench.config.load import load_config
from mnistbench.errors import ConfigError
from mnistbench.pipeline.dvc import overrides
from mnistbench.reporting.statistics import mcnemar_exact
from tests.browser import chromium_or_skip, open_page, screenshot_path
from tests.conftest import ROOT, copy_project

BIN = Path(sys.executable).parent
MODELS = ["lenet5", "simple_cnn"]
RUNS = [f"{m}-seed{s}" for m in MODELS for s in (1, 2)]
ENSEMBLES = [f"{m}-ensemble" for m in MODELS]  # the seed runs of each model combined
# The two-seed smoke comparison, over config/config.yaml and config/smoke.yaml.
OVERLAY = """\
only: [lenet5, simple_cnn]
seeds: [1, 2]
data: {val_size: 300, synthetic: {n_train: 1500, n_test: 500}}
train: {max_epochs: 1, swa: {enabled: false}}
"""
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    "DVC_NO_ANALYTICS": "1",
    "DVC_NO_UPDATER": "1",
    "GIT_AUTHOR_NAME": "mnistbench tests",
    "GIT_AUTHOR_EMAIL": "tests@mnistbench.invalid",
    "GIT_COMMITTER_NAME": "mnistbench tests",
    "GIT_COMMITTER_EMAIL": "tests@mnistbench.invalid",
}


def sh(cwd: Path, *cmd: str, timeout: int = 600) -> str:
    """Run a command in the copy; stdout and stderr together, which is what a user sees."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-8000:]}")
    return out


def dvc(cwd: Path, *args: str) -> str:
    return sh(cwd, str(BIN / "dvc"), *args)


def git_repo(proj: Path) -> Path:
    sh(proj, "git", "init", "-q")
    sh(proj, "git", "add", "-A")
    sh(proj, "git", "commit", "-q", "-m", "mnistbench copy")
    return proj


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def dvc_outputs(proj: Path) -> set[str]:
    """Every output of every stage of dvc.yaml, resolved by DVC itself."""
    from dvc.repo import Repo

    with Repo(str(proj)) as repo:
        return {str(out.def_path) for stage in repo.index.stages for out in stage.outs}


def test_smoke_overrides_reproduce_the_smoke_config(project_root: Path) -> None:
    """`dvc exp run $(mnistbench dvc-params config/smoke.yaml)` sets every key of the
    overlay: applying the printed -S values gives the config Snakemake's --configfile gives."""
    args = overrides(project_root / "config/smoke.yaml")
    assert args[0::2] == ["-S"] * (len(args) // 2)
    config = load_config(project_root / "config/config.yaml")
    for arg in args[1::2]:
        file, _, assignment = arg.partition(":++")
        assert file == "config/config.yaml"
        key, _, value = assignment.partition("=")
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    expected = load_config(project_root / "config/config.yaml", project_root / "config/smoke.yaml")
    assert config == expected


def test_smoke_overrides_refuse_a_value_the_shell_would_split(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("data: {local_dir: /my data}\n")
    with pytest.raises(ConfigError, match=r"data\.local_dir.*edit config/config\.yaml"):
        overrides(overlay)


# --- end to end, with the real dvc ---------------------------------------------------------------


def output_digests(proj: Path) -> dict[str, str]:
    """sha256 of every file of every declared output (a directory's files one by one: DVCLive's
    plots); Lightning's work files under lightning/ are not outputs."""
    files = []
    for path in sorted(dvc_outputs(proj)):
        out = proj / path
        files += sorted(f for f in out.rglob("*") if f.is_file()) if out.is_dir() else [out]
    return {str(f.relative_to(proj)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The copy after one `dvc repro` of the two-seed smoke comparison."""
    proj = copy_project(tmp_path_factory.mktemp("dvc"))
    (proj / "config/seeds2.yaml").write_text(OVERLAY)
    files = ["config/config.yaml", "config/smoke.yaml", "config/seeds2.yaml"]
    generate = ("env", "PYTHONPATH=src", sys.executable, "-m", "mnistbench", "dvc-yaml")
    pipeline = sh(proj, *generate, "--configfile", *files)
    (proj / "dvc.yaml").write_text(pipeline)
    git_repo(proj)
    remote = tmp_path_factory.mktemp("dvc-remote")
    dvc(proj, "remote", "modify", "--local", "local", "url", str(remote))
    out = dvc(proj, "repro")
    assert ran_stages(out) == {
        "download",
        "prepare",
        *(f"{step}@{r}" for step in ("train", "evaluate") for r in RUNS),
        *(f"ensemble@{e}" for e in ENSEMBLES),
        "report",
    }, out[-4000:]
    return proj


@pytest.fixture
def own_repro(repro: Path, tmp_path: Path) -> Path:
    """A copy of the project after `dvc repro` (its git repository, DVC cache and outputs) for
    a test that changes it: the others see the project as the one `dvc repro` left it."""
    return Path(shutil.copytree(repro, tmp_path / "proj", symlinks=True))


def predictions(proj: Path, name: str) -> dict[str, np.ndarray]:
    """A run's or an ensemble's test predictions (test/predictions.npz)."""
    kind = "ensembles" if name.endswith("-ensemble") else "models"
    with np.load(proj / f"results/synthetic/{kind}/{name}/test/predictions.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.slow
def test_repro_builds_the_two_seed_comparison(repro: Path) -> None:
    with open(repro / "results/synthetic/comparison.csv") as fh:
        rows = {row["model"]: row for row in csv.DictReader(fh)}
    assert set(rows) == {*RUNS, *ENSEMBLES}
    assert {m for m, row in rows.items() if row["kind"] == "ensemble"} == set(ENSEMBLES)
    for m in MODELS:  # an ensemble row: its members, summed costs, a p-value against a run
        ens = rows[f"{m}-ensemble"]
        members = [part.split(":")[0] for part in ens["members"].split()]
        assert members and set(members) <= {f"{m}-seed1", f"{m}-seed2"}
        assert int(ens["params"]) == sum(int(rows[r]["params"]) for r in members)
        assert float(ens["ci_low"]) <= float(ens["test_f1"]) <= float(ens["ci_high"])
        assert rows[f"{m}-seed1"]["kind"] == "run"
        # McNemar's test against the better of the runs it was chosen from, on these predictions
        best = next(r for r in rows if r in (f"{m}-seed1", f"{m}-seed2"))  # the table's order
        ens_preds, run_preds = predictions(repro, f"{m}-ensemble"), predictions(repro, best)
        labels = run_preds["labels"]
        _, _, p = mcnemar_exact(ens_preds["preds"] == labels, run_preds["preds"] == labels)
        assert float(ens["mcnemar_p"]) == pytest.approx(p, rel=1e-2, abs=1e-300)
    md = (repro / "results/synthetic/comparison.md").read_text()
    assert all(f"| `{e}` (ensemble) |" in md for e in ENSEMBLES)
    summary = json.loads((repro / "results/synthetic/summary.json").read_text())
    first = next(iter(rows))  # comparison.csv's first row (summary.json: numbers only)
    assert summary["n_models"] == len(RUNS) + len(ENSEMBLES)
    assert set(summary["test_f1"]) == {*RUNS, *ENSEMBLES}
    assert summary["best_test_f1"] == summary["test_f1"][first] == max(summary["test_f1"].values())
    with open(repro / "results/synthetic/seeds.csv") as fh:
        over_seeds = {row["model"]: row for row in csv.DictReader(fh)}
    assert set(over_seeds) == set(MODELS)
    for m, row in over_seeds.items():  # the mean and sample std of the two seeds' test F1
        f1s = [float(rows[f"{m}-seed{s}"]["test_f1"]) for s in (1, 2)]
        assert row["n_seeds"] == "2" and row["seeds"] == "1 2"
        assert float(row["test_f1_mean"]) == pytest.approx(statistics.mean(f1s), abs=1e-5)
        assert float(row["test_f1_std"]) == pytest.approx(statistics.stdev(f1s), abs=1e-5)
    # DVC's outputs are git-ignored by the project's .gitignore; DVC adds no .gitignore of its own.
    assert sh(repro, "git", "status", "--porcelain", "--untracked-files=all").split() == [
        "??",
        "dvc.lock",
    ]


@pytest.mark.slow
def test_second_repro_runs_nothing(repro: Path) -> None:
    out = dvc(repro, "repro")
    assert not ran_stages(out), out
    skipped = set(re.findall(r"Stage '([^']+)' didn't change, skipping", out))
    assert len(skipped) == 3 + 2 * len(RUNS) + len(ENSEMBLES), out
    assert "Data and pipelines are up to date." in dvc(repro, "status")


@pytest.mark.slow
def test_metrics_show_lists_test_f1_of_every_model(repro: Path) -> None:
    shown = json.loads(dvc(repro, "metrics", "show", "--json"))
    (workspace,) = shown.values()  # the workspace only (its key is "" in DVC 3.67)
    files = workspace["data"]
    with open(repro / "results/synthetic/comparison.csv") as fh:
        table = {row["model"]: float(row["test_f1"]) for row in csv.DictReader(fh)}
    for r in RUNS:  # what the evaluation wrote, the F1 of the comparison table
        path = f"results/synthetic/models/{r}/test/metrics.json"
        metrics = files[path]["data"]
        assert metrics == json.loads((repro / path).read_text())
        assert metrics["test_f1"] == pytest.approx(table[r], abs=1e-5)
    best = files["results/synthetic/summary.json"]["data"]
    best_run = max(
        files[f"results/synthetic/models/{r}/test/metrics.json"]["data"]["test_f1"] for r in RUNS
    )
    # the best row: a run, or an ensemble that beats it
    assert best["best_test_f1"] == pytest.approx(best_run, abs=1e-5) or (
        best["best_test_f1"] > best_run
        and max(best["test_f1"], key=best["test_f1"].get) in ENSEMBLES  # numbers only: no name
    )


@pytest.mark.slow
def test_plots_show_renders_every_plot(repro: Path) -> None:
    plots = json.loads(dvc(repro, "plots", "show", "--json"))
    assert not plots.get("errors"), plots.get("errors")
    ids = set(plots["data"])
    for r in RUNS:
        assert f"results/synthetic/models/{r}/metrics.csv" in ids
        assert f"results/synthetic/models/{r}/test/predictions.csv" in ids
    assert "results/synthetic/comparison.csv" in ids
    curves = json.dumps(plots["data"]["results/synthetic/models/lenet5-seed1/metrics.csv"])
    assert '"fold": ["val_f1", "val_loss"]' in curves  # .dvc/plots/learning_curve.json


# The page `dvc plots show` writes, drawn in the browser: the plots whose marks (vega-embed's
# <canvas> or <svg class="marks">) have a size.
DRAWN = """Array.from(document.querySelectorAll('.vega-embed')).filter(e => {
  const marks = e.querySelector('.marks');
  return marks !== null && marks.getBoundingClientRect().width > 0;
}).length"""


@pytest.mark.slow
def test_plots_page_draws_offline_in_chromium(repro: Path, tmp_path: Path) -> None:
    """`dvc plots show`'s page, opened with the network closed, draws every plot: Vega comes
    from the page itself (.dvc/config's plots.html_template), not from a CDN."""
    out = dvc(repro, "plots", "show")
    page = repro / "dvc_plots/index.html"
    assert str(page.relative_to(repro)) in out, out
    html = page.read_text()
    n_plots = html.count("vegaEmbed('#")
    assert n_plots >= 2 * len(RUNS) + 1, n_plots  # learning curves, confusions, F1-vs-params
    assert "cdn.jsdelivr" not in html and "<script src=" not in html
    shot = screenshot_path("dvc-plots.png", tmp_path)
    result = open_page(
        chromium_or_skip(),
        page,
        {"drawn": DRAWN, "vega": "typeof vegaEmbed"},
        ready=f"{DRAWN} >= {n_plots}",
        screenshot=shot,
    )
    assert result.errors == [], result.errors
    assert result.values == {"drawn": n_plots, "vega": "function"}


def readme_command(start: str) -> list[str]:
    """The README's command line that starts with ``start``, split as a shell would."""
    lines = [ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith(start)]
    assert len(lines) == 1, f"README.md has {len(lines)} lines starting with {start!r}"
    return shlex.split(lines[0].split("  #")[0])


def exp_show(proj: Path, *args: str) -> str:
    env = {**ENV, "COLUMNS": "120"}
    proc = subprocess.run(
        [str(BIN / "dvc"), "exp", "show", "--no-pager", *args],
        cwd=proj, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return proc.stdout


@pytest.mark.slow
def test_an_experiment_leaves_the_workspace_alone_and_shows_in_120_columns(
    own_repro: Path,
) -> None:
    """The README's experiment, on a commit of the run (`dvc exp run --temp -S ...`), runs
    outside the workspace: its config/config.yaml stays as it was (a later plain `snakemake` or
    `dvc repro` runs what it says). Then the README's `dvc exp show` fits 120 columns, nothing
    cut: the changed parameter and the changed runs' test F1."""
    repro = own_repro
    sh(repro, "git", "add", "dvc.lock")
    sh(repro, "git", "commit", "-q", "-m", "baseline run")
    config = (repro / "config/config.yaml").read_bytes()
    run = readme_command("dvc exp run ")
    key = "models.lenet5.train.scheduler.max_lr"
    assert run[:5] == ["dvc", "exp", "run", "--temp", "-n"] and key in run[-1], run
    out = dvc(repro, *run[1:])
    lenet5 = {f"{step}@lenet5-seed{s}" for step in ("train", "evaluate") for s in (1, 2)}
    # every ensemble reads every run's predictions (one foreach in dvc.yaml): rebuilt, not retrained
    ensembles = {f"ensemble@{e}" for e in ENSEMBLES}
    assert ran_stages(out) == lenet5 | ensembles | {"report"}, out[-4000:]
    assert (repro / "config/config.yaml").read_bytes() == config
    assert sh(repro, "git", "status", "--porcelain") == ""

    show = readme_command("dvc exp show ")
    table = exp_show(repro, *show[3:])
    columns = [len(exp_show(repro, *a, "--csv").splitlines()[0].split(",")) for a in ([], show[3:])]
    print(f"dvc exp show: {columns[0]} columns, the README's: {columns[1]}\n{table}")
    assert max(len(line) for line in table.splitlines()) <= 120, table
    assert "…" not in table and "!" not in table, table  # nothing cut short, no missing value
    assert run[5] in table and key in table, table
    assert "test_f1.lenet5-seed1" in table and "test_f1.lenet5-seed2" in table, table
    assert "simple_cnn" not in table  # unchanged


@pytest.mark.slow
def test_one_models_parameter_reruns_only_that_model(own_repro: Path) -> None:
    repro = own_repro
    cfg_path = repro / "config/config.yaml"
    config = yaml.safe_load(cfg_path.read_text())
    config["models"]["lenet5"]["train"]["optimizer"] = {"lr": 0.002}
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    out = dvc(repro, "repro")
    lenet5 = {f"{step}@lenet5-seed{s}" for step in ("train", "evaluate") for s in (1, 2)}
    # the ensembles read every run's predictions (one foreach in dvc.yaml): seconds each
    ensembles = {f"ensemble@{e}" for e in ENSEMBLES}
    assert ran_stages(out) == lenet5 | ensembles | {"report"}, out[-4000:]


@pytest.mark.slow
def test_push_then_pull_restores_every_output(own_repro: Path) -> None:
    repro = own_repro
    # download 5, prepare 4, report 13; per run: train 6 (DVCLive's plots a directory),
    # evaluate 7 (val predictions too); per ensemble 2
    assert len(dvc_outputs(repro)) == 9 + 13 + 13 * len(RUNS) + 2 * len(ENSEMBLES)
    before = output_digests(repro)
    assert any("/dvclive/plots/" in path for path in before)
    dvc(repro, "push")
    shutil.rmtree(repro / "data")
    shutil.rmtree(repro / "results")
    shutil.rmtree(repro / ".dvc/cache")
    assert not (repro / "results").exists()
    out = dvc(repro, "pull")
    assert output_digests(repro) == before, out
    assert "Data and pipelines are up to date." in dvc(repro, "status")
