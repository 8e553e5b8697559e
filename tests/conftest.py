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
    """A copy of the workflow (not data/ or results/) to run Snakemake or DVC in isolation.

    The .gitignore comes along (outputs stay untracked, as DVC needs), and so do DVC's project
    files (dvc.yaml, .dvcignore, .dvc/ without its cache, tmp and local config); dvc.lock does
    not, so a copy starts with nothing run."""
    names = ("Snakefile", "workflow", "config", "src", "envs", ".gitignore")
    names += ("dvc.yaml", ".dvcignore", ".dvc")
    for name in names:
        src = ROOT / name
        if src.is_dir():
            skip = ("cache", "tmp", "config.local") if name == ".dvc" else ()
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", *skip))
        else:
            shutil.copy2(src, dest / name)
    return dest
