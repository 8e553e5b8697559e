"""The package stays a set of small rooms with one definition of each thing: no function over
60 lines, no module over about 300, no import cycle, and each config default written in the
schema alone (not again in code)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mnistbench.pipeline.codedeps import PACKAGE, direct_imports

MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 310  # "about 300"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_small_rooms(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_no_import_cycle() -> None:
    """No module imports, directly or through others, a module that imports it (the names it
    imports by name: a package's __init__ running first is not counted)."""
    graph = {module_name(p): direct_imports(module_name(p)) for p in SOURCES}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*path, module, dep]))
            if dep not in state:
                visit(dep, [*path, module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def schema_defaults() -> dict[str, list[object]]:
    """Leaf key name -> its defaults (keys of one name in several blocks), for every key of the
    schema with a distinctive default."""
    from mnistbench.config.load import load_schema

    found: dict[str, list[object]] = {}

    def walk(node: dict) -> None:
        for name, sub in (node.get("properties") or {}).items():
            if "$ref" in sub:
                walk(schema["$defs"][sub["$ref"].rsplit("/", 1)[-1]])
            elif "properties" in sub:
                walk(sub)
            elif sub.get("default") not in (None, True, False, 0, 1, "", [], {}):
                found.setdefault(name, []).append(sub["default"])

    schema = load_schema()
    walk(schema)
    return found


def literal_settings(tree: ast.AST) -> list[tuple[str, object]]:
    """(name, constant) pairs code gives a value: parameter defaults, ``.get("x", value)``,
    ``{"x": value}`` and argparse ``--x ... default=value``."""
    pairs: list[tuple[str, object]] = []

    def const(node: ast.AST | None) -> object:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            values = [const(e) for e in node.elts]
            return values if all(v is not ... for v in values) else ...
        return ...

    for node in ast.walk(tree):
        if isinstance(node, ast.arguments):
            args = node.posonlyargs + node.args
            for arg, default in zip(
                args[len(args) - len(node.defaults) :], node.defaults, strict=True
            ):
                pairs.append((arg.arg, const(default)))
            for arg, default in zip(node.kwonlyargs, node.kw_defaults, strict=True):
                pairs.append((arg.arg, const(default)))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get":
            if len(node.args) == 2 and isinstance(node.args[0], ast.Constant):
                pairs.append((str(node.args[0].value), const(node.args[1])))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant):
                    pairs.append((str(key.value), const(value)))
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            flag = str(node.args[0].value)
            for kw in node.keywords:
                if flag.startswith("--") and kw.arg == "default":
                    pairs.append((flag[2:].replace("-", "_"), const(kw.value)))
    return pairs


def test_each_default_is_written_in_the_schema_alone() -> None:
    defaults = schema_defaults()
    assert {
        "max_lr",
        "bootstrap_resamples",
        "gallery_size",
        "lr_steps",
        "download_timeout_s",
    } <= set(defaults)
    repeated = []
    for path in SOURCES:
        for name, value in literal_settings(ast.parse(path.read_text())):
            if value in defaults.get(name, []):
                repeated.append(f"{path.relative_to(PACKAGE)}: {name} = {value!r}")
    assert not repeated, repeated
