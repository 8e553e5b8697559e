"""The code a stage depends on, found in the package's source.

A stage's work starts in a few modules (``table.Step.modules``); its code is those modules and
every module of the package they import, transitively, with the packages they sit in. Of the
architectures (``mnistbench.models.<arch>``, imported by the registry at run time, not by name)
only the run's own is added, so that editing one reruns only its runs. The Snakemake rules list
these files as inputs, dvc.yaml as deps, and the resume fingerprint hashes them.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Sequence
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # src/mnistbench


@functools.cache
def direct_imports(module: str) -> frozenset[str]:
    """The package's modules that ``module`` imports by name (anywhere in its source, also
    inside functions), found by reading the source: nothing is run."""
    source = module_file(module)
    if source is None:
        raise FileNotFoundError(f"no module {module} in {PACKAGE}")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from mnistbench.data import prepare` imports a module, `from x import f` a name
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == PACKAGE.name and module_file(n))
    found.discard(module)
    return frozenset(found)


def imports_of(module: str) -> set[str]:
    """What importing ``module`` runs of the package: its imports and the packages they are in."""
    return {m for name in direct_imports(module) for m in _with_parents(name)} - {module}


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def module_file(module: str) -> Path | None:
    """The source file of one of the package's modules (``mnistbench.data`` -> its __init__),
    None for a name that is no module (``mnistbench.errors.ConfigError``)."""
    path = PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def closure(modules: Iterable[str]) -> set[str]:
    """``modules``, their packages and everything of the package they import, transitively.
    The architectures (``mnistbench.models.<arch>``) are no import of anything: each run's own
    is added by ``code_files``, so that editing one reruns only its runs."""
    todo = [m for name in modules for m in _with_parents(name)]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imports_of(module) - seen)
    return seen


def code_files(modules: Sequence[str], arch: str | None = None) -> list[str]:
    """The files the stage's code consists of, as the orchestrators list them: relative to the
    working directory when the package lies below it (src/mnistbench/...), else absolute (an
    installed package). With ``arch``, that architecture's file; with the config module, the
    schema (the defaults of every key it fills in)."""
    names = closure([*modules, *([f"mnistbench.models.{arch}"] if arch else [])])
    files = {module_file(m) for m in names} - {None}
    if "mnistbench.config.load" in names:
        files.add(PACKAGE / "config" / "config.schema.yaml")
    return sorted(_shown(f) for f in files)


def _shown(path: Path) -> str:
    here = Path.cwd().resolve()
    return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)
