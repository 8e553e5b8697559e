"""A test that needs a real component (the browser, a tool, a package) and does not find it.

On a developer's machine the test is skipped, with the reason. In CI (``CI=true``, which GitHub
Actions, GitLab and ``.ci/run`` set) it fails with the same reason: there every component the
suite needs must be there, and a test that did not run must not let CI pass. Every skip of the
suite goes through ``missing`` (``tests/test_requires.py`` checks that no other one exists).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str) -> NoReturn:
    """Stop the test: a failure under ``CI=true``, a skip elsewhere; ``reason`` says what is
    missing and how to get it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing component fails the test)", pytrace=False)
    pytest.skip(reason)


def import_or_missing(module: str, reason: str) -> ModuleType:
    """``module``, imported; if it cannot be, ``missing(reason)``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(f"{reason} ({exc})")
