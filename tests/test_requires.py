"""tests/requires.py: a missing component skips a test locally and fails it in CI."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = """
from tests.requires import import_or_missing, missing


def test_needs_a_tool():
    missing("frobnicator not installed (apt-get install frobnicator)")


def test_needs_a_package():
    import_or_missing("no_such_package_here", "no_such_package_here missing (requirements.lock)")


def test_needs_nothing():
    assert True
"""


def run_tiny(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_tiny.py").write_text(TINY)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    cmd = [sys.executable, "-m", "pytest", "-rsf", "-p", "no:cacheprovider", "test_tiny.py"]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", [None, "false"])
def test_a_missing_component_is_a_skip_with_its_reason_outside_ci(tmp_path, ci) -> None:
    out = run_tiny(tmp_path, ci)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 2 skipped" in out.stdout, out.stdout
    assert "frobnicator not installed (apt-get install frobnicator)" in out.stdout
    assert "no_such_package_here missing (requirements.lock)" in out.stdout


@pytest.mark.parametrize("ci", ["true"])
def test_a_missing_component_fails_in_ci_with_its_reason(tmp_path, ci) -> None:
    out = run_tiny(tmp_path, ci)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "2 failed, 1 passed" in out.stdout and "skipped" not in out.stdout, out.stdout
    assert "frobnicator not installed (apt-get install frobnicator)" in out.stdout
    assert "no_such_package_here missing (requirements.lock)" in out.stdout


SKIPS = {"skip", "importorskip", "skipif"}


def test_every_skip_of_the_suite_goes_through_requires() -> None:
    """A ``pytest.skip``, ``importorskip`` or skip mark elsewhere would vanish quietly in CI."""
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name == "requires.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in SKIPS:
                found.append(f"{path.name}:{node.lineno}: {node.attr}")
    assert found == [], "skip through tests.requires.missing instead:\n" + "\n".join(found)
