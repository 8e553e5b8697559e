"""Checks of the workflow's inputs while Snakemake parses it, before any job runs or deletes an
output: the data directory a user points at, and the files given to ``--configfile``.

``workflow/rules/common.smk`` runs them; each raises a MnistbenchError that names the key or file
and says what to do, so a dry run already stops with one line. No stage imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mnistbench.config.datasets import local_dir
from mnistbench.config.load import load_schema
from mnistbench.data.registry import layout
from mnistbench.errors import ConfigError, DataError

# Directories the workflow writes: a file there is a target, not a config file.
OUTPUT_DIRS = ("results", "data", "logs")


def check_local_dir(config: Mapping[str, Any], raw: Mapping[str, str]) -> None:
    """data.local_dir, when the data set's files come from there, before the download job
    replaces its outputs ``raw`` (by name): the directory and its four files exist and are images
    and labels of the data set in pairs of equal length. Files not yet copied from there are read
    whole (0.35 s for MNIST on a 2-core VM); those already copied (their manifest names the
    directory) only by their headers."""
    directory = local_dir(config)
    if config["data"]["source"] == "synthetic" or not directory:
        return
    try:  # numpy: a Snakemake environment without it leaves the check to the download job
        from mnistbench.data.archive import PAIRS
        from mnistbench.data.idx import check_pair_shapes, read_idx_header
        from mnistbench.data.local import local_file_error, local_sources, validate_local
    except ImportError:
        return
    ds = layout(config["dataset"])
    copied = _mapping(raw["manifest"])
    if copied.get("source") != "local" or copied.get("origin") != str(Path(directory).resolve()):
        validate_local(directory, ds)
        return
    sources = local_sources(directory, ds)
    if "archive" in sources:
        return  # a zip already copied: the download job reads it again if it changes
    try:
        for images, labels in PAIRS:
            check_pair_shapes(
                sources[images],
                read_idx_header(sources[images], ndim=3),
                sources[labels],
                read_idx_header(sources[labels], ndim=1),
            )
    except DataError as exc:
        raise local_file_error(exc, directory) from None


def check_configfiles(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Files given to --configfile that are outputs of the workflow (under results/, data/,
    logs/), or are named like no config file and hold no key of the config schema: a target
    written after --configfile, which takes every file named after it."""
    keys = set(load_schema()["properties"])
    for path in paths:
        # Snakemake makes them absolute: show those in the repository as typed
        rel = os.path.relpath(path)
        path = str(path) if rel.startswith("..") else rel
        parts = Path(rel).parts
        is_output = bool(parts) and parts[0] in OUTPUT_DIRS
        found = set(_mapping(path))
        named_as_config = Path(path).suffix.lower() in (".yaml", ".yml", ".json")
        if not is_output and (named_as_config or not found or found & keys):
            continue  # a config file: the schema names its unknown keys, typos included
        what = "an output of the workflow" if is_output else "not a mnistbench config file"
        raise ConfigError(
            f"--configfile {path} is {what}: --configfile takes every file named after it, so "
            "a target written after it is read as a config file. Put the target before "
            "--configfile (snakemake results/... --configfile config/smoke.yaml), or write "
            "--configfile=config/smoke.yaml"
        )


def _mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The YAML (or JSON) mapping in ``path``; empty when it holds none."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            loaded = yaml.safe_load(fh)
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
