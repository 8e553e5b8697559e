"""Resume and tune through the real Snakemake, on the smoke config in a temporary copy.

A train job is killed (SIGKILL to its whole process group) after its first epoch checkpoint,
and ``--rerun-incomplete`` must continue from that checkpoint, not start over."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mnistbench.io import read_json
from tests.conftest import copy_project

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
EPOCHS = 4
MODEL_DIR = "results/synthetic/models/cnn"
EXTRA = f"""
train:
  early_stopping: {{enabled: false}}
models:
  cnn:
    train: {{max_epochs: {EPOCHS}, limit_train_batches: 0.5}}
tune: {{lr_steps: 20, batch_trials: 1}}
"""


def command(*args: str) -> list[str]:
    return [str(BIN / "snakemake"), "--cores", "2", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def configfiles() -> list[str]:
    return ["--configfile", "config/smoke.yaml", "config/resume.yaml"]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        command(*args), cwd=cwd, env=env(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proj = copy_project(tmp_path_factory.mktemp("resume"))
    (proj / "config/resume.yaml").write_text(EXTRA)
    run(proj, "data/synthetic/prepared/stats.json", *configfiles())  # data first: not timed
    return proj


def test_killed_train_job_resumes_from_its_checkpoint(project: Path) -> None:
    target = f"{MODEL_DIR}/model.ckpt"
    last = project / MODEL_DIR / "lightning/resume/last.ckpt"
    proc = subprocess.Popen(
        command(target, *configfiles()),
        cwd=project,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches the train job too
    )
    deadline = time.monotonic() + 300
    while not last.exists():
        assert proc.poll() is None, "the train job ended before its first checkpoint"
        assert time.monotonic() < deadline, "no epoch checkpoint within 300 s"
        time.sleep(0.05)
    time.sleep(0.5)  # let the checkpoint be written out
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (project / MODEL_DIR / "summary.json").exists(), "killed too late: it finished"

    # A killed Snakemake leaves its lock; then the rerun picks up the incomplete job.
    run(project, "--unlock", *configfiles())
    run(project, target, "--rerun-incomplete", *configfiles())

    summary = read_json(project / MODEL_DIR / "summary.json")
    done = summary["resumed_after_epoch"]
    assert done is not None and 1 <= done < EPOCHS, summary
    log = (project / "logs/synthetic/train_model/cnn.log").read_text()
    assert f"{done} epoch(s) done" in log
    epochs_logged = [int(m) for m in re.findall(rf"epoch (\d+)/{EPOCHS} ", log)]
    assert epochs_logged[0] == done + 1, log  # the rerun trained only the remaining epochs
    history = pd.read_csv(project / MODEL_DIR / "metrics.csv")
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))  # every epoch once
    assert history["val_f1"].notna().all() and history["train_loss"].notna().all()
    for name in ("model.ckpt", "config.yaml", "metrics.csv"):
        assert (project / MODEL_DIR / name).stat().st_size > 0
    assert not (project / MODEL_DIR / "lightning/resume/last.ckpt").exists()


def test_tune_target_writes_suggestion_and_plot(project: Path) -> None:
    out = project / "results/synthetic/models/lenet5/tune"
    run(project, str(out.relative_to(project) / "suggestion.json"), *configfiles())
    suggestion = read_json(out / "suggestion.json")
    assert suggestion["lr_key"] == "models.lenet5.train.scheduler.max_lr"
    assert suggestion["lr_steps"] == 20
    assert suggestion["batch_size_found"] >= suggestion["batch_size_configured"]
    if suggestion["lr_suggested"] is not None:
        assert (
            "--config models='{lenet5: {train: {scheduler: {max_lr: "
            in (suggestion["config_override"])
        )
    assert (out / "lr_finder.png").read_bytes()[:4] == b"\x89PNG"
