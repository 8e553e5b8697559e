"""Shared fixtures: CPU only, few threads, everything under tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


def copy_project(dest: Path) -> Path:
    """A copy of the workflow (not data/ or results/) to run Snakemake or DVC in isolation."""
    for name in ("Snakefile", "workflow", "config", "src", "envs"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest
