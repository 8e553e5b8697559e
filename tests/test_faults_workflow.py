"""Faults in real Snakemake runs, in a temporary copy of the project on tiny generated data:
one model failing under --keep-going, and a run killed mid-job then --rerun-incomplete."""

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


def test_keep_going_lists_the_failed_model_and_a_later_run_repairs_it(tmp_path: Path) -> None:
    proj = tiny_project(tmp_path, failing="lenet5")
    before = {p.relative_to(proj) for p in proj.rglob("*") if ".snakemake" not in p.parts}
    proc = snakemake(proj, "--keep-going", check=False)
    assert proc.returncode != 0
    assert "Failed models: lenet5" in proc.stdout + proc.stderr

    # The other model finished; the failed one published nothing and its log says why.
    assert (proj / RESULTS / "models/simple_cnn/test/metrics.json").exists()
    assert not list((proj / RESULTS / "models/lenet5").rglob("*.ckpt"))
    assert not (proj / RESULTS / "models/lenet5/summary.json").exists()
    train_log = (proj / "logs/synthetic/train_model/lenet5.log").read_text()
    assert "mnistbench error:" in train_log and "lower the learning rate" in train_log

    # The table lists the failed model as failed, and says it is incomplete.
    rows = table(proj)
    assert set(rows) == set(MODELS)
    assert rows["lenet5"]["status"] == "failed (see logs/synthetic/train_model/lenet5.log)"
    assert rows["lenet5"]["test_f1"] == ""
    assert rows["simple_cnn"]["status"] == "ok" and float(rows["simple_cnn"]["test_f1"]) > 0
    md = (proj / RESULTS / "comparison.md").read_text()
    assert md.startswith("**Incomplete: 1 of 2 models") and "lenet5" in md
    assert (proj / RESULTS / "figures/learning_curves.png").exists()

    # Concurrency: the two train jobs ran at once and wrote disjoint files, all in their own
    # directories; no temporary file is left; nothing landed outside data/ results/ logs/.
    new = {p.relative_to(proj) for p in proj.rglob("*") if ".snakemake" not in p.parts} - before
    assert all(p.parts[0] in ("data", "results", "logs") for p in new), sorted(new)
    per_model = {m: {p for p in written_files(proj) if m in p.parts or p.stem == m} for m in MODELS}
    assert per_model["lenet5"] and per_model["simple_cnn"]
    assert not per_model["lenet5"] & per_model["simple_cnn"]
    assert not [p for p in written_files(proj) if p.name.endswith(".tmp")]

    # Fixed config: only the failed model (and the report) rerun; the table is complete again.
    cfg = yaml.safe_load((proj / "config/config.yaml").read_text())
    cfg["models"]["lenet5"]["train"] = {"precision": {"cpu": "32-true"}}
    (proj / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    plan = snakemake(proj, "-n").stdout
    assert "model=lenet5" in plan and "model=simple_cnn" not in plan and "build_report" in plan
    snakemake(proj)
    rows = table(proj)
    assert {r["status"] for r in rows.values()} == {"ok"} and set(rows) == set(MODELS)
    assert not (proj / RESULTS / "comparison.md").read_text().startswith("**Incomplete")
    assert "Nothing to be done" in snakemake(proj, "-n").stdout


def test_killed_run_leaves_no_complete_looking_file_and_rerun_incomplete_recovers(
    tmp_path: Path,
) -> None:
    proj = tiny_project(tmp_path)
    training = proj / "src/mnistbench/training.py"
    original = training.read_text()
    # Hold every train job just after it has published model.ckpt, before summary.json.
    assert "    selected = (" in original
    training.write_text(
        original.replace(
            "    selected = (", '    __import__("time").sleep(600)\n    selected = (', 1
        )
    )

    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    job = subprocess.Popen(
        snakemake_cmd(),
        cwd=proj,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpts = [proj / RESULTS / f"models/{m}/model.ckpt" for m in MODELS]
    try:
        deadline = time.monotonic() + 400
        while not all(p.exists() for p in ckpts) and time.monotonic() < deadline:
            assert job.poll() is None, "snakemake ended before the train jobs were held"
            time.sleep(0.5)
        assert all(p.exists() for p in ckpts), "the train jobs never published model.ckpt"
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # snakemake and its jobs, as a lost node would
        job.wait()

    # What is left under a final name is complete (the checkpoint loads); the rest is missing.
    for m in MODELS:
        d = proj / RESULTS / "models" / m
        assert torch.load(d / "model.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        assert not (d / "summary.json").exists()
    assert not (proj / RESULTS / "comparison.csv").exists()

    training.write_text(original)
    snakemake(proj, "--unlock")
    refused = snakemake(proj, check=False)
    assert refused.returncode != 0 and "incomplete" in (refused.stdout + refused.stderr).lower()
    snakemake(proj, "--rerun-incomplete")
    rows = table(proj)
    assert set(rows) == set(MODELS) and {r["status"] for r in rows.values()} == {"ok"}
    assert "Nothing to be done" in snakemake(proj, "-n").stdout
