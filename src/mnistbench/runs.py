"""The runs of a config: ``only`` keeps some models, ``seeds`` and a model's ``sweep`` turn a
model into several runs (``cnn-seed2``, ``cnn-max_lr0.01``), each an ordinary model of the
validated config with its own jobs, results directory and table row."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping
from typing import Any

from mnistbench.errors import ConfigError, did_you_mean


def apply_only(config: dict[str, Any]) -> None:
    """``only: [cnn, lenet5]`` keeps just those models, so one config file holds every recipe and
    a run (e.g. the multi-seed comparison) picks some without editing it. Applied once: the
    validated config lists the kept models and an empty ``only``."""
    only = config.get("only") or []
    if not only:
        return
    models = config.get("models") or {}
    unknown = [name for name in only if name not in models]
    if unknown:
        name = unknown[0]
        raise ConfigError(
            f"only: {name!r} is not under `models:`{did_you_mean(name, models)}; "
            f"configured: {', '.join(models)}"
        )
    config["models"] = {name: entry for name, entry in models.items() if name in only}
    config["only"] = []


def apply_seeds(config: dict[str, Any]) -> None:
    """``seeds: [1, 2, 3]`` trains every model once per seed: each model that does not set its
    own ``train.seed`` gets a sweep over ``seed``, so ``cnn`` becomes ``cnn-seed1``, ``cnn-seed2``,
    ``cnn-seed3`` (the seed in the output paths; the report gives mean and std per model).
    Runs already expanded set ``train.seed``, so validating twice expands once."""
    seeds = config.get("seeds") or []
    if not seeds:
        return
    models = config.get("models") or {}
    for name, entry in list(models.items()):
        entry = dict(entry or {})
        if "seed" in (entry.get("train") or {}):
            continue
        sweep = dict(entry.get("sweep") or {})
        if "seed" in sweep:
            raise ConfigError(
                f"models.{name}.sweep.seed and `seeds` both set the seeds of {name!r}; keep one"
            )
        sweep["seed"] = list(seeds)
        entry["sweep"] = sweep
        models[name] = entry


def _sweep_value_label(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(value))


def _train_key_exists(schema: Mapping[str, Any], dotted: str) -> bool:
    node: Mapping[str, Any] = schema["$defs"]["train"]
    for part in dotted.split("."):
        props = node.get("properties") or {}
        if part not in props:
            return False
        node = props[part]
    return "properties" not in node  # a setting, not a whole block


def expand_sweeps(config: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Replace each model with a ``sweep:`` by one model per combination of the listed values.

    ``models: {cnn: {sweep: {optimizer.lr: [0.001, 0.003]}}}`` becomes ``cnn-lr0.001`` and
    ``cnn-lr0.003``: ordinary models (own train job, results directory and table row) whose
    ``train`` block sets the swept key. Several keys give their Cartesian product. Names use the
    last part of each key (the whole key, dots as ``_``, when two keys share it) and the value,
    with anything but letters, digits, ``_``, ``.`` and ``-`` replaced by ``_``.
    """
    models = config.get("models") or {}
    if not any(isinstance(entry, Mapping) and entry.get("sweep") for entry in models.values()):
        return
    expanded: dict[str, Any] = {}
    for name, entry in models.items():
        sweep = (entry or {}).get("sweep") if isinstance(entry, Mapping) else None
        if not sweep:
            expanded[name] = entry
            continue
        keys = list(sweep)
        for key in keys:
            if not _train_key_exists(schema, key):
                raise ConfigError(
                    f"models.{name}.sweep: {key!r} is not a training setting; use a dotted key "
                    "of `train` (e.g. optimizer.lr, batch_size, scheduler.max_lr)"
                )
        leaves = [k.rsplit(".", 1)[-1] for k in keys]
        labels = [
            leaf if leaves.count(leaf) == 1 else key.replace(".", "_")
            for key, leaf in zip(keys, leaves, strict=True)
        ]
        base = {k: v for k, v in entry.items() if k != "sweep"}
        for combo in itertools.product(*(sweep[k] for k in keys)):
            run = name + "".join(
                f"-{label}{_sweep_value_label(v)}" for label, v in zip(labels, combo, strict=True)
            )
            if run in models or run in expanded:
                raise ConfigError(
                    f"models.{name}.sweep: the run name {run!r} is already taken; rename the "
                    "model or drop the duplicate value"
                )
            run_entry = copy.deepcopy(base)
            run_entry["arch"] = base.get("arch", name)
            run_entry["train"] = run_entry.get("train") or {}
            for key, value in zip(keys, combo, strict=True):
                *parents, leaf = key.split(".")
                node = run_entry["train"]
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = value
            expanded[run] = run_entry
    config["models"] = expanded
