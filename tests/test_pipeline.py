"""One pipeline, two orchestrators: the Snakemake DAG and the DVC stages agree.

Both are driven by the stage table (src/mnistbench/pipeline/table.py). Here each is built by its own
tool in a copy of the project, for the default config, a seeds config and the sweep config, and
every stage is compared on the four aspects: command, dependencies (code and data), params
(the config keys it reads) and outputs. dvc.yaml is written by ``mnistbench dvc-yaml``; the
committed one must be what the generator writes for config/config.yaml.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_project

BIN = Path(sys.executable).parent
# Snakemake rule -> DVC stage name (a per-run stage is <name>@<run>); tune and export are
# on-request targets of Snakemake only.
DVC_NAMES = {
    "download_data": "download",
    "prepare_data": "prepare",
    "train_model": "train",
    "evaluate_model": "evaluate",
    "build_ensemble": "ensemble",
    "build_report": "report",
}
CONFIGS = {
    "default": [],
    "seeds": ["config/seeds.yaml"],
    "sweep": ["config/sweep.yaml"],
}


def run(cwd: Path, *cmd: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(cwd / "src"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


def snakemake_jobs(proj: Path, overlays: list[str]) -> dict[str, dict]:
    """Each job of the Snakemake DAG under its DVC stage name."""
    out = run(proj, sys.executable, str(ROOT / "tests/snakemake_jobs.py"), *overlays)
    jobs = {}
    for job in json.loads(out):
        if job["rule"] not in DVC_NAMES:
            continue
        item = job["wildcards"].get("model") or job["wildcards"].get("ensemble")
        name = DVC_NAMES[job["rule"]] + (f"@{item}" if item else "")
        inputs = [p for paths in job["input"].values() for p in paths]
        jobs[name] = {
            "command": normalised(job["shell"]),
            "code": sorted(p for p in inputs if p.startswith("src/")),
            "data": sorted(p for p in inputs if not p.startswith("src/")),
            "params": sorted(json.loads(job["params"]["config"])),
            "outs": sorted(job["output"]),
        }
    return jobs


def dvc_stages(proj: Path) -> dict[str, dict]:
    """Each stage of dvc.yaml as DVC itself resolves it."""
    from dvc.repo import Repo

    stages = {}
    with Repo(str(proj)) as repo:
        for stage in repo.index.stages:
            files = [str(d.def_path) for d in stage.deps if not hasattr(d, "params")]
            params = [d for d in stage.deps if hasattr(d, "params")]
            stages[stage.name] = {
                "command": normalised(stage.cmd),
                "code": sorted(p for p in files if p.startswith("src/")),
                "data": sorted(p for p in files if not p.startswith(("src/", "config/"))),
                "config_files": sorted(p for p in files if p.startswith("config/")),
                "params": sorted(k for d in params for k in d.params),
                "params_files": sorted(str(d.def_path) for d in params),
                "outs": sorted(str(o.def_path) for o in stage.outs),
            }
    return stages


def normalised(command: str) -> str:
    """The command without what only one orchestrator adds: DVC's PYTHONPATH (Snakemake exports
    it), Snakemake's thread count (DVC runs one stage at a time), the terminal's copy for the
    per-epoch lines (DVC shows the stage's own output) and log redirection."""
    command = command.removeprefix("PYTHONPATH=src ")
    command = re.sub(r" --threads \d+( --progress-fd 3 3>&2)?", "", command)
    return re.sub(r" > logs/\S+ 2>&1$", "", command)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proj = copy_project(tmp_path_factory.mktemp("pipeline"))
    (proj / "config/seeds.yaml").write_text("seeds: [1, 2]\nonly: [lenet5, cnn]\n")
    run(proj, "git", "init", "-q")  # DVC reads the project from a git work tree
    return proj


@pytest.mark.parametrize("name", list(CONFIGS))
def test_snakemake_and_dvc_run_the_same_stages(project: Path, name: str) -> None:
    overlays = CONFIGS[name]
    dvc_yaml = run(project, sys.executable, "-m", "mnistbench", "dvc-yaml", "--configfile",
                   "config/config.yaml", *overlays)  # fmt: skip
    (project / "dvc.yaml").write_text(dvc_yaml)
    from_snakemake, from_dvc = snakemake_jobs(project, overlays), dvc_stages(project)

    assert sorted(from_dvc) == sorted(from_snakemake)
    expected_runs = {
        "default": {"lenet5", "cnn", "resnet18", "alexnet_small", "simple_cnn", "allconv"},
        "seeds": {"lenet5-seed1", "lenet5-seed2", "cnn-seed1", "cnn-seed2"},
        "sweep": {"cnn-max_lr0.002", "cnn-max_lr0.005", "cnn-max_lr0.01"}
        | {"lenet5", "resnet18", "alexnet_small", "simple_cnn", "allconv"},
    }[name]
    assert {s.split("@")[1] for s in from_dvc if s.startswith("train@")} == expected_runs
    # with seeds, one ensemble per model (none without)
    expected_ensembles = {"lenet5-ensemble", "cnn-ensemble"} if name == "seeds" else set()
    assert {s.split("@")[1] for s in from_dvc if s.startswith("ensemble@")} == expected_ensembles
    for stage, job in from_snakemake.items():
        dvc = from_dvc[stage]
        for aspect in ("command", "code", "data", "params", "outs"):
            assert dvc[aspect] == job[aspect], f"{stage}: {aspect} differ"
        # Every stage is `mnistbench <stage>` with the config files; DVC's params are keys of
        # its params file, and an overlay is a dependency of every stage as a whole file.
        verb = stage.split("@")[0]
        assert job["command"].startswith(
            f"python -m mnistbench {verb} --configfile config/config.yaml"
        )
        assert dvc["params_files"] == ["config/config.yaml"] and dvc["config_files"] == overlays
    # The model's own architecture file, and only it, is code of its train stage.
    train = from_dvc[f"train@{sorted(expected_runs)[0]}"]
    arch_files = [p for p in train["code"] if re.search(r"/models/(?!__init__)\w+\.py$", p)]
    assert (
        len(arch_files) == 1
        and "src/mnistbench/evaluate/scores.py"
        in from_dvc["evaluate@" + sorted(expected_runs)[0]]["code"]
    )


def test_params_are_the_config_keys_of_each_stage(project: Path) -> None:
    """A sweep point's and a seed's params are its model's key as the config file writes it,
    so that `dvc exp run -S` on that key reruns exactly its stages."""
    (project / "dvc.yaml").write_text(
        run(
            project,
            sys.executable,
            "-m",
            "mnistbench",
            "dvc-yaml",
            "--configfile",
            "config/config.yaml",
            "config/sweep.yaml",
        )  # fmt: skip
    )
    stages = dvc_stages(project)
    assert stages["train@cnn-max_lr0.01"]["params"] == ["dataset", "models.cnn", "seeds", "train"]
    assert stages["evaluate@cnn-max_lr0.01"]["params"] == ["dataset", "evaluate"]
    assert "data.val_size" in stages["prepare"]["params"]
    assert "models" in stages["report"]["params"] and "report" in stages["report"]["params"]


def test_committed_dvc_yaml_is_the_generated_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from mnistbench.pipeline.dvc import dvc_yaml

    monkeypatch.chdir(ROOT)
    assert (ROOT / "dvc.yaml").read_text() == dvc_yaml(), (
        "dvc.yaml is stale: run `mnistbench dvc-yaml > dvc.yaml`"
    )


def test_code_dependencies_follow_the_imports() -> None:
    from mnistbench.pipeline.codedeps import closure, code_files
    from mnistbench.pipeline.table import STEP

    train = STEP["train_model"]
    files = code_files(train.modules, "cnn")
    assert any(f.endswith("models/cnn.py") for f in files)
    assert not any(f.endswith("models/lenet5.py") for f in files)
    assert any(f.endswith("config/config.schema.yaml") for f in files)
    # the candidates that choose the published checkpoint are scored by the classifier's own
    # predictions (train/classifier.py), not by the evaluate stage's code
    assert "mnistbench.train.classifier" in closure(train.modules)
    assert "mnistbench.evaluate.scores" not in closure(train.modules)
    assert "mnistbench.reporting" not in closure(train.modules)
