"""The workflow on a real SLURM cluster: the one-node cluster of .ci/slurm/up.sh, through
snakemake-executor-plugin-slurm and workflow/profiles/slurm-local, in a temporary copy of the
project (the cluster's shared file system is this machine's disk).

One story, in order (the tests share the project): the smoke workflow, cut down to two models,
one epoch and a few hundred images, runs as one sbatch job per rule instance and gives the same
comparison as a local run of the same config; a rerun submits nothing; a train job whose loss
explodes and one over its memory limit fail inside SLURM and Snakemake names their logs; a train
job cancelled with scancel resumes from its last epoch when rerun.

Without a cluster (`sinfo` shows no idle node) these tests skip, and fail under CI=true.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_project
from tests.requires import missing

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
BIN = Path(sys.executable).parent
PROFILE = "workflow/profiles/slurm-local"
RESULTS = "results/synthetic"
# One cluster run, then faults in the same project, each SLURM run taking minutes: the tests
# keep their order under `pytest --order random` (tests/conftest.py).
IN_ORDER = "the faults follow the first run in the same project"
MODELS = ("lenet5", "simple_cnn")
# The smoke config (config/smoke.yaml) cut down: two models, one epoch, 600 training images.
SMALL = {
    "only": list(MODELS),
    "data": {"val_size": 100, "synthetic": {"n_train": 600, "n_test": 200}},
    "train": {
        "max_epochs": 1,
        "batch_size": 64,
        "swa": {"enabled": False},
        "precision": {"cpu": "32-true"},
        "require_learning": False,  # one epoch of ten steps learns little
    },
    "models": {"lenet5": {"train": {"max_epochs": 1}}},
}
CONFIGS = ("--configfile", "config/smoke.yaml", "small.yaml")
# What workflow/profiles/slurm-local asks for each rule: CPUs, memory, time limit (sacct's words).
ASKED = {
    "download_data": ("1", "1000M", "00:10:00"),
    "prepare_data": ("1", "1000M", "00:10:00"),
    "train_model": ("1", "3000M", "00:20:00"),
    "evaluate_model": ("1", "2000M", "00:10:00"),
    "build_report": ("1", "2000M", "00:10:00"),
}
# Comparison columns measured while the jobs ran (time, memory): they differ between any two
# runs. Every other column is computed from the weights and the predictions.
MEASURED = {"latency_ms_b1", "latency_ms_b256", "train_seconds", "time_to_ref_s", "peak_mem_mb"}
# Snakemake's line for each sbatch job:
#   "... SLURM jobid 12 (log: .../rule_<rule>/<wildcards>/12.log)"
SUBMITTED = re.compile(r"SLURM jobid (\d+) \(log: (\S+/rule_(\w+)/([^/]+)/\d+\.log)\)")
EXPLODE = {
    "optimizer": {"name": "sgd", "lr": 1.0e30, "momentum": 0.0},
    "scheduler": {"name": "none"},
}


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def slurm_cmd(*args: str) -> list[str]:
    return [str(BIN / "snakemake"), "--executor", "slurm", "--workflow-profile", PROFILE, *args]


def snakemake(cwd: Path, *args: str, configs: tuple[str, ...] = (), check: bool = True) -> str:
    """A run through the cluster; ``args`` (targets, options) come before the config files."""
    proc = subprocess.run(
        slurm_cmd(*args, *CONFIGS, *configs),
        cwd=cwd, env=env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake --executor slurm {' '.join(args)} failed:\n{out[-8000:]}")
    return out


def sacct(*job_ids: str) -> dict[str, dict[str, str]]:
    """Each job's allocation line (no steps): its name (the workflow run's id), comment (the
    plugin's `rule_<rule>_wildcards_<wildcards>`), state, CPUs, memory and time limit."""
    fmt = "JobID,JobName,Comment,State,AllocCPUS,ReqMem,Timelimit,ExitCode"
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", fmt],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    keys = fmt.split(",")
    return {
        row[0]: dict(zip(keys, row, strict=True))
        for row in csv.reader(out.splitlines(), delimiter="|")
    }


def submitted(output: str) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (rule, wildcards) of every job a run submitted."""
    return {m.group(1): (m.group(3), m.group(4)) for m in SUBMITTED.finditer(output)}


def table(proj: Path) -> dict[str, dict[str, str]]:
    with open(proj / RESULTS / "comparison.csv") as fh:
        return {row["model"]: row for row in csv.DictReader(fh)}


def write_config(proj: Path, name: str, config: dict) -> None:
    (proj / name).write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def cluster() -> None:
    if not shutil.which("sinfo") or not shutil.which("sacct"):
        missing("no SLURM commands on PATH: bring the test cluster up with bash .ci/slurm/up.sh")
    state = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True)
    if state.returncode != 0 or not {"idle", "mix", "alloc"} & set(state.stdout.split()):
        missing(
            f"no SLURM node up (sinfo: {(state.stdout + state.stderr).strip() or 'nothing'}): "
            "bring the test cluster up with bash .ci/slurm/up.sh"
        )


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, cluster) -> subprocess.Popen[bytes]:
    """The same config run locally, with the threads the profile gives each job (one), started
    beside the cluster run (its jobs mostly wait for SLURM's status checks)."""
    proj = copy_project(tmp_path_factory.mktemp("local"))
    write_config(proj, "small.yaml", SMALL)
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--set-threads", "train_model=1"]
    cmd += ["evaluate_model=1", *CONFIGS]
    # its output to a file: a pipe nobody reads while it runs could fill and block it
    with open(proj / "snakemake.out", "w") as out:
        proc = subprocess.Popen(cmd, cwd=proj, env=env(), stdout=out, stderr=subprocess.STDOUT)
    proc.project = proj  # type: ignore[attr-defined]
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, cluster) -> Path:
    proj = copy_project(tmp_path_factory.mktemp("slurm"))
    write_config(proj, "small.yaml", SMALL)
    return proj


@pytest.fixture(scope="module")
def first_run(project: Path, local_run) -> str:
    return snakemake(project)


@pytest.fixture(scope="module")
def local_project(local_run: subprocess.Popen[bytes]) -> Path:
    proj: Path = local_run.project  # type: ignore[attr-defined]
    local_run.wait(timeout=600)
    assert local_run.returncode == 0, (proj / "snakemake.out").read_text()[-8000:]
    return proj


def test_every_rule_instance_ran_as_one_completed_sbatch_job(first_run: str) -> None:
    jobs = submitted(first_run)
    expected = [
        ("download_data", "synthetic"),
        ("prepare_data", "synthetic"),
        ("build_report", "synthetic"),
    ]
    expected += [
        (rule, f"synthetic_{m}") for rule in ("train_model", "evaluate_model") for m in MODELS
    ]
    assert sorted(jobs.values()) == sorted(expected), first_run[-4000:]
    accounted = sacct(*jobs)
    assert set(accounted) == set(jobs)
    # one workflow run: every job carries its run's id as its name, and it submitted no others
    names = {row["JobName"] for row in accounted.values()}
    assert len(names) == 1
    for job_id, (rule, wildcards) in jobs.items():
        row = accounted[job_id]
        assert row["Comment"] == f"rule_{rule}_wildcards_{wildcards}"
        assert (row["State"], row["ExitCode"]) == ("COMPLETED", "0:0"), (rule, wildcards, row)
        assert (row["AllocCPUS"], row["ReqMem"], row["Timelimit"]) == ASKED[rule], (rule, row)


def test_comparison_equals_the_local_runs(
    project: Path, first_run: str, local_project: Path
) -> None:
    """Same models, same figures but the measured ones, same prediction for every test image:
    both ran each train job with one thread on the same CPU."""
    cluster_rows, local_rows = table(project), table(local_project)
    assert set(cluster_rows) == set(local_rows) == set(MODELS)
    for model in MODELS:
        a, b = cluster_rows[model], local_rows[model]
        assert {k: v for k, v in a.items() if k not in MEASURED} == {
            k: v for k, v in b.items() if k not in MEASURED
        }, model
        assert a["status"] == "ok" and float(a["test_f1"]) > 0
        predictions = f"{RESULTS}/models/{model}/test/predictions.csv"
        assert (project / predictions).read_text() == (local_project / predictions).read_text()
    # the train job trained with the one thread the profile gave it
    run_config = yaml.safe_load((project / RESULTS / "models/lenet5/config.yaml").read_text())
    assert run_config["environment"]["torch_threads"] == 1


def test_a_rerun_after_success_submits_nothing(project: Path, first_run: str) -> None:
    out = snakemake(project)
    assert "Nothing to be done" in out
    assert not submitted(out)


def test_a_train_job_over_its_memory_is_killed_and_reported(project: Path, first_run: str) -> None:
    """simple_cnn's job gets 300 MB, less than Python with torch needs: SLURM kills its step
    (JobAcctGatherParams=OverMemoryKill) and Snakemake names SLURM's log, which says why."""
    target = f"{RESULTS}/models/simple_cnn/model.ckpt"
    out = snakemake(
        project, target, "--forcerun", target, "--set-resources", "train_model:mem_mb=300",
        check=False,
    )  # fmt: skip
    jobs = {v: k for k, v in submitted(out).items()}
    assert list(jobs) == [("train_model", "synthetic_simple_cnn")], out[-4000:]
    job_id = jobs[("train_model", "synthetic_simple_cnn")]
    row = sacct(job_id)[job_id]
    assert (row["State"], row["ReqMem"]) == ("FAILED", "300M"), row
    assert f"SLURM-job '{job_id}' failed, SLURM status is: 'FAILED'" in out, out[-6000:]
    slurm_log = re.search(
        rf"log: logs/synthetic/train_model/simple_cnn.log, (\S+/{job_id}\.log)", out
    )
    assert slurm_log, out[-6000:]
    assert f"StepId={job_id}.0 exceeded memory limit" in Path(slurm_log.group(1)).read_text()


@pytest.fixture(scope="module")
def cancelled_run(project: Path, first_run: str) -> str:
    """One run with --keep-going: lenet5's loss explodes (its job exits with a `mnistbench
    error:`), and simple_cnn, now 6 epochs without early stopping, is cancelled with scancel
    once its first end-of-epoch checkpoint is written. What the run printed."""
    explode = {"train": EXPLODE}
    write_config(project, "faults.yaml", {"models": {"lenet5": explode}})
    longer = {"max_epochs": 6, "early_stopping": {"enabled": False}}
    write_config(project, "longer.yaml", {"models": {"simple_cnn": {"train": longer}}})
    printed = project / "cancelled.out"
    started = time.time()
    with open(printed, "w") as fh:
        cmd = slurm_cmd("--keep-going", *CONFIGS, "longer.yaml", "faults.yaml")
        run = subprocess.Popen(
            cmd, cwd=project, env=env(), stdout=fh, stderr=fh, start_new_session=True
        )
    last = project / RESULTS / "models/simple_cnn/lightning/resume/last.ckpt"

    def written() -> bool:  # by this run (not left by an earlier one)
        return last.exists() and last.stat().st_mtime >= started

    try:
        deadline = time.monotonic() + 300
        while not written() and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
        assert written(), "the train job wrote no end-of-epoch checkpoint"
        # the plugin's comment on each job names its rule and wildcards
        queue = subprocess.run(
            ["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True, check=True
        ).stdout.split()
        train_job = next(line.split("|")[0] for line in queue if line.endswith("simple_cnn"))
        subprocess.run(["scancel", train_job], check=True)
        run.wait(timeout=300)
    finally:
        if run.poll() is None:  # Snakemake did not notice: no process left behind
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    (project / "faults.yaml").unlink()
    assert run.returncode != 0
    return printed.read_text()


def test_a_failing_train_job_is_reported_with_its_error(cancelled_run: str) -> None:
    """Snakemake shows the job's `mnistbench error:` after its log's path, beside SLURM's log."""
    out = cancelled_run
    jobs = {v: k for k, v in submitted(out).items()}
    job_id = jobs[("train_model", "synthetic_lenet5")]
    assert sacct(job_id)[job_id]["State"] == "FAILED"
    assert f"SLURM-job '{job_id}' failed, SLURM status is: 'FAILED'" in out, out[-6000:]
    assert f"rule_train_model/synthetic_lenet5/{job_id}.log" in out
    where = "train_model (logs/synthetic/train_model/lenet5.log): mnistbench error: "
    shown = [ln for ln in out.splitlines() if ln.startswith(where)]
    assert len(shown) == 1 and "lower the learning rate" in shown[0], out[-6000:]


def test_a_cancelled_train_job_is_reported(project: Path, cancelled_run: str) -> None:
    out = cancelled_run
    jobs = {v: k for k, v in submitted(out).items()}
    job_id = jobs[("train_model", "synthetic_simple_cnn")]
    assert f"SLURM-job '{job_id}' failed, SLURM status is: 'CANCELLED'" in out, out[-6000:]
    assert sacct(job_id)[job_id]["State"].startswith("CANCELLED")
    assert not (project / RESULTS / "models/simple_cnn/summary.json").exists()


def test_cancelled_train_job_resumes_from_its_last_epoch(project: Path, cancelled_run: str) -> None:
    """The rerun continues simple_cnn from its checkpoint, and then nothing is left to do. (The
    job keeps its checkpoint although Snakemake, in the job, removes its outputs while it is
    still stopping: src/mnistbench/signals.py, stop_requested.)"""
    rerun = snakemake(project, configs=("longer.yaml",))
    trains = sorted(w for rule, w in submitted(rerun).values() if rule == "train_model")
    assert trains == ["synthetic_lenet5", "synthetic_simple_cnn"]  # lenet5 had failed
    rows = table(project)
    assert rows["simple_cnn"]["status"] == "ok"
    assert not submitted(snakemake(project, configs=("longer.yaml",)))
    log = (project / "logs/synthetic/train_model/simple_cnn.log").read_text()
    resumed = re.search(r"resuming from \S+last\.ckpt: (\d+) epoch\(s\) done", log)
    assert resumed and 1 <= int(resumed.group(1)) < 6, log[-3000:]
    with open(project / RESULTS / "models/simple_cnn/metrics.csv") as fh:
        epochs = [int(row["epoch"]) for row in csv.DictReader(fh) if row["val_f1"]]
    assert epochs == list(range(1, 7))  # each epoch once


def test_two_processes_for_one_model_as_one_job_of_two_tasks(project: Path, cancelled_run) -> None:
    """train.devices: 2 on the CPU (gloo): the profile's `mpi: srun` and `tasks_per_node: 2`
    make one sbatch job whose srun starts both processes; Lightning takes their ranks from
    SLURM (it starts none itself), syncs the validation metrics, and rank 0 alone writes."""
    ddp = {"train": {"devices": 2, "strategy": "ddp", "accelerator": "cpu"}}
    write_config(project, "ddp.yaml", ddp)
    target = f"{RESULTS}/models/simple_cnn/model.ckpt"
    resources = ("mpi=srun", "tasks_per_node=2", "mem_mb=4000", "runtime=20")
    out = snakemake(
        project,
        target,
        "--set-resources",
        *(f"train_model:{r}" for r in resources),
        configs=("ddp.yaml",),
    )
    (job_id,) = submitted(out)
    steps = subprocess.run(
        ["sacct", "-n", "-P", "-j", job_id, "-o", "JobID,State,NTasks,AllocCPUS"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert f"{job_id}|COMPLETED||2" in steps  # the job: both CPUs
    assert f"{job_id}.0|COMPLETED|2|2" in steps  # srun's step: two tasks
    log = (project / "logs/synthetic/train_model/simple_cnn.log").read_text()
    assert "MEMBER: 1/2" in log and "MEMBER: 2/2" in log
    assert log.count("simple_cnn: selected") == 1  # only rank 0 reports and publishes

    # The logged validation F1 is that of the whole split: recomputed in one process.
    from mnistbench.data.prepare import load_split
    from mnistbench.train.classifier import Classifier
    from mnistbench.train.publish import val_f1_of

    model_dir = project / RESULTS / "models/simple_cnn"
    images, labels = load_split(project / "data/synthetic/prepared/val.pt")
    f1 = val_f1_of(Classifier.from_checkpoint(model_dir / "model.ckpt"), images, labels)
    with open(model_dir / "metrics.csv") as fh:
        (row,) = list(csv.DictReader(fh))  # one epoch
    assert float(row["val_f1"]) == pytest.approx(f1, abs=1e-5)
