"""The LightningModule: one class wraps every architecture of the registry.

The network is injected (``net``) so architectures stay plain ``nn.Module`` files; the
architecture name and its kwargs are saved as hyperparameters so a checkpoint alone is
enough to rebuild the model (``Classifier.from_checkpoint``).

Speed: batches arrive as uint8 and are augmented and normalised here, on the device that
trains, as whole batches. Training accuracy and F1 come from a 10x10 confusion matrix
accumulated on the device with one ``bincount`` per step and logged once per epoch, so a step
costs little more than the network's own forward and backward pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mnistbench.errors import TrainingError
from mnistbench.hardware import optimizer_for
from mnistbench.models import build_model

NUM_CLASSES = 10


class Classifier(L.LightningModule):
    def __init__(
        self,
        net: nn.Module | None = None,
        arch: str = "cnn",
        model_kwargs: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        pixel_mean: float = 0.1307,
        pixel_std: float = 0.3081,
        augment: dict[str, Any] | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net if net is not None else build_model(arch, **(model_kwargs or {}))
        self.optimizer_cfg = optimizer or {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01}
        self.scheduler_cfg = scheduler or {"name": "none"}
        self.augment_cfg = augment if augment and augment.get("enabled") else None
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile:
            self.net.compile()  # in place: state_dict keys stay those of the plain network
        # Training statistics, summed on the device and read once per epoch.
        self.register_buffer("train_confusion", torch.zeros(NUM_CLASSES**2), persistent=False)
        self.register_buffer("train_loss_sum", torch.zeros(()), persistent=False)
        # Each rank sums its own batches; DDP must not overwrite them with rank 0's buffers
        # before every forward pass (as it does for BatchNorm statistics).
        self._ddp_params_and_buffers_to_ignore = ["train_confusion", "train_loss_sum"]
        self.val_acc = MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.val_f1 = MulticlassF1Score(NUM_CLASSES, average="macro")

    @classmethod
    def from_settings(
        cls, net: nn.Module, settings: dict[str, Any], pixel_mean: float, pixel_std: float
    ) -> Classifier:
        """The module for one model's resolved settings (``mnistbench.config.resolve_model``)."""
        return cls(
            net=net,
            arch=settings["arch"],
            model_kwargs=settings["model_kwargs"],
            optimizer=settings["optimizer"],
            scheduler=settings["scheduler"],
            label_smoothing=settings["label_smoothing"],
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            augment=settings.get("augment"),
            channels_last=settings.get("channels_last", False),
            compile=settings.get("compile", False),
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
            x = random_affine(x, **{k: v for k, v in self.augment_cfg.items() if k != "enabled"})
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
            self._non_finite(loss, f"batch {batch_idx}")
        with torch.no_grad():
            pairs = labels * NUM_CLASSES + logits.argmax(dim=1)
            # index_add_, not bincount: bincount on a GPU reads its input's maximum back to the
            # host, a synchronisation at every step.
            ones = torch.ones_like(pairs, dtype=self.train_confusion.dtype)
            self.train_confusion.index_add_(0, pairs, ones)
            self.train_loss_sum += loss.detach().float() * labels.shape[0]
        return loss

    def _non_finite(self, loss: torch.Tensor, where: str) -> None:
        raise TrainingError(
            f"the training loss became {loss.item()} at epoch {self.current_epoch}, "
            f"{where}; lower the learning rate (optimizer.lr / scheduler.max_lr) "
            "or use precision 32-true. No checkpoint was published."
        )

    def on_train_epoch_start(self) -> None:
        self.train_confusion.zero_()
        self.train_loss_sum.zero_()

    def on_validation_epoch_start(self) -> None:
        # Validation runs at the end of each training epoch, before the epoch-end hooks that
        # callbacks (logging, checkpointing) read: publish the training statistics here.
        if self.trainer.state.fn != "fit" or self.trainer.sanity_checking:
            return
        # Sum over processes first (DDP), so the metrics are those of the whole epoch.
        reduce = self.trainer.strategy.reduce
        cm = reduce(self.train_confusion.clone(), reduce_op="sum").view(NUM_CLASSES, NUM_CLASSES)
        seen = cm.sum()
        if seen == 0:
            return
        loss = reduce(self.train_loss_sum.clone(), reduce_op="sum") / seen
        if not torch.isfinite(loss):
            self._non_finite(loss, "summed over the epoch")
        tp = cm.diagonal()
        f1 = 2 * tp / (cm.sum(0) + cm.sum(1)).clamp(min=1)
        present = (cm.sum(0) + cm.sum(1)) > 0
        self.log("train/loss", loss)
        self.log("train/acc", tp.sum() / seen)
        self.log("train/f1", f1[present].mean())

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.val_acc(logits, labels)
        self.val_f1(logits, labels)
        # The metric objects' states (per-class counts) are summed across ranks when computed,
        # so val/acc and val/f1 are those of the whole split, as one process would get them.
        self.log(
            "val/loss",
            self._loss(logits, labels),
            on_epoch=True,
            prog_bar=True,
            sync_dist=True,
            batch_size=int(labels.shape[0]),
        )
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)
        self.log("val/f1", self.val_f1, on_epoch=True, prog_bar=True)

    def configure_optimizers(self) -> Any:
        optimizer = optimizer_for(self.parameters(), self.optimizer_cfg)
        sched = self.scheduler_cfg
        if sched["name"] == "onecycle":
            total = max(int(self.trainer.estimated_stepping_batches), 4)
            # OneCycle divides by its warm-up length: keep it at least 2 steps on tiny runs.
            pct_start = min(max(sched.get("pct_start", 0.25), 2 / total), 0.5)
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


def random_affine(
    x: torch.Tensor,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: list[float] | tuple[float, float] = (0.9, 1.1),
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
