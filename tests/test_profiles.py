"""Profiles and sweeps, planned by the real Snakemake in dry runs (nothing is executed).

The SLURM dry run runs with stand-ins for the SLURM commands first on PATH: each records its
call and fails, so the test shows what the plugin would contact without a cluster. It remains for
what the one-node cluster of tests/test_slurm.py cannot show: the template profile's accounts,
partitions and GPU requests in the plan.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mnistbench.cli import load
from mnistbench.config.load import resolve_model
from tests.conftest import copy_project

BIN = Path(sys.executable).parent
MODELS = ["lenet5", "cnn", "resnet18", "alexnet_small", "simple_cnn", "allconv"]
# A train job's command: its model and threads, then the terminal's copy for the per-epoch lines.
TRAIN_THREADS = r"mnistbench train [^\n]*--model (\S+) --threads (\d+) --progress-fd 3 3>&2 >"
SLURM_COMMANDS = ("sbatch", "srun", "squeue", "sacct", "sinfo", "scontrol", "sacctmgr", "scancel")


def dry_run(cwd: Path, *args: str, path_first: Path | None = None) -> str:
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    if path_first:
        path = f"{path_first}{os.pathsep}{path}"
    env = {**os.environ, "PATH": path}
    cmd = [str(BIN / "snakemake"), "-n", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def planned(output: str) -> list[dict[str, str]]:
    """Each planned job: rule, wildcards and resources as printed by the dry run."""
    jobs = []
    for block in re.split(r"\n(?=\S*\s*(?:rule|checkpoint) \w+:)", output):
        m = re.search(r"(?:rule|checkpoint) (\w+):", block)
        if not m:
            continue
        job = {"rule": m.group(1)}
        for key in ("wildcards", "resources"):
            found = re.search(rf"^\s+{key}: (.*)$", block, re.M)
            job[key] = found.group(1) if found else ""
        jobs.append(job)
    return jobs


def fields(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(", ") if "=" in item)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("profiles"))


@pytest.fixture(scope="module")
def slurm_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tools = tmp_path_factory.mktemp("slurm_bin")
    for name in SLURM_COMMANDS:
        script = tools / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tools}/calls"\nexit 1\n')
        script.chmod(0o755)
    return tools


def test_slurm_profile_plans_every_job_with_its_resources(project, slurm_tools) -> None:
    out = dry_run(
        project,
        "--executor",
        "slurm",
        "--workflow-profile",
        "workflow/profiles/slurm",
        path_first=slurm_tools,
    )
    jobs = [j for j in planned(out) if j["rule"] != "all"]
    rules = sorted(j["rule"] for j in jobs)
    assert rules == sorted(
        ["download_data", "prepare_data", "build_report"]
        + ["train_model", "evaluate_model"] * len(MODELS)
    )
    for job in jobs:
        res = fields(job["resources"])
        assert res["slurm_account"] == "YOUR_ACCOUNT", job
        assert int(res["runtime"]) > 0 and int(res["mem_mb"]) >= 1000, job
        assert int(res["cpus_per_task"]) >= 1, job
    trains = [fields(j["resources"]) for j in jobs if j["rule"] == "train_model"]
    assert sorted(fields(j["wildcards"])["model"] for j in jobs if j["rule"] == "train_model") == (
        sorted(MODELS)
    )
    for res in trains:
        assert res["gpu"] == "1" and res["slurm_partition"] == "YOUR_GPU_PARTITION"
        assert res["cpus_per_task"] == "8" and res["runtime"] == "120"
    # No job is submitted and no job status is asked for. (At start-up the plugin looks up
    # MinJobAge with `scontrol show config` when `sinfo` is on PATH, to choose its status command.)
    calls_file = slurm_tools / "calls"
    calls = calls_file.read_text().splitlines() if calls_file.exists() else []
    assert all(c == "scontrol show config" for c in calls), calls


def test_local_profile_sets_memory_and_changes_nothing_planned(project) -> None:
    plain = dry_run(project, "--cores", "4", "--printshellcmds")
    out = dry_run(
        project,
        "--cores",
        "4",
        "--printshellcmds",
        "--workflow-profile",
        "workflow/profiles/default",
    )
    assert "workflow specific profile workflow/profiles/default" in out
    # Snakemake does not pick it up by itself (the Snakefile is at the root, not in workflow/).
    assert "workflow specific profile" not in plain
    for text, mem in ((plain, None), (out, "3000")):
        trains = [j for j in planned(text) if j["rule"] == "train_model"]
        assert len(trains) == len(MODELS)
        for job in trains:
            # CPU-only machine (conftest hides any GPU): no GPU claimed.
            assert fields(job["resources"])["gpu"] == "0"
            assert fields(job["resources"]).get("mem_mb") == mem
        # 4 cores shared among 6 train jobs by their cost (scheduling.thread_shares): the two
        # costliest two threads each, the others one, side by side
        assert dict(re.findall(TRAIN_THREADS, text)) == {
            **{m: "1" for m in MODELS},
            "allconv": "2",
            "resnet18": "2",
        }


def test_train_jobs_share_the_cores_by_their_cost(project) -> None:
    """The threads of each train job in a dry run (scheduling.thread_shares): on 2 cores one
    each (two side by side); on more, ceil(cores x cost / total cost), so the costliest jobs
    (allconv: 15 epochs x 15.2M MACs, resnet18: 5 x 33.0M) get several and never end the run
    alone on one thread while cores idle (issue 22)."""
    expected = {
        "2": {m: "1" for m in MODELS},
        "8": {**{m: "1" for m in MODELS}, "allconv": "4", "resnet18": "3", "cnn": "2"},
        "16": {
            **{m: "1" for m in MODELS},
            **{"allconv": "7", "resnet18": "5", "cnn": "3", "alexnet_small": "2"},
        },
    }
    for cores, threads in expected.items():
        text = dry_run(project, "--cores", cores, "--printshellcmds")
        assert dict(re.findall(TRAIN_THREADS, text)) == threads, cores


def test_sweep_config_schedules_one_train_job_per_value(project) -> None:
    out = dry_run(
        project, "--cores", "2", "--configfile", "config/smoke.yaml", "config/sweep.yaml", "-p"
    )
    trains = sorted(
        fields(j["wildcards"])["model"] for j in planned(out) if j["rule"] == "train_model"
    )
    expected = ["cnn-max_lr0.002", "cnn-max_lr0.005", "cnn-max_lr0.01"]
    assert trains == sorted(expected + [m for m in MODELS if m != "cnn"])
    for name in expected:
        assert f"results/synthetic/models/{name}/summary.json" in out  # its own directory
    # each run gets its own learning rate: the config its command names resolves to it
    commands = re.findall(r"mnistbench train --configfile ([^\n]*?) --model (\S+) --threads", out)
    assert len(commands) == len(trains)
    for files, run in commands:
        settings = resolve_model(load([str(project / f) for f in files.split()]), run)
        if run.startswith("cnn-max_lr"):
            assert settings["scheduler"]["max_lr"] == float(run.removeprefix("cnn-max_lr"))
