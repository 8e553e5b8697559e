"""Faults in real Snakemake runs, in a temporary copy of the project on tiny generated data.

One story, in order (the tests share the project): a model fails under --keep-going, the
others finish and the table lists it as failed; its config is fixed and the rerun is killed
mid-job; Snakemake refuses the incomplete files until --rerun-incomplete, which completes the
table; a further run has nothing to do."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from mnistbench.config import deep_merge, load_config
from tests.conftest import ROOT, copy_project

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
MODELS = ("lenet5", "simple_cnn")
EXPLODE = {
    "optimizer": {"name": "sgd", "lr": 1.0e30, "momentum": 0.0},
    "scheduler": {"name": "none"},
}
RESULTS = "results/synthetic"


def tiny_project(dest: Path, failing: str | None = None) -> Path:
    """The smoke config cut down to two models, one epoch and a few hundred images; with
    ``failing``, that model gets an absurd learning rate so its loss explodes."""
    proj = copy_project(dest)
    cfg = load_config(ROOT / "config/config.yaml", ROOT / "config/smoke.yaml")
    cfg = deep_merge(
        cfg,
        {
            "data": {"val_size": 100, "synthetic": {"n_train": 600, "n_test": 200}},
            "train": {"max_epochs": 1, "batch_size": 64, "swa": {"enabled": False}},
        },
    )
    cfg["models"] = {m: {"train": {"precision": {"cpu": "32-true"}}} for m in MODELS}
    if failing:
        cfg["models"][failing]["train"].update(EXPLODE)
    (proj / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return proj


def snakemake_cmd(*args: str) -> list[str]:
    # One thread per train job, so that with 2 cores both models train at the same time.
    return [str(BIN / "snakemake"), "--cores", "2", "--set-threads", "train_model=1", *args]


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        snakemake_cmd(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def table(proj: Path) -> dict[str, dict[str, str]]:
    with open(proj / RESULTS / "comparison.csv") as fh:
        return {row["model"]: row for row in csv.DictReader(fh)}


def written_files(proj: Path) -> set[Path]:
    return {
        p.relative_to(proj)
        for p in proj.rglob("*")
        if p.is_file() and p.relative_to(proj).parts[0] in ("data", "results", "logs")
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_project(tmp_path_factory.mktemp("faults"), failing="lenet5")


@pytest.fixture(scope="module")
def keep_going(project: Path) -> tuple[subprocess.CompletedProcess[str], set[Path]]:
    before = {p.relative_to(project) for p in project.rglob("*")}
    proc = snakemake(project, "--keep-going", check=False)
    new = {p.relative_to(project) for p in project.rglob("*")} - before
    return proc, {p for p in new if p.parts[0] != ".snakemake"}


def test_keep_going_lists_the_failed_model_as_failed(project: Path, keep_going) -> None:
    proc, _ = keep_going
    assert proc.returncode != 0
    assert "Failed models: lenet5" in proc.stdout + proc.stderr
    # what to do, on the terminal (not only in the job's log)
    where = "train_model (logs/synthetic/train_model/lenet5.log): mnistbench error: "
    shown = [ln for ln in proc.stderr.splitlines() if ln.startswith(where)]
    assert len(shown) == 1 and "lower the learning rate" in shown[0], proc.stderr

    # The other model finished; the failed one published nothing and its log says why.
    assert (project / RESULTS / "models/simple_cnn/test/metrics.json").exists()
    assert not list((project / RESULTS / "models/lenet5").rglob("*.ckpt"))
    assert not (project / RESULTS / "models/lenet5/summary.json").exists()
    train_log = (project / "logs/synthetic/train_model/lenet5.log").read_text()
    assert "mnistbench error:" in train_log and "lower the learning rate" in train_log

    # The table lists the failed model as failed, and says it is incomplete.
    rows = table(project)
    assert set(rows) == set(MODELS)
    assert rows["lenet5"]["status"] == "failed (see logs/synthetic/train_model/lenet5.log)"
    assert rows["lenet5"]["test_f1"] == ""
    assert rows["simple_cnn"]["status"] == "ok" and float(rows["simple_cnn"]["test_f1"]) > 0
    md = (project / RESULTS / "comparison.md").read_text()
    before_tables = md.split("\n| ")[0]  # the generated-digits note, then this warning
    assert "**Incomplete: 1 of 2 models have no result (lenet5)" in before_tables, md
    assert (project / RESULTS / "figures/learning_curves.png").exists()
    # Dated 1970 so that the next run rebuilds it.
    assert (project / RESULTS / "comparison.csv").stat().st_mtime == 0


def test_concurrent_train_jobs_write_disjoint_files(project: Path, keep_going) -> None:
    """Both train jobs ran at once (one thread each, 2 cores): every file they wrote lies in
    their own model directory, log or benchmark; no temporary file is left; nothing landed
    outside data/, results/ and logs/ (no lightning_logs/ in the working directory), but for
    DVC's git-ignored scratch directory: DVCLive opens the DVC project, and DVC notes its start
    there (.dvc/tmp/btime)."""
    _, new = keep_going
    scratch = {Path(".dvc/tmp"), Path(".dvc/tmp/btime")}
    assert all(p.parts[0] in ("data", "results", "logs") for p in new - scratch), sorted(new)
    per_model = {
        m: {p for p in written_files(project) if m in p.parts or p.stem == m} for m in MODELS
    }
    assert per_model["lenet5"] and per_model["simple_cnn"]
    assert not per_model["lenet5"] & per_model["simple_cnn"]
    assert not [p for p in written_files(project) if p.name.endswith(".tmp")]


def test_fixed_model_killed_mid_run_then_rerun_incomplete(project: Path, keep_going) -> None:
    # Fix the failed model's config: only it (and the report) is planned again.
    cfg = yaml.safe_load((project / "config/config.yaml").read_text())
    cfg["models"]["lenet5"]["train"] = {"precision": {"cpu": "32-true"}}
    (project / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    plan = snakemake(project, "-n").stdout
    assert "model=lenet5" in plan and "model=simple_cnn" not in plan and "build_report" in plan

    # Hold the train job just after it has published model.ckpt, before summary.json (a copy
    # of the code, dated 1970 so that the edit itself reruns nothing), then kill everything.
    training = project / "src/mnistbench/training.py"
    original = training.read_text()
    assert "    averaged = " in original
    held = original.replace(
        "    averaged = ", '    __import__("time").sleep(600)\n    averaged = ', 1
    )
    training.write_text(held)
    os.utime(training, (0, 0))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    job = subprocess.Popen(
        snakemake_cmd(),
        cwd=project,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    model_dir = project / RESULTS / "models/lenet5"
    try:
        deadline = time.monotonic() + 400
        while not (model_dir / "model.ckpt").exists() and time.monotonic() < deadline:
            assert job.poll() is None, "snakemake ended before the train job was held"
            time.sleep(0.5)
        assert (model_dir / "model.ckpt").exists(), "the train job never published model.ckpt"
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # snakemake and its jobs, as a lost node would
        job.wait()

    # What is left under a final name is complete (the checkpoint loads); the rest is missing.
    assert torch.load(model_dir / "model.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    assert not (model_dir / "summary.json").exists()
    assert not [p for p in model_dir.iterdir() if p.suffix == ".tmp" and not p.name.startswith(".")]

    training.write_text(original)
    os.utime(training, (0, 0))
    snakemake(project, "--unlock")  # a killed Snakemake leaves its lock behind
    refused = snakemake(project, check=False)
    assert refused.returncode != 0 and "--rerun-incomplete" in refused.stdout + refused.stderr
    snakemake(project, "--rerun-incomplete")
    rows = table(project)
    assert set(rows) == set(MODELS) and {r["status"] for r in rows.values()} == {"ok"}
    assert not (project / RESULTS / "comparison.md").read_text().startswith("**Incomplete")
    assert "Nothing to be done" in snakemake(project, "-n").stdout
