"""A stopped or failed run is picked up by the next plain run: real Snakemake runs in temporary
copies of the project, on tiny generated data.

Each scenario has a project of its own, and no config or code changes between its runs: the
faults are injected into the jobs from outside (tests/inject/sitecustomize.py, through
``MNISTBENCH_INJECT``). After the fault, the comparison of what there is lies in
``results/<dataset>/partial/``; the report's own outputs are never written outside its job, so
the next run plans exactly the missing jobs and completes the comparison, and a run after that
has nothing to do."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
import yaml

from mnistbench.config.load import deep_merge, load_config
from mnistbench.io import read_json
from tests.conftest import ROOT, copy_project

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
INJECT = ROOT / "tests/inject"
MODELS = ("lenet5", "simple_cnn")
EXPLODE = {
    "optimizer": {"name": "sgd", "lr": 1.0e30, "momentum": 0.0},
    "scheduler": {"name": "none"},
}
RESULTS = "results/synthetic"
PARTIAL = f"{RESULTS}/partial"


def tiny_project(
    dest: Path,
    failing: str | None = None,
    models: Sequence[str] = MODELS,
    epochs: int = 1,
) -> Path:
    """The smoke config cut down to ``models``, ``epochs`` epochs and a few hundred images;
    with ``failing``, that model gets an absurd learning rate so its loss explodes."""
    proj = copy_project(dest)
    cfg = load_config(ROOT / "config/config.yaml", ROOT / "config/smoke.yaml")
    cfg = deep_merge(
        cfg,
        {
            "data": {"val_size": 100, "synthetic": {"n_train": 600, "n_test": 200}},
            "train": {"max_epochs": epochs, "batch_size": 64, "swa": {"enabled": False}},
        },
    )
    cfg["train"]["early_stopping"]["enabled"] = False
    cfg["train"]["require_learning"] = False  # one epoch of ten steps learns little
    cfg["models"] = {m: {"train": {"precision": {"cpu": "32-true"}}} for m in models}
    if failing:
        cfg["models"][failing]["train"].update(EXPLODE)
    (proj / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return proj


def snakemake_cmd(*args: str) -> list[str]:
    # One thread per train job, so that with 2 cores both models train at the same time.
    return [str(BIN / "snakemake"), "--cores", "2", "--set-threads", "train_model=1", *args]


def job_env(faults: Sequence[dict] = ()) -> dict[str, str]:
    """The environment of a Snakemake run whose jobs get ``faults`` (none: a plain run)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MNISTBENCH_INJECT", None)
    if faults:
        env["MNISTBENCH_INJECT"] = json.dumps(list(faults))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(INJECT), env.get("PYTHONPATH")]))
    return env


def snakemake(
    cwd: Path, *args: str, check: bool = True, faults: Sequence[dict] = ()
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        snakemake_cmd(*args),
        cwd=cwd,
        env=job_env(faults),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def start(cwd: Path, faults: Sequence[dict], *args: str) -> subprocess.Popen[str]:
    """Snakemake in the background, in its own process group, its output kept."""
    return subprocess.Popen(
        snakemake_cmd(*args),
        cwd=cwd,
        env=job_env(faults),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen[str], text: str | None = None) -> None:
    """Until ``path`` exists (and holds ``text``), while Snakemake runs."""
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        if path.exists() and (text is None or text in path.read_text(errors="replace")):
            return
        assert proc.poll() is None, f"snakemake ended first:\n{proc.communicate()}"
        time.sleep(0.2)
    raise AssertionError(f"{path} never came (or never said {text!r})")


def table(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as fh:
        return {row["model"]: row for row in csv.DictReader(fh)}


def planned(proj: Path) -> set[str]:
    """The jobs a plain dry run plans, as 'rule' or 'rule:model'."""
    out = snakemake(proj, "-n").stdout
    jobs = set()
    for block in re.split(r"\n(?=rule |localrule |checkpoint )", out)[1:]:
        rule = block.split()[1].rstrip(":")
        found = re.search(r"wildcards: .*?model=([\w.-]+)", block)
        jobs.add(f"{rule}:{found.group(1)}" if found else rule)
    return jobs - {"all"}


def complete_after_plain_runs(proj: Path, expected_plan: set[str]) -> dict[str, dict[str, str]]:
    """The next plain run plans exactly ``expected_plan`` and completes the comparison; the one
    after has nothing to do. Returns the complete table."""
    assert planned(proj) == expected_plan
    snakemake(proj)
    rows = table(proj / RESULTS / "comparison.csv")
    assert {r["status"] for r in rows.values()} == {"ok"}, rows
    assert not (proj / PARTIAL).exists()  # the partial comparison is gone with the fault
    assert "Nothing to be done" in snakemake(proj, "-n").stdout
    return rows


def written_files(proj: Path) -> set[Path]:
    return {
        p.relative_to(proj)
        for p in proj.rglob("*")
        if p.is_file() and p.relative_to(proj).parts[0] in ("data", "results", "logs")
    }


def test_keep_going_with_one_failing_model_then_a_plain_run_completes(tmp_path: Path) -> None:
    """lenet5's train job fails as on a full disk; simple_cnn finishes. The terminal says what
    failed and why, the partial comparison lists lenet5 as failed, and the next plain run trains
    lenet5 alone; the two train jobs wrote disjoint files."""
    proj = tiny_project(tmp_path)
    before = {p.relative_to(proj) for p in proj.rglob("*")}
    disk_full = [{"stage": "train", "model": "lenet5", "fault": "oserror", "errno": "ENOSPC"}]
    proc = snakemake(proj, "--keep-going", check=False, faults=disk_full)
    assert proc.returncode != 0
    shown = proc.stdout + proc.stderr
    where = "train_model (logs/synthetic/train_model/lenet5.log): mnistbench error: "
    error = [ln for ln in proc.stderr.splitlines() if ln.startswith(where)]
    assert len(error) == 1, proc.stderr
    assert "no space left on device; free some space there" in error[0]
    assert f"{RESULTS}/models/lenet5/.model.ckpt.injected.tmp" in error[0]
    assert f"No result for lenet5: {PARTIAL}/comparison.md compares the others." in shown

    rows = table(proj / PARTIAL / "comparison.csv")
    assert rows["lenet5"]["status"] == "failed (see logs/synthetic/train_model/lenet5.log)"
    assert rows["lenet5"]["test_f1"] == ""
    assert rows["simple_cnn"]["status"] == "ok" and float(rows["simple_cnn"]["test_f1"]) > 0.2
    md = (proj / PARTIAL / "comparison.md").read_text()
    assert "**Incomplete: 1 of 2 models have no result (lenet5)" in md.split("\n| ")[0], md
    assert (proj / PARTIAL / "figures/learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    # The report's own outputs were never written: nothing looks like a complete comparison.
    assert not (proj / RESULTS / "comparison.csv").exists()
    assert not list((proj / RESULTS / "models/lenet5").glob("*.ckpt"))

    # Both train jobs ran at once: each wrote only in its own directory, log or benchmark;
    # nothing outside data/, results/ and logs/ but DVC's git-ignored scratch (DVCLive).
    new = {p.relative_to(proj) for p in proj.rglob("*")} - before
    scratch = {Path(".dvc/tmp"), Path(".dvc/tmp/btime")}
    assert all(p.parts[0] in ("data", "results", "logs", ".snakemake") for p in new - scratch)
    per_model = {m: {p for p in written_files(proj) if m in p.parts or p.stem == m} for m in MODELS}
    assert per_model["lenet5"] and not per_model["lenet5"] & per_model["simple_cnn"]
    assert not [p for p in written_files(proj) if p.name.endswith(".tmp")]

    complete_after_plain_runs(proj, {"train_model:lenet5", "evaluate_model:lenet5", "build_report"})


def test_a_failed_forced_rerun_then_a_plain_run_completes(tmp_path: Path) -> None:
    """After a complete run, `--forcerun train_model` in which lenet5 fails: Snakemake removed
    the old outputs of the forced job; the next plain run redoes what is missing, no more."""
    proj = tiny_project(tmp_path, models=("lenet5",))
    snakemake(proj)
    disk_full = [{"stage": "train", "model": "lenet5", "fault": "oserror", "errno": "ENOSPC"}]
    proc = snakemake(proj, "--forcerun", "train_model", check=False, faults=disk_full)
    assert proc.returncode != 0
    assert not (proj / RESULTS / "comparison.csv").exists()  # the old one: not of these results
    status = table(proj / PARTIAL / "comparison.csv")["lenet5"]["status"]
    assert status == "failed (see logs/synthetic/train_model/lenet5.log)"
    complete_after_plain_runs(proj, {"train_model:lenet5", "evaluate_model:lenet5", "build_report"})


def test_sigterm_during_training_then_a_plain_run_resumes_it(tmp_path: Path) -> None:
    """SIGTERM to Snakemake while lenet5 trains its second epoch: the job stops, keeps its
    epoch checkpoint, is listed as stopped with the command that resumes it; the plain rerun
    continues after epoch 1."""
    proj = tiny_project(tmp_path, models=("lenet5",), epochs=3)
    hold = [{"stage": "train", "model": "lenet5", "fault": "hold_epoch", "epoch": 1}]
    proc = start(proj, hold)
    log = proj / "logs/synthetic/train_model/lenet5.log"
    wait_for(log, proc, "held at epoch index 1")
    assert (proj / RESULTS / "models/lenet5/lightning/resume/last.ckpt").exists()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "mnistbench: stopped by SIGTERM" in log.read_text()
    assert "Stopped jobs resume (training from its last epoch): snakemake --cores 2" in err
    rows = table(proj / PARTIAL / "comparison.csv")
    assert rows["lenet5"]["status"] == "stopped (the same command resumes it)", out + err

    complete_after_plain_runs(proj, {"train_model:lenet5", "evaluate_model:lenet5", "build_report"})
    summary = read_json(proj / RESULTS / "models/lenet5/summary.json")
    assert summary["resumed_after_epoch"] == 1 and summary["epochs"] == 3
    assert "resuming from" in log.read_text()


def test_sigint_during_evaluation_then_a_plain_run_evaluates_it(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) to Snakemake while lenet5 is evaluated and simple_cnn's evaluation has
    written everything but not ended: the rerun evaluates what it must (and trains nothing
    again), then builds the whole comparison."""
    proj = tiny_project(tmp_path)
    hold = [
        {"stage": "evaluate", "model": "lenet5", "fault": "hold"},
        {"stage": "evaluate", "model": "simple_cnn", "fault": "hold_exit"},
    ]
    proc = start(proj, hold)
    log = proj / "logs/synthetic/evaluate_model/lenet5.log"
    wait_for(log, proc, "held before scoring")
    wait_for(proj / "logs/synthetic/evaluate_model/simple_cnn.log", proc, "held after writing")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "mnistbench: stopped by SIGINT" in log.read_text()
    rows = table(proj / PARTIAL / "comparison.csv")
    assert rows["lenet5"]["status"] == "stopped (the same command resumes it)"
    trained = (proj / RESULTS / "models/lenet5/model.ckpt").stat().st_mtime
    # simple_cnn's job ended as Snakemake stopped: recorded as finished, or else what it wrote
    # is gone (left marked incomplete, the next plain run would refuse it)
    plan = {"evaluate_model:lenet5", "build_report"}
    if not (proj / RESULTS / "models/simple_cnn/test/metrics.json").exists():
        plan.add("evaluate_model:simple_cnn")
    complete_after_plain_runs(proj, plan)
    assert (proj / RESULTS / "models/lenet5/model.ckpt").stat().st_mtime == trained


def test_a_diverging_model_fails_and_is_listed_as_diverged(tmp_path: Path) -> None:
    """A learning rate 50 times too high: the loss explodes in the first epoch; the job fails
    with a line that names the model, the epoch and the knob, and publishes nothing."""
    proj = tiny_project(tmp_path, models=("lenet5",))
    cfg = yaml.safe_load((proj / "config/config.yaml").read_text())
    cfg["models"]["lenet5"]["train"]["scheduler"] = {"max_lr": 50.0}
    (proj / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(proj, check=False)
    assert proc.returncode != 0
    where = "train_model (logs/synthetic/train_model/lenet5.log): mnistbench error: lenet5 diverged"
    error = [ln for ln in proc.stderr.splitlines() if ln.startswith(where)]
    assert len(error) == 1, proc.stderr
    assert "at epoch 1" in error[0] and "scheduler.max_lr = 50" in error[0], error[0]
    rows = table(proj / PARTIAL / "comparison.csv")
    assert rows["lenet5"]["status"] == "diverged (see logs/synthetic/train_model/lenet5.log)"
    assert not (proj / RESULTS / "models/lenet5/model.ckpt").exists()


def test_killed_mid_publish_then_rerun_incomplete(tmp_path: Path) -> None:
    """A kill -9 of Snakemake and its jobs (a lost node) after model.ckpt, before summary.json:
    what is left under a final name is whole; Snakemake refuses the incomplete files until
    --rerun-incomplete, which completes the comparison."""
    proj = tiny_project(tmp_path, models=("lenet5",))
    model_dir = proj / RESULTS / "models/lenet5"
    hold = [{"stage": "train", "model": "lenet5", "fault": "hold_summary"}]
    proc = start(proj, hold)
    try:
        wait_for(model_dir / "metrics.csv", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    ckpt = torch.load(model_dir / "model.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["arch"] == "lenet5" and ckpt["state_dict"]
    assert not (model_dir / "summary.json").exists()
    assert not [p for p in model_dir.iterdir() if p.suffix == ".tmp"]

    snakemake(proj, "--unlock")  # a killed Snakemake leaves its lock behind
    refused = snakemake(proj, check=False)
    assert refused.returncode != 0 and "--rerun-incomplete" in refused.stdout + refused.stderr
    snakemake(proj, "--rerun-incomplete")
    rows = table(proj / RESULTS / "comparison.csv")
    assert set(rows) == {"lenet5"} and rows["lenet5"]["status"] == "ok"
    assert "Nothing to be done" in snakemake(proj, "-n").stdout
