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

BLOCK = re.compile(
    r"(<!-- mnistbench docs-tables (?P<args>[^>]*?) -->\n)(?P<body>.*?)"
    r"(<!-- end of generated tables -->)",
    re.S,
)


def _fmt(value: object, spec: str) -> str:
    return "" if pd.isna(value) else spec.format(value)


def _mean_std(row: pd.Series, column: str) -> str:
    return f"{row[column + '_mean']:.4f} ± {_fmt(row[column + '_std'], '{:.4f}')}"


def _table(frame: pd.DataFrame, columns: dict[str, Callable[[pd.Series], str]]) -> str:
    """A Markdown table: header -> the cell of each row."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    rows = (
        "| " + " | ".join(cell(row) for cell in columns.values()) + " |\n"
        for _, row in frame.iterrows()
    )
    return head + "".join(rows)


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
    if "kind" not in table:  # a table from before the ensembles: runs only
        table["kind"] = "run"
    best = table["model"][table["kind"] != "ensemble"].iloc[0]  # the best run: p's reference
    return _table(
        table,
        {
            "run": lambda r: f"`{r['model']}`" + (" (ensemble)" if r["kind"] == "ensemble" else ""),
            "epochs": lambda r: _fmt(r["epochs"], "{:.0f}"),
            "val F1": lambda r: _fmt(r["val_f1"], "{:.4f}"),
            "test F1": lambda r: _fmt(r["test_f1"], "{:.4f}"),
            "95% CI": lambda r: f"{_fmt(r['ci_low'], '{:.4f}')} – {_fmt(r['ci_high'], '{:.4f}')}",
            "p vs best": lambda r: "best" if r["model"] == best else _fmt(r["mcnemar_p"], "{:.2g}"),
            "test errors": lambda r: _fmt(r["test_errors"], "{:.0f}"),
            "status": lambda r: str(r["status"]),
        },
    )  # fmt: skip


def costs(results: Path) -> str:
    table = pd.read_csv(results / "comparison.csv")
    return _table(
        table[table["status"] == "ok"],
        {
            "run": lambda r: f"`{r['model']}`",
            "params": lambda r: _fmt(r["params"], "{:,.0f}"),
            "MACs": lambda r: _fmt(r["macs"], "{:,.0f}"),
            "latency b1 (ms)": lambda r: _fmt(r["latency_ms_b1"], "{:.3f}"),
            "latency b256 (ms)": lambda r: _fmt(r["latency_ms_b256"], "{:.4f}"),
            "checkpoint (MiB)": lambda r: _fmt(r["ckpt_mb"], "{:.1f}"),
            "train (s)": lambda r: _fmt(r["train_seconds"], "{:.0f}"),
            "peak memory (MB)": lambda r: _fmt(r["peak_mem_mb"], "{:,.0f}"),
            "precision": lambda r: str(r["precision"]),
        },
    )


def seeds(results: Path) -> str:
    table = pd.read_csv(results / "seeds.csv", dtype={"seeds": str})
    if not (table["n_seeds"] > 1).any():
        return ""
    return _table(
        table,
        {
            "model": lambda r: f"`{r['model']}`",
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
