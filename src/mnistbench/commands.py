"""What each ``mnistbench <stage>`` does: the validated config in, one typed function of the
package called on the files the pipeline table names (``mnistbench.pipeline.table.outputs``).

The Snakemake rules, the DVC stages and people all run the stages through these functions
(``mnistbench.cli``), so that a stage reads and writes the same files whoever starts it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mnistbench.config.datasets import dataset_names, local_dir
from mnistbench.config.load import model_names, resolve_model
from mnistbench.config.runs import ensembles
from mnistbench.errors import ConfigError, did_you_mean
from mnistbench.pipeline.codedeps import code_files
from mnistbench.pipeline.paths import outputs, partial_outputs
from mnistbench.pipeline.table import STEP


def _dir(path: str) -> str:
    return os.path.dirname(path)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def download(config: Mapping[str, Any]) -> dict[str, Any]:
    """The data set's raw files as the config's ``data`` block says: generated (``source:
    synthetic``), copied from ``local_dir``, or downloaded from its mirrors; then their
    manifest."""
    data, dataset = config["data"], config["dataset"]
    out = _dir(outputs("download_data", dataset)["manifest"])
    if data["source"] == "synthetic":
        from mnistbench.data.synthetic import write_synthetic

        syn = data["synthetic"]
        return write_synthetic(out, syn["n_train"], syn["n_test"], syn["seed"], dataset)
    from mnistbench.data.download import download_dataset
    from mnistbench.data.local import copy_local
    from mnistbench.data.registry import layout

    if local_dir(config):
        return copy_local(local_dir(config), out, layout(dataset))
    return download_dataset(
        out,
        data["mirrors"],
        retries=data["download_retries"],
        timeout=data["download_timeout_s"],
        backoff=data["download_backoff_s"],
        ds=layout(dataset),
    )


def prepare(config: Mapping[str, Any]) -> dict[str, Any]:
    from mnistbench.data.prepare import prepare_dataset

    dataset, data = config["dataset"], config["data"]
    raw = _dir(outputs("download_data", dataset)["manifest"])
    out = _dir(outputs("prepare_data", dataset)["stats"])
    return prepare_dataset(raw, out, data["val_size"], data["split_seed"])


def train(
    config: Mapping[str, Any], run: str, threads: int | None = None, progress_fd: int | None = None
) -> dict[str, Any]:
    """Train one run; ``progress_fd``: where one line per epoch goes (the terminal)."""
    from mnistbench.train.recipe import train_model

    dataset = config["dataset"]
    prepared = _dir(outputs("prepare_data", dataset)["stats"])
    out = _dir(outputs("train_model", dataset, run)["ckpt"])
    settings = resolve_model(config, run)
    # the stage's code, as the orchestrators list it: what a resumable checkpoint was made with
    code = code_files(STEP["train_model"].modules, settings["arch"])
    loggers = tuple(config["loggers"])
    return train_model(settings, prepared, out, threads, progress_fd, loggers, code)


def evaluate(config: Mapping[str, Any], run: str, threads: int | None = None) -> dict[str, Any]:
    from mnistbench.evaluate.scores import evaluate as evaluate_model

    _set_threads(threads)
    dataset = config["dataset"]
    resolve_model(config, run)  # an unknown run is a config error, before any file is read
    ckpt = outputs("train_model", dataset, run)["ckpt"]
    prepared = outputs("prepare_data", dataset)
    outs = outputs("evaluate_model", dataset, run)
    return evaluate_model(
        ckpt,
        prepared["test"],
        _dir(outs["metrics"]),
        run,
        config["evaluate"]["batch_size"],
        val_split=prepared["val"],
        val_predictions=outs["val_predictions"],
    )


def ensemble(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One ensemble of the config (``mnistbench.config.runs.ensembles``), from its runs' evaluated
    validation and test predictions."""
    from mnistbench.evaluate.ensemble import build_ensemble

    dataset, settings = config["dataset"], config["ensemble"]
    known = ensembles(config)
    if name not in known:
        listed = ", ".join(known) or "(none: set seeds or ensemble.across)"
        raise ConfigError(
            f"ensemble {name!r} is not one of this config's{did_you_mean(name, known)}: {listed}"
        )
    pools = known[name]["pools"]
    runs = {
        r: _dir(outputs("train_model", dataset, r)["ckpt"]) for rs in pools.values() for r in rs
    }
    out = _dir(_dir(outputs("build_ensemble", dataset, name)["metrics"]))
    return build_ensemble(name, pools, runs, out, settings["selection"], settings["max_picks"])


def report(config: Mapping[str, Any], failed: Mapping[str, str] | None = None) -> Any:
    """The comparison of every run of the config. With ``failed`` (run -> why, after a failed or
    stopped run) it goes to the partial outputs (``mnistbench.pipeline.paths.PARTIAL``), beside
    the report's own; a complete comparison removes an earlier partial one."""
    import shutil

    from mnistbench.reporting import build_report

    dataset = config["dataset"]
    partial = partial_outputs(dataset)
    shutil.rmtree(_dir(partial["csv"]), ignore_errors=True)
    runs = {run: _dir(outputs("train_model", dataset, run)["ckpt"]) for run in model_names(config)}
    combined = [
        _dir(_dir(outputs("build_ensemble", dataset, name)["metrics"]))
        for name in ensembles(config)
    ]
    return build_report(
        list(runs.values()),
        partial if failed else outputs("build_report", dataset),
        config,
        failed=failed,
        test_split=outputs("prepare_data", dataset)["test"],
        manifest=outputs("download_data", dataset)["manifest"],
        ensemble_dirs=combined,
    )


def summarize(config: Mapping[str, Any]) -> Any:
    """The summary across the data sets of ``datasets``: model x data set, test F1 (intervals)."""
    from mnistbench.reporting.datasets import summarize_datasets

    tables = {ds: outputs("build_report", ds)["csv"] for ds in dataset_names(config)}
    return summarize_datasets(tables, outputs("summarize_datasets", ""))


def tune(config: Mapping[str, Any], run: str, threads: int | None = None) -> dict[str, Any]:
    from mnistbench.train.tune import tune_model

    dataset = config["dataset"]
    prepared = _dir(outputs("prepare_data", dataset)["stats"])
    out = _dir(outputs("tune_model", dataset, run)["suggestion"])
    return tune_model(resolve_model(config, run), prepared, out, config["tune"], threads)
