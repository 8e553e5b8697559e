"""The Lightning loggers of a training run.

Always two: the CSV file Lightning writes in the run's working directory (``lightning/
metrics.csv``, from which the published ``metrics.csv`` and the report's learning curves come)
and DVCLive, whose ``dvclive/metrics.json`` and ``dvclive/plots/`` (written in ``lightning/``,
published at the end of the run) are the train stage's DVC metrics and plots (``dvc exp show``,
``dvc plots show``, the VS Code extension's live plots). The config's ``loggers`` adds the ones
people already run: ``tensorboard`` (event files in ``lightning/tensorboard/``) and ``mlflow`` (a
run per model in the experiment ``mnistbench-<dataset>``, at ``$MLFLOW_TRACKING_URI`` or
``./mlruns``); they are extras (``pip install -e '.[loggers]'``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger

from mnistbench.errors import ConfigError

LIVE_DIR = "dvclive"
# What each optional logger needs: (module, pip extra's package)
NEEDS = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "mlflow": (("mlflow",), "mlflow-skinny"),
}


def _available(modules: Sequence[str]) -> bool:
    return any(importlib.util.find_spec(m) is not None for m in modules)


def check_loggers(names: Sequence[str]) -> None:
    """Each requested logger's package is installed (a user error before training, if not)."""
    for name in names:
        modules, package = NEEDS[name]
        if not _available(modules):
            raise ConfigError(
                f"loggers: {name!r} needs the {package} package, which is not installed: "
                f"pip install {package} (or pip install -e '.[loggers]'), or remove it from loggers"
            )


def run_loggers(
    out: Path, work: Path, name: str, extra: Sequence[str], resume: bool
) -> list[Logger]:
    """CSV and DVCLive, then the extra loggers named in the config, for the run in ``out``
    (``results/<dataset>/models/<run>``; Lightning's working files in ``work``); ``resume``:
    continue DVCLive's step count."""
    from dvclive.lightning import DVCLiveLogger

    check_loggers(extra)
    loggers: list[Logger] = [
        # Flushed at every logging call, so a killed job leaves the epochs it finished on disk.
        CSVLogger(save_dir=work, name="", version="", flush_logs_every_n_steps=1),
        # No dvc.yaml of its own (the pipeline's declares its files) and no experiment of its
        # own (dvc exp run makes those).
        # Written in the working directory, which a rerun keeps (Snakemake deletes a job's
        # outputs before it runs it): a resumed run continues its curves there, and the whole
        # history is published to out/dvclive/ at the end (training._publish).
        DVCLiveLogger(
            run_name=name, dir=str(work / LIVE_DIR), resume=resume, dvcyaml=None,
            save_dvc_exp=False, report=None, monitor_system=False,
        ),
    ]  # fmt: skip
    if "tensorboard" in extra:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=work, name="tensorboard", version=""))
    if "mlflow" in extra:
        loggers.append(_mlflow(name, dataset=out.parent.parent.name))
    return loggers


def _mlflow(name: str, dataset: str) -> Any:
    from lightning.pytorch.loggers import MLFlowLogger

    uri = os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
    return MLFlowLogger(experiment_name=f"mnistbench-{dataset}", run_name=name, tracking_uri=uri)
