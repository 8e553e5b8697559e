# Config validation, then the stage table every rule takes its inputs, parameters and commands
# from (src/mnistbench/pipeline.py, which also writes dvc.yaml). Rules stay declarative.
import copy
import json
import os
import re
import shlex
import sys

# The workflow runs its own package source (src/), in this process and in every job, so a copy
# of the project is self-contained; without src/ it runs the installed package. Only pyyaml and
# jsonschema are needed to parse the workflow.
SRC = os.path.join(workflow.basedir, "src")
if os.path.isdir(SRC):
    sys.path.insert(0, SRC)
    # (shell commands are formatted by Snakemake: the doubled braces are a literal ${...})
    shell.prefix(f"export PYTHONPATH={SRC!r}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

from mnistbench import pipeline
from mnistbench.datasets import dataset_names
from mnistbench.config import (
    deep_merge,
    resolve_model,
    retype_cli_values,
    train_cost,
    validate_config,
)
from mnistbench.devices import train_gpus
from mnistbench.errors import MnistbenchError
from mnistbench.paths import DIRECTORIES, OUTPUTS
from mnistbench.preflight import check_configfiles, check_local_dir
from mnistbench.runs import ensembles
from mnistbench.scheduling import thread_shares

# Nested values given with --config (e.g. data='{val_size: 500}') arrive as strings: retype them
# (those of --config only; files given with --configfile are typed YAML already), then validate
# the whole config (JSON schema in workflow/schemas/, defaults, cross-key checks). Before that, a
# target written after --configfile (read as a config file); after it, data.local_dir: a dry
# run refuses both, before any job replaces data/ (src/mnistbench/preflight.py).
_settings = getattr(workflow, "config_settings", None)
OVERRIDES = retype_cli_values(getattr(_settings, "config", None) or {})
RAW = deep_merge(config, OVERRIDES)  # as written in the files: the params of every stage
try:
    check_configfiles(getattr(_settings, "configfiles", None) or [])
    _validated = validate_config(copy.deepcopy(RAW))
    for _name in dataset_names(_validated):
        check_local_dir({**_validated, "dataset": _name}, pipeline.outputs("download_data", _name))
except MnistbenchError as exc:  # the message names the key or file: no traceback needed
    sys.exit(f"mnistbench error: {exc}")
config.clear()
config.update(_validated)

# The config files in the order Snakemake merges them: the Snakefile's, then --configfile's.
CONFIG_FILES = list(
    dict.fromkeys(
        ["config/config.yaml"]
        + [os.path.relpath(f) for f in (getattr(_settings, "configfiles", None) or [])]
    )
)
DATASETS = dataset_names(config)
MODELS = list(config["models"])
ENSEMBLES = list(ensembles(config))
STAGES = {
    (s.rule, s.dataset, s.run): s
    for s in pipeline.stages(config, RAW, CONFIG_FILES, OVERRIDES)
}
# The HTML report: that of the data set, or of them all (datasets).
REPORT_HTML = f"results/{DATASETS[0]}/report.html" if len(DATASETS) == 1 else "results/report.html"
# The default targets: each data set's comparison, then the summary across them (datasets).
TARGETS = [
    s.outs[key]
    for s in STAGES.values()
    for key in ("csv", "md")
    if s.rule in ("build_report", "summarize_datasets")
]


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    model="|".join(re.escape(m) for m in MODELS),
    ensemble="|".join(re.escape(e) for e in ENSEMBLES) or "(?!)",


def stage(rule, wildcards):
    """The stage of a job: by rule, data set and run (a model, or an ensemble)."""
    run = wildcards.get("model") or wildcards.get("ensemble")
    return STAGES[(rule, wildcards.get("dataset"), run)]


def outputs(rule, **reported):
    """The rule's outputs from the stage table; those in ``reported`` (name: caption file,
    category, labels) are flagged for the HTML report."""
    paths = dict(OUTPUTS[rule])
    for name in paths:
        if (rule, name) in DIRECTORIES:
            paths[name] = directory(paths[name])
    for name, (caption, category, labels) in reported.items():
        paths[name] = report(
            paths[name], caption=f"../report/{caption}", category=category, labels=labels
        )
    return paths


def by_content(path):
    """Rerun by content, not by file time: the raw IDX files and the prepared splits count as
    ancient, while the small files that hold their sha256s (manifest.json, stats.json) are
    compared by content (Snakemake checksums small inputs). prepare_data being a checkpoint,
    Snakemake decides the later jobs again once it has run: the same data again retrain
    nothing (docs/troubleshooting.md, "What a change reruns")."""
    return ancient(path) if path.endswith((".gz", ".pt")) else path


def inputs(rule):
    """Input function: the stage's data files by name, and its code (editing it reruns it)."""

    def named(wildcards):
        deps = stage(rule, wildcards).deps
        files = {name: [by_content(p) for p in paths] for name, paths in deps.items()}
        return {**files, "code": stage(rule, wildcards).code}

    return named


class Untracked:
    """A parameter that Snakemake does not track. Its text goes into the shell command, but
    changing it reruns nothing (the params trigger records values of builtin types only;
    tests/test_faults_inputs.py checks it)."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


def command(rule):
    """The stage's `mnistbench <stage>` command. Not a rerun trigger: what the stage reads is
    the `config` parameter (the values of its config keys), while the command only says where
    to find them, with the overrides of keys that cannot change a result (how to fetch)."""
    return lambda wildcards: Untracked(stage(rule, wildcards).command())


def config_params(rule):
    """The config keys the stage reads and their values: a change reruns the stage."""
    return lambda wildcards: json.dumps(stage(rule, wildcards).params, sort_keys=True)


def train_threads(wildcards):
    """Threads of one train job: the cores shared among the train jobs by their cost, so that
    the costliest get several threads and no long job ends the run alone on one thread while
    cores idle, and the small ones one thread each, side by side (scheduling.thread_shares)."""
    costs = {
        (dataset, model): train_cost(resolve_model(config, model))
        for dataset in DATASETS
        for model in MODELS
    }
    return thread_shares(costs, workflow.cores)[(wildcards.dataset, wildcards.model)]


def train_priority(wildcards):
    """Costliest train jobs first (MACs per image x epochs): with fewer cores than jobs, the
    short jobs then fill in at the end instead of one long job running alone."""
    return train_cost(resolve_model(config, wildcards.model))


def gpus_of(wildcards):
    """The train job's `gpu` resource: `--resources gpu=1` then runs one GPU job at a time, and
    the SLURM profile asks the scheduler for GPUs. Decided here, without importing torch."""
    return train_gpus(resolve_model(config, wildcards.model))


def forward_stop_signals():
    """SIGTERM (what schedulers and `kill` send) and SIGINT to Snakemake reach its jobs too.

    Snakemake answers SIGTERM by waiting for the running jobs to finish, and a SIGINT sent to
    its process alone reaches no job: a train job would go on for hours. Here both signals are
    passed on to every process Snakemake started; `mnistbench <stage>` then stops within a
    batch and keeps its resumable checkpoint (src/mnistbench/signals.py), and Snakemake's own
    handling follows (the stopped jobs fail, so the next run redoes them). Called on start,
    once Snakemake has set its handlers."""
    import signal

    import psutil

    def forward(signum, frame, previous):
        for child in psutil.Process().children(recursive=True):
            try:
                child.send_signal(signum)
            except psutil.Error:  # already gone
                pass
        if callable(previous):
            previous(signum, frame)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        signal.signal(signum, lambda n, f, p=previous: forward(n, f, p))


def read_logs(logfiles):
    """The text of Snakemake's log file(s) of this run (onerror's `log`)."""
    text = ""
    for path in logfiles if isinstance(logfiles, (list, tuple)) else [logfiles]:
        if path and os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                text += fh.read()
    return text


def show_job_errors(logfiles):
    """After a failed run: each failed job's `mnistbench error:` lines (what to fix), from its
    log to the terminal, where Snakemake shows only the log's path."""
    for block in re.split(r"Error in rule\s", read_logs(logfiles))[1:]:
        head = block.split("\n\n")[0]
        job_log = re.search(r"^\s*log: (\S+)", head, re.M)
        if not job_log or not os.path.exists(job_log.group(1)):
            continue
        with open(job_log.group(1), encoding="utf-8", errors="replace") as fh:
            errors = [line.rstrip() for line in fh if line.startswith("mnistbench error:")]
        for line in errors:
            print(f"{head.split(':', 1)[0]} ({job_log.group(1)}): {line}", file=sys.stderr)


def failed_models(logfiles, dataset):
    """Models whose train or evaluate job on ``dataset`` failed, from Snakemake's log: name ->
    status."""
    text = read_logs(logfiles)
    job_log = re.compile(
        rf"log: (logs/{re.escape(dataset)}/(?:train|evaluate)_model/([A-Za-z0-9_.-]+)\.log)"
    )
    failed = {}
    for block in re.split(r"Error in rule\s", text)[1:]:
        found = job_log.search(block.split("\n\n")[0])
        if found and found.group(2) in MODELS:
            failed[found.group(2)] = f"failed (see {found.group(1)})"
    return failed


def partial_report(logfiles):
    """The comparison of each data set after a failed run: failed models listed as failed, not
    left out."""
    for dataset in DATASETS:
        partial_report_of(logfiles, dataset)


def partial_report_of(logfiles, dataset):
    failed = failed_models(logfiles, dataset)
    if not failed:
        return  # no model failed (e.g. the data step): the last complete table still holds
    for model in MODELS:  # a model never reached (the run stopped first) has no result either
        done = all(
            os.path.exists(STAGES[(rule, dataset, model)].outs[key])
            for rule, key in (("train_model", "summary"), ("evaluate_model", "metrics"))
        )
        if not done and model not in failed:
            failed[model] = "not run (an earlier step failed)"
    stage = STAGES[("build_report", dataset, None)]
    outs = stage.outs
    log_path = f"logs/{dataset}/build_report.log"
    if os.path.exists(outs["summary"]):  # the one-line summary of a complete run only
        os.remove(outs["summary"])
    states = " ".join(shlex.quote(f"{m}={s}") for m, s in failed.items())
    cmd = stage.command()
    try:  # shell() formats its command: braces (of --set JSON) must be doubled to stay literal
        shell(f"{cmd} --failed {states} > {log_path} 2>&1".replace("{", "{{").replace("}", "}}"))
        print(f"Failed models: {', '.join(failed)}; {outs['csv']} lists them as such.")
    except Exception as exc:  # never leave a table that hides the failure
        for name in ("csv", "md", "seeds"):
            if os.path.exists(outs[name]):
                os.remove(outs[name])
        print(f"Could not write the partial comparison ({exc}; see {log_path}); removed the old one.")


def report_command():
    """The command that builds this run's HTML report: the same config files and --config."""
    args = ["snakemake", "--report", REPORT_HTML]
    if CONFIG_FILES[1:]:
        args += ["--configfile", *CONFIG_FILES[1:]]
    if OVERRIDES:
        args += ["--config", *(f"{k}={json.dumps(v)}" for k, v in OVERRIDES.items())]
    return shlex.join(args)


def show_comparison():
    """At the end of a successful run: for each data set whose comparison was built (and no
    model scored since), its top rows, and where the whole table and the HTML report are."""
    import pandas as pd

    from mnistbench.reporting.display import closing

    for dataset in DATASETS:
        outs = STAGES[("build_report", dataset, None)].outs
        scored = [STAGES[("evaluate_model", dataset, m)].outs["metrics"] for m in MODELS]
        if not os.path.exists(outs["csv"]) or any(
            os.path.exists(p) and os.path.getmtime(p) > os.path.getmtime(outs["csv"])
            for p in scored
        ):
            continue
        paths = {"md": outs["md"], "report": REPORT_HTML, "report_command": report_command()}
        table = pd.read_csv(outs["csv"])
        title = f"On {dataset}:\n" if len(DATASETS) > 1 else ""
        print(f"\n{title}{closing(table, config, paths)}", flush=True)
