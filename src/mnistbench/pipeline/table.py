"""The pipeline, defined once: every stage of a run, with its command, code, data, params, outputs.

``stages(config, raw, config_files)`` lists the stage instances of a validated config (after
``only``, ``seeds`` and sweeps expanded it): per data set one download, one prepare, one train
and one evaluate per run, one build_ensemble per ensemble (``mnistbench.config.runs.ensembles``),
one report, and the on-request tune and export per run; with ``datasets``, each of them, then
one summary across them. Both orchestrators are driven from this table: the Snakemake rules
(``workflow/rules/common.smk``) and ``mnistbench dvc-yaml`` (``mnistbench.pipeline.dvc``);
``tests/test_pipeline.py`` checks that the two DAGs agree. The output paths are
``mnistbench.pipeline.paths``'s.

- **command**: ``mnistbench <stage>`` with the config files (and the stage's share of
  Snakemake's ``--config`` overrides); the stage finds its files from the config.
- **code**: the module that does the stage's work and every module of the package it imports
  (found in their source; of the architectures only the run's own), and the schema.
- **params**: the config keys the stage reads, as they are written in the config files, so
  that a change of one model's settings reruns that model's stages only.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

from mnistbench.config.datasets import dataset_names
from mnistbench.config.keys import key_value, restrict
from mnistbench.config.load import architecture
from mnistbench.config.runs import ensembles
from mnistbench.pipeline.codedeps import code_files
from mnistbench.pipeline.paths import OUTPUTS, outputs

# The config keys that say which runs there are (``only``, ``seeds``, sweeps under ``models``).
RUN_KEYS = ("only", "seeds", "models")


@dataclass(frozen=True)
class Step:
    """One kind of stage: the rule, its DVC name and command, what it reads and what it needs."""

    rule: str
    dvc: str
    command: str
    modules: tuple[str, ...]  # where the work is done: the code dependencies start here
    reads: tuple[str, ...]  # config keys; {model} is the run's model as the config names it
    needs: tuple[tuple[str, str], ...] = ()  # (rule, output) of the steps before it
    per_run: bool = True
    per_ensemble: bool = False  # one instance per ensemble (``run`` is the ensemble's name)
    per_dataset: bool = True  # else once, across the data sets of ``datasets``
    target: bool = True  # part of the default run (rule all, dvc.yaml); else on request only
    # config keys it reads that cannot change its outputs (how to fetch, not what): in its
    # command, never its params, so that changing them reruns nothing
    untracked: tuple[str, ...] = ()


STEPS = (
    Step(
        "download_data",
        "download",
        "download",
        ("mnistbench.data.download", "mnistbench.data.local", "mnistbench.data.synthetic"),
        ("dataset", "data.source", "data.local_dir", "data.synthetic"),
        per_run=False,
        untracked=("data.mirrors", "data.download_retries", "data.download_timeout_s")
        + ("data.download_backoff_s",),
    ),
    Step(
        "prepare_data",
        "prepare",
        "prepare",
        ("mnistbench.data.prepare",),
        ("dataset", "data.val_size", "data.split_seed"),
        tuple(("download_data", key) for key in OUTPUTS["download_data"]),
        per_run=False,
    ),
    Step(
        "train_model",
        "train",
        "train",
        ("mnistbench.train.recipe",),
        ("dataset", "train", "models.{model}", "seeds"),
        (("prepare_data", "train"), ("prepare_data", "val"), ("prepare_data", "stats")),
        untracked=("loggers",),  # how training is watched, not what it produces
    ),
    Step(
        "evaluate_model",
        "evaluate",
        "evaluate",
        ("mnistbench.evaluate.scores",),
        ("dataset", "evaluate"),
        (("train_model", "ckpt"), ("prepare_data", "test"), ("prepare_data", "val"))
        + (("prepare_data", "stats"),),
    ),
    Step(
        "build_ensemble",
        "ensemble",
        "ensemble",
        ("mnistbench.evaluate.ensemble",),
        ("dataset", "ensemble"),
        # every run's predictions (seconds of work: one stage per ensemble in dvc.yaml's foreach)
        (("evaluate_model", "val_predictions"), ("evaluate_model", "predictions"))
        + (("evaluate_model", "metrics"), ("train_model", "summary")),
        per_run=False,
        per_ensemble=True,
    ),
    Step(
        "build_report",
        "report",
        "report",
        ("mnistbench.reporting",),  # reads the whole config: the provenance records it
        ("dataset", "data", "train", "only", "seeds", "models", "loggers", "evaluate")
        + ("ensemble", "report", "tune"),
        # per run: its published files; then the test split (gallery) and the data's digests
        tuple(("train_model", key) for key in ("summary", "metrics", "config"))
        + (("evaluate_model", "metrics"), ("evaluate_model", "predictions"))
        + (("build_ensemble", "metrics"), ("build_ensemble", "predictions"))
        + (("prepare_data", "test"), ("download_data", "manifest")),
        per_run=False,
    ),
    Step(
        "summarize_datasets",
        "summarize",
        "summarize",
        ("mnistbench.reporting.datasets",),
        ("datasets",),
        (("build_report", "csv"),),
        per_run=False,
        per_dataset=False,
    ),
    Step(
        "tune_model",
        "tune",
        "tune",
        ("mnistbench.train.tune",),
        ("dataset", "train", "models.{model}", "seeds", "tune"),
        (("prepare_data", "train"), ("prepare_data", "val"), ("prepare_data", "stats")),
        target=False,
    ),
    Step(
        "export_model",
        "export",
        "export",
        ("mnistbench.use.export",),
        (),
        (("train_model", "ckpt"), ("prepare_data", "test"), ("prepare_data", "stats")),
        target=False,
    ),
)
STEP = {step.rule: step for step in STEPS}


@dataclass(frozen=True)
class Stage:
    """One stage instance: what both orchestrators run and track for it."""

    step: Step
    dataset: str | None  # None: once across the data sets
    # the run (a model, or a seed or sweep point of one), or the ensemble; None: once per data set
    run: str | None
    argv: tuple[str, ...]  # mnistbench <stage> ...
    code: tuple[str, ...]
    deps: dict[str, list[str]]  # name -> data files
    params: dict[str, Any]  # config key -> its value in the config files (and overrides)
    outs: dict[str, str]

    @property
    def rule(self) -> str:
        return self.step.rule

    def command(self) -> str:
        """The shell command (``python -m mnistbench``: no installation needed with src/)."""
        return shlex.join(["python", "-m", *self.argv])


def base_model(raw: Mapping[str, Any], run: str) -> str:
    """The model under ``models:`` in the config files that a run comes from (``cnn`` for
    ``cnn-seed2`` or ``cnn-max_lr0.01``): its params are that model's key."""
    names = [m for m in (raw.get("models") or {}) if run == m or run.startswith(f"{m}-")]
    if not names:
        raise KeyError(f"run {run!r} comes from no model under `models:` of the config files")
    return max(names, key=len)


def stages(
    config: Mapping[str, Any],
    raw: Mapping[str, Any],
    config_files: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
) -> list[Stage]:
    """Every stage instance of a run, in pipeline order.

    ``config`` is validated (runs expanded), ``raw`` the config files merged (with the overrides)
    as written, whose keys are the params; ``config_files`` and ``overrides`` (Snakemake's
    ``--config``; each stage gets the part under its keys) go into the commands. With
    ``datasets``, every stage of a data set is told its name (``--set {"dataset": ...}``, its
    ``dataset`` param) and one summary stage follows them all."""
    several = bool(config.get("datasets"))
    datasets, runs = dataset_names(config), list(config["models"])
    combined = list(ensembles(config))
    out = []
    for step in (s for s in STEPS if s.per_dataset or several):
        sets = datasets if step.per_dataset else [None]
        names = runs if step.per_run else combined if step.per_ensemble else [None]
        for dataset, run in product(sets, names):
            arch = architecture(config, run) if step.per_run else None
            reads = [
                k.format(model=base_model(raw, run)) if step.per_run else k for k in step.reads
            ]
            # the keys whose overrides its command passes on; a stage of one run or ensemble
            # also gets those that say which runs exist, to find its own (`--config seeds=...`)
            passed = restrict(
                overrides or {}, [*reads, *step.untracked, *(RUN_KEYS if run else ())]
            )
            params = {key: key_value(raw, key) for key in reads}
            if several and "dataset" in reads:  # one of several data sets: named in its command
                passed["dataset"] = params["dataset"] = dataset
            argv = _argv(step, run, dataset or "", config_files, passed)
            code = tuple(code_files(step.modules, arch))
            deps = _deps(step, dataset, run, runs, datasets, combined)
            outs = outputs(step.rule, dataset or "", run)
            out.append(Stage(step, dataset, run, argv, code, deps, params, outs))
    return out


def _argv(
    step: Step, run: str | None, dataset: str, files: Sequence[str], overrides: Mapping[str, Any]
) -> tuple[str, ...]:
    if step.rule == "export_model":  # a trained model in, an ONNX file out
        ins = {name: path for name, (path,) in _deps(step, dataset, run, [run], []).items()}
        outs = outputs(step.rule, dataset, run)
        model_dir = os.path.dirname(ins["train_ckpt"])
        paths = ("--out", outs["onnx"], "--report", outs["check"])
        return ("mnistbench", "export", model_dir, *paths, "--test-data", ins["prepare_test"])
    argv = ["mnistbench", step.command, "--configfile", *files]
    if overrides:
        argv += ["--set", json.dumps(overrides, sort_keys=True, separators=(",", ":"))]
    option = "--ensemble" if step.per_ensemble else "--model"
    return tuple(argv + ([option, run] if run else []))


def _deps(
    step: Step,
    dataset: str | None,
    run: str | None,
    runs: Sequence[str],
    sets: Sequence[str],
    combined: Sequence[str] = (),
) -> dict[str, list[str]]:
    """Data files by name (``<step>_<output>``, e.g. ``prepare_train``): per-run outputs of the
    stage's own run, or of every run for an ensemble or a stage that comes once; per-ensemble
    outputs of every ensemble; those of the stage's data set, or of every data set for the
    summary across them."""
    deps: dict[str, list[str]] = {}
    for rule, key in step.needs:
        if STEP[rule].per_run:
            sources: Sequence[str | None] = [run] if step.per_run else runs
        elif STEP[rule].per_ensemble:
            sources = combined
        else:
            sources = [None]
        where = [dataset] if dataset is not None else sets
        if sources:
            deps[f"{STEP[rule].dvc}_{key}"] = [
                outputs(rule, d, r)[key] for d in where for r in sources
            ]
    return deps
