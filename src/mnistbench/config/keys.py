"""Dotted config keys (``models.cnn``, ``data.local_dir``): the value of one in a config tree,
and the part of a tree under some (a stage's share of the command-line overrides)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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
