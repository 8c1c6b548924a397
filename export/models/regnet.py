"""RegNetY-8GF (Radosavovic et al., "Designing Network Design Spaces", CVPR 2020) with torchvision's parameter
names (``stem.0``, ``trunk_output.block1.block1-0.f.a.0``, ``...f.se.fc1``, ``...proj.0``, ``fc``), so
torchvision ImageNet weights load unchanged. The AutoHome entry of the NTIRE 2025 XGC talking-head track used it
in place of SimpleVQA's ResNet-50 (``shared/design/sampling.md`` section 2).

Stage widths and depths are the quantised values of the RegNetY-8GF design (depth 17, w0 192, wa 76.82,
wm 2.19, group width 56, SE ratio 0.25): widths 224, 448, 896, 2016; depths 2, 4, 10, 1.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .layers import fold_pairs

REGNETY_8GF = {"stem_width": 32, "widths": (224, 448, 896, 2016), "depths": (2, 4, 10, 1), "group_width": 56,
               "se_ratio": 0.25}


class ConvNormActivation(nn.Sequential):
    """Sequential(conv, BN[, ReLU]) named ``0``, ``1``, ``2`` as torchvision's Conv2dNormActivation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 act: bool = True):
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                            groups=groups, bias=False), nn.BatchNorm2d(out_channels)]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)

    def fuse_batchnorm(self) -> None:
        fold_pairs(self, [("0", "1")])


class SqueezeExcitation(nn.Module):
    """Channel gate: x * sigmoid(fc2(relu(fc1(mean(x))))) with 1x1 convs (torchvision names fc1, fc2)."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class RegNetBlock(nn.Module):
    """Residual bottleneck: 1x1, grouped 3x3 (stride), SE, 1x1; projected shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, group_width: int, se_ratio: float):
        super().__init__()
        self.proj = None
        if in_channels != out_channels or stride != 1:
            self.proj = ConvNormActivation(in_channels, out_channels, 1, stride=stride, act=False)
        groups = out_channels // group_width
        self.f = nn.Sequential(OrderedDict([
            ("a", ConvNormActivation(in_channels, out_channels, 1)),
            ("b", ConvNormActivation(out_channels, out_channels, 3, stride=stride, groups=groups)),
            # The SE width is defined from the block's input width, as in the RegNet paper.
            ("se", SqueezeExcitation(out_channels, int(round(se_ratio * in_channels)))),
            ("c", ConvNormActivation(out_channels, out_channels, 1, act=False)),
        ]))
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return self.activation(shortcut + self.f(x))


class RegNetY(nn.Module):
    """RegNetY with torchvision names. ``num_classes=None`` drops ``avgpool``/``fc``; ``forward_stages`` returns
    the four stage outputs."""

    def __init__(self, stem_width: int, widths, depths, group_width: int, se_ratio: float,
                 num_classes: int | None = 1000):
        super().__init__()
        self.stem = ConvNormActivation(3, stem_width, 3, stride=2)
        stages = []
        in_channels = stem_width
        for index, (width, depth) in enumerate(zip(widths, depths), start=1):
            blocks = OrderedDict()
            for j in range(depth):
                blocks[f"block{index}-{j}"] = RegNetBlock(in_channels if j == 0 else width, width, 2 if j == 0 else 1,
                                                          group_width, se_ratio)
            stages.append((f"block{index}", nn.Sequential(blocks)))
            in_channels = width
        self.trunk_output = nn.Sequential(OrderedDict(stages))
        self.stage_channels = tuple(widths)
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(in_channels, num_classes)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        stages = []
        for stage in self.trunk_output:
            x = stage(x)
            stages.append(x)
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stages(x)[-1]
        if not hasattr(self, "fc"):
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


def regnet_y_8gf(num_classes: int | None = 1000) -> RegNetY:
    return RegNetY(num_classes=num_classes, **REGNETY_8GF)
