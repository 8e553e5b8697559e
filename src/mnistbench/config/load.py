"""Config resolution shared by Snakemake, DVC and tests.

``config/config.yaml`` holds ``train:`` defaults for every model and, under ``models:``, each
model's overrides. Resolving a model merges the two, so a job sees one flat, explicit set of
parameters: Snakemake passes exactly that set to the train job (and reruns it when the set
changes), and DVC stages read the same keys.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mnistbench.config.checks import check_model_kwargs, check_model_name, yaml_numbers
from mnistbench.config.datasets import check_data, check_flips
from mnistbench.config.runs import apply_only, apply_seeds, check_across, expand_sweeps
from mnistbench.errors import ConfigError, did_you_mean

# Package data (also linked from workflow/schemas/, where the Snakemake catalog looks for it): the
# one description of every key, and the one place its default is written.
SCHEMA_PATH = Path(__file__).resolve().parent / "config.schema.yaml"
SCHEMA_REF = "workflow/schemas/config.schema.yaml"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def _schema_error_line(err: Any, prefix: str = "") -> str:
    """One line per schema error: the key's dotted path, the problem, a suggestion for typos."""
    path = [str(p) for p in err.absolute_path]
    where = prefix + ".".join(path) if path else (prefix.rstrip(".") or "(top level)")
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = list((err.schema.get("properties") or {}).keys())
        unknown = [k for k in err.instance if k not in allowed]
        if unknown:
            parts = [f"unknown key {k!r}{did_you_mean(k, allowed)}" for k in unknown]
            key_path = ".".join([*path, unknown[0]]) if path else unknown[0]
            where = prefix + key_path
            return f"  {where}: " + "; ".join(parts) + f"; valid keys here: {', '.join(allowed)}"
    return f"  {where}: {err.message}"


def available_architectures() -> list[str]:
    """Architectures by file name: each lives in models/<arch>.py (found without importing torch,
    so the Snakefile parses in a minimal Snakemake environment)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.py") if not p.stem.startswith("_"))


def architecture_file(arch: str) -> Path:
    return MODELS_DIR / f"{arch}.py"


@functools.cache
def declared_macs(arch: str) -> int:
    """The ``macs=`` its file declares in ``@register(...)`` (0 if none), read from the text so
    that the workflow need not import torch."""
    import ast

    tree = ast.parse(architecture_file(arch).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register":
            for kw in node.keywords:
                if kw.arg == "macs" and isinstance(kw.value, ast.Constant):
                    return int(kw.value.value)
    return 0


def train_cost(settings: Mapping[str, Any]) -> int:
    """Millions of multiply-accumulates per training image times epochs (times the fraction of
    batches trained, ``limit_train_batches``): the order in which to start train jobs
    (costliest first), so no long job is left running alone at the end, and their threads
    (scheduling.thread_shares)."""
    epochs = settings["max_epochs"] * settings.get("limit_train_batches", 1.0)
    return int(declared_macs(settings["arch"]) * epochs // 1_000_000)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``override`` wins, nested dicts are merged, not replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def retype_cli_values(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Give nested ``--config`` values their YAML types.

    Snakemake parses ``--config data='{val_size: 100}'`` with YAML's BaseLoader, so nested
    values arrive as strings ("100"). Each nested string that reads as an int, a float (also
    "2e-3", which YAML 1.1 would keep a string), true/false or null becomes that value.
    Top-level scalars are already typed by Snakemake and pass through unchanged; top-level
    lists (``--config 'seeds=[1,2,3]'``) arrive as lists of strings and are retyped.
    """

    def retype(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: retype(v) for k, v in value.items()}
        if isinstance(value, list):
            return [retype(v) for v in value]
        if isinstance(value, str):
            for parse in (int, float):
                try:
                    return parse(value)
                except ValueError:
                    pass
            words = {"true": True, "false": False, "null": None, "none": None, "~": None}
            return words.get(value.lower(), value)
        return value

    return {k: retype(v) if isinstance(v, (Mapping, list)) else v for k, v in overrides.items()}


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Load and merge YAML files in order (later files override earlier ones)."""
    config: dict[str, Any] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        config = deep_merge(config, loaded)
    return config


@functools.cache
def load_schema(schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(schema_path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def schema_default(dotted: str) -> Any:
    """The default of a config key (e.g. ``report.seed``, ``train.optimizer.lr``; a block such
    as ``report`` gives all of its keys) as the schema states it: code that runs without a
    config (a library call, a test) takes it from here."""
    schema = load_schema()

    def resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
        if "$ref" in node:  # "#/$defs/train"
            return schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    def defaults(node: Mapping[str, Any]) -> Any:
        node = resolve(node)
        if "properties" not in node:
            return copy.deepcopy(node["default"])
        return {k: defaults(v) for k, v in node["properties"].items() if _has_default(resolve(v))}

    node: Mapping[str, Any] = schema
    for part in dotted.split("."):
        node = resolve(node)["properties"][part]
    return defaults(node)


def _has_default(node: Mapping[str, Any]) -> bool:
    return "default" in node or "properties" in node


def validate_config(
    config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH
) -> dict[str, Any]:
    """Validate against the JSON schema, filling defaults; errors name the key's path."""
    import jsonschema

    schema = load_schema(schema_path)
    validator_cls = jsonschema.validators.validator_for(schema)

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validator_cls.VALIDATORS["properties"](validator, properties, instance, schema)

    yaml_numbers(config, schema)
    filling = jsonschema.validators.extend(validator_cls, {"properties": set_defaults})
    errors = sorted(filling(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [_schema_error_line(err) for err in errors[:10]]
        raise ConfigError(
            f"invalid configuration (see {SCHEMA_REF} for every key):\n" + "\n".join(lines)
        )
    check_across(config)
    apply_only(config)
    apply_seeds(config)
    expand_sweeps(config, schema)
    check_semantics(config, schema)
    return config


def check_semantics(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Checks a JSON schema cannot express: merged per-model settings, registered names."""
    import jsonschema

    models = config.get("models") or {}
    if not models:
        raise ConfigError("config key `models` is empty: list at least one model to train")
    train_schema = dict(schema["$defs"]["train"])
    train_schema["$defs"] = schema["$defs"]
    for name in models:
        check_model_name(name)
        resolved = resolve_model(config, name)
        settings = {k: v for k, v in resolved.items() if k not in ("name", "arch", "model_kwargs")}
        validator = jsonschema.validators.validator_for(train_schema)(train_schema)
        errors = sorted(validator.iter_errors(settings), key=lambda e: list(e.absolute_path))
        if errors:
            raise ConfigError(
                f"invalid settings of model {name!r} (train defaults merged with its overrides):\n"
                + "\n".join(_schema_error_line(e, f"models.{name}.train.") for e in errors[:10])
            )
        if resolved["arch"] not in available_architectures():
            hint = did_you_mean(resolved["arch"], available_architectures())
            raise ConfigError(
                f"models.{name}: unknown architecture {resolved['arch']!r}{hint}; "
                f"available: {', '.join(available_architectures())} (src/mnistbench/models/); "
                f"set models.{name}.arch or rename the model"
            )
        arch = resolved["arch"]
        check_model_kwargs(name, arch, architecture_file(arch), resolved["model_kwargs"])
        _check_swa(name, resolved)
        check_flips(config, name, resolved["augment"])
    check_data(config)


def _check_swa(name: str, resolved: Mapping[str, Any]) -> None:
    """SWA must start before the last epoch; Lightning takes a float only as a fraction <= 1."""
    swa, max_epochs = resolved["swa"], resolved["max_epochs"]
    if swa["enabled"] and resolved["ema"]["enabled"]:
        raise ConfigError(
            f"models.{name}.train: swa.enabled and ema.enabled are both true; weights are "
            "averaged one way at a time: set swa: {enabled: false} to use EMA"
        )
    if not swa["enabled"]:
        return
    start = swa["epoch_start"]
    if isinstance(start, float) and start >= 1 and not start.is_integer():
        raise ConfigError(
            f"models.{name}.train.swa.epoch_start = {start}: give an integer epoch index or a "
            "fraction of max_epochs below 1"
        )
    if swa_start_epoch(swa, max_epochs) >= max_epochs:
        raise ConfigError(
            f"models.{name}: swa.epoch_start={start} is not before the last "
            f"epoch (max_epochs={max_epochs}); lower it or disable SWA"
        )


def swa_start_epoch(swa: Mapping[str, Any], max_epochs: int) -> int:
    """The first averaged epoch (0-based): ``epoch_start`` as an index, or as a fraction (< 1)
    of ``max_epochs``. Training passes this epoch to Lightning: the check and the run agree."""
    start = swa["epoch_start"]
    return int(max_epochs * start) if start < 1 else int(start)


def load_validated(*paths: str | Path) -> dict[str, Any]:
    """The config files merged in order, validated, defaults filled (what DVC stages read)."""
    return validate_config(load_config(*paths))


def model_names(config: Mapping[str, Any]) -> list[str]:
    return list((config.get("models") or {}).keys())


def architecture(config: Mapping[str, Any], name: str) -> str:
    """A model's registered architecture: its ``arch``, by default its own name."""
    return (config["models"][name] or {}).get("arch", name)


def resolve_model(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Everything one model's training needs: the ``train`` defaults merged with its overrides."""
    models = config.get("models") or {}
    if name not in models:
        raise ConfigError(
            f"model {name!r} is not under `models:` in the config{did_you_mean(name, models)}; "
            "configured: "
            f"{', '.join(models) or '(none)'}"
        )
    entry = models[name] or {}
    resolved = deep_merge(config.get("train") or {}, entry.get("train") or {})
    resolved["name"] = name
    resolved["arch"] = architecture(config, name)
    resolved["model_kwargs"] = dict(entry.get("model_kwargs") or {})
    return resolved
