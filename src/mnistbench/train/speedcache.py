"""The cache of ``precision: auto`` decisions (``mnistbench.train.speed``): one JSON file per
machine signature and model under ``$MNISTBENCH_CACHE_DIR`` (default ``~/.cache/mnistbench``),
so that a model is probed once per machine and later runs agree with the first. A file that is
not a whole decision is named in a warning, ignored and measured again, never a traceback."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnistbench.io import write_json

log = logging.getLogger("mnistbench.train.speed")


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mnistbench"
    return Path(os.environ.get("MNISTBENCH_CACHE_DIR", default)) / "speed"


def read_cached(path: Path, variants: Sequence[Sequence[Any]]) -> dict[str, Any] | None:
    """The decision cached in ``path`` if it is whole (a reason, the probe's rates) and one of
    ``variants`` ([precision, channels_last]); else None, with a warning naming the file when
    there is one."""
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        whole = isinstance(entry["reason"], str) and isinstance(entry.get("probe_images_s"), dict)
        if whole and [entry["precision"], entry["channels_last"]] in [list(v) for v in variants]:
            return entry
        problem = f"not one of {[list(v) for v in variants]} with its reason and rates"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem = str(exc) or type(exc).__name__
    log.warning("ignoring the speed cache %s, which is not a decision (%s): measuring again",
                path, problem)  # fmt: skip
    return None


def write_cached(path: Path, entry: dict[str, Any]) -> None:
    """Keep a decision for the next runs; a cache that cannot be written only costs a probe."""
    try:
        write_json(path, entry)
    except OSError as exc:
        log.warning("could not cache the speed decision in %s: %s", path, exc)
