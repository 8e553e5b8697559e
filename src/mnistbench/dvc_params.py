"""``dvc exp run -S`` overrides that apply a config overlay (e.g. config/smoke.yaml) to
config/config.yaml, DVC's parameter file: the DVC counterpart of Snakemake's ``--configfile``.

    dvc exp run $(python -m mnistbench.dvc_params config/smoke.yaml)

prints nothing but the ``-S`` options; DVC edits config/config.yaml in the workspace, resolves
dvc.yaml again (dataset name, model list) and runs what changed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mnistbench.config import load_config
from mnistbench.errors import ConfigError

PARAMS_FILE = "config/config.yaml"


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
    """``-S file:key=value`` pairs for every leaf of the overlay (``++``: set or add the key)."""
    args: list[str] = []
    for path, value in _leaves(load_config(overlay)):
        args += ["-S", f"{params_file}:++{path}={_value(path, value)}"]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m mnistbench.dvc_params OVERLAY.yaml", file=sys.stderr)
        return 2
    try:
        print(" ".join(overrides(args[0])))
    except ConfigError as exc:
        print(f"mnistbench error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
