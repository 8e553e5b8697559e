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
import psutil
import pytest

from mnistbench.io import read_json
from tests.conftest import copy_project

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
EPOCHS = 4
STOPPED_EPOCHS = 200  # minutes of training if SIGTERM did not stop it
MODEL_DIR = "results/synthetic/models/cnn"
EXTRA = f"""
train:
  early_stopping: {{enabled: false}}
models:
  cnn:
    train: {{max_epochs: {EPOCHS}, limit_train_batches: 0.5}}
  stopped:
    arch: lenet5
    train: {{max_epochs: {STOPPED_EPOCHS}, limit_train_batches: 0.1, swa: {{enabled: false}}}}
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


def start_until_checkpoint(proj: Path, target: str, last: Path) -> subprocess.Popen[bytes]:
    """Snakemake making ``target`` in the background, once its train job has written ``last``."""
    proc = subprocess.Popen(
        command(target, *configfiles()),
        cwd=proj,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: a kill of it reaches the train job too
    )
    deadline = time.monotonic() + 300
    while not last.exists():
        assert proc.poll() is None, "the train job ended before its first checkpoint"
        assert time.monotonic() < deadline, "no epoch checkpoint within 300 s"
        time.sleep(0.05)
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
    proc = start_until_checkpoint(project, target, last)
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


def test_sigterm_to_snakemake_stops_the_train_job_which_then_resumes(project: Path) -> None:
    """SIGTERM to the Snakemake process alone, as a scheduler or `kill` sends it: the train job
    stops within an epoch (Snakemake itself would wait for it to finish), keeps its epoch
    checkpoint and publishes nothing; the next run continues from that checkpoint. (Counted in
    epochs, not seconds, so that a busy machine cannot fail it.)"""
    model_dir = project / "results/synthetic/models/stopped"
    target = str((model_dir / "model.ckpt").relative_to(project))
    last = model_dir / "lightning/resume/last.ckpt"
    proc = start_until_checkpoint(project, target, last)
    jobs = [
        p
        for p in psutil.Process(proc.pid).children(recursive=True)
        if "mnistbench train" in " ".join(p.cmdline())
    ]
    assert jobs
    log = project / "logs/synthetic/train_model/stopped.log"
    epochs = re.compile(rf"epoch (\d+)/{STOPPED_EPOCHS} ")
    proc.send_signal(signal.SIGTERM)
    at_signal = len(epochs.findall(log.read_text()))
    _, alive = psutil.wait_procs(jobs, timeout=300)
    assert not alive, "the train job went on after SIGTERM"
    assert proc.wait(timeout=300) != 0
    text = log.read_text()
    assert len(epochs.findall(text)) <= at_signal + 1, text  # at most the epoch under way
    assert "mnistbench: stopped by SIGTERM" in text
    assert not (model_dir / "summary.json").exists() and last.exists()

    run(project, target, *configfiles())  # its outputs are missing: a plain run redoes it
    summary = read_json(model_dir / "summary.json")
    assert summary["resumed_after_epoch"] is not None and summary["resumed_after_epoch"] >= 1
    history = pd.read_csv(model_dir / "metrics.csv")
    assert history["epoch"].tolist() == list(range(1, STOPPED_EPOCHS + 1))


def test_tune_target_writes_suggestion_and_plot(project: Path) -> None:
    out = project / "results/synthetic/models/lenet5/tune"
    run(project, str(out.relative_to(project) / "suggestion.json"), *configfiles())
    suggestion = read_json(out / "suggestion.json")
    assert suggestion["lr_key"] == "models.lenet5.train.scheduler.max_lr"
    assert suggestion["lr_steps"] == 20
    # On the CPU nothing runs out of memory: the one trial (tune.batch_trials) is the cap.
    assert suggestion["batch_size_found"] == suggestion["batch_size_configured"]
    assert suggestion["hit_trial_cap"] is True
    lr = suggestion["lr_suggested"]  # 20 steps are enough for a suggestion, inside the range
    assert lr is not None and suggestion["lr_range"][0] <= lr <= suggestion["lr_range"][1]
    assert suggestion["config_override"] == (
        f"--config models='{{lenet5: {{train: {{scheduler: {{max_lr: {lr:.3g}}}}}}}}}'"
    )
    assert (out / "lr_finder.png").read_bytes()[:4] == b"\x89PNG"
