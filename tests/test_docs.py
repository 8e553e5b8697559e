"""The front door stays short and its links lead somewhere; the docs' tables of figures are
rendered (`mnistbench docs-tables`) from committed result files and run snapshots under
`benchmarks/results/`, never typed, and a table that differs from its source fails here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnistbench.cli import main
from mnistbench.errors import MnistbenchError
from mnistbench.reporting import build_report
from mnistbench.reporting.docs import BLOCK, check_page, exempt, render, rendered, rewrite_page
from mnistbench.reporting.measurements import load
from tests.conftest import ROOT
from tests.test_report_stats import fake_model

PAGES = [ROOT / "README.md", ROOT / "config/README.md", *sorted((ROOT / "docs").glob("*.md"))]
# docs/speed.md holds the speed, precision and GPU measurements; it is written with them.
WRITTEN_ELSEWHERE = {ROOT / "docs/speed.md"}


def test_readme_is_a_front_door() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for heading in ("What you get", "Set up", "Run", "Test", "Where results land"):
        assert f"## {heading}" in text
    assert "bash envs/setup.sh && source .venv/bin/activate" in text
    for picture in ("report.png", "terminal.png"):  # docs/img/make-screenshots.sh
        assert f"](docs/img/{picture})" in text
        assert (ROOT / "docs/img" / picture).stat().st_size < 300_000


def test_ci_runs_the_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"## Test\n\n```bash\n(.+)\n```", readme)[1]
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert command == "pytest -q" and f"{command} --order random" in ci  # in any order, too


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_lead_somewhere(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        path = (page.parent / target).resolve()
        assert path.exists() or path in WRITTEN_ELSEWHERE, f"{page.name}: {target}"


def test_docs_tables_are_rendered_from_results(tmp_path: Path) -> None:
    dirs = [fake_model(tmp_path / "m", name, errors, i) for i, (name, errors) in
            enumerate([("cnn-seed1", 4), ("cnn-seed2", 6), ("lenet5", 30)])]  # fmt: skip
    results = tmp_path / "results"
    names = ("comparison.csv", "comparison.md", "seeds.csv", "provenance.json", "provenance.csv")
    keys = ("csv", "md", "seeds", "provenance_json", "provenance_csv")
    out = {key: results / name for key, name in zip(keys, names, strict=True)}
    out |= {"curves": results / "curves.png", "f1_params": results / "f1_params.png"}
    build_report(dirs, out, {"dataset": "x", "seeds": [1, 2]})
    text = render(results)
    assert "| `cnn-seed1` |" in text and "| best |" in text  # comparison, best first
    assert "| `cnn` | 1 2 |" in text  # over the seeds
    assert f"From `{results}/`" in text
    page = tmp_path / "page.md"
    page.write_text(
        f"# R\n\n<!-- mnistbench docs-tables {results} comparison -->\nstale\n"
        "<!-- end of generated tables -->\nafter\n"
    )
    rewrite_page(page)
    rewritten = page.read_text()
    assert "stale" not in rewritten and "| `lenet5` |" in rewritten
    assert rewritten.endswith("<!-- end of generated tables -->\nafter\n")
    assert "From `" not in rewritten  # only the tables the block names


RESULTS = ROOT / "benchmarks/results"


def copy_of_the_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, results: str) -> Path:
    """The pages copied under ``tmp_path`` at their places, ``benchmarks/results`` (a copy with
    ``results="copy"``, else a link) and the workflow's ``results/`` where this checkout has
    one; the working directory there, as the command runs from the repository's root."""
    for page in PAGES:
        (tmp_path / page.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(page, tmp_path / page.relative_to(ROOT))
    (tmp_path / "benchmarks").mkdir()
    if results == "copy":
        shutil.copytree(RESULTS, tmp_path / "benchmarks/results")
    else:
        (tmp_path / "benchmarks/results").symlink_to(RESULTS)
    if (ROOT / "results").is_dir():
        (tmp_path / "results").symlink_to(ROOT / "results")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_committed_table_is_what_the_command_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page rendered afresh in a copy equals the committed page. Exempt: a block that
    reads a workflow's own ``results/<dataset>`` (never committed) where this checkout has no
    such directory (today every block reads ``benchmarks/results/``, so none is)."""
    copy = copy_of_the_docs(tmp_path, monkeypatch, "link")
    sources = []
    for page in PAGES:
        text = page.read_text()
        sources += [m["args"].split()[0] for m in BLOCK.finditer(text)]
        new, stale = rendered(page.relative_to(ROOT), check=True)
        assert not stale, f"{page.name}: {stale} differ; run mnistbench docs-tables {page.name}"
        assert new == text
        rewrite_page(copy / page.relative_to(ROOT))  # the command itself changes nothing
        assert (copy / page.relative_to(ROOT)).read_text() == text
    checked = [s for s in sources if not exempt(s)]
    assert len(checked) >= 20, sources


def test_a_hand_edit_of_a_generated_table_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_of_the_docs(tmp_path, monkeypatch, "link")
    page = Path("docs/speed.md")
    text = page.read_text()
    row = "| `resnet18` | 15,165 | 13,898 | 10,863 | 12,396 | **fp32** |"
    assert text.count(row) == 1  # the H100's probe, in a generated block
    page.write_text(text.replace(row, row.replace("15,165", "15,166")))
    with pytest.raises(MnistbenchError, match="probes_h100.json differ"):
        check_page(page)
    with pytest.raises(SystemExit) as stop:
        main(["docs-tables", "--check", "README.md", "docs/results.md", str(page)])
    assert stop.value.code == 2 and "docs-tables docs/speed.md" in capsys.readouterr().err
    main(["docs-tables", str(page)])  # rendering again puts back the file's figure
    assert page.read_text() == text
    main(["docs-tables", "--check", *(str(p.relative_to(ROOT)) for p in PAGES)])


def test_a_result_file_changed_without_rendering_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_of_the_docs(tmp_path, monkeypatch, "copy")
    result = Path("benchmarks/results/gpu_workflow_h100.json")
    data = json.loads(result.read_text())
    data["runs"][2]["wall_s"] = 119.8
    result.write_text(json.dumps(data))
    with pytest.raises(MnistbenchError, match="gpu_workflow_h100.json differ"):
        check_page("docs/speed.md")
    snapshot = Path("benchmarks/results/mnist-default-avx512/comparison.csv")
    snapshot.write_text(snapshot.read_text().replace("0.9951", "0.9952"))
    with pytest.raises(MnistbenchError, match="mnist-default-avx512 differ"):
        check_page("docs/results.md")
    rewrite_page("docs/speed.md")
    assert (
        "| `216b742` | no host-device synchronisation per step | 119.8 s |"
        in Path("docs/speed.md").read_text()
    )


def test_every_result_file_says_where_it_comes_from() -> None:
    """Machine, CPU capability, torch, commit and command (or how it was made), and for the
    transcribed ones the record they were taken from; small, and shown on some page."""
    pages = "".join(p.read_text() for p in PAGES)
    files = sorted(RESULTS.glob("*.json"))
    assert len(files) >= 15
    for path in files:
        data = load(path)
        assert data["command"] or data["how"], path.name
        scripted = str(data["command"]).startswith("python benchmarks/wall_time_model.py")
        assert scripted or data["source"], path.name
        assert path.stat().st_size < 20_000 and f"benchmarks/results/{path.name}" in pages
    for snapshot in sorted(p for p in RESULTS.iterdir() if p.is_dir()):
        assert {f.name for f in snapshot.iterdir()} <= {
            "comparison.csv", "seeds.csv", "provenance.json"
        }  # fmt: skip
        prov = json.loads((snapshot / "provenance.json").read_text())
        about = prov["snapshot"]
        assert {"machine", "capability", "torch", "commit", "command", "source"} <= set(about)
        assert prov["git_commit"].startswith(about["commit"])
        assert f"benchmarks/results/{snapshot.name}" in pages


def test_the_wall_time_file_is_what_the_model_computes(tmp_path: Path) -> None:
    """benchmarks/results/wall_time_avx2.json is the model's output for the committed rates."""
    committed = json.loads((RESULTS / "wall_time_avx2.json").read_text())
    out = tmp_path / "wall_time.json"
    args = [*committed["command"].split()[1:-1], str(out)]
    assert args[:4] == [
        "benchmarks/wall_time_model.py", "model", "benchmarks/results/train_rates_avx2.json",
        "--speed-up-2",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, capture_output=True)
    fresh = json.loads(out.read_text())
    assert fresh.pop("command").endswith(str(out))
    committed.pop("command")
    assert fresh == committed


def test_ratios_are_computed_from_the_figures_they_compare() -> None:
    from mnistbench.reporting.measured_tables import probes, throughput

    data = json.loads((RESULTS / "probes_h100.json").read_text())
    ratios = [float(line.split("|")[-2].strip()[:-1]) for line in probes(data).splitlines()[2:]]
    assert (min(ratios), max(ratios)) == (0.73, 0.88)  # best bf16 against best fp32
    cnn = {"model": "cnn", "precision": "fp32", "tutorial_samples_s": 1000,
           "mnistbench_samples_s": 1500, "raw_samples_s": 2000}  # fmt: skip
    assert "| 1.50 | 0.75 |" in throughput({"models": [cnn]})


def test_a_result_file_without_its_origin_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"what": "x", "machine": {"cpu": "c", "torch": "2"}, "date": "d"}))
    with pytest.raises(MnistbenchError, match="no commit, command, machine.capability"):
        load(path)
