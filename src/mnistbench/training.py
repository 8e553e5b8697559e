"""Training one model: ``train_model(settings, prepared_dir, out_dir) -> summary``.

What gets published as ``model.ckpt`` is chosen on the validation split only: the best
epoch's checkpoint (ModelCheckpoint on val macro-F1), or the final weights (the SWA or EMA
average when one ran) if they score at least as well. The test set is never looked at here.

Resuming: every epoch ends with ``lightning/resume/last.ckpt``, stamped with a fingerprint of
the settings, data and training code that made it. ``lightning/`` is no declared output of the
Snakemake rule, so a killed job's rerun (``--rerun-incomplete``) finds the checkpoint and
continues from it when the fingerprint matches; otherwise it starts over and logs why.

Several devices (``devices``, ``num_nodes``, ``strategy: ddp``) run one process per device;
Lightning's launcher re-executes the entry point for the other ranks. Every rank trains and
validates its shard (see datamodule.py), metrics are reduced across ranks, and only rank 0
chooses and writes the published files. The ranks hold the same weights and, since DDP
broadcasts rank 0's buffers (BatchNorm statistics) on every forward pass through its wrapper,
validation also runs on every rank with rank 0's statistics: the synchronised validation F1 is
that of the weights rank 0 checkpoints (tests/test_ddp.py checks it on resnet18). The training
statistics each rank sums on its own are exempt from that broadcast (module.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
import yaml
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    StochasticWeightAveraging,
)
from lightning.pytorch.loggers import CSVLogger

from mnistbench.averaging import EMA
from mnistbench.datamodule import MNISTDataModule
from mnistbench.errors import ConfigError, TrainingError
from mnistbench.evaluation import confusion_matrix, metrics_from_confusion, predict_proba
from mnistbench.hardware import apply_speed, cpu_name, native_bf16
from mnistbench.io import atomic_path, read_json, write_json, write_text
from mnistbench.models import build_model, count_parameters
from mnistbench.module import Classifier

# The code a resumable checkpoint depends on besides the settings (the architecture's file too).
TRAINING_CODE = ("training.py", "module.py", "datamodule.py", "hardware.py", "averaging.py")
FINGERPRINT_KEY = "mnistbench_fingerprint"

log = logging.getLogger(__name__)
MONITOR = "val/f1"
# What train_model publishes in the model's directory (the Snakemake rule's outputs).
PUBLISHED = ("model.ckpt", "metrics.csv", "config.yaml", "summary.json")


def launched_as_rank0() -> bool:
    """True in the process Snakemake/DVC started, false in the ranks Lightning or srun launched
    (known from their environment before the Trainer exists)."""
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(int(os.environ.get(var, "0") or 0) == 0 for var in ranks)


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


def resolve_accelerator(requested: str) -> str:
    if requested == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if requested == "gpu" and not torch.cuda.is_available():
        raise ConfigError(
            "train.accelerator is 'gpu' but no CUDA GPU is visible; use 'auto' or 'cpu'"
        )
    return requested


def swa_start_epoch(swa: dict[str, Any], max_epochs: int) -> int:
    start = swa["epoch_start"]
    if isinstance(start, float) and start < 1:
        return int(max_epochs * start)
    return int(start)


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


def val_f1_of(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    preds = predict_proba(model, images).argmax(dim=1).numpy()
    return metrics_from_confusion(confusion_matrix(labels.numpy(), preds))["f1_macro"]


def environment_info() -> dict[str, Any]:
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


def make_classifier(settings: dict[str, Any], stats: dict[str, Any]) -> Classifier:
    """A fresh LightningModule for the resolved settings (training and tuning alike)."""
    return Classifier.from_settings(
        build_model(settings["arch"], **settings["model_kwargs"]),
        settings,
        pixel_mean=float(stats["train"]["pixel_mean"]),
        pixel_std=float(stats["train"]["pixel_std"]),
    )


def fingerprint(settings: dict[str, Any], stats: dict[str, Any]) -> str:
    """What a resumable checkpoint was made with: settings, data statistics, training code."""
    from mnistbench.config import architecture_file

    h = hashlib.sha256(json.dumps([settings, stats], sort_keys=True).encode())
    package = Path(__file__).resolve().parent
    for path in [package / f for f in TRAINING_CODE] + [architecture_file(settings["arch"])]:
        h.update(path.read_bytes())
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
        found = str((state or {}).get(FINGERPRINT_KEY, "(none)"))
        if state is not None and found == expected:
            return last, state
        if state is not None:
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


def train_model(
    settings: dict[str, Any],
    prepared_dir: str | Path,
    out_dir: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train one configured model; writes model.ckpt, metrics.csv, config.yaml, summary.json.

    Returns the summary (rank 0), or an empty dict in the other ranks of a multi-process run.
    """
    out = Path(out_dir)
    prepared = Path(prepared_dir)
    accelerator = resolve_accelerator(settings.get("accelerator", "auto"))
    devices = int(settings.get("devices", 1))
    if threads:
        # CPU processes of one job share its threads.
        per_process = threads // devices if accelerator == "cpu" else threads
        torch.set_num_threads(max(1, per_process))
    rank0 = launched_as_rank0()
    if not rank0:
        log.setLevel(logging.WARNING)  # one job log: the other ranks report problems only
    if accelerator == "gpu":
        # TF32 tensor cores for fp32 matrix products (cuDNN convolutions use them already).
        torch.set_float32_matmul_precision("high")
    settings, speed = apply_speed(settings, accelerator, probe_allowed=rank0)
    precision = speed["precision"]
    if rank0:
        log.info(
            "%s: precision %s, %s memory format: %s",
            settings["name"],
            precision,
            "channels-last" if speed["channels_last"] else "default",
            speed["reason"],
        )
    L.seed_everything(settings["seed"], workers=True, verbose=False)

    stats = read_json(prepared / "stats.json")
    work = out / "lightning"
    if rank0:
        # A failed rerun must not leave the previous run's results looking like this run's.
        for published in PUBLISHED:
            (out / published).unlink(missing_ok=True)
    try:
        return _train(settings, prepared, out, work, stats, accelerator, precision, rank0, speed)
    except Exception:
        # Lightning's own epoch checkpoints are working files: never leave one that a reader
        # could take for a result of a failed run, nor a resume point that led to the failure.
        # (Ctrl-C and kills keep them: the rerun resumes.)
        if rank0:
            shutil.rmtree(work / "checkpoints", ignore_errors=True)
            shutil.rmtree(work / "resume", ignore_errors=True)
        raise


def _finite(module: torch.nn.Module) -> bool:
    return all(
        bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point()
    )


def _train(
    settings: dict[str, Any],
    prepared: Path,
    out: Path,
    work: Path,
    stats: dict[str, Any],
    accelerator: str,
    precision: str,
    rank0: bool,
    speed: dict[str, Any],
) -> dict[str, Any]:
    name = settings["name"]
    devices = int(settings.get("devices", 1))
    stamp = fingerprint(settings, stats)
    resumable_state = resume_checkpoint(work, stamp, clear=rank0)
    resume_from = resumable_state[0] if resumable_state else None
    before_resume = work / "metrics.before-resume.csv"
    resumed_epochs = 0
    if resumable_state is not None:
        state = resumable_state[1]
        rows = keep_logged_before(work / "metrics.csv", int(state["global_step"]), before_resume)
        # Saved at the end of epoch index `epoch` (0-based), so that many + 1 epochs are done.
        resumed_epochs = int(state["epoch"]) + 1
        log.info(
            "resuming from %s: %d epoch(s) done (global step %d); %d metric rows kept",
            resume_from,
            resumed_epochs,
            state["global_step"],
            rows,
        )
        del state  # the weights and optimiser state are loaded again by Lightning
    del resumable_state

    module = make_classifier(settings, stats)
    net = module.net
    dm = MNISTDataModule(prepared, settings["batch_size"], seed=settings["seed"])

    checkpoint = ModelCheckpoint(
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
        checkpoint,
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
    swa = settings["swa"]
    if swa["enabled"]:
        callbacks.append(
            StochasticWeightAveraging(
                # Reach the constant SWA rate within one epoch: the default (10 epochs) is longer
                # than the whole averaging phase of a 10-epoch run.
                swa_lrs=float(swa["lr"]),
                swa_epoch_start=swa["epoch_start"],
                annealing_epochs=1,
            )
        )
    ema = settings["ema"]
    if ema["enabled"]:
        callbacks.append(
            # Updated after every optimiser step; validation and checkpoints see the average.
            EMA(decay=ema["decay"])
        )
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=int(settings.get("num_nodes", 1)),
        strategy=settings.get("strategy", "auto"),
        # The samplers shard by themselves (datamodule.py): Lightning's DistributedSampler
        # cannot wrap samplers that yield whole batches.
        use_distributed_sampler=False,
        precision=precision,
        max_epochs=settings["max_epochs"],
        limit_train_batches=settings["limit_train_batches"],
        accumulate_grad_batches=settings["accumulate_grad_batches"],
        gradient_clip_val=settings["gradient_clip"]["value"],
        gradient_clip_algorithm=settings["gradient_clip"]["algorithm"],
        callbacks=callbacks,
        # Flushed at every logging call, so a killed job leaves the epochs it finished on disk.
        logger=CSVLogger(save_dir=work, name="", version="", flush_logs_every_n_steps=1),
        default_root_dir=work,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        deterministic=False,
        benchmark=False,
        log_every_n_steps=1,
    )
    log.info(
        "training %s (%s): %d parameters, precision %s on %s, %d threads",
        name,
        settings["arch"],
        count_parameters(net),
        precision,
        accelerator,
        torch.get_num_threads(),
    )
    if accelerator == "gpu":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=resume_from)
    train_seconds = time.perf_counter() - t0
    # The final (SWA/EMA) weights, saved by rank 0; every rank takes part (the call synchronises).
    final_path = work / "final.ckpt"
    trainer.save_checkpoint(final_path)
    if not trainer.is_global_zero:
        return {}

    # Choose what to publish, on the validation split only, scoring both candidates the same
    # way (fp32, our metric code): the best epoch's checkpoint and the final (SWA) weights.
    val_images, val_labels = (t.cpu() for t in dm.splits["val"])
    best_path = checkpoint.best_model_path
    final_score = val_f1_of(module, val_images, val_labels)
    best_score = -1.0
    if best_path:
        best_score = val_f1_of(Classifier.from_checkpoint(best_path), val_images, val_labels)
    swa_used = swa["enabled"] and trainer.current_epoch >= swa_start_epoch(
        swa, settings["max_epochs"]
    )
    use_final = final_score >= best_score
    if use_final and not _finite(module):
        if not best_path:
            raise TrainingError(
                f"{name}: the final weights hold NaN or infinite values and no earlier epoch "
                "was checkpointed; lower the learning rate (optimizer.lr / scheduler.max_lr) or "
                "use precision 32-true. No checkpoint was published."
            )
        use_final = False
    with atomic_path(out / "model.ckpt") as tmp:
        shutil.copyfile(final_path if use_final else best_path, tmp)
    averaged = "swa" if swa_used else "ema" if ema["enabled"] else "last"
    selected = averaged if use_final else "best_epoch"

    history = epoch_table(before_resume, work / "metrics.csv")
    with atomic_path(out / "metrics.csv") as tmp:
        history.to_csv(tmp, index=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if accelerator == "gpu" else None
    best_epoch = (
        int(history.loc[history["val_f1"].idxmax(), "epoch"]) if "val_f1" in history else None
    )
    summary = {
        "model": name,
        "arch": settings["arch"],
        "params": count_parameters(net),
        # SWA adds a pass that only refreshes BatchNorm statistics: not a training epoch.
        "epochs": min(int(history["epoch"].max()), settings["max_epochs"]) if len(history) else 0,
        "best_epoch": best_epoch,
        "selected": selected,
        "val_f1": max(final_score, best_score),
        "val_f1_best_epoch": best_score,
        "val_f1_final": final_score,
        "train_seconds": round(train_seconds, 2),
        "peak_mem_mb": round(peak_mb, 1),
        "peak_gpu_mem_mb": None if peak_gpu_mb is None else round(peak_gpu_mb, 1),
        "precision": precision,
        "channels_last": bool(settings["channels_last"]),
        # How precision and memory format were chosen (auto: the probe's images/s per variant).
        "speed": speed,
        "accelerator": accelerator,
        "threads": torch.get_num_threads(),
        "resumed_after_epoch": resumed_epochs if resume_from is not None else None,
    }
    snapshot = {
        "model": settings,
        "data": stats,
        "prepared": str(prepared),
        "environment": environment_info(),
    }
    write_text(out / "config.yaml", yaml.safe_dump(snapshot, sort_keys=False))
    write_json(out / "summary.json", summary)
    # Finished: a later run of this job (e.g. --forcerun) must train afresh, not resume.
    (work / "resume" / "last.ckpt").unlink(missing_ok=True)
    log.info(
        "%s: selected %s weights, val F1 %.4f, %.1f s",
        name,
        selected,
        summary["val_f1"],
        train_seconds,
    )
    return summary
