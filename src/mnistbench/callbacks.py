"""The training run's callbacks: checkpoints (the best epoch, and the last one to resume
from), early stopping, weight averaging (SWA or EMA), and one log line per epoch."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    StochasticWeightAveraging,
)

from mnistbench.averaging import EMA
from mnistbench.config import swa_start_epoch
from mnistbench.resume import Fingerprint

MONITOR = "val/f1"
log = logging.getLogger("mnistbench.training")


class EpochLog(Callback):
    """One line per epoch in the job's log (the progress bar is off: logs are files)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        # Wall seconds of training so far, in metrics.csv: the report's time to reach a score.
        pl_module.log("elapsed_s", time.perf_counter() - self.t0, rank_zero_only=True)
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        log.info(
            "epoch %d/%d  train loss %.4f  val loss %.4f  val acc %.4f  val F1 %.4f  (%.0f s)",
            trainer.current_epoch + 1,
            trainer.max_epochs,
            m.get("train/loss", float("nan")),
            m.get("val/loss", float("nan")),
            m.get("val/acc", float("nan")),
            m.get(MONITOR, float("nan")),
            time.perf_counter() - self.t0,
        )


def callbacks_for(
    settings: dict[str, Any], work: Path, stamp: str
) -> tuple[list[Callback], ModelCheckpoint]:
    """Every callback of the run, and the one that keeps the best epoch's checkpoint."""
    best = ModelCheckpoint(
        dirpath=work / "checkpoints",
        filename="best-epoch{epoch:02d}",
        monitor=MONITOR,
        mode="max",
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    # Saved at the end of every training epoch, after its validation: what a rerun resumes from.
    resumable = ModelCheckpoint(
        dirpath=work / "resume",
        filename="last",
        save_top_k=1,  # with no monitor: the latest epoch, over the same file
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )
    callbacks: list[Callback] = [
        Fingerprint(stamp),
        best,
        resumable,
        ModelSummary(max_depth=2),
        LearningRateMonitor(logging_interval="epoch"),
        EpochLog(),
    ]
    es = settings["early_stopping"]
    if es["enabled"]:
        callbacks.append(
            EarlyStopping(
                monitor=MONITOR, mode="max", patience=es["patience"], min_delta=es["min_delta"]
            )
        )
    return callbacks + averaging(settings), best


def averaging(settings: dict[str, Any]) -> list[Callback]:
    """SWA over the last epochs, or an EMA of the weights updated after every optimiser step
    (validation and checkpoints then see the average); the config allows one of the two."""
    swa, ema = settings["swa"], settings["ema"]
    if swa["enabled"]:
        first = swa_start_epoch(swa, settings["max_epochs"])
        return [
            StochasticWeightAveraging(
                # Reach the constant SWA rate within one epoch: the default (10 epochs) is longer
                # than the whole averaging phase of a 10-epoch run.
                swa_lrs=float(swa["lr"]),
                # Lightning takes an epoch index from 1 on; epoch 0 only as the fraction 0.0.
                swa_epoch_start=first if first >= 1 else 0.0,
                annealing_epochs=1,
            )
        ]
    if ema["enabled"]:
        return [EMA(decay=ema["decay"])]
    return []
