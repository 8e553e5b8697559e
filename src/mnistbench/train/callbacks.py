"""The training run's callbacks: checkpoints (the best epoch, and the last one to resume
from), early stopping, weight averaging (SWA or EMA), and one log line per epoch."""

from __future__ import annotations

import logging
import math
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

from mnistbench.config.load import swa_start_epoch
from mnistbench.progress import Progress
from mnistbench.train.averaging import EMA
from mnistbench.train.resume import Fingerprint

MONITOR = "val/f1"
log = logging.getLogger("mnistbench.train.recipe")


class EpochLog(Callback):
    """One line per epoch in the job's log (the progress bar is off: logs are files), and one
    on the terminal when the job was given one (``progress``)."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.t0 = time.perf_counter()
        self.progress = progress
        self.epochs_run = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t0 = time.perf_counter()
        self.epochs_run = 0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        # Wall seconds of training so far, in metrics.csv: the report's time to reach a score.
        elapsed = time.perf_counter() - self.t0
        pl_module.log("elapsed_s", elapsed, rank_zero_only=True)
        self.epochs_run += 1
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        done, total = trainer.current_epoch + 1, int(trainer.max_epochs or 0)
        train_loss, val_f1 = m.get("train/loss", math.nan), m.get(MONITOR, math.nan)
        log.info(
            "epoch %d/%d  train loss %.4f  val loss %.4f  val acc %.4f  val F1 %.4f  (%.0f s)",
            *(done, total, train_loss, m.get("val/loss", math.nan), m.get("val/acc", math.nan)),
            *(val_f1, elapsed),
        )
        if self.progress is not None:
            self.progress.epoch(done, total, train_loss, val_f1, elapsed, self.epochs_run)


def callbacks_for(
    settings: dict[str, Any], work: Path, stamp: str, progress: Progress | None = None
) -> tuple[list[Callback], ModelCheckpoint]:
    """Every callback of the run, and the one that keeps the best epoch's checkpoint;
    ``progress``: where the per-epoch terminal line goes (none: the log only)."""
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
        EpochLog(progress),
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
