"""dvc.yaml, written from the pipeline table: ``mnistbench dvc-yaml > dvc.yaml``.

The stages are those of ``mnistbench.pipeline.table`` for the config files given (default
``config/config.yaml``, DVC's params file; later files are overlays merged over it), so that
``seeds``, ``only`` and sweeps work under ``dvc repro`` as under Snakemake: one ``train@<run>``
and ``evaluate@<run>`` per run (a ``foreach`` over the runs), one ``ensemble@<name>`` per
ensemble (each reads every run's predictions, so that one ``foreach`` holds them all). Each
stage lists the config keys it reads as params of the params file (``dvc exp run -S``,
``dvc params diff``), its code and data as deps, and an overlay file as a whole. Regenerate
after changing the models, ``only``, ``seeds``, a sweep or the dataset; the committed dvc.yaml
is that of config/config.yaml.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mnistbench.config.keys import MISSING, key_value
from mnistbench.config.load import architecture, load_config, validate_config
from mnistbench.errors import ConfigError
from mnistbench.pipeline.table import STEPS, Stage, base_model, stages

PARAMS_FILE = "config/config.yaml"
# DVC runs the project's own package source, as the Snakemake jobs do.
PREFIX = "PYTHONPATH=src "
METRICS = {
    ("train_model", "live_metrics"),
    ("evaluate_model", "metrics"),
    ("build_report", "summary"),
}
PLOTS: dict[tuple[str, str], dict[str, str]] = {
    # DVCLive's per-step history of every logged metric, one file each
    ("train_model", "live_plots"): {"x": "step"},
    # validation F1 and loss per epoch (template: .dvc/plots/learning_curve.json)
    ("train_model", "metrics"): {
        "x": "epoch",
        "y": "val_f1",
        "template": "learning_curve",
        "title": "${key}: validation F1 and loss per epoch",
    },
    ("evaluate_model", "predictions_csv"): {
        "template": "confusion",
        "x": "actual",
        "y": "predicted",
        "title": "${key}: test confusion matrix",
    },
    ("build_report", "csv"): {
        "template": "scatter",
        "x": "params",
        "y": "test_f1",
        "title": "test F1 against parameters",
    },
}
HEADER = """\
# mnistbench as a DVC pipeline, written by `mnistbench dvc-yaml{args}`
# from the stage table that also drives the Snakemake rules (src/mnistbench/pipeline/table.py).
# Parameters live in {params}: each stage lists the keys it reads, and its code, so
# that a change reruns only what depends on it. Regenerate after changing the models, only,
# seeds, a sweep or the dataset (tests/test_pipeline.py checks this file against the generator).
#   dvc repro; dvc metrics show; dvc plots show; dvc push / dvc pull
"""


def has_key(tree: Mapping[str, Any], dotted: str) -> bool:
    return key_value(tree, dotted, MISSING) is not MISSING


def dvc_yaml(files: Sequence[str] = (PARAMS_FILE,)) -> str:
    """The text of dvc.yaml for the config files (the first one is DVC's params file)."""
    files = [str(f) for f in files]
    raw = load_config(*files)
    config = validate_config(copy.deepcopy(raw))
    if config["datasets"]:
        raise ConfigError(
            f"datasets: {config['datasets']}: dvc.yaml describes one data set; run several with "
            "Snakemake, or write one dvc.yaml per data set (`dataset` set, `datasets` empty)"
        )
    in_params_file = load_config(files[0])
    table = [s for s in stages(config, raw, files) if s.step.target]
    body: dict[str, Any] = {}
    for step in (s for s in STEPS if s.target):
        instances = [s for s in table if s.step is step]
        if not instances:  # no ensemble without seeds or ensemble.across; no summary here
            continue
        if not step.per_run and not step.per_ensemble:
            body[step.dvc] = _render(instances[0], files, in_params_file)
            continue
        items = {
            s.run: (
                {"model": base_model(raw, s.run), "arch": architecture(config, s.run)}
                if step.per_run
                else {"ensemble": s.run}
            )
            for s in instances
        }
        rendered = [_render(s, files, in_params_file, items[s.run]) for s in instances]
        if any(r != rendered[0] for r in rendered):  # a run's stage differs in more than names
            raise ConfigError(f"the {step.dvc} stages of the runs differ: {sorted(items)}")
        body[step.dvc] = {"foreach": items, "do": rendered[0]}
    args = "" if files == [PARAMS_FILE] else " --configfile " + " ".join(files)
    text = yaml.safe_dump({"stages": body}, sort_keys=False, width=100)
    return HEADER.format(args=args, params=files[0]) + "\n" + text


def _render(
    stage: Stage,
    files: Sequence[str],
    in_params_file: Mapping[str, Any],
    item: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One stage of dvc.yaml; with ``item`` (the run's model and arch), as the ``do:`` of a
    foreach, its names replaced by DVC's ``${key}``, ``${item.model}`` and ``${item.arch}``."""

    def sub(text: str) -> str:
        if item is None:
            return text
        if stage.step.per_ensemble:
            return text.replace(f"/ensembles/{stage.run}/", "/ensembles/${key}/")
        text = text.replace(f"/models/{stage.run}/", "/models/${key}/")
        text = re.sub(rf"/models/{re.escape(item['arch'])}\.py$", "/models/${item.arch}.py", text)
        return "models.${item.model}" if text == f"models.{item['model']}" else text

    for key in stage.params:
        if key.startswith("models.") and not has_key(in_params_file, key):
            raise ConfigError(f"{key} is not in {files[0]}, DVC's params file: define it there")
    argv = ["${key}" if item and a == stage.run else sub(a) for a in stage.argv]
    data = [p for paths in stage.deps.values() for p in paths]
    out: dict[str, Any] = {
        "cmd": PREFIX + " ".join(_quote(a) for a in ["python", "-m", *argv]),
        "deps": [sub(p) for p in [*stage.code, *data, *files[1:]]],
        "params": [{files[0]: [sub(k) for k in stage.params if has_key(in_params_file, k)]}],
    }
    for key, path in stage.outs.items():
        if (stage.rule, key) in METRICS:
            out.setdefault("metrics", []).append(sub(path))
        elif (stage.rule, key) in PLOTS:
            out.setdefault("plots", []).append({sub(path): dict(PLOTS[(stage.rule, key)])})
        else:
            out.setdefault("outs", []).append(sub(path))
    return out


def _quote(arg: str) -> str:
    """Shell quoting that leaves DVC's ``${...}`` readable (DVC substitutes it first)."""
    return arg if re.fullmatch(r"[\w@%+=:,./${}-]+", arg) else shlex.quote(arg)


# ------------------------------------------------------- an overlay as `dvc exp run -S` options


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(_leaves(value, path + "."))
        else:
            out.append((path, value))
    return out


def _value(path: str, value: Any) -> str:
    """A Hydra override value: JSON for lists and mappings, YAML-style scalars otherwise."""
    if isinstance(value, list | dict):
        text = json.dumps(value, separators=(",", ":"))
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    else:
        text = str(value)
    if not text or re.search(r"[\s*?'\\$`]", text):
        raise ConfigError(
            f"{path} = {value!r} cannot be passed as one word to `dvc exp run -S`; "
            f"edit {PARAMS_FILE} directly instead"
        )
    return text


def overrides(overlay: str | Path, params_file: str = PARAMS_FILE) -> list[str]:
    """``-S file:++key=value`` for every leaf of the overlay (``++``: set or add the key): the
    overlay's values written into the params file by ``dvc exp run``. For overlays that keep the
    stages (hyperparameters); one that changes them needs ``mnistbench dvc-yaml`` instead."""
    args: list[str] = []
    for path, value in _leaves(load_config(overlay)):
        args += ["-S", f"{params_file}:++{path}={_value(path, value)}"]
    return args
