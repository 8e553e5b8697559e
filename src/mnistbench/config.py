"""Config resolution shared by Snakemake, DVC and tests.

``config/config.yaml`` holds ``train:`` defaults for every model and, under ``models:``, each
model's overrides. Resolving a model merges the two, so a job sees one flat, explicit set of
parameters: Snakemake passes exactly that set to the train job (and reruns it when the set
changes), and DVC stages read the same keys.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mnistbench.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
MODELS_DIR = Path(__file__).resolve().parent / "models"


def available_architectures() -> list[str]:
    """Architectures by file name: each lives in models/<arch>.py (found without importing torch,
    so the Snakefile parses in a minimal Snakemake environment)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.py") if not p.stem.startswith("_"))


def architecture_file(arch: str) -> Path:
    return MODELS_DIR / f"{arch}.py"


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
    Top-level values are already typed by Snakemake and pass through unchanged.
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

    return {k: retype(v) if isinstance(v, Mapping) else v for k, v in overrides.items()}


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


def validate_config(
    config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH
) -> dict[str, Any]:
    """Validate against the JSON schema, filling defaults; errors name the key's path."""
    import jsonschema

    with open(schema_path, encoding="utf-8") as fh:
        schema = yaml.safe_load(fh)
    validator_cls = jsonschema.validators.validator_for(schema)

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validator_cls.VALIDATORS["properties"](validator, properties, instance, schema)

    filling = jsonschema.validators.extend(validator_cls, {"properties": set_defaults})
    errors = sorted(filling(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"  {where}: {err.message}")
        raise ConfigError(
            "invalid configuration (see workflow/schemas/config.schema.yaml for every key):\n"
            + "\n".join(lines)
        )
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
        resolved = resolve_model(config, name)
        settings = {k: v for k, v in resolved.items() if k not in ("name", "arch", "model_kwargs")}
        validator = jsonschema.validators.validator_for(train_schema)(train_schema)
        for err in validator.iter_errors(settings):
            where = ".".join(str(p) for p in err.absolute_path)
            raise ConfigError(f"models.{name}.train.{where}: {err.message}")
        if resolved["arch"] not in available_architectures():
            raise ConfigError(
                f"models.{name}: unknown architecture {resolved['arch']!r}; "
                f"available: {', '.join(available_architectures())} (src/mnistbench/models/)"
            )
        swa = resolved["swa"]
        if swa["enabled"] and resolved["ema"]["enabled"]:
            raise ConfigError(
                f"models.{name}.train: swa.enabled and ema.enabled are both true; weights are "
                "averaged one way at a time: set swa: {enabled: false} to use EMA"
            )
        start = swa["epoch_start"]
        if swa["enabled"] and isinstance(start, int) and start >= resolved["max_epochs"]:
            raise ConfigError(
                f"models.{name}: swa.epoch_start={swa['epoch_start']} is not before the last "
                f"epoch (max_epochs={resolved['max_epochs']}); lower it or disable SWA"
            )


def model_names(config: Mapping[str, Any]) -> list[str]:
    return list((config.get("models") or {}).keys())


def resolve_model(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Everything one model's training needs: the ``train`` defaults merged with its overrides."""
    models = config.get("models") or {}
    if name not in models:
        raise ConfigError(
            f"model {name!r} is not under `models:` in the config; configured: "
            f"{', '.join(models) or '(none)'}"
        )
    entry = models[name] or {}
    resolved = deep_merge(config.get("train") or {}, entry.get("train") or {})
    resolved["name"] = name
    resolved["arch"] = entry.get("arch", name)
    resolved["model_kwargs"] = dict(entry.get("model_kwargs") or {})
    return resolved
