"""The runs of a config: ``only`` keeps some models, ``seeds`` and a model's ``sweep`` turn a
model into several runs (``cnn-seed2``, ``cnn-max_lr0.01``), each an ordinary model of the
validated config with its own jobs, results directory and table row; and the ensembles that
combine runs (``ensembles``): one per model run with several seeds, and those ``ensemble.across``
names."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping, Sequence
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
    # a cross-model ensemble keeps the models that run (validating again finds them all)
    ens = config.get("ensemble") or {}
    for name, listed in (ens.get("across") or {}).items():
        ens["across"][name] = [m for m in listed if m in only]


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


SEED_RUN = re.compile(r"^(?P<model>.+)-seed(?P<seed>-?\d+)$")
ENSEMBLE_SUFFIX = "-ensemble"


def seed_base(run: str) -> str:
    """The run a seed run repeats: ``cnn`` for ``cnn-seed2``, ``cnn-lr0.01`` for
    ``cnn-lr0.01-seed2``; any other run is its own."""
    match = SEED_RUN.match(run)
    return match.group("model") if match else run


def check_across(config: Mapping[str, Any]) -> None:
    """``ensemble.across`` names models under ``models:`` (before ``only`` and expansion: a
    model or the prefix of its runs), and no ensemble takes the name of a run."""
    models = list(config.get("models") or {})
    for name, listed in ((config.get("ensemble") or {}).get("across") or {}).items():
        if name in models or name.endswith(ENSEMBLE_SUFFIX):
            raise ConfigError(
                f"ensemble.across.{name}: the name is taken (a model, or ends in "
                f"{ENSEMBLE_SUFFIX!r} as each model's seed ensemble does); rename it"
            )
        for model in listed:
            if not any(m == model or m.startswith(f"{model}-") for m in models):
                raise ConfigError(
                    f"ensemble.across.{name}: {model!r} is not under `models:`"
                    f"{did_you_mean(model, models)}; configured: {', '.join(models)}"
                )


def runs_of(model: str, runs: Sequence[str], models: Sequence[str]) -> list[str]:
    """The runs of one model as ``models:`` names it (``cnn``: cnn, cnn-seed1, cnn-lr0.01, ...),
    not those of a longer model name among ``models`` (``cnn-big``)."""
    longer = [m for m in models if m != model and m.startswith(f"{model}-")]
    return [
        r
        for r in runs
        if (r == model or r.startswith(f"{model}-"))
        and not any(r == m or r.startswith(f"{m}-") for m in longer)
    ]


def ensembles(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every ensemble of a validated config: name -> ``kind`` and ``pools`` (label -> runs);
    the ensemble stage takes the best run of each pool on validation as a candidate member,
    then chooses and weighs the members on validation (``mnistbench.evaluate.ensemble``).

    - ``<run>-ensemble`` (kind ``seeds``): the seed runs of one model (or sweep point), each
      its own pool, when there are at least two.
    - ``ensemble.across`` ``<name>: [models]`` (kind ``across``): one pool per model, its runs;
      built when two or more of the listed models run (``only`` may leave fewer).
    """
    runs = list(config.get("models") or {})
    out: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    for run in runs:
        if SEED_RUN.match(run):
            groups.setdefault(seed_base(run), []).append(run)
    for base, members in groups.items():
        if len(members) >= 2:
            pools = {run: [run] for run in members}
            out[f"{base}{ENSEMBLE_SUFFIX}"] = {"kind": "seeds", "pools": pools}
    for name, models in ((config.get("ensemble") or {}).get("across") or {}).items():
        pools = {m: runs_of(m, runs, models) for m in models}
        pools = {m: rs for m, rs in pools.items() if rs}
        if len(pools) >= 2:
            out[name] = {"kind": "across", "pools": pools}
    return out
