"""The tables of figures of the documentation, rendered from results, never typed.

A page marks each generated block with where its figures come from: a results directory of the
workflow and, optionally, the tables it shows (default: all four), or a benchmark result file
and its renderer (``reporting.measurements``)::

    <!-- mnistbench docs-tables benchmarks/results/mnist-default-avx512 comparison seeds -->
    ...rewritten by `mnistbench docs-tables PAGE`...
    <!-- end of generated tables -->
    <!-- mnistbench docs-tables benchmarks/results/probes_avx512.json probes -->
    ...
    <!-- end of generated tables -->

Paths are relative to the directory the command runs in: the repository's root. For a
directory, ``provenance`` is one paragraph (commit, data, machine, config), ``comparison`` the
runs with their intervals and p-values, ``costs`` what each model costs, ``seeds`` the mean and
standard deviation over seeds (only when runs have several).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from mnistbench.errors import MnistbenchError
from mnistbench.io import read_json, write_text
from mnistbench.reporting.display import (
    costs_columns,
    fmt,
    markdown_table,
    scores_columns,
    shown,
)

BLOCK = re.compile(
    r"(<!-- mnistbench docs-tables (?P<args>[^>]*?) -->\n)(?P<body>.*?)"
    r"(<!-- end of generated tables -->)",
    re.S,
)


def _mean_std(row: pd.Series, column: str) -> str:
    return f"{row[column + '_mean']:.4f} ± {fmt(row[column + '_std'], '{:.4f}')}"


def _table(frame: pd.DataFrame, columns: dict[str, Callable[[pd.Series], str]]) -> str:
    """A Markdown table: header -> the cell of each row."""
    return markdown_table(shown(frame, columns))


def provenance(results: Path) -> str:
    prov = read_json(results / "provenance.json")
    config, hw, data = prov["config"], prov["hardware"], prov.get("data") or {}
    envs = list(hw["training"].values())
    env = envs[0] if envs else {}
    device = env.get("cuda_device") or f"CPU ({env.get('cpu', hw['host_cpu'])})"
    seeds = config.get("seeds") or []
    return (
        f"From `{results}/` (its `provenance.json`): commit `{prov['git_commit']}`; "
        f"data set `{config.get('dataset')}` ({data.get('source', '?')}); "
        f"{len(hw['training'])} runs" + (f" (seeds {seeds})" if seeds else "") + "; "
        f"trained on {device}, torch {env.get('torch', '?')}; host: {hw['host_cpu']}, "
        f"{hw['host_cores']} cores.\n"
    )


def comparison(results: Path) -> str:
    table = pd.read_csv(results / "comparison.csv")
    return _table(table, scores_columns(table))


def costs(results: Path) -> str:
    table = pd.read_csv(results / "comparison.csv")
    ok = table[table["status"] == "ok"]
    return _table(ok, costs_columns(ok))


def seeds(results: Path) -> str:
    table = pd.read_csv(results / "seeds.csv", dtype={"seeds": str})
    if not (table["n_seeds"] > 1).any():
        return ""
    return _table(
        table,
        {
            "run": lambda r: str(r["model"]),
            "seeds": lambda r: str(r["seeds"]),
            "test F1 (mean ± std)": lambda r: _mean_std(r, "test_f1"),
            "test accuracy (mean ± std)": lambda r: _mean_std(r, "test_accuracy"),
            "val F1 (mean)": lambda r: f"{r['val_f1_mean']:.4f}",
            "train s (mean)": lambda r: f"{r['train_seconds_mean']:.0f}",
        },
    )  # fmt: skip


TABLES = {"provenance": provenance, "comparison": comparison, "costs": costs, "seeds": seeds}


def render(results: str | Path, tables: Sequence[str] = tuple(TABLES)) -> str:
    """The Markdown of the chosen tables of one results directory."""
    results = Path(results)
    if not (results / "comparison.csv").is_file():
        raise MnistbenchError(f"{results}: no comparison.csv; run the workflow (or its report)")
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise MnistbenchError(f"unknown table {unknown[0]!r}; choose from {', '.join(TABLES)}")
    parts = [TABLES[name](results) for name in tables]
    return "\n".join(part for part in parts if part)


def render_block(source: str, tables: Sequence[str], page: str | Path) -> str:
    """One block's Markdown: from a result file (``*.json``) or a results directory."""
    if source.endswith(".json"):
        from mnistbench.reporting.measurements import render as render_file

        return render_file(source, tables, page)
    return render(source, tables or tuple(TABLES))


def exempt(source: str) -> bool:
    """A block of a workflow's own ``results/`` that this checkout has not run: not checked."""
    return Path(source).parts[:1] == ("results",) and not Path(source).exists()


def rendered(page: str | Path, check: bool = False) -> tuple[str, list[str]]:
    """The page with every generated block rendered afresh, and the sources of the blocks that
    differ from the page's. ``check``: blocks whose source is ``exempt`` are left as they are."""
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    stale: list[str] = []

    def block(match: re.Match[str]) -> str:
        source, *tables = match["args"].split()
        if check and exempt(source):
            return match[0]
        body = render_block(source, tables, page)
        if body != match["body"]:
            stale.append(source)
        return f"{match[1]}{body}{match[4]}"

    return BLOCK.sub(block, text), stale


def rewrite_page(page: str | Path) -> None:
    """Rewrite every generated block of a Markdown page from its source (a page without one is
    left as it is, so ``docs/*.md`` may be given whole)."""
    new, _ = rendered(page)
    write_text(page, new)


def check_page(page: str | Path) -> None:
    """Refuse a page whose generated blocks differ from what their sources render (a hand
    edit, or a result changed without rendering the page again)."""
    _, stale = rendered(page, check=True)
    if stale:
        raise MnistbenchError(
            f"{page}: the generated tables from {', '.join(stale)} differ from what they render; "
            f"run `mnistbench docs-tables {page}` (and edit the result file, not the table)"
        )
