# Config validation, then the helpers and input functions the rules use. Rules stay declarative.
import json
import os
import re
import shlex
import sys

# The workflow runs its own package source (src/), in this process and in every job, so a copy
# of the project is self-contained. Only pyyaml and jsonschema are needed to parse the workflow.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
# (shell commands are formatted by Snakemake: the doubled braces are a literal ${...})
shell.prefix(f"export PYTHONPATH={SRC!r}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

from mnistbench.config import (
    architecture_file,
    deep_merge,
    model_names,
    resolve_model,
    retype_cli_values,
    validate_config,
)
from mnistbench.devices import train_gpus
from mnistbench.errors import ConfigError

# Nested values given with --config (e.g. data='{val_size: 500}') arrive as strings: retype them
# (those of --config only; files given with --configfile are typed YAML already), then validate
# the whole config (JSON schema in workflow/schemas/, defaults, cross-key checks).
_cli = getattr(getattr(workflow, "config_settings", None), "config", None) or {}
try:
    _validated = validate_config(deep_merge(config, retype_cli_values(_cli)))
except ConfigError as exc:  # the message names the key: no traceback needed
    sys.exit(f"mnistbench error: {exc}")
config.clear()
config.update(_validated)

DATASET = config["dataset"]
MODELS = model_names(config)
PACKAGE = os.path.relpath(os.path.join(SRC, "mnistbench"))


wildcard_constraints:
    dataset=r"[A-Za-z0-9_-]+",
    model=r"[A-Za-z0-9_.-]+",


def package_file(name):
    """A module of the package, listed as an input so that editing it reruns its step."""
    return os.path.join(PACKAGE, name)


def model_settings(wildcards):
    """The model's resolved training settings: a change reruns this model's jobs only."""
    return json.dumps(resolve_model(config, wildcards.model), sort_keys=True)


def train_threads(wildcards):
    """Threads of one train job: the cores shared out among the train jobs, so that on a small
    machine they run side by side. Two one-thread jobs do twice the work of one; one job gains
    only 1.4-1.8x from a second thread (benchmarks/roofline.py, docs/speed.md)."""
    return max(1, workflow.cores // max(1, len(MODELS)))


def gpus_of(wildcards):
    """The train job's `gpu` resource: `--resources gpu=1` then runs one GPU job at a time, and
    the SLURM profile asks the scheduler for GPUs. Decided here, without importing torch."""
    return train_gpus(resolve_model(config, wildcards.model))


def model_code(wildcards):
    return os.path.relpath(architecture_file(resolve_model(config, wildcards.model)["arch"]))


def model_dir(wildcards):
    return f"results/{wildcards.dataset}/models/{wildcards.model}"


def data_identity(wildcards):
    """Where the raw data come from: the official files (downloaded or copied) or generated."""
    data = config["data"]
    if data["source"] == "synthetic":
        syn = data["synthetic"]
        return (
            f"--source synthetic --n-train {syn['n_train']} --n-test {syn['n_test']}"
            f" --seed {syn['seed']}"
        )
    if data["local_dir"]:
        return f"--source mnist --local-dir {shlex.quote(data['local_dir'])}"
    return "--source mnist"


def fetch_settings(wildcards):
    """How downloads are made. Being a parameter, changing it re-downloads (like any parameter)."""
    data = config["data"]
    mirrors = " ".join(shlex.quote(m) for m in data["mirrors"])
    return (
        f"--mirrors {mirrors} --retries {data['download_retries']}"
        f" --timeout {data['download_timeout_s']} --backoff {data['download_backoff_s']}"
    )


def failed_models(logfiles):
    """Models whose train or evaluate job failed, from Snakemake's log: name -> status."""
    text = ""
    for path in logfiles if isinstance(logfiles, (list, tuple)) else [logfiles]:
        if path and os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                text += fh.read()
    job_log = re.compile(
        rf"log: (logs/{re.escape(DATASET)}/(?:train|evaluate)_model/([A-Za-z0-9_-]+)\.log)"
    )
    failed = {}
    blocks = text.split("Error in rule ")
    for block in blocks[1:]:
        found = job_log.search(block.split("\n\n")[0])
        if found and found.group(2) in MODELS:
            failed[found.group(2)] = f"failed (see {found.group(1)})"
    return failed


def partial_report(logfiles):
    """The comparison after a failed run: failed models listed as failed, not left out."""
    failed = failed_models(logfiles)
    if not failed:
        return  # no model failed (e.g. the data step): the last complete table still holds
    out = f"results/{DATASET}"
    for model in MODELS:  # a model never reached (the run stopped first) has no result either
        done = all(
            os.path.exists(f"{out}/models/{model}/{f}") for f in ("summary.json", "test/metrics.json")
        )
        if not done and model not in failed:
            failed[model] = "not run (an earlier step failed)"
    dirs = " ".join(shlex.quote(f"{out}/models/{m}") for m in MODELS)
    states = " ".join(shlex.quote(f"{m}={s}") for m, s in failed.items())
    log_path = f"logs/{DATASET}/build_report.log"
    if os.path.exists(f"{out}/summary.json"):  # the one-line summary of a complete run only
        os.remove(f"{out}/summary.json")
    # shell() formats its command: the JSON's braces must be doubled to stay literal.
    run_config = shlex.quote(json.dumps(config, sort_keys=True)).replace("{", "{{").replace("}", "}}")
    try:
        shell(
            f"python workflow/scripts/report.py --model-dirs {dirs} --failed {states}"
            f" --csv {out}/comparison.csv --md {out}/comparison.md"
            f" --curves {out}/figures/learning_curves.png"
            f" --f1-params {out}/figures/f1_vs_params.png --f1-ci {out}/figures/f1_ci.png"
            f" --pareto {out}/figures/pareto.png --gallery {out}/figures/misclassified.png"
            f" --test data/{DATASET}/prepared/test.pt"
            f" --manifest data/{DATASET}/raw/manifest.json"
            f" --provenance-csv {out}/provenance.csv --provenance-json {out}/provenance.json"
            f" --seeds-csv {out}/seeds.csv"
            f" --run-config {run_config} > {log_path} 2>&1"
        )
        print(f"Failed models: {', '.join(failed)}; {out}/comparison.csv lists them as such.")
    except Exception as exc:  # never leave a table that hides the failure
        for name in ("comparison.csv", "comparison.md", "seeds.csv"):
            if os.path.exists(f"{out}/{name}"):
                os.remove(f"{out}/{name}")
        print(f"Could not write the partial comparison ({exc}; see {log_path}); removed the old one.")
