"""Training throughput: the tutorial data pipeline vs mnistbench vs a raw PyTorch loop.

For each model, in one process and on the same training images, the same batch size, optimiser
(AdamW) and precision (the model's configured precision for the device), this times training
steps three ways:

  (a) tutorial: ``torchvision.datasets.MNIST`` + per-sample PIL ``ToTensor``/``Normalize`` +
      ``DataLoader`` worker processes, a plain LightningModule logging loss and accuracy per step;
  (b) mnistbench: the project's ``MNISTDataModule`` and ``Classifier`` under a Lightning
      ``Trainer`` configured as ``train_model`` configures it;
  (c) raw: a bare PyTorch loop over pre-normalised tensors already on the device (no Lightning,
      no metrics, no data pipeline): the compute ceiling;
  and optionally ``compiled``: (b) with ``train.compile: true`` (torch.compile; compile time is
  spent in the warm-up steps and not timed).

All methods use the model's configured optimiser (AdamW, Adam or SGD). ``--rounds`` repeats the
whole sequence of methods, and each method's throughput is the median over all its windows of
all rounds, so that a burst of noise on a shared machine hits every method alike.

Throughput is samples/s per window of ``--steps`` optimiser steps, after ``--warmup`` steps,
as the median of ``--windows`` windows. Peak memory is the process's peak RSS during the
method (CPU; DataLoader workers excluded) or ``torch.cuda.max_memory_allocated`` (GPU).
Not part of the test suite.

    python benchmarks/train_throughput.py --prepared data/mnist/prepared \\
        --out benchmarks/out/throughput.csv
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.nn import functional as F

from mnistbench.config.load import load_config, resolve_model, validate_config
from mnistbench.data.prepare import load_split
from mnistbench.data.synthetic import make_digits
from mnistbench.models import build_model
from mnistbench.train.classifier import Classifier
from mnistbench.train.datamodule import MNISTDataModule
from mnistbench.train.optim import optimizer_for
from mnistbench.train.recipe import resolve_accelerator
from mnistbench.train.speed import apply_speed


class StepTimer(Callback):
    """Wall-clock time of each window of ``steps`` training batches after ``warmup``."""

    def __init__(self, warmup: int, steps: int, sync: Callable[[], None]) -> None:
        self.warmup, self.steps, self.sync = warmup, steps, sync
        self.marks: list[float] = []
        self.count = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.count += 1
        if self.count >= self.warmup and (self.count - self.warmup) % self.steps == 0:
            self.sync()
            self.marks.append(time.perf_counter())

    def window_seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]


class TutorialModule(L.LightningModule):
    """What the tutorials write: loss and accuracy logged on every step."""

    def __init__(self, net: nn.Module, optimizer: dict) -> None:
        super().__init__()
        self.net, self.optimizer_cfg = net, optimizer
        from torchmetrics.classification import MulticlassAccuracy

        self.acc = MulticlassAccuracy(10)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self.acc(logits, y)
        self.log("train_loss", loss)
        self.log("train_acc", self.acc)
        return loss

    def configure_optimizers(self):
        return optimizer_for(self.parameters(), self.optimizer_cfg)


def write_raw_mnist(root: Path, images: torch.Tensor, labels: torch.Tensor) -> None:
    """The uncompressed IDX files torchvision.datasets.MNIST reads from <root>/MNIST/raw."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    n = images.shape[0]
    for prefix in ("train", "t10k"):
        with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as fh:
            fh.write((2051).to_bytes(4, "big") + n.to_bytes(4, "big"))
            fh.write((28).to_bytes(4, "big") * 2 + images.numpy().tobytes())
        with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as fh:
            fh.write((2049).to_bytes(4, "big") + n.to_bytes(4, "big"))
            fh.write(labels.to(torch.uint8).numpy().tobytes())


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return
    with contextlib.suppress(OSError):  # Linux: writing 5 resets VmHWM (peak RSS) to RSS
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def trainer_for(settings: dict, accelerator: str, n_steps: int, timer: StepTimer) -> L.Trainer:
    return L.Trainer(
        accelerator=accelerator,
        devices=1,
        max_epochs=1,
        limit_train_batches=n_steps,
        limit_val_batches=0,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        precision=settings["precision"]["gpu" if accelerator == "gpu" else "cpu"],
    )


def run_tutorial(settings, images, labels, accelerator, args, sync) -> list[float]:
    from torchvision import datasets, transforms

    with tempfile.TemporaryDirectory() as root:
        write_raw_mnist(Path(root), images, labels)
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        ds = datasets.MNIST(root, train=True, download=False, transform=tf)
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=settings["batch_size"],
            shuffle=True,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
            pin_memory=accelerator == "gpu",
        )
        net = build_model(settings["arch"], **settings["model_kwargs"])
        module = TutorialModule(net, settings["optimizer"])
        timer = StepTimer(args.warmup, args.steps, sync)
        trainer_for(settings, accelerator, total_steps(args), timer).fit(module, loader)
        return timer.window_seconds()


def run_mnistbench(settings, prepared: Path, accelerator, args, sync) -> list[float]:
    net = build_model(settings["arch"], **settings["model_kwargs"])
    module = Classifier.from_settings(net, settings, pixel_mean=0.1307, pixel_std=0.3081)
    dm = MNISTDataModule(prepared, settings["batch_size"], seed=settings["seed"])
    timer = StepTimer(args.warmup, args.steps, sync)
    trainer = trainer_for(settings, accelerator, total_steps(args), timer)
    trainer.fit(module, datamodule=dm)
    return timer.window_seconds()


def run_raw(settings, images, labels, device, args, sync) -> list[float]:
    net = build_model(settings["arch"], **settings["model_kwargs"]).to(device)
    opt = optimizer_for(net.parameters(), settings["optimizer"])
    x_all = ((images.float() / 255 - 0.1307) / 0.3081).unsqueeze(1).to(device)
    if settings["channels_last"]:  # the memory format mnistbench trains this model in
        net = net.to(memory_format=torch.channels_last)
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    y_all = labels.to(device)
    precision = settings["precision"]["gpu" if device.type == "cuda" else "cpu"]
    dtype = torch.float16 if precision.startswith("16") else torch.bfloat16
    autocast = precision.endswith("-mixed")
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    bs = settings["batch_size"]
    n = x_all.shape[0]
    perm = torch.randperm(n, device=device)
    marks: list[float] = []
    for step in range(1, total_steps(args) + 1):
        i = ((step - 1) * bs) % (n - bs + 1)
        idx = perm[i : i + bs]
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            loss = F.cross_entropy(net(x_all[idx]), y_all[idx])
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if step >= args.warmup and (step - args.warmup) % args.steps == 0:
            sync()
            marks.append(time.perf_counter())
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def total_steps(args) -> int:
    return args.warmup + args.steps * args.windows


def load_images(args) -> tuple[torch.Tensor, torch.Tensor, Path]:
    prepared = Path(args.prepared) if args.prepared else None
    if prepared is None or not (prepared / "train.pt").exists():
        tmp = Path(tempfile.mkdtemp(prefix="throughput-"))
        images, labels = (torch.from_numpy(a) for a in make_digits(args.synthetic, seed=0))
        labels = labels.long()
        torch.save({"images": images, "labels": labels}, tmp / "train.pt")
        for split in ("val", "test"):
            torch.save({"images": images[:1000], "labels": labels[:1000]}, tmp / f"{split}.pt")
        print(f"no prepared data at {args.prepared}: using {args.synthetic} generated digits")
        prepared = tmp
    images, labels = load_split(prepared / "train.pt")
    return images, labels, prepared


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--prepared", default="data/mnist/prepared")
    p.add_argument("--synthetic", type=int, default=6000, help="images if --prepared is missing")
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument(
        "--methods",
        nargs="+",
        default=["tutorial", "mnistbench", "raw"],
        choices=["tutorial", "mnistbench", "raw", "compiled"],
    )
    p.add_argument("--rounds", type=int, default=2, help="repeats of the method sequence")
    p.add_argument("--precision", default=None, help="override every model's precision")
    p.add_argument("--channels-last", choices=["config", "auto", "true", "false"], default="config")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="tutorial DataLoader workers")
    p.add_argument("--warmup", type=int, default=10, help="steps before the first window")
    p.add_argument("--steps", type=int, default=30, help="optimiser steps per window")
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--out", default="benchmarks/out/throughput.csv")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    config = validate_config(load_config(args.config))
    models = args.models or list(config["models"])
    accelerator = resolve_accelerator(args.accelerator)
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    images, labels, prepared = load_images(args)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, device {device}"
        + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else "")
        + f"; torch {torch.__version__}, lightning {L.__version__}; {images.shape[0]} images"
    )
    rows = []
    for name in models:
        settings = resolve_model(config, name)
        settings["accelerator"] = accelerator
        kind = "gpu" if device.type == "cuda" else "cpu"
        if args.precision:
            settings["precision"][kind] = args.precision
        if args.channels_last != "config":
            settings["channels_last"] = {"auto": "auto", "true": True, "false": False}[
                args.channels_last
            ]
        # What training would use here (auto: probed and cached, as in a train job).
        settings, _ = apply_speed(settings, accelerator)
        row: dict[str, object] = {"model": name, "batch": settings["batch_size"]}
        row["precision"] = settings["precision"][kind]
        row["channels_last"] = settings["channels_last"]
        windows: dict[str, list[float]] = {m: [] for m in args.methods}
        peaks: dict[str, float] = {m: 0.0 for m in args.methods}
        for _ in range(args.rounds):
            for method in args.methods:
                L.seed_everything(0, verbose=False)
                reset_peak_memory(device)
                if method == "tutorial":
                    secs = run_tutorial(settings, images, labels, accelerator, args, sync)
                elif method in ("mnistbench", "compiled"):
                    run = {**settings, "compile": method == "compiled"}
                    secs = run_mnistbench(run, prepared, accelerator, args, sync)
                else:
                    secs = run_raw(settings, images, labels, device, args, sync)
                windows[method] += secs
                peaks[method] = max(peaks[method], peak_memory_mb(device))
                rate = settings["batch_size"] * args.steps / statistics.median(secs)
                print(f"  {name:14s} {method:10s} {rate:9.0f} samples/s", flush=True)
        for method in args.methods:
            rate = settings["batch_size"] * args.steps / statistics.median(windows[method])
            row[f"{method}_samples_s"] = round(rate)
            row[f"{method}_peak_mb"] = round(peaks[method])
        if {"tutorial", "mnistbench"} <= set(args.methods):
            row["b_over_a"] = round(row["mnistbench_samples_s"] / row["tutorial_samples_s"], 2)
        if {"raw", "mnistbench"} <= set(args.methods):
            row["b_over_c"] = round(row["mnistbench_samples_s"] / row["raw_samples_s"], 2)
        if {"tutorial", "compiled"} <= set(args.methods):
            row["compiled_over_a"] = round(row["compiled_samples_s"] / row["tutorial_samples_s"], 2)
        rows.append(row)

    cols = list(dict.fromkeys(k for r in rows for k in r))
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
