"""The report step: the comparison of every run, rebuilt from the files the train and evaluate
steps publish (``summary.json``, ``metrics.csv``, test ``metrics.json`` and ``predictions.npz``)
and those of the ensembles (build_ensemble), so Snakemake and DVC build the same one.

``tables`` (the comparison, its Markdown form, the summary over seeds), ``statistics`` (bootstrap
intervals of test F1, McNemar's test against the best run, Pareto fronts), ``figures`` and
``provenance`` (code, packages, data, hardware, config); ``docs`` renders the tables of the
documentation from a results directory.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mnistbench.config.load import schema_default
from mnistbench.reporting.figures import write_figures
from mnistbench.reporting.provenance import write_provenance
from mnistbench.reporting.tables import (
    OK,
    add_references,
    comparison_table,
    seed_summary,
    write_tables,
)

__all__ = ["build_report", "seed_summary"]
log = logging.getLogger(__name__)


def build_report(
    model_dirs: Sequence[str | Path],
    out: Mapping[str, str | Path],
    config: Mapping[str, Any] | None = None,
    failed: Mapping[str, str] | None = None,
    test_split: str | Path | None = None,
    manifest: str | Path | None = None,
    ensemble_dirs: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """Write the table and figures to the paths ``out`` names (the names of
    ``mnistbench.pipeline.paths.OUTPUTS``; ``csv``, ``md``, ``curves`` and ``f1_params`` at
    least, the others when given). With ``failed`` (run -> why, after a failed run) the failed
    runs are listed as such and the figures show the others: nothing looks like a complete
    comparison. The statistics' settings are the config's ``report`` block (the schema's
    defaults without a config). ``ensemble_dirs`` (the build_ensemble stage's) add one row each,
    beside the runs."""
    failed = dict(failed or {})
    settings = {**schema_default("report"), **((config or {}).get("report") or {})}
    resamples, seed = settings["bootstrap_resamples"], settings["seed"]
    table = comparison_table(model_dirs, failed, resamples, seed, ensemble_dirs)
    table = add_references(table, model_dirs, config)
    write_tables(table, out, config)
    ok = table[table["status"] == OK].reset_index(drop=True)
    write_figures(ok, model_dirs, dict(out), settings, test_split, ensemble_dirs)
    done = [d for d in model_dirs if Path(d).name not in failed]
    write_provenance(done, out, manifest, config)
    if failed:
        log.warning("partial comparison written to %s; failed: %s", out["csv"], ", ".join(failed))
    else:
        log.info("comparison of %d runs written to %s", len(table), out["csv"])
    return table
