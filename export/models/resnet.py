"""ResNet-50 (He et al., CVPR 2016, the "v1.5" variant with the stride on the 3x3 conv) with torchvision's
parameter names, so torchvision ImageNet weights and checkpoints built on them (SimpleVQA) load unchanged.

Written here because torchvision cannot be installed beside the pinned torch; the layout follows the paper and
the attribute names follow ``torchvision.models.resnet`` (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``, ..., ``fc``).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import fold_pairs

RESNET50_LAYERS = (3, 4, 6, 3)


class ResNetBottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand by 4, each with BatchNorm; identity or projected shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)

    def fuse_batchnorm(self) -> None:
        pairs = [("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")]
        if self.downsample is not None:
            pairs.append(("downsample.0", "downsample.1"))
        fold_pairs(self, pairs)


class ResNet(nn.Module):
    """Bottleneck ResNet with torchvision names. ``num_classes=None`` drops ``avgpool``/``fc`` (feature use).

    ``forward_stages(x)`` returns the outputs of layer1..layer4.
    """

    def __init__(self, layers=RESNET50_LAYERS, num_classes: int | None = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if index == 0 else 2
            blocks = [ResNetBottleneck(in_channels, planes, stride)]
            in_channels = planes * ResNetBottleneck.expansion
            blocks += [ResNetBottleneck(in_channels, planes) for _ in range(depth - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.out_channels = in_channels
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(in_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        return tuple(getattr(self, f"layer{i}")[-1].conv3.out_channels for i in range(1, 5))

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        stages = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            stages.append(x)
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stages(x)[-1]
        if not hasattr(self, "fc"):
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def fuse_batchnorm(self) -> None:
        fold_pairs(self, [("conv1", "bn1")])


def resnet50(num_classes: int | None = 1000) -> ResNet:
    return ResNet(RESNET50_LAYERS, num_classes)
