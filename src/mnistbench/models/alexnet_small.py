"""The AlexNet-style reference: three 5x5 conv layers (16/32/64) with max-pooling, fc 64 -> 10."""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.data.idx import NUM_CLASSES
from mnistbench.models import register


class AlexNetSmall(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.0) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2)
            )

        self.features = nn.Sequential(block(1, 16), block(16, 32), block(32, 64))  # 28->14->7->3
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 3 * 3, 64),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register("alexnet_small", macs=5_368_704)
def build(num_classes: int = NUM_CLASSES, dropout: float = 0.0) -> nn.Module:
    return AlexNetSmall(num_classes, dropout)
