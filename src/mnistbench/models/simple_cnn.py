"""The notebook-style reference: conv 10 (5x5) -> max-pool -> conv 20 (3x3) -> fc 500 -> 10."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mnistbench.data.idx import NUM_CLASSES
from mnistbench.models import register


class SimpleCNN(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 5)  # 28 -> 24, pool -> 12
        self.conv2 = nn.Conv2d(10, 20, 3)  # 12 -> 10
        self.fc1 = nn.Linear(20 * 10 * 10, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


@register("simple_cnn", macs=1_329_000)
def build(num_classes: int = NUM_CLASSES) -> nn.Module:
    return SimpleCNN(num_classes)
