"""Where a model trains, decided one way for the whole workflow (and without importing torch),
and what the machine it trained on was.

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

from mnistbench.errors import ConfigError


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


def resolve_accelerator(requested: str) -> str:
    """The device a job trains on (``accelerator_for``, as the workflow claimed it), checked
    against what this torch build can use."""
    import torch

    accelerator = accelerator_for(requested)
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError(
            f"train.accelerator is {requested!r} and a GPU is visible (nvidia-smi), but this torch "
            "build cannot use it (torch.cuda.is_available() is false); install a CUDA build of "
            "torch or set train.accelerator: cpu"
        )
    return accelerator


def check_slurm_tasks(settings: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> None:
    """Inside a SLURM job, Lightning takes a model's processes from SLURM's tasks (it starts
    none itself): ``devices`` x ``num_nodes`` processes need as many tasks, or Lightning would
    quietly train with the tasks there are. The SLURM profile gives a train job its tasks
    (``mpi: srun``, ``tasks_per_node``: docs/cluster.md)."""
    if "SLURM_NTASKS" not in environ or environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return  # not in a SLURM job, or in an interactive one (Lightning then starts them)
    wanted = int(settings["devices"]) * int(settings["num_nodes"])
    tasks = int(environ["SLURM_NTASKS"])
    if wanted > 1 and tasks != wanted:
        raise ConfigError(
            f"train.devices x train.num_nodes is {wanted} processes, but this SLURM job step has "
            f"{tasks} task(s) (SLURM_NTASKS), and under SLURM Lightning trains with one process "
            f"per task: give train_model `mpi: srun` and `tasks_per_node: {settings['devices']}` "
            "in the SLURM profile's set-resources (docs/cluster.md), or set train.devices: 1"
        )


def launched_as_rank0() -> bool:
    """True in the process Snakemake/DVC started, false in the ranks Lightning or srun launched
    (known from their environment before the Trainer exists)."""
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(int(os.environ.get(var, "0") or 0) == 0 for var in ranks)


def environment_info() -> dict[str, Any]:
    """The machine and software a run trained with (its config.yaml snapshot; the provenance)."""
    import platform
    import sys

    import lightning as L
    import torch

    from mnistbench.machine import cpu_name
    from mnistbench.train.speed import native_bf16

    return {
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "lightning": str(L.__version__),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_name(),
        # What precision choices depend on: AVX2 CPUs emulate bf16, AVX-512 BF16 ones do not.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bf16("cpu"),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
    }
