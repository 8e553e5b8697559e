"""Training one model: ``train_model(settings, prepared_dir, out_dir) -> summary``.

What gets published as ``model.ckpt`` is chosen on the validation split only: the best
epoch's checkpoint (ModelCheckpoint on val macro-F1), or the final weights (the SWA or EMA
average when one ran) if they score at least as well. The test set is never looked at here.

A killed job's rerun resumes from its last epoch when the settings, data and code are
unchanged (``mnistbench.train.resume``). Callbacks: ``mnistbench.train.callbacks``.

Several devices (``devices``, ``num_nodes``, ``strategy: ddp``) run one process per device;
Lightning's launcher re-executes the entry point for the other ranks. Every rank trains and
validates its shard (``datamodule``), metrics are reduced across ranks, and only rank 0 chooses
and writes the published files. DDP broadcasts rank 0's buffers (BatchNorm statistics) on every
forward pass, so every rank validates rank 0's weights and statistics: the synchronised
validation F1 is that of the weights rank 0 checkpoints (tests/test_ddp.py, on resnet18).
The training statistics each rank sums on its own are no buffers, so exempt (``classifier``).
"""

from __future__ import annotations

import logging
import resource
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from mnistbench.config.load import swa_start_epoch
from mnistbench.data.prepare import split_classes
from mnistbench.errors import TrainingError
from mnistbench.io import atomic_path, read_json, replace_tree, write_json, write_text
from mnistbench.models import build_model, count_parameters
from mnistbench.progress import Progress, clock
from mnistbench.signals import stop_requested
from mnistbench.train.callbacks import callbacks_for
from mnistbench.train.classifier import Classifier
from mnistbench.train.datamodule import MNISTDataModule
from mnistbench.train.devices import (
    check_slurm_tasks,
    environment_info,
    launched_as_rank0,
    resolve_accelerator,
)
from mnistbench.train.loggers import LIVE_DIR, run_loggers
from mnistbench.train.publish import choose_weights, no_better_than_chance
from mnistbench.train.resume import epoch_table, fingerprint, keep_logged_before, resume_checkpoint
from mnistbench.train.speed import apply_speed

log = logging.getLogger(__name__)
# What train_model publishes in the model's directory (the pipeline's train outputs).
PUBLISHED = ("model.ckpt", "metrics.csv", "config.yaml", "summary.json")


@dataclass
class Run:
    """This process's training run: the model's directory (``out``; Lightning's working files
    in ``out/lightning``), device, precision (and why), rank, and where it resumes from."""

    out: Path
    accelerator: str
    precision: str
    speed: dict[str, Any]
    rank0: bool
    resume_from: Path | None = None
    resumed_epochs: int = 0
    progress: Progress | None = None  # the terminal's per-epoch lines (rank 0, when given)
    loggers: tuple[str, ...] = ()  # beside CSV and DVCLive: the config's `loggers`
    code: tuple[str, ...] = ()  # the train stage's code files (the resume fingerprint)

    @property
    def work(self) -> Path:
        return self.out / "lightning"


def make_classifier(settings: dict[str, Any], stats: dict[str, Any]) -> Classifier:
    """A fresh LightningModule for the resolved settings (training and tuning alike), with one
    output per class of the prepared data set (its stats.json)."""
    classes = split_classes(stats)
    return Classifier.from_settings(
        build_model(settings["arch"], num_classes=len(classes), **settings["model_kwargs"]),
        settings,
        pixel_mean=float(stats["train"]["pixel_mean"]),
        pixel_std=float(stats["train"]["pixel_std"]),
        classes=classes,
    )


def train_model(
    settings: dict[str, Any],
    prepared_dir: str | Path,
    out_dir: str | Path,
    threads: int | None = None,
    progress_fd: int | None = None,
    loggers: tuple[str, ...] = (),
    code: Sequence[str] = (),
) -> dict[str, Any]:
    """Train one configured model; writes model.ckpt, metrics.csv, config.yaml, summary.json
    (and DVCLive's files, ``mnistbench.train.loggers``). ``progress_fd``: a file descriptor for
    one line per epoch (``mnistbench.progress``); ``loggers``: Lightning loggers to add;
    ``code``: the stage's code files, part of the resume fingerprint (``mnistbench.train.resume``).

    Returns the summary (rank 0), or an empty dict in the other ranks of a multi-process run.
    """
    prepared = Path(prepared_dir)
    settings, run = _setup(settings, Path(out_dir), threads)
    run.loggers, run.code = tuple(loggers), tuple(code)
    if run.rank0:
        run.progress = Progress.open(progress_fd, settings["name"])
    stats = read_json(prepared / "stats.json")
    if run.rank0:
        # A failed rerun must not leave the previous run's results looking like this run's.
        for published in PUBLISHED:
            (run.out / published).unlink(missing_ok=True)
    try:
        return _train(settings, prepared, stats, run)
    except Exception as exc:
        # Lightning's own epoch checkpoints are working files: never leave one that a reader
        # could take for a result of a failed run, nor a resume point that led to the failure.
        # (Ctrl-C and kills keep them: the rerun resumes; so does an error while stopping.)
        if run.rank0 and not stop_requested():
            shutil.rmtree(run.work / "checkpoints", ignore_errors=True)
            shutil.rmtree(run.work / "resume", ignore_errors=True)
            (run.work / "final.ckpt").unlink(missing_ok=True)
        if isinstance(exc, TrainingError):  # say which run: several train at once
            raise TrainingError(f"{settings['name']} {exc}") from None
        if isinstance(exc, OSError) and not str(exc.filename).startswith(str(run.out)):
            where = f" (writing {exc.filename})" if exc.filename else ""  # name the run's too
            raise OSError(exc.errno, exc.strerror, f"{run.out}{where}") from exc
        raise


def _setup(settings: dict[str, Any], out: Path, threads: int | None) -> tuple[dict[str, Any], Run]:
    """Device, threads, precision and memory format (``auto`` decided by ``speed``), seed."""
    accelerator = resolve_accelerator(settings["accelerator"])
    check_slurm_tasks(settings)
    if threads:
        # CPU processes of one job share its threads.
        per_process = threads // int(settings["devices"]) if accelerator == "cpu" else threads
        torch.set_num_threads(max(1, per_process))
    rank0 = launched_as_rank0()
    if not rank0:
        log.setLevel(logging.WARNING)  # one job log: the other ranks report problems only
    if accelerator == "gpu":
        # TF32 tensor cores for fp32 matrix products (cuDNN convolutions use them already).
        torch.set_float32_matmul_precision("high")
    settings, speed = apply_speed(settings, accelerator, probe_allowed=rank0)
    if rank0:
        layout = "channels-last" if speed["channels_last"] else "default"
        log.info(
            "%s: precision %s, %s memory format: %s",
            *(settings["name"], speed["precision"], layout, speed["reason"]),
        )
    L.seed_everything(settings["seed"], workers=True, verbose=False)
    return settings, Run(out, accelerator, speed["precision"], speed, rank0)


def _train(settings: dict[str, Any], prepared: Path, stats: dict[str, Any], run: Run):
    """The recipe: resume point, model and data, callbacks, fit; then rank 0 chooses the
    published weights on the validation split and writes the model's files."""
    stamp = fingerprint(settings, stats, run.code)
    _resume_point(stamp, run)
    module = make_classifier(settings, stats)
    dm = MNISTDataModule(prepared, settings["batch_size"], seed=settings["seed"])
    callbacks, best = callbacks_for(settings, run.work, stamp, run.progress)
    trainer = _trainer(settings, run, callbacks)
    log.info(
        "training %s (%s): %d parameters, precision %s on %s, %d threads",
        *(settings["name"], settings["arch"], count_parameters(module.net), run.precision),
        *(run.accelerator, torch.get_num_threads()),
    )
    if run.accelerator == "gpu":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=run.resume_from)
    train_seconds = time.perf_counter() - t0
    # The final (SWA/EMA) weights, saved by rank 0; every rank takes part (the call synchronises).
    final_path = run.work / "final.ckpt"
    trainer.save_checkpoint(final_path)
    if not trainer.is_global_zero:
        return {}
    scores = choose_weights(module, final_path, best.best_model_path, dm.splits["val"])
    if settings["require_learning"]:
        no_better_than_chance(module, max(scores["val_f1_final"], scores["val_f1_best_epoch"]))
    scores.update(params=count_parameters(module.net), train_seconds=train_seconds)
    snapshot = {"model": settings, "data": stats, "prepared": str(prepared)}
    return _publish(settings, snapshot, run, scores, trainer)


def _resume_point(stamp: str, run: Run) -> None:
    """The checkpoint to resume from (``run.resume_from``), with the metrics logged before it
    kept aside; or none, and the working files removed (by the first process only)."""
    work = run.work
    found = resume_checkpoint(work, stamp, clear=run.rank0)
    if found is None:
        return
    run.resume_from, state = found
    rows = keep_logged_before(
        work / "metrics.csv", int(state["global_step"]), work / "metrics.before-resume.csv"
    )
    # Saved at the end of epoch index `epoch` (0-based), so that many + 1 epochs are done.
    run.resumed_epochs = int(state["epoch"]) + 1
    log.info(
        "resuming from %s: %d epoch(s) done (global step %d); %d metric rows kept",
        *(run.resume_from, run.resumed_epochs, state["global_step"], rows),
    )


def _trainer(settings: dict[str, Any], run: Run, callbacks: list[Callback]) -> L.Trainer:
    return L.Trainer(
        accelerator=run.accelerator,
        devices=int(settings["devices"]),
        num_nodes=int(settings["num_nodes"]),
        strategy=settings["strategy"],
        # The samplers shard by themselves (``datamodule``): Lightning's DistributedSampler
        # cannot wrap samplers that yield whole batches.
        use_distributed_sampler=False,
        precision=run.precision,
        max_epochs=settings["max_epochs"],
        limit_train_batches=settings["limit_train_batches"],
        accumulate_grad_batches=settings["accumulate_grad_batches"],
        gradient_clip_val=settings["gradient_clip"]["value"],
        gradient_clip_algorithm=settings["gradient_clip"]["algorithm"],
        callbacks=callbacks,
        logger=run_loggers(
            run.out, run.work, settings["name"], run.loggers, resume=run.resume_from is not None
        ),
        default_root_dir=run.work,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        deterministic=False,
        benchmark=False,
        log_every_n_steps=1,
    )


def _publish(
    settings: dict[str, Any], snapshot: dict, run: Run, scores: dict, trainer: L.Trainer
) -> dict[str, Any]:
    """model.ckpt first, then metrics.csv, config.yaml (the settings, data statistics and
    environment) and summary.json, each atomically."""
    out, work = run.out, run.work
    with atomic_path(out / "model.ckpt") as tmp:
        shutil.copyfile(scores["path"], tmp)
    swa, ema = settings["swa"], settings["ema"]
    swa_used = swa["enabled"] and trainer.current_epoch >= swa_start_epoch(
        swa, settings["max_epochs"]
    )
    averaged = "swa" if swa_used else "ema" if ema["enabled"] else "last"
    selected = averaged if scores["final"] else "best_epoch"
    history = epoch_table(work / "metrics.before-resume.csv", work / "metrics.csv")
    with atomic_path(out / "metrics.csv") as tmp:
        history.to_csv(tmp, index=False)
    replace_tree(work / LIVE_DIR, out / LIVE_DIR)  # DVCLive's metrics and plots, every epoch
    summary = _summary(settings, run, history, scores, selected)
    snapshot = {**snapshot, "environment": environment_info()}
    write_text(out / "config.yaml", yaml.safe_dump(snapshot, sort_keys=False))
    write_json(out / "summary.json", summary)
    # Finished: a later run of this job (e.g. --forcerun) must train afresh, not resume.
    (work / "resume" / "last.ckpt").unlink(missing_ok=True)
    log.info(
        "%s: selected %s weights, val F1 %.4f, %.1f s",
        *(settings["name"], selected, summary["val_f1"], summary["train_seconds"]),
    )
    if run.progress is not None:
        run.progress.line(
            f"done: val F1 {summary['val_f1']:.4f} ({selected.replace('_', ' ')} weights), "
            f"{clock(summary['train_seconds'])}"
        )
    return summary


def _summary(
    settings: dict[str, Any], run: Run, history: Any, scores: dict, selected: str
) -> dict[str, Any]:
    """summary.json: what was trained, how long and on what, and which weights were chosen."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    gpu = run.accelerator == "gpu"
    peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if gpu else None
    best_epoch = (
        int(history.loc[history["val_f1"].idxmax(), "epoch"]) if "val_f1" in history else None
    )
    return {
        "model": settings["name"],
        "arch": settings["arch"],
        "params": scores["params"],
        # SWA adds a pass that only refreshes BatchNorm statistics: not a training epoch.
        "epochs": min(int(history["epoch"].max()), settings["max_epochs"]) if len(history) else 0,
        "best_epoch": best_epoch,
        "selected": selected,
        "val_f1": max(scores["val_f1_final"], scores["val_f1_best_epoch"]),
        "val_f1_best_epoch": scores["val_f1_best_epoch"],
        "val_f1_final": scores["val_f1_final"],
        "train_seconds": round(scores["train_seconds"], 2),
        "peak_mem_mb": round(peak_mb, 1),
        "peak_gpu_mem_mb": None if peak_gpu_mb is None else round(peak_gpu_mb, 1),
        "precision": run.precision,
        "channels_last": bool(settings["channels_last"]),
        # How precision and memory format were chosen (auto: the probe's images/s per variant).
        "speed": run.speed,
        "accelerator": run.accelerator,
        "threads": torch.get_num_threads(),
        "resumed_after_epoch": run.resumed_epochs if run.resume_from is not None else None,
    }
