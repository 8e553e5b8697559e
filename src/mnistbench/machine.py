"""The machine a run ran on, read without torch: its CPU's name and feature flags (Linux's
/proc/cpuinfo). The speed probe (``mnistbench.train.speed``) decides on the flags; the provenance
(``mnistbench.reporting.provenance``) and the run's environment record the name."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is not there."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
