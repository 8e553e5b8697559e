"""Resuming a killed train job, and the per-epoch metrics table it keeps whole.

Every epoch ends with ``lightning/resume/last.ckpt``, stamped with a fingerprint of the
settings, the data statistics and the code of the train stage (the files the pipeline lists as
its code dependencies, handed in by the caller) that made it. ``lightning/`` is no declared
output of the Snakemake rule, so a killed job's rerun (``--rerun-incomplete``) finds the
checkpoint and continues from it when the fingerprint matches; otherwise it starts over and
logs why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

from mnistbench.io import atomic_path

FINGERPRINT_KEY = "mnistbench_fingerprint"
log = logging.getLogger("mnistbench.train.recipe")  # the train job's log, one logger


def fingerprint(settings: dict[str, Any], stats: dict[str, Any], code: Sequence[str] = ()) -> str:
    """What a resumable checkpoint was made with: settings, data statistics and the bytes of
    ``code``, the train stage's code files (its architecture's included), which the caller gets
    from the stage table: training code never imports the pipeline, whose edits retrain
    nothing."""
    h = hashlib.sha256(json.dumps([settings, stats], sort_keys=True).encode())
    for path in code:
        h.update(Path(path).read_bytes())
    return h.hexdigest()


class Fingerprint(Callback):
    """Stamps every checkpoint with the fingerprint of what made it (checked before resuming)."""

    def __init__(self, stamp: str) -> None:
        self.stamp = stamp

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[FINGERPRINT_KEY] = self.stamp


def resume_checkpoint(
    work: Path, expected: str, clear: bool = True
) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint to resume from and its contents, or None (then ``work`` is emptied and
    the log says why)."""
    last = work / "resume" / "last.ckpt"
    if last.is_file():
        try:
            state = torch.load(last, map_location="cpu", weights_only=False)
        except Exception as exc:  # killed while writing it
            state = None
            log.info("not resuming: %s is unreadable (%s); starting over", last, exc)
        state = state if isinstance(state, dict) else None
        found = str((state or {}).get(FINGERPRINT_KEY, "(none)"))
        problem = _unreadable_metrics(work, state) if found == expected else None
        if state is not None and found == expected and problem is None:
            return last, state
        if problem is not None:  # resuming would lose the learning curve of its epochs
            log.warning("not resuming from %s: %s; starting over", last, problem)
        elif state is not None:
            log.info(
                "not resuming from %s: it was made with other settings, data or training code "
                "(fingerprint %s, now %s); starting over",
                last,
                found[:12],
                expected[:12],
            )
    elif work.exists():
        log.info("no resumable checkpoint in %s; starting over", work)
    if clear:  # only the first process: the other ranks start while it trains into ``work``
        shutil.rmtree(work, ignore_errors=True)
    return None


def _unreadable_metrics(work: Path, state: dict[str, Any]) -> str | None:
    """What is wrong with the step counts of a resumable checkpoint or the metrics its epochs
    logged (resuming would lose their learning curve), or None."""
    try:
        int(state["global_step"]), int(state["epoch"])
        for path in (work / "metrics.before-resume.csv", work / "metrics.csv"):
            if path.is_file() and "step" not in pd.read_csv(path).columns:
                return f"{path} holds no metrics table"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its epochs' metrics are unreadable ({exc})"
    return None


def keep_logged_before(lightning_csv: Path, global_step: int, dest: Path) -> int:
    """Move the metrics logged before a checkpoint aside (CSVLogger would delete them).

    Rows of the epochs the checkpoint holds have ``step < global_step``; later rows come from
    the interrupted epoch, which is trained again. Returns the number of rows kept."""
    # A second interruption: the rows kept at the first resume come first.
    parts = [pd.read_csv(p) for p in (dest, lightning_csv) if p.is_file()]
    if not parts:
        return 0
    raw = pd.concat(parts, ignore_index=True)
    kept = raw[raw["step"] < global_step]
    with atomic_path(dest) as tmp:
        kept.to_csv(tmp, index=False)
    lightning_csv.unlink(missing_ok=True)
    return len(kept)


def epoch_table(*lightning_csvs: Path) -> pd.DataFrame:
    """Collapse Lightning's CSV (train and val rows logged apart) into one row per epoch.

    Several files (the part before a resume, then the rest) are read as one, in order."""
    raw = pd.concat([pd.read_csv(p) for p in lightning_csvs if p.is_file()], ignore_index=True)
    # LearningRateMonitor rows carry no epoch; each is logged at the start of the epoch whose
    # rows follow it, so take that epoch.
    raw["epoch"] = raw["epoch"].bfill()
    raw = raw.dropna(subset=["epoch"])
    per_epoch = raw.groupby("epoch").last().reset_index()  # last non-empty value per column
    rename = {c: "lr" if c.startswith("lr-") else c.replace("/", "_") for c in per_epoch.columns}
    per_epoch = per_epoch.rename(columns=rename).drop(columns=["step"], errors="ignore")
    per_epoch["epoch"] = per_epoch["epoch"].astype(int) + 1  # 1-based, as humans count
    first = ["epoch", "train_loss", "train_acc", "train_f1", "val_loss", "val_acc", "val_f1"]
    cols = [c for c in first if c in per_epoch.columns]
    cols += [c for c in per_epoch.columns if c not in cols]
    return per_epoch[cols]
