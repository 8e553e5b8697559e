"""The result tables of the documentation, rendered from a results directory, never typed.

A page marks each generated block with the directory it comes from and, optionally, the tables
it shows (default: all four)::

    <!-- mnistbench docs-tables results/mnist comparison seeds -->
    ...rewritten by `mnistbench docs-tables PAGE`...
    <!-- end of generated tables -->

``provenance`` is one paragraph (commit, data, machine, config), ``comparison`` the runs with
their intervals and p-values, ``costs`` what each model costs, ``seeds`` the mean and standard
deviation over seeds (only when runs have several).
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


def rewrite_page(page: str | Path) -> None:
    """Rewrite every generated block of a Markdown page from its results directory."""
    page = Path(page)
    text = page.read_text(encoding="utf-8")

    def block(match: re.Match[str]) -> str:
        results, *tables = match["args"].split()
        body = render(results, tables or tuple(TABLES))
        return f"{match[1]}{body}{match[4]}"

    new, count = BLOCK.subn(block, text)
    if not count:
        raise MnistbenchError(f"{page}: no `<!-- mnistbench docs-tables DIR -->` block")
    write_text(page, new)
