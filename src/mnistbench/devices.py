"""Where a model trains, decided one way for the whole workflow (and without importing torch).

The Snakefile claims a train job's GPUs (Snakemake's ``gpu`` resource) while it parses, before
any job starts, and the job itself must then train on exactly that device. Both ask
``accelerator_for``: ``accelerator: gpu`` or ``cpu`` as configured; ``auto`` is a GPU when
``nvidia-smi`` is on PATH and CUDA_VISIBLE_DEVICES does not hide every GPU.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any


def gpu_visible(nvidia_smi: str | None = "which") -> bool:
    if nvidia_smi == "which":
        nvidia_smi = shutil.which("nvidia-smi")
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
    return bool(nvidia_smi) and not hidden


def accelerator_for(requested: str, nvidia_smi: str | None = "which") -> str:
    """``gpu`` or ``cpu`` for a configured ``train.accelerator`` (auto, cpu or gpu)."""
    if requested == "auto":
        return "gpu" if gpu_visible(nvidia_smi) else "cpu"
    return requested


def train_gpus(settings: Mapping[str, Any], nvidia_smi: str | None = "which") -> int:
    """GPUs one train job occupies: ``devices`` on a GPU, none on the CPU."""
    on_gpu = accelerator_for(settings["accelerator"], nvidia_smi) == "gpu"
    return int(settings["devices"]) if on_gpu else 0
