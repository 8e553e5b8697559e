"""The 1.2M-parameter CNN of the Lightning + Hydra reference (the PyTorch MNIST example net)."""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.data.idx import NUM_CLASSES
from mnistbench.models import register


class CNN(nn.Module):
    def __init__(
        self, num_classes: int = NUM_CLASSES, dropout1: float = 0.25, dropout2: float = 0.5
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3),  # 28 -> 26
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3),  # 26 -> 24
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 24 -> 12
            nn.Dropout(dropout1),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 12 * 12, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout2),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register("cnn", macs=11_992_448)
def build(
    num_classes: int = NUM_CLASSES, dropout1: float = 0.25, dropout2: float = 0.5
) -> nn.Module:
    return CNN(num_classes, dropout1, dropout2)
