"""DVC: the real `dvc` in a temporary git repository holding a copy of the project.

The drift test resolves dvc.yaml for the default config and compares its outputs with those of
the Snakemake workflow. The end-to-end tests (marked slow) run `dvc repro` once on the smoke
data with two small models and one epoch, then check what a second run, a parameter change,
`dvc metrics show` and a push/pull round trip do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnistbench.config import load_config
from mnistbench.dvc_params import overrides
from mnistbench.errors import ConfigError
from tests.conftest import copy_project

BIN = Path(sys.executable).parent
MODELS = ["lenet5", "simple_cnn"]
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    "DVC_NO_ANALYTICS": "1",
    "DVC_NO_UPDATER": "1",
    "GIT_AUTHOR_NAME": "mnistbench tests",
    "GIT_AUTHOR_EMAIL": "tests@mnistbench.invalid",
    "GIT_COMMITTER_NAME": "mnistbench tests",
    "GIT_COMMITTER_EMAIL": "tests@mnistbench.invalid",
}


def sh(cwd: Path, *cmd: str, timeout: int = 600) -> str:
    """Run a command in the copy; stdout and stderr together, which is what a user sees."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-8000:]}")
    return out


def dvc(cwd: Path, *args: str) -> str:
    return sh(cwd, str(BIN / "dvc"), *args)


def git_repo(proj: Path) -> Path:
    sh(proj, "git", "init", "-q")
    sh(proj, "git", "add", "-A")
    sh(proj, "git", "commit", "-q", "-m", "mnistbench copy")
    return proj


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


# --- the two orchestrators do not drift ----------------------------------------------------------


def dvc_outputs(proj: Path) -> set[str]:
    """Every output of every stage of dvc.yaml, resolved by DVC itself."""
    from dvc.repo import Repo

    with Repo(str(proj)) as repo:
        return {str(out.def_path) for stage in repo.index.stages for out in stage.outs}


def snakemake_outputs(proj: Path) -> set[str]:
    """Every output file of every job Snakemake plans (`--summary`). Logs (logs/) and benchmark
    files (results/<dataset>/benchmarks/) are Snakemake's own bookkeeping: --summary does not list
    them as outputs, and DVC neither writes nor declares them."""
    out = sh(proj, str(BIN / "snakemake"), "--summary", "--cores", "1")
    lines = [ln for ln in out.splitlines() if "\t" in ln]
    assert lines and lines[0].startswith("output_file"), out[-3000:]
    return {ln.split("\t")[0] for ln in lines[1:]}


def test_dvc_and_snakemake_declare_the_same_outputs(tmp_path: Path) -> None:
    proj = git_repo(copy_project(tmp_path))
    from_dvc, from_snakemake = dvc_outputs(proj), snakemake_outputs(proj)
    assert from_dvc == from_snakemake, (
        f"only in dvc.yaml: {sorted(from_dvc - from_snakemake)}\n"
        f"only in the Snakemake workflow: {sorted(from_snakemake - from_dvc)}"
    )
    # The comparison covers the whole pipeline, every model included.
    models = load_config(proj / "config/config.yaml")["models"]
    assert {f"results/mnist/models/{m}/test/metrics.json" for m in models} <= from_dvc
    assert "data/mnist/raw/manifest.json" in from_dvc


def test_smoke_overrides_reproduce_the_smoke_config(project_root: Path) -> None:
    """`dvc exp run $(python -m mnistbench.dvc_params config/smoke.yaml)` sets every key of the
    overlay: applying the printed -S values gives the config Snakemake's --configfile gives."""
    args = overrides(project_root / "config/smoke.yaml")
    assert args[0::2] == ["-S"] * (len(args) // 2)
    config = load_config(project_root / "config/config.yaml")
    for arg in args[1::2]:
        file, _, assignment = arg.partition(":++")
        assert file == "config/config.yaml"
        key, _, value = assignment.partition("=")
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    expected = load_config(project_root / "config/config.yaml", project_root / "config/smoke.yaml")
    assert config == expected


def test_smoke_overrides_refuse_a_value_the_shell_would_split(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("data: {local_dir: /my data}\n")
    with pytest.raises(ConfigError, match=r"data\.local_dir.*edit config/config\.yaml"):
        overrides(overlay)


# --- end to end, with the real dvc ---------------------------------------------------------------


def output_digests(proj: Path) -> dict[str, str]:
    """sha256 of every declared output (Lightning's work files under lightning/ are not outputs)."""
    return {
        path: hashlib.sha256((proj / path).read_bytes()).hexdigest()
        for path in sorted(dvc_outputs(proj))
    }


@pytest.fixture(scope="module")
def repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The copy after one `dvc repro`: smoke data, two small models, one epoch, no SWA."""
    proj = copy_project(tmp_path_factory.mktemp("dvc"))
    cfg_path = proj / "config/config.yaml"
    config = load_config(cfg_path, proj / "config/smoke.yaml")
    config["models"] = {m: config["models"][m] for m in MODELS}
    config["train"]["max_epochs"] = 1
    config["train"]["swa"]["enabled"] = False
    config["data"]["synthetic"].update(n_train=1500, n_test=500)
    config["data"]["val_size"] = 300
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    git_repo(proj)
    remote = tmp_path_factory.mktemp("dvc-remote")
    dvc(proj, "remote", "modify", "--local", "local", "url", str(remote))
    out = dvc(proj, "repro")
    assert ran_stages(out) == {
        "download",
        "prepare",
        *(f"{step}@{m}" for step in ("train", "evaluate") for m in MODELS),
        "report",
    }, out[-4000:]
    return proj


@pytest.mark.slow
def test_repro_builds_the_comparison(repro: Path) -> None:
    table = (repro / "results/synthetic/comparison.csv").read_text().splitlines()
    assert table[0].startswith("model,") and {ln.split(",")[0] for ln in table[1:]} == set(MODELS)
    summary = json.loads((repro / "results/synthetic/summary.json").read_text())
    assert summary["n_models"] == len(MODELS) and summary["best_model"] in MODELS
    # DVC's outputs are git-ignored by the project's .gitignore; DVC adds no .gitignore of its own.
    assert sh(repro, "git", "status", "--porcelain", "--untracked-files=all").split() == [
        "??",
        "dvc.lock",
    ]


@pytest.mark.slow
def test_second_repro_runs_nothing(repro: Path) -> None:
    out = dvc(repro, "repro")
    assert not ran_stages(out), out
    skipped = set(re.findall(r"Stage '([^']+)' didn't change, skipping", out))
    assert len(skipped) == 3 + 2 * len(MODELS), out
    assert "Data and pipelines are up to date." in dvc(repro, "status")


@pytest.mark.slow
def test_metrics_show_lists_test_f1_of_every_model(repro: Path) -> None:
    shown = json.loads(dvc(repro, "metrics", "show", "--json"))
    (workspace,) = shown.values()  # the workspace only (its key is "" in DVC 3.67)
    files = workspace["data"]
    for m in MODELS:
        metrics = files[f"results/synthetic/models/{m}/test/metrics.json"]["data"]
        assert 0.0 <= metrics["test_f1"] <= 1.0
    best = files["results/synthetic/summary.json"]["data"]
    assert best["best_test_f1"] == pytest.approx(
        max(
            files[f"results/synthetic/models/{m}/test/metrics.json"]["data"]["test_f1"]
            for m in MODELS
        ),
        abs=1e-5,
    )


@pytest.mark.slow
def test_plots_show_renders_every_plot(repro: Path) -> None:
    plots = json.loads(dvc(repro, "plots", "show", "--json"))
    assert not plots.get("errors"), plots.get("errors")
    ids = set(plots["data"])
    for m in MODELS:
        assert f"results/synthetic/models/{m}/metrics.csv" in ids
        assert f"results/synthetic/models/{m}/test/predictions.csv" in ids
    assert "results/synthetic/comparison.csv" in ids
    curves = json.dumps(plots["data"]["results/synthetic/models/lenet5/metrics.csv"])
    assert '"fold": ["val_f1", "val_loss"]' in curves  # .dvc/plots/learning_curve.json


@pytest.mark.slow
def test_one_models_parameter_reruns_only_that_model(repro: Path) -> None:
    cfg_path = repro / "config/config.yaml"
    config = yaml.safe_load(cfg_path.read_text())
    config["models"]["lenet5"]["train"]["optimizer"] = {"lr": 0.002}
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    out = dvc(repro, "repro")
    assert ran_stages(out) == {"train@lenet5", "evaluate@lenet5", "report"}, out[-4000:]


@pytest.mark.slow
def test_push_then_pull_restores_every_output(repro: Path) -> None:
    before = output_digests(repro)
    assert len(before) == 9 + 11 + 9 * len(MODELS)
    dvc(repro, "push")
    shutil.rmtree(repro / "data")
    shutil.rmtree(repro / "results")
    shutil.rmtree(repro / ".dvc/cache")
    assert not (repro / "results").exists()
    out = dvc(repro, "pull")
    assert output_digests(repro) == before, out
    assert "Data and pipelines are up to date." in dvc(repro, "status")
