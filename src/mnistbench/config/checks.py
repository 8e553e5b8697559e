"""Config checks that need more than the JSON schema: names that become paths, an
architecture's own signature, and numbers in every YAML spelling.

``config.validate_config`` runs them, so a dry run already refuses what would fail a job. None
imports torch: the Snakefile runs them while it parses the workflow.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnistbench.errors import ConfigError, did_you_mean

# A model name becomes a directory and a Snakemake wildcard (workflow/rules/common.smk).
MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# A number as YAML 1.2 writes it; YAML 1.1 (PyYAML, so Snakemake) reads 1e-3 as a string, since
# its floats need a dot (1.0e-3).
_NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def check_model_name(name: str) -> None:
    if not MODEL_NAME.fullmatch(name):
        raise ConfigError(
            f"models: {name!r} is not a valid model name; use letters, digits and _ . - only "
            "(the name becomes a directory, results/<dataset>/models/<name>/, and a job name)"
        )


def builder_parameters(source: str | os.PathLike[str], arch: str) -> tuple[list[str], bool]:
    """The keyword arguments the builder registered as ``arch`` in ``source`` accepts, and
    whether it takes any (``**kwargs``): read from the file, without importing torch."""
    tree = ast.parse(Path(source).read_text(encoding="utf-8"))
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            registered = (
                isinstance(deco, ast.Call)
                and getattr(deco.func, "id", None) == "register"
                and [getattr(a, "value", None) for a in deco.args] == [arch]
            )
            if registered:
                args = node.args
                names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
                return names, args.kwarg is not None
    raise ConfigError(
        f"{source}: no builder registered as {arch!r} (@register({arch!r})); register one there"
    )


def check_model_kwargs(
    name: str, arch: str, source: str | os.PathLike[str], kwargs: Mapping[str, Any]
) -> None:
    """models.<m>.model_kwargs against the builder's signature, so that a misspelt argument
    fails the dry run, not the train job."""
    if not kwargs:
        return
    if "num_classes" in kwargs:
        raise ConfigError(
            f"models.{name}.model_kwargs.num_classes: the number of classes comes from the data "
            "set (its class names, recorded with the prepared data); remove it"
        )
    accepted, takes_any = builder_parameters(source, arch)
    unknown = [key for key in kwargs if key not in accepted]
    if unknown and not takes_any:
        key = unknown[0]
        raise ConfigError(
            f"models.{name}.model_kwargs: {key!r} is no argument of the {arch!r} builder"
            f"{did_you_mean(key, accepted)}; it takes {', '.join(accepted) or 'none'} "
            f"(src/mnistbench/models/{arch}.py)"
        )


def yaml_numbers(config: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Turn strings such as "1e-3" into floats, in place, wherever the schema wants a number:
    a config file's ``lr: 1e-3`` then means what it says, as it does with ``--config``."""
    train = schema["$defs"]["train"]

    def fix(value: Any, node: Mapping[str, Any]) -> Any:
        node = train if node.get("$ref") == "#/$defs/train" else node
        types = node.get("type")
        if isinstance(value, str):
            wanted = types if isinstance(types, list) else [types]
            return float(value) if "number" in wanted and _NUMBER.fullmatch(value) else value
        if isinstance(value, list) and isinstance(node.get("items"), Mapping):
            return [fix(v, node["items"]) for v in value]
        if isinstance(value, dict):
            props = node.get("properties") or {}
            extra = node.get("additionalProperties")
            for key, sub in value.items():
                value[key] = fix(sub, props.get(key, extra if isinstance(extra, Mapping) else {}))
        return value

    fix(config, schema)
    for entry in (config.get("models") or {}).values():
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("train"), dict):  # checked against `train` once merged
            fix(entry["train"], train)
        kwargs = entry.get("model_kwargs")
        if isinstance(kwargs, dict):  # any type: only YAML 1.1's string spelling is a number
            for key, value in kwargs.items():
                if isinstance(value, str) and _NUMBER.fullmatch(value) and "e" in value.lower():
                    kwargs[key] = float(value)
