"""LeNet-5 (LeCun et al. 1998): 28x28 digits are zero-padded to its 32x32 input."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mnistbench.data.idx import NUM_CLASSES
from mnistbench.models import register


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, activation: str = "relu") -> None:
        super().__init__()
        self.act = nn.ReLU() if activation == "relu" else nn.Tanh()
        self.conv1 = nn.Conv2d(1, 6, 5)  # 32 -> 28
        self.conv2 = nn.Conv2d(6, 16, 5)  # 14 -> 10
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == 28:
            x = F.pad(x, (2, 2, 2, 2))
        x = F.avg_pool2d(self.act(self.conv1(x)), 2)
        x = F.avg_pool2d(self.act(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = self.act(self.fc1(x))
        x = self.act(self.fc2(x))
        return self.fc3(x)


@register("lenet5", macs=416_520)
def build(num_classes: int = NUM_CLASSES, activation: str = "relu") -> nn.Module:
    return LeNet5(num_classes, activation)
