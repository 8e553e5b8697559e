"""A non-editable `pip install .` runs the smoke workflow: the package finds its schema (package
data) and its stages with no source tree beside it.

The package is installed into a temporary target (``--no-deps``: the test environment has the
dependencies; the build itself runs isolated, with the setuptools pyproject.toml asks for, which
the environment may lack), and the workflow is copied without src/, so Snakemake and every job
import the installed copy."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
TINY = """\
only: [lenet5]
data: {val_size: 100, synthetic: {n_train: 600, n_test: 200}}
train: {max_epochs: 1, swa: {enabled: false}}
"""


def test_installed_package_runs_the_smoke_workflow(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (target / "mnistbench/config/config.schema.yaml").is_file()
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("Snakefile", "workflow", "config", "envs"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, proj / name)
    (proj / "config/tiny.yaml").write_text(TINY)
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    where = subprocess.run(
        [sys.executable, "-c", "import mnistbench; print(mnistbench.__file__)"],
        cwd=proj, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(target)), where.stdout
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--configfile", "config/smoke.yaml"]
    proc = subprocess.run(
        [*cmd, "config/tiny.yaml"], cwd=proj, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    with open(proj / "results/synthetic/comparison.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == ["lenet5"] and rows[0]["status"] == "ok"
    # The jobs' code dependencies are the installed files.
    plan = subprocess.run(
        [*cmd, "config/tiny.yaml", "-n", "--forceall"],
        cwd=proj, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert f"{target}/mnistbench/train/recipe.py" in plan.stdout
