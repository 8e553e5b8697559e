"""Data settings users get wrong, through the real Snakemake in a temporary copy of the project.

The tests share one project (a module fixture): a complete run that copies two tiny models'
data from ``data.local_dir``. A typo in that path fails the dry run and the real run and leaves
``data/`` untouched; a job that fails says why on the terminal; settings that only say how to
fetch plan no job; fetching identical bytes again (another copy of the directory, a forced
download, data/ deleted) retrains nothing; different data retrains every model. Each test leaves
the project as it found it (different data: in a copy of its own), so they pass in any order.

Every run passes ``--max-checksum-file-size 4000``: Snakemake compares the content of inputs up
to that size, which the tiny data files are but real MNIST's (10-50 MB) are not, so the runs
here decide as they would on real MNIST.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from mnistbench.data.synthetic import write_synthetic
from tests.test_faults_workflow import snakemake, tiny_project
from tests.test_workflow import planned_jobs

pytestmark = pytest.mark.slow
MODELS = ("lenet5", "simple_cnn")
RESULTS = "results/local"


def run(proj: Path, *args: str, check: bool = True) -> str:
    """Snakemake's output (stdout and stderr, as a user sees them); with check, exit status 0."""
    proc = snakemake(proj, "--max-checksum-file-size", "4000", *args, check=check)
    return f"exit status {proc.returncode}\n{proc.stdout}{proc.stderr}"


def user_data(directory: Path, seed: int = 0) -> Path:
    """Four MNIST-format files in a directory of the user's own (data.local_dir)."""
    write_synthetic(directory, 600, 200, seed=seed)
    (directory / "manifest.json").unlink()
    return directory


def local_dir(path: Path) -> str:
    return f"data={{local_dir: {path}}}"


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory``: its bytes and modification time."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def mtimes(directory: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


def executed(output: str) -> list[str]:
    """The rule of each job a run executed (or a dry run planned), in order."""
    return re.findall(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):", output, re.M)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return user_data(tmp_path_factory.mktemp("user") / "mnist")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, user_dir: Path) -> Path:
    """Two models trained on data copied from ``user_dir``."""
    proj = tiny_project(tmp_path_factory.mktemp("inputs"))
    cfg = yaml.safe_load((proj / "config/config.yaml").read_text())
    cfg["dataset"] = "local"
    cfg["data"].update(source="official", local_dir=str(user_dir))
    (proj / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run(proj)
    return proj


def test_typo_in_local_dir_fails_the_dry_run_and_keeps_the_data(
    project: Path, user_dir: Path
) -> None:
    before = snapshot(project / "data")
    typo = user_dir.parent / "mnsit"
    for args in (["-n"], []):
        out = run(project, *args, "--config", local_dir(typo), check=False)
        assert not out.startswith("exit status 0"), out
        assert f"mnistbench error: data.local_dir = '{typo}' does not exist" in out, out
        assert f"did you mean '{user_dir}'" in out, out
        assert "Job stats" not in out  # stopped before planning: no job ran, nothing deleted
    assert snapshot(project / "data") == before


def test_a_failed_jobs_error_reaches_the_terminal(project: Path) -> None:
    """The one line that says what to do is on the terminal, not only in the job's log: here a
    download with no mirror to reach (under another data set name: this one's data stay)."""
    before = snapshot(project / "data/local")
    offline = "data={local_dir: null, mirrors: ['http://127.0.0.1:9/'], download_retries: 1}"
    out = run(project, "--config", "dataset=offline", offline, check=False)
    assert not out.startswith("exit status 0"), out
    assert (
        "download_data (logs/offline/download_data.log): mnistbench error: "
        "data/offline/raw/train-images-idx3-ubyte.gz: could not download "
        "train-images-idx3-ubyte.gz from any mirror"
    ) in out, out
    assert snapshot(project / "data/local") == before


def test_fetch_settings_plan_no_job(project: Path) -> None:
    fetch = (
        "data={download_timeout_s: 120, download_retries: 5, download_backoff_s: 0,"
        " mirrors: [http://127.0.0.1:9/]}"
    )
    out = run(project, "-n", "--config", fetch)
    # The report records the whole config (its provenance), so it alone is rebuilt.
    assert set(planned_jobs(out)) <= {"build_report", "all"}, out


def test_fetching_identical_bytes_again_retrains_nothing(
    project: Path, user_dir: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(user_dir, tmp_path / "copy")  # same bytes, newer files, other path
    models = project / RESULTS / "models"
    before = mtimes(models)
    config = ["--config", local_dir(copy)]
    for args, later in ((config, config), (["--forcerun", "download_data"], [])):
        out = run(project, *args)
        ran = executed(out)
        assert "download_data" in ran and "prepare_data" in ran, out
        assert "train_model" not in ran and "evaluate_model" not in ran, out
        assert "Nothing to be done" in run(project, "-n", *later)
    after = mtimes(models)
    assert after == before


def test_data_deleted_by_a_failed_run_come_back_without_retraining(
    project: Path, user_dir: Path, tmp_path: Path
) -> None:
    """Before the dry run caught the typo, the failed download job's outputs were deleted, and
    fixing the path retrained every model by file times; now the data come back, nothing else."""
    shutil.rmtree(project / "data/local")
    models = project / RESULTS / "models"
    before = mtimes(models)
    fixed = shutil.copytree(user_dir, tmp_path / "fixed")
    ran = executed(run(project, "--config", local_dir(fixed)))
    assert ran == ["download_data", "prepare_data", "build_report", "all"], ran
    assert mtimes(models) == before


def test_different_data_retrains_every_model(project: Path, tmp_path: Path) -> None:
    own = Path(shutil.copytree(project, tmp_path / "proj", symlinks=True))
    other = user_data(tmp_path / "other", seed=1)
    out = run(own, "--config", local_dir(other))
    ran = executed(out)
    assert ran.count("train_model") == ran.count("evaluate_model") == len(MODELS), out
