"""The LightningModule: one class wraps every architecture of the registry.

The network is injected (``net``) so architectures stay plain ``nn.Module`` files; the
architecture name and its kwargs are saved as hyperparameters so a checkpoint alone is
enough to rebuild the model (``Classifier.from_checkpoint``).
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net if net is not None else build_model(arch, **(model_kwargs or {}))
        self.optimizer_cfg = optimizer or {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01}
        self.scheduler_cfg = scheduler or {"name": "none"}
        # Separate metric objects per stage: their states must not mix.
        self.train_acc = MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.train_f1 = MulticlassF1Score(NUM_CLASSES, average="macro")
        self.val_acc = MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.val_f1 = MulticlassF1Score(NUM_CLASSES, average="macro")

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str = "cpu") -> Classifier:
        return cls.load_from_checkpoint(str(path), map_location=map_location, weights_only=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 28, 28] -> float [N, 1, 28, 28], normalised on whatever device holds it."""
        x = images.unsqueeze(1).float().div_(255.0)
        return x.sub_(self.hparams.pixel_mean).div_(self.hparams.pixel_std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(images))

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, labels = batch
        logits = self(images)
        loss = self._loss(logits, labels)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the training loss became {loss.item()} at epoch {self.current_epoch}, "
                f"batch {batch_idx}; lower the learning rate (optimizer.lr / scheduler.max_lr) "
                "or use precision 32-true. No checkpoint was published."
            )
        self.train_acc(logits, labels)
        self.train_f1(logits, labels)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        self.log("train/f1", self.train_f1, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.val_acc(logits, labels)
        self.val_f1(logits, labels)
        self.log("val/loss", self._loss(logits, labels), on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)
        self.log("val/f1", self.val_f1, on_epoch=True, prog_bar=True)

    def configure_optimizers(self) -> Any:
        opt = self.optimizer_cfg
        params = self.parameters()
        if opt["name"] == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params,
                lr=opt["lr"],
                momentum=opt.get("momentum", 0.9),
                weight_decay=opt.get("weight_decay", 0.0),
                nesterov=opt.get("momentum", 0.9) > 0,  # Nesterov needs momentum
            )
        elif opt["name"] == "adam":
            optimizer = torch.optim.Adam(
                params, lr=opt["lr"], weight_decay=opt.get("weight_decay", 0)
            )
        else:
            optimizer = torch.optim.AdamW(
                params, lr=opt["lr"], weight_decay=opt.get("weight_decay", 0)
            )
        sched = self.scheduler_cfg
        if sched["name"] == "onecycle":
            total = int(self.trainer.estimated_stepping_batches)
            scheduler: Any = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=sched["max_lr"],
                total_steps=max(total, 1),
                pct_start=sched.get("pct_start", 0.25),
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
