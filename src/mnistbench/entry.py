"""Shared plumbing of the workflow's entry points (workflow/scripts/*.py).

Snakemake rules and DVC stages call the same scripts; each script parses its arguments and
calls one typed function of the package through ``run``, which sets up logging and turns a
user-fixable ``MnistbenchError`` into one clear line and exit status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mnistbench.errors import MnistbenchError


def run(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    try:
        main(argv)
    except MnistbenchError as exc:
        print(f"mnistbench error: {exc}", file=sys.stderr)
        sys.exit(2)


def add_model_settings_args(parser: argparse.ArgumentParser) -> None:
    """A model's settings come either resolved (Snakemake) or from config file + name (DVC)."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--settings", help="the model's resolved settings, as JSON")
    group.add_argument("--config", nargs="+", help="config YAML file(s), merged in order")
    parser.add_argument("--model", help="model name under `models:` (with --config)")


def model_settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.settings:
        return json.loads(args.settings)
    from mnistbench.config import load_config, resolve_model, validate_config

    if not args.model:
        raise MnistbenchError("--model is required with --config")
    return resolve_model(validate_config(load_config(*args.config)), args.model)
