"""The LightningModule: one class wraps every architecture of the registry.

The network is injected (``net``) so architectures stay plain ``nn.Module`` files; the
architecture name and its kwargs are saved as hyperparameters so a checkpoint alone is
enough to rebuild the model (``Classifier.from_checkpoint``).

The data set's class names (``classes``) are saved too: the network has one output per class,
and evaluation, the report and predict name the labels by them.

Speed: batches arrive as uint8 and are augmented and normalised here, on the device that
trains, as whole batches. Training and validation accuracy and F1 come from a KxK confusion
matrix accumulated on the device with one ``bincount`` per step; once per epoch it is summed over
the processes and scored by ``mnistbench.metrics`` (the definition evaluation and the report
use), so a step costs little more than the network's own forward and backward pass.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from mnistbench.config.load import schema_default
from mnistbench.data.registry import DIGITS
from mnistbench.errors import TrainingError
from mnistbench.metrics import accuracy, macro_f1
from mnistbench.models import build_model
from mnistbench.train.optim import optimizer_for

# An epoch's mean training loss this many times a fresh model's (log K) means divergence.
EXPLODED = 10


class Classifier(L.LightningModule):
    def __init__(
        self,
        arch: str,
        model_kwargs: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        label_smoothing: float,
        pixel_mean: float,
        pixel_std: float,
        augment: dict[str, Any],
        channels_last: bool,
        compile: bool,
        net: nn.Module | None = None,
        classes: list[str] | None = None,
    ) -> None:
        """The settings are a model's resolved ``train`` keys (``from_settings``); ``net`` is the
        built architecture (rebuilt from ``arch`` and ``model_kwargs`` when a checkpoint loads);
        ``classes`` the data set's class names (a checkpoint without them: the ten digits)."""
        super().__init__()
        classes = list(classes or DIGITS)
        self.save_hyperparameters(ignore=["net"])  # with ``classes`` as set here
        self.num_classes = len(classes)
        if net is None:
            net = build_model(arch, num_classes=self.num_classes, **model_kwargs)
        self.net = net
        self.optimizer_cfg = optimizer
        self.scheduler_cfg = scheduler
        self.augment_cfg = augment if augment["enabled"] else None
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile:
            self.net.compile()  # in place: state_dict keys stay those of the plain network
        # Per-epoch sums on the device, per split: confusion counts and the summed loss. Plain
        # tensors, not buffers: each rank sums its own batches (DDP broadcasts rank 0's buffers
        # before every forward pass), and weight averaging (SWA, EMA) averages and swaps buffers.
        self.sums: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_settings(
        cls,
        net: nn.Module,
        settings: dict[str, Any],
        pixel_mean: float,
        pixel_std: float,
        classes: list[str] | None = None,
    ) -> Classifier:
        """The module for one model's resolved settings (``mnistbench.config.load.resolve_model``)
        on a data set of these ``classes`` (default: the ten digits)."""
        return cls(
            net=net,
            arch=settings["arch"],
            model_kwargs=settings["model_kwargs"],
            optimizer=settings["optimizer"],
            scheduler=settings["scheduler"],
            label_smoothing=settings["label_smoothing"],
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            augment=settings["augment"],
            channels_last=settings["channels_last"],
            compile=settings["compile"],
            classes=classes,
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str = "cpu") -> Classifier:
        # torch.compile is a training-speed option: a reloaded model (evaluate, predict, ONNX
        # export) runs eagerly, whatever the run that saved it used.
        return cls.load_from_checkpoint(
            str(path), map_location=map_location, weights_only=False, compile=False
        )

    def normalize(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """uint8 [N, 28, 28] -> float [N, 1, 28, 28], normalised on whatever device holds it."""
        x = images.unsqueeze(1).float().div_(255.0)
        if augment and self.augment_cfg is not None:
            cfg = self.augment_cfg
            x = random_affine(x, cfg["degrees"], cfg["translate"], cfg["scale"])
            x = random_flip_and_erase(x, cfg.get("hflip", False), cfg.get("erase", 0.0))
        x = x.sub_(self.hparams.pixel_mean).div_(self.hparams.pixel_std)
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(images))

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, labels = batch
        logits = self.net(self.normalize(images, augment=True))
        loss = self._loss(logits, labels)
        # A CPU check is free; on a GPU it waits for the device, so check every 32nd step there
        # (and on the epoch's summed loss, which a NaN anywhere turns into NaN).
        if (self.device.type == "cpu" or batch_idx % 32 == 0) and not torch.isfinite(loss):
            self._non_finite(loss.item(), f"batch {batch_idx}")
        self._count("train", logits, labels, loss)
        return loss

    def _reset(self, split: str) -> None:
        self.sums[split] = (
            torch.zeros(self.num_classes**2, dtype=torch.long, device=self.device),
            torch.zeros((), device=self.device),
        )

    @torch.no_grad()
    def _count(self, split: str, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor):
        if split not in self.sums:
            self._reset(split)
        confusion, loss_sum = self.sums[split]
        pairs = labels * self.num_classes + logits.argmax(dim=1)
        # index_add_, not bincount: bincount on a GPU reads its input's maximum back to the
        # host, a synchronisation at every step.
        confusion.index_add_(0, pairs, torch.ones_like(pairs, dtype=confusion.dtype))
        loss_sum.add_(loss.detach().float() * labels.shape[0])

    def _epoch_scores(self, split: str) -> dict[str, float] | None:
        """Loss, accuracy and macro-F1 of the epoch's batches, summed over every process first
        (DDP), so that they are those of the whole split; None before any batch."""
        if split not in self.sums:
            return None
        reduce = self.trainer.strategy.reduce
        confusion, loss_sum = (reduce(t.clone(), reduce_op="sum") for t in self.sums[split])
        cm = confusion.view(self.num_classes, self.num_classes).cpu().numpy()
        seen = cm.sum()
        if seen == 0:
            return None
        return {
            "loss": float(loss_sum) / seen,
            "acc": accuracy(cm),
            "f1": macro_f1(cm),
        }

    def _non_finite(self, loss: float, where: str) -> None:
        raise TrainingError(
            f"diverged: the training loss became {loss} at epoch {self.current_epoch + 1}, "
            f"{where}; lower the learning rate ({self.learning_rates()}) "
            "or use precision 32-true. No checkpoint was published."
        )

    def learning_rates(self) -> str:
        """The knobs of a diverging run, as the config names them, with their values."""
        rates = [f"optimizer.lr = {self.optimizer_cfg['lr']:g}"]
        if self.scheduler_cfg["name"] == "onecycle":
            rates.append(f"scheduler.max_lr = {self.scheduler_cfg['max_lr']:g}")
        return ", ".join(rates)

    def _exploded(self, loss: float) -> None:
        """A finite loss far above a fresh model's (log K for K classes) has diverged: stop
        now, not after the last epoch, and publish nothing."""
        fresh = math.log(self.num_classes)
        if loss > EXPLODED * fresh:
            raise TrainingError(
                f"diverged at epoch {self.current_epoch + 1}: its mean training loss was "
                f"{loss:.3g}, over {EXPLODED} times a fresh model's ({fresh:.2f}); lower the "
                f"learning rate ({self.learning_rates()}). No checkpoint was published."
            )

    def on_train_epoch_start(self) -> None:
        self._reset("train")

    def on_validation_epoch_start(self) -> None:
        self._reset("val")
        # Validation runs at the end of each training epoch, before the epoch-end hooks that
        # callbacks (logging, checkpointing) read: publish the training statistics here.
        if self.trainer.state.fn != "fit" or self.trainer.sanity_checking:
            return
        train = self._epoch_scores("train")
        if train is None:
            return
        if not math.isfinite(train["loss"]):
            self._non_finite(train["loss"], "summed over the epoch")
        self._exploded(train["loss"])
        for name, value in train.items():
            self.log(f"train/{name}", value)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self._count("val", logits, labels, self._loss(logits, labels))

    def on_validation_epoch_end(self) -> None:
        # The counts of every process are summed first: val/acc and val/f1 are those of the
        # whole split, as one process would get them (and the same on every rank).
        val = self._epoch_scores("val")
        for name, value in (val or {}).items():
            self.log(f"val/{name}", value, prog_bar=True)

    def configure_optimizers(self) -> Any:
        optimizer = optimizer_for(self.parameters(), self.optimizer_cfg)
        sched = self.scheduler_cfg
        if sched["name"] == "onecycle":
            total = max(int(self.trainer.estimated_stepping_batches), 4)
            # OneCycle divides by its warm-up length: keep it at least 2 steps on tiny runs.
            pct_start = min(max(sched["pct_start"], 2 / total), 0.5)
            scheduler: Any = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=sched["max_lr"], total_steps=total, pct_start=pct_start
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
            }
        if sched["name"] == "cosine":
            epochs = max(int(self.trainer.max_epochs or 1), 1)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
            }
        return optimizer


@torch.inference_mode()
def predict_proba(
    model: Classifier, images: torch.Tensor, batch_size: int | None = None
) -> torch.Tensor:
    """Class probabilities in fp32, batch by batch (evaluation never uses reduced precision);
    ``batch_size`` images at a time, by default ``evaluate.batch_size``'s default."""
    batch_size = batch_size or schema_default("evaluate.batch_size")
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start : start + batch_size].to(device)
        out.append(torch.softmax(model(batch).float(), dim=1).cpu())
    return torch.cat(out) if out else torch.empty(0, model.num_classes)


def random_affine(
    x: torch.Tensor, degrees: float, translate: float, scale: list[float] | tuple[float, float]
) -> torch.Tensor:
    """Random rotation, shift and scale of a whole batch [N, 1, H, W] (0 = background).

    One ``affine_grid`` + ``grid_sample`` on the batch's own device: no per-sample Python.
    """
    n = x.shape[0]
    dev = x.device
    angle = (torch.rand(n, device=dev) * 2 - 1) * (degrees * torch.pi / 180)
    s = torch.empty(n, device=dev).uniform_(float(scale[0]), float(scale[1]))
    shift = (torch.rand(n, 2, device=dev) * 2 - 1) * (2 * translate)  # grid units: 2 = full width
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_flip_and_erase(x: torch.Tensor, hflip: bool, erase: float) -> torch.Tensor:
    """A random half of the batch mirrored left-right (``hflip``), and with probability
    ``erase`` an image's random rectangle (2-33% of its area, aspect 0.3-3.3) set to 0, the
    background: whole-batch tensor operations on the batch's device."""
    n, _, h, w = x.shape
    dev = x.device
    if hflip:
        x = torch.where(torch.rand(n, 1, 1, 1, device=dev) < 0.5, x.flip(-1), x)
    if erase > 0:
        area = torch.empty(n, device=dev).uniform_(0.02, 0.33) * h * w
        aspect = torch.exp(torch.empty(n, device=dev).uniform_(math.log(0.3), math.log(1 / 0.3)))
        eh = (area * aspect).sqrt().clamp(1, h).floor()
        ew = (area / aspect).sqrt().clamp(1, w).floor()
        top = (torch.rand(n, device=dev) * (h - eh + 1)).floor()
        left = (torch.rand(n, device=dev) * (w - ew + 1)).floor()
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        inside = (rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
        inside = inside & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1))
        hit = inside & (torch.rand(n, 1, 1, device=dev) < erase)
        x = x.masked_fill(hit.unsqueeze(1), 0.0)
    return x
