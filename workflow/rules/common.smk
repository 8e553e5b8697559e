# Config validation, then the stage table every rule takes its inputs, parameters and commands
# from (src/mnistbench/pipeline/table.py, which also writes dvc.yaml). Rules stay declarative.
import base64
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

from snakemake.exceptions import WorkflowError

# The workflow runs its own package source (src/), in this process and in every job, so a copy
# of the project is self-contained; without src/ it runs the installed package. Only pyyaml and
# jsonschema are needed to parse the workflow.
SRC = os.path.join(workflow.basedir, "src")
if os.path.isdir(SRC):
    sys.path.insert(0, SRC)
    # (shell commands are formatted by Snakemake: the doubled braces are a literal ${...})
    shell.prefix(f"export PYTHONPATH={SRC!r}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

from mnistbench.config.datasets import dataset_names
from mnistbench.config.load import (
    deep_merge,
    resolve_model,
    retype_cli_values,
    train_cost,
    validate_config,
)
from mnistbench.config.runs import ensembles
from mnistbench.errors import MnistbenchError
from mnistbench.pipeline import table as pipeline
from mnistbench.pipeline.paths import DIRECTORIES, OUTPUTS, partial_outputs
from mnistbench.pipeline.preflight import check_configfiles, check_local_dir
from mnistbench.pipeline.scheduling import thread_shares
from mnistbench.train.devices import train_gpus  # torch only inside its functions

# Nested values given with --config (e.g. data='{val_size: 500}') arrive as strings: retype them
# (those of --config only; files given with --configfile are typed YAML already), then validate
# the whole config (JSON schema in workflow/schemas/, defaults, cross-key checks). Before that, a
# target written after --configfile (read as a config file); after it, data.local_dir: a dry
# run refuses both, before any job replaces data/ (src/mnistbench/pipeline/preflight.py).
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
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores given: `snakemake --report`, which runs no job
        return 1
    return thread_shares(costs, cores)[(wildcards.dataset, wildcards.model)]


def train_priority(wildcards):
    """Costliest train jobs first (MACs per image x epochs): with fewer cores than jobs, the
    short jobs then fill in at the end instead of one long job running alone."""
    return train_cost(resolve_model(config, wildcards.model))


def gpus_of(wildcards):
    """The train job's `gpu` resource: `--resources gpu=1` then runs one GPU job at a time, and
    the SLURM profile asks the scheduler for GPUs. Decided here, without importing torch."""
    return train_gpus(resolve_model(config, wildcards.model))


def launcher(wildcards, resources):
    """What starts a train job's processes: nothing (the command itself, whose Lightning starts
    the other ranks), or the job's `mpi` resource, which a SLURM profile sets to `srun` with
    `tasks_per_node: <train.devices>`: srun then starts one process per task and Lightning finds
    its ranks in SLURM's environment (docs/cluster.md). The task count is passed on the command
    line: the SLURM plugin's job step hides the allocation's own. Untracked: reruns nothing."""
    mpi = resources.get("mpi")
    if not mpi:
        return Untracked("")
    if resources.get("tasks_per_node"):
        return Untracked(f"{mpi} --ntasks-per-node={resources.tasks_per_node} ")
    return Untracked(f"{mpi} --ntasks={resources.get('tasks', 1)} ")


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


SAID = ("mnistbench error:", "mnistbench: stopped")  # a job's own last words


def failed_jobs(logfiles):
    """(rule, job log, what the job said, outputs) of each job that failed or was stopped,
    from Snakemake's log: the job's `mnistbench error:` and `mnistbench: stopped` lines."""
    jobs = []
    for block in re.split(r"Error in rule\s", read_logs(logfiles))[1:]:
        head = block.split("\n\n")[0]
        found = re.search(r"^\s*log: ([^\s,]+)", head, re.M)  # then, on SLURM: ", <its log>"
        job_log = found.group(1) if found else None
        said = []
        if job_log and os.path.exists(job_log):
            with open(job_log, encoding="utf-8", errors="replace") as fh:
                said = [ln.rstrip() for ln in fh if ln.startswith(SAID)]
        found = re.search(r"^\s*output: (.+)$", head, re.M)
        outputs = found.group(1).split(", ") if found else []
        jobs.append((head.split(":", 1)[0].strip(), job_log, said, outputs))
    return jobs


def remove_outputs(paths):
    """The outputs a failed or stopped job did write: Snakemake leaves them, marked incomplete,
    when a signal stopped it, and the next plain run would refuse them (IncompleteFilesException)
    instead of redoing the job. Each was written whole (mnistbench.io), but the set is not."""
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def marked_incomplete():
    """The files Snakemake still marks incomplete (its .snakemake/incomplete/ records, named
    by the path in URL-safe base64, split into '@'-prefixed parts when long).

    A job whose process ended just as Snakemake was stopped is never recorded as finished:
    its outputs stay marked although no "Error in rule" names it."""
    root = os.path.join(".snakemake", "incomplete")
    for folder, _, names in os.walk(root):
        for name in names:
            parts = os.path.relpath(os.path.join(folder, name), root).split(os.sep)
            try:
                yield base64.urlsafe_b64decode("".join(p.lstrip("@") for p in parts)).decode()
            except ValueError:  # not a record (e.g. migration_underway)
                continue


def job_status(job_log, said):
    """A run's status in the partial comparison: stopped (resumable), diverged or failed."""
    if any(line.startswith("mnistbench: stopped") for line in said):
        return "stopped (the same command resumes it)"
    if any(line.startswith("mnistbench error:") and "diverged" in line for line in said):
        return f"diverged (see {job_log})"
    return f"failed (see {job_log})"


def show_job_errors(jobs):
    """After a failed run: each failed job's `mnistbench error:` lines (what to fix), from its
    log to the terminal, where Snakemake shows only the log's path; and how to resume."""
    stopped = False
    for rule, job_log, said, _ in jobs:
        for line in said:
            if line.startswith("mnistbench error:"):
                print(f"{rule} ({job_log}): {line}", file=sys.stderr)
            else:
                stopped = True
    if stopped:
        command = shlex.join(["snakemake", *sys.argv[1:]])
        print(f"Stopped jobs resume (training from its last epoch): {command}", file=sys.stderr)


def failed_models(jobs, dataset):
    """Runs of ``dataset`` whose train or evaluate job failed or was stopped: name -> status."""
    where = re.escape(dataset)
    job_log = re.compile(rf"logs/{where}/(?:train|evaluate)_model/([A-Za-z0-9_.-]+)\.log")
    failed = {}
    for _rule, path, said, _ in jobs:
        found = job_log.fullmatch(path or "")
        if found and found.group(1) in MODELS:
            failed[found.group(1)] = job_status(path, said)
    return failed


def report_failure(logfiles):
    """onerror: what the failed jobs left removed, the partial comparisons, then what each
    failed job said and how to resume."""
    jobs = failed_jobs(logfiles)
    for *_, outputs in jobs:
        remove_outputs(outputs)
    ours = {path for s in STAGES.values() for path in s.outs.values()}
    remove_outputs(path for path in marked_incomplete() if path in ours)
    partial_report(jobs)
    show_job_errors(jobs)


def partial_report(jobs):
    """After a failed or stopped run, for each data set with a failed run: the comparison of
    what there is, every run listed (the failed ones with their status), in its own files
    (results/<dataset>/partial/). The report's own outputs are removed, never written here:
    Snakemake's record stays true, and the next run plans exactly the missing jobs."""
    for dataset in DATASETS:
        partial_report_of(jobs, dataset)


def partial_report_of(jobs, dataset):
    failed = failed_models(jobs, dataset)
    if not failed:
        return  # no run failed (e.g. the data step): the last complete table still holds
    for model in MODELS:  # a model never reached (the run stopped first) has no result either
        done = all(
            os.path.exists(STAGES[(rule, dataset, model)].outs[key])
            for rule, key in (("train_model", "summary"), ("evaluate_model", "metrics"))
        )
        if not done and model not in failed:
            failed[model] = "not run (an earlier step failed)"
    report_stage = STAGES[("build_report", dataset, None)]
    for path in report_stage.outs.values():  # an earlier comparison: not of these results
        if os.path.isfile(path):
            os.remove(path)
    partial, log_path = partial_outputs(dataset), f"logs/{dataset}/partial_report.log"
    argv = shlex.split(report_stage.command()) + ["--failed"]
    argv += [f"{model}={status}" for model, status in failed.items()]
    paths = [SRC, os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w") as log_file:
        written = subprocess.run(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    if written.returncode == 0:
        print(f"No result for {', '.join(failed)}: {partial['md']} compares the others.")
    else:
        print(f"Could not write the partial comparison (see {log_path}).")


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
