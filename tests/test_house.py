"""The package is laid out by role, and its imports follow the data's path: an import is a rerun
trigger here (``mnistbench.pipeline.codedeps`` makes a stage's transitive imports its Snakemake
inputs and DVC deps), so an import against the flow reruns stages for nothing.

``ROOMS`` is the table, written once (docs/development.md says it in words): each room of
``src/mnistbench/`` and the rooms it may import besides itself. Then the proof: an edit of a
figure function or of the stage table plans no train job, read from the stage table and from
Snakemake's own dry run.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnistbench.pipeline.codedeps import PACKAGE, closure, direct_imports, module_file
from tests.conftest import ROOT, copy_project

# The foundations: top-level modules that every room may use and that import no room.
BASE = {"mnistbench", "errors", "io", "signals", "metrics", "machine", "progress"}
# The doors: `mnistbench <command>` and what each stage command calls; they may import any room.
DOOR = {"cli", "__main__", "commands"}
# Each room and the rooms it may import besides itself, along the data's path:
# config -> pipeline -> data -> train -> evaluate -> report, and use after training.
ROOMS: dict[str, set[str]] = {
    "base": set(),
    "data": {"base"},  # file formats and the data sets by name: reads no config
    "config": {"base", "data"},  # checks data set names against data.registry
    "pipeline": {"base", "data", "config"},  # the stage table: no stage's code imports it
    "models": {"base", "data"},
    "train": {"base", "data", "config", "models"},
    "evaluate": {"base", "data", "config", "models", "train"},
    "reporting": {"base", "data", "config"},  # reads the files the stages publish
    "use": {"base", "data", "config", "models", "train"},
    "door": {"base", "data", "config", "pipeline", "models", "train", "evaluate", "reporting"}
    | {"use"},
}
# Rooms whose modules, and everything of the package they import, import no torch: the
# Snakefile parses the workflow with them (pyyaml and jsonschema only), and dvc.yaml is written
# without torch.
TORCH_FREE = {"base", "config", "pipeline"}
TORCH = {"torch", "torchvision", "lightning", "pytorch_lightning"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def room(module: str) -> str:
    """The room of one of the package's modules: its folder, or base or door at the top."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in BASE:
        return "base"
    if parts[1] in DOOR:
        return "door"
    if len(parts) > 2 or (PACKAGE / parts[1]).is_dir():
        return parts[1]
    raise AssertionError(f"{module} is in no room: put it in a folder, or add it to BASE or DOOR")


def outside_imports(module: str) -> set[str]:
    """The top-level names of what ``module`` imports from outside the package, anywhere in its
    source (inside functions too)."""
    path = module_file(module)
    assert path is not None
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found - {PACKAGE.name}


def test_every_module_is_in_a_room_of_the_table() -> None:
    rooms = {room(m) for m in MODULES}
    assert rooms == set(ROOMS), rooms ^ set(ROOMS)


@pytest.mark.parametrize("module", MODULES)
def test_imports_follow_the_flow(module: str) -> None:
    """No module imports a room it may not (``ROOMS``), inside functions included."""
    mine = room(module)
    wrong = sorted(
        f"{dep} ({room(dep)})"
        for dep in direct_imports(module)
        if room(dep) != mine and room(dep) not in ROOMS[mine]
    )
    assert not wrong, f"{module} ({mine}) may import {sorted(ROOMS[mine])}, not {wrong}"


@pytest.mark.parametrize("module", [m for m in MODULES if room(m) in TORCH_FREE])
def test_config_and_pipeline_import_no_torch(module: str) -> None:
    """Neither the module nor anything of the package it imports, transitively, imports torch
    or Lightning, even inside a function."""
    heavy = {
        f"{dep}: {sorted(outside_imports(dep) & TORCH)}"
        for dep in closure([module])
        if outside_imports(dep) & TORCH
    }
    assert not heavy, heavy


def test_the_wrong_way_imports_of_issue_24_stay_gone() -> None:
    """Each once reran stages for nothing: a confusion plot edit retrained every model
    (train/publish.py imported evaluation), a stage table edit too (train/resume.py imported
    pipeline), a schema description edit downloaded again (data/download.py imported config),
    and the report's provenance imported torch for the CPU's name."""
    train = closure(["mnistbench.train.recipe"])
    assert not {m for m in train if room(m) in ("evaluate", "reporting", "use", "pipeline")}
    assert not {m for m in closure(["mnistbench.data.download"]) if room(m) == "config"}
    provenance = "mnistbench.reporting.provenance"
    assert not outside_imports(provenance) & TORCH
    assert not {m for m in closure([provenance]) if room(m) == "train"}


# ------------------------------------------------------------- the proof: what an edit reruns


def default_stages(*overlays: str, **keys: object) -> list:
    """The stage table of config/config.yaml, the ``overlays`` and ``keys`` merged over it."""
    from mnistbench.config.load import load_config, validate_config
    from mnistbench.pipeline.table import stages

    files = ["config/config.yaml", *overlays]
    raw = {**load_config(*(ROOT / f for f in files)), **keys}
    return stages(validate_config(copy.deepcopy(raw)), raw, files)


def rerun_by(path: str, table: list) -> set[str]:
    """The rules of the stages whose code includes ``path`` (src/mnistbench/...): editing it
    makes their jobs outdated."""
    return {s.rule for s in table if path in s.code}


def test_an_edit_reruns_only_the_stages_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the code files as the orchestrators list them: src/mnistbench/...
    table = default_stages(seeds=[1, 2])  # with an ensemble per model
    assert {s.rule for s in table} >= {"train_model", "evaluate_model", "build_ensemble"}
    src = "src/mnistbench"
    assert rerun_by(f"{src}/reporting/figures.py", table) == {"build_report"}
    for module in ("table", "paths", "codedeps", "dvc", "preflight", "scheduling"):
        assert rerun_by(f"{src}/pipeline/{module}.py", table) == set(), module
    assert rerun_by(f"{src}/evaluate/scores.py", table) == {"evaluate_model"}
    assert rerun_by(f"{src}/data/download.py", table) == {"download_data"}
    # the control: an edit of the training recipe does retrain
    assert "train_model" in rerun_by(f"{src}/train/recipe.py", table)


def planned(proj: Path) -> set[str]:
    """The rules Snakemake's dry run of the smoke config would run in ``proj``."""
    env = {**os.environ, "PYTHONPATH": str(proj / "src")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "2"]
        + ["--configfile", "config/smoke.yaml"],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout, re.M)) - {"all"}


def finish(proj: Path) -> None:
    """Every output of the smoke run in place, each stage's newer than its inputs: Snakemake
    sees a finished run (it decides on existence and modification times; with no job recorded
    in .snakemake/, the params and code triggers have nothing to compare)."""
    from mnistbench.pipeline.paths import DIRECTORIES

    stamp = time.time() - 3600
    for path in (proj / "src").rglob("*"):  # the code first, as in a checkout run since
        os.utime(path, (stamp - 60, stamp - 60))
    for i, stage in enumerate(s for s in default_stages("config/smoke.yaml") if s.step.target):
        for key, rel in stage.outs.items():
            path = proj / rel
            if (stage.rule, key) in DIRECTORIES:
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            os.utime(path, (stamp + i, stamp + i))


def edit(path: Path) -> None:
    """A real edit: one comment more, written now."""
    path.write_text(path.read_text() + "\n# an edit\n")


@pytest.mark.slow
def test_snakemake_plans_no_train_job_after_a_figure_or_table_edit(tmp_path: Path) -> None:
    (tmp_path / "figure").mkdir()
    proj = copy_project(tmp_path / "figure")
    finish(proj)
    assert planned(proj) == set(), "the finished run has nothing to do"
    edit(proj / "src/mnistbench/reporting/figures.py")
    assert planned(proj) == {"build_report"}

    (tmp_path / "table").mkdir()
    proj = copy_project(tmp_path / "table")
    finish(proj)
    edit(proj / "src/mnistbench/pipeline/table.py")
    assert planned(proj) == set()
    # the control: an edit of the training recipe retrains every run, and what follows
    edit(proj / "src/mnistbench/train/recipe.py")
    assert {"train_model", "evaluate_model", "build_report"} <= planned(proj)
