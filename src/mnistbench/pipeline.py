"""The pipeline, defined once: every stage of a run, with its command, code, data, params, outputs.

``stages(config, raw, config_files)`` lists the stage instances of a validated config (after
``only``, ``seeds`` and sweeps expanded it): per data set one download, one prepare, one train and
one evaluate per run, one report, and the on-request tune and export per run; with ``datasets``,
each of them, then one summary across them. Both orchestrators are driven
from this table: the Snakemake rules take their inputs, parameters and commands from it
(``workflow/rules/common.smk``) and ``mnistbench dvc-yaml`` writes ``dvc.yaml`` from it
(``mnistbench.dvc``); ``tests/test_pipeline.py`` checks that the two DAGs agree.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

from mnistbench.codedeps import code_files
from mnistbench.config import architecture
from mnistbench.data.manifest import MANIFEST_NAME, MNIST_FILES
from mnistbench.datasets import dataset_names

RUN = "results/{dataset}/models/{model}"
PREPARED = "data/{dataset}/prepared"

# Each stage's outputs by name, with the {dataset} and {model} wildcards of the Snakemake rules.
OUTPUTS: dict[str, dict[str, str]] = {
    "download_data": {
        **{key: f"data/{{dataset}}/raw/{name}" for key, (name, _) in MNIST_FILES.items()},
        "manifest": f"data/{{dataset}}/raw/{MANIFEST_NAME}",
    },
    "prepare_data": {
        **{split: f"{PREPARED}/{split}.pt" for split in ("train", "val", "test")},
        "stats": f"{PREPARED}/stats.json",
    },
    "train_model": {
        "ckpt": f"{RUN}/model.ckpt",
        "metrics": f"{RUN}/metrics.csv",
        "config": f"{RUN}/config.yaml",
        "summary": f"{RUN}/summary.json",
    },
    "evaluate_model": {
        "metrics": f"{RUN}/test/metrics.json",
        "confusion": f"{RUN}/test/confusion.csv",
        "confusion_png": f"{RUN}/test/confusion.png",
        "predictions": f"{RUN}/test/predictions.npz",
        # actual,predicted per test image: the long form DVC's confusion plot reads
        "predictions_csv": f"{RUN}/test/predictions.csv",
    },
    "build_report": {
        "csv": "results/{dataset}/comparison.csv",
        "md": "results/{dataset}/comparison.md",
        "seeds": "results/{dataset}/seeds.csv",
        "summary": "results/{dataset}/summary.json",
        "curves": "results/{dataset}/figures/learning_curves.png",
        "f1_params": "results/{dataset}/figures/f1_vs_params.png",
        "f1_ci": "results/{dataset}/figures/f1_ci.png",
        "pareto": "results/{dataset}/figures/pareto.png",
        "gallery": "results/{dataset}/figures/misclassified.png",
        "provenance_csv": "results/{dataset}/provenance.csv",
        "provenance_json": "results/{dataset}/provenance.json",
    },
    "summarize_datasets": {"csv": "results/datasets.csv", "md": "results/datasets.md"},
    "export_model": {"onnx": f"{RUN}/export/model.onnx", "check": f"{RUN}/export/check.json"},
    "tune_model": {
        "suggestion": f"{RUN}/tune/suggestion.json",
        "plot": f"{RUN}/tune/lr_finder.png",
    },
}


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
    per_dataset: bool = True  # else once, across the data sets of ``datasets``
    target: bool = True  # part of the default run (rule all, dvc.yaml); else on request only
    # config keys it also reads that cannot change its outputs (how to fetch, not what): they
    # reach its command, never its params, so that changing them reruns nothing
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
        ("mnistbench.training",),
        ("dataset", "train", "models.{model}", "seeds"),
        (("prepare_data", "train"), ("prepare_data", "val"), ("prepare_data", "stats")),
    ),
    Step(
        "evaluate_model",
        "evaluate",
        "evaluate",
        ("mnistbench.evaluation",),
        ("dataset", "evaluate"),
        (("train_model", "ckpt"), ("prepare_data", "test"), ("prepare_data", "stats")),
    ),
    Step(
        "build_report",
        "report",
        "report",
        ("mnistbench.reporting",),
        # the whole config: the provenance records it
        ("dataset", "data", "train", "only", "seeds", "models", "evaluate", "report", "tune"),
        # per run: its published files; then the test split (gallery) and the data's digests
        tuple(("train_model", key) for key in ("summary", "metrics", "config"))
        + (("evaluate_model", "metrics"), ("evaluate_model", "predictions"))
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
        ("mnistbench.tuning",),
        ("dataset", "train", "models.{model}", "seeds", "tune"),
        (("prepare_data", "train"), ("prepare_data", "val"), ("prepare_data", "stats")),
        target=False,
    ),
    Step(
        "export_model",
        "export",
        "export",
        ("mnistbench.export",),
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
    run: str | None  # the run (a model, or a seed or sweep point of one); None: once per data set
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


def outputs(rule: str, dataset: str, run: str | None = None) -> dict[str, str]:
    return {k: v.format(dataset=dataset, model=run) for k, v in OUTPUTS[rule].items()}


def base_model(raw: Mapping[str, Any], run: str) -> str:
    """The model under ``models:`` in the config files that a run comes from (``cnn`` for
    ``cnn-seed2`` or ``cnn-max_lr0.01``): its params are that model's key."""
    names = [m for m in (raw.get("models") or {}) if run == m or run.startswith(f"{m}-")]
    if not names:
        raise KeyError(f"run {run!r} comes from no model under `models:` of the config files")
    return max(names, key=len)


MISSING = object()


def key_value(tree: Mapping[str, Any], dotted: str, missing: Any = None) -> Any:
    """The value of a dotted key (``models.cnn``) in a config tree; ``missing`` if it has none."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return missing
        node = node[part]
    return node


def restrict(overrides: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The part of ``overrides`` under ``keys`` (dotted), as a nested mapping."""
    out: dict[str, Any] = {}
    for key in keys:
        value = key_value(overrides, key, MISSING)
        if value is MISSING:
            continue
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


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
    out = []
    for step in (s for s in STEPS if s.per_dataset or several):
        sets, names = datasets if step.per_dataset else [None], runs if step.per_run else [None]
        for dataset, run in product(sets, names):
            arch = architecture(config, run) if run else None
            reads = [k.format(model=base_model(raw, run)) if run else k for k in step.reads]
            # the keys whose overrides its command passes on
            passed = restrict(overrides or {}, [*reads, *step.untracked])
            params = {key: key_value(raw, key) for key in reads}
            if several and "dataset" in reads:  # one of several data sets: named in its command
                passed["dataset"] = params["dataset"] = dataset
            argv = _argv(step, run, dataset or "", config_files, passed)
            code = tuple(code_files(step.modules, arch))
            deps = _deps(step, dataset, run, runs, datasets)
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
    return tuple(argv + (["--model", run] if run else []))


def _deps(
    step: Step, dataset: str | None, run: str | None, runs: Sequence[str], sets: Sequence[str]
) -> dict[str, list[str]]:
    """Data files by name (``<step>_<output>``, e.g. ``prepare_train``): per-run outputs of the
    stage's own run, or of every run for a stage that comes once; those of the stage's data set,
    or of every data set for the summary across them."""
    deps: dict[str, list[str]] = {}
    for rule, key in step.needs:
        sources = ([run] if run else runs) if STEP[rule].per_run else [None]
        name, where = f"{STEP[rule].dvc}_{key}", [dataset] if dataset is not None else sets
        deps[name] = [outputs(rule, ds, r)[key] for ds in where for r in sources]
    return deps
