"""torchvision's ResNet18 with a one-channel stem and 10 outputs (about 11.2M parameters)."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18

from mnistbench.data.idx import NUM_CLASSES
from mnistbench.models import register


@register("resnet18", macs=33_010_944)
def build(num_classes: int = NUM_CLASSES) -> nn.Module:
    # Keep torchvision's 7x7/2 stem and max-pool: on 28x28 inputs that is 7x7 maps at layer1,
    # which keeps a CPU epoch affordable; only the input channels and the head change.
    net = resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net
