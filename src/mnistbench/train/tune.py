"""Learning-rate and batch-size finding for one model (Lightning's ``Tuner``).

``tune_model`` writes ``suggestion.json`` and ``lr_finder.png``; nothing is changed in the
config. The learning rate found is the one the model's schedule is driven by: OneCycle's peak
(``scheduler.max_lr``) when OneCycle is used, else ``optimizer.lr``. The suggestion.json says
which key, and gives the ``--config`` override that applies it.

The batch-size finder doubles the batch size until a trial runs out of memory. On a GPU that
finds the largest batch that fits; on the CPU nothing runs out, so it stops at its trial cap and
the number is only an upper bound that was tried (``hit_trial_cap`` says so).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.tuner import Tuner

from mnistbench.io import pyplot, read_json, write_figure, write_json
from mnistbench.train.datamodule import MNISTDataModule
from mnistbench.train.devices import resolve_accelerator
from mnistbench.train.recipe import make_classifier
from mnistbench.train.speed import apply_speed

log = logging.getLogger(__name__)


def _trainer(settings: dict[str, Any], root: Path, accelerator: str) -> L.Trainer:
    return L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=settings["precision"]["gpu" if accelerator == "gpu" else "cpu"],
        max_epochs=1000,  # the finders stop by steps; a small data set may need several epochs
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
    )


def tune_model(
    settings: dict[str, Any],
    prepared_dir: str | Path,
    out_dir: str | Path,
    tune: Mapping[str, Any],
    threads: int | None = None,
) -> dict[str, Any]:
    """Run both finders on the training split with the config's ``tune`` settings
    (``lr_steps``, ``min_lr``, ``max_lr``, ``batch_trials``); write suggestion.json and
    lr_finder.png."""
    out, prepared = Path(out_dir), Path(prepared_dir)
    if threads:
        torch.set_num_threads(threads)
    accelerator = resolve_accelerator(settings["accelerator"])
    settings, _ = apply_speed(settings, accelerator)  # the precision training would use
    stats = read_json(prepared / "stats.json")
    with tempfile.TemporaryDirectory(prefix="mnistbench-tune-") as root:

        def trainer() -> L.Trainer:
            return _trainer(settings, Path(root), accelerator)

        suggested = lr_range_test(settings, prepared, stats, tune, trainer(), out / "lr_finder.png")
        found_bs = batch_size_trials(settings, prepared, stats, tune["batch_trials"], trainer())
    result = suggestion(settings, tune, suggested, found_bs, accelerator)
    write_json(out / "suggestion.json", result)
    log.info(
        "%s: suggested %s = %s (configured %s); batch size finder: %s",
        settings["name"],
        result["lr_key"],
        result["lr_suggested"],
        result["lr_configured"],
        found_bs,
    )
    return result


def lr_range_test(
    settings: dict[str, Any],
    prepared: Path,
    stats: dict[str, Any],
    tune: Mapping[str, Any],
    trainer: L.Trainer,
    plot: Path,
) -> float | None:
    """Lightning's learning-rate range test at the configured batch size (the finder sweeps
    the optimiser's rate with its own schedule); the suggested rate, and its plot."""
    L.seed_everything(settings["seed"], workers=True, verbose=False)
    dm = MNISTDataModule(prepared, settings["batch_size"], seed=settings["seed"])
    finder = Tuner(trainer).lr_find(
        make_classifier(settings, stats),
        datamodule=dm,
        min_lr=tune["min_lr"],
        max_lr=tune["max_lr"],
        num_training=tune["lr_steps"],
        update_attr=False,
    )
    suggested = finder.suggestion() if finder is not None else None
    plt = pyplot()
    # The first points are the smoothing's warm-up (biased low); the suggestion skips them too.
    lrs, losses = finder.results["lr"][10:-1], finder.results["loss"][10:-1]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    if suggested is not None:
        at = min(range(len(lrs)), key=lambda i: abs(lrs[i] - suggested))
        ax.plot(lrs[at], losses[at], "o", color="red", label=f"suggested {suggested:.3g}")
        ax.legend()
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title(f"{settings['name']}: learning-rate range test ({tune['lr_steps']} steps)")
    fig.tight_layout()
    write_figure(fig, plot)
    return suggested


def batch_size_trials(
    settings: dict[str, Any], prepared: Path, stats: dict[str, Any], trials: int, trainer: L.Trainer
) -> int | None:
    """Lightning's batch-size finder: ``trials`` sizes, doubling from the configured one."""
    dm = MNISTDataModule(prepared, settings["batch_size"], seed=settings["seed"])
    found = Tuner(trainer).scale_batch_size(
        make_classifier(settings, stats),
        datamodule=dm,
        mode="power",
        steps_per_trial=3,
        init_val=settings["batch_size"],
        max_trials=trials,
    )
    return int(found) if found is not None else None


def suggestion(
    settings: dict[str, Any],
    tune: Mapping[str, Any],
    suggested: float | None,
    found_bs: int | None,
    accelerator: str,
) -> dict[str, Any]:
    """suggestion.json: what was found, the key it belongs to and the override that applies it."""
    name = settings["name"]
    onecycle = settings["scheduler"]["name"] == "onecycle"
    key = "scheduler.max_lr" if onecycle else "optimizer.lr"
    configured_lr = settings["scheduler"]["max_lr"] if onecycle else settings["optimizer"]["lr"]
    lr_text = f"{suggested:.3g}" if suggested is not None else None
    override = None
    if lr_text is not None:
        inner = "{" + key.replace(".", ": {") + f": {lr_text}" + "}" * (key.count(".") + 1)
        override = f"--config models='{{{name}: {{train: {inner}}}}}'"
    cap = settings["batch_size"] * 2 ** (tune["batch_trials"] - 1)  # the first trial: batch_size
    return {
        "model": name,
        "lr_key": f"models.{name}.train.{key}",
        "lr_configured": configured_lr,
        "lr_suggested": float(lr_text) if lr_text is not None else None,
        "lr_steps": tune["lr_steps"],
        "lr_range": [tune["min_lr"], tune["max_lr"]],
        "lr_at_batch_size": settings["batch_size"],
        "config_override": override,
        "batch_size_configured": settings["batch_size"],
        "batch_size_found": found_bs,
        "batch_size_trials": tune["batch_trials"],
        "hit_trial_cap": found_bs is not None and found_bs >= cap,
        "accelerator": accelerator,
    }
