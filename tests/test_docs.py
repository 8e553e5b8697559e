"""The front door stays short and its links lead somewhere; the docs' result tables are rendered
from a results directory (`mnistbench docs-tables`), never typed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mnistbench.errors import MnistbenchError
from mnistbench.reporting import build_report
from mnistbench.reporting.docs import render, rewrite_page
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
