"""SlowFast-R50 (Feichtenhofer et al., ICCV 2019), Kinetics-400 "8x8" configuration, with the parameter names of
pytorchvideo's ``create_slowfast`` / ``slowfast_r50`` so its Kinetics weights load unchanged.

Written here because pytorchvideo pulls torchvision (not installable beside the pinned torch) and its
``transforms`` are broken with current torchvision. Layout (alpha 4, beta 1/8, fusion ratio 2, fusion kernel 7):

- ``blocks.0``: a stem per pathway (slow: 1x7x7 conv, 64 ch; fast: 5x7x7 conv, 8 ch; each BN, ReLU, 1x3x3 max
  pool), then the fast->slow lateral fusion (7x1x1 conv, temporal stride 4, to 16 ch, BN, ReLU, concatenated
  to the slow pathway);
- ``blocks.1..4``: ResNet-50 bottleneck stages per pathway (depths 3, 4, 6, 3; slow widths 256..2048 with a
  temporal 3x1x1 first conv from stage 4 on; fast widths 32..256 with 3x1x1 everywhere), a lateral fusion after
  stages 1..3;
- ``blocks.5``: per-pathway average pooling, ``blocks.6``: dropout and the 2304 -> 400 classifier ``proj``.

SimpleVQA uses the pooled pathway features (slow 2048 + fast 256 = 2304 per clip). The originals pool with
fixed 8x7x7 / 32x7x7 windows, which equals a global mean at the 224 x 224, 32-frame input they were made for;
we take the global mean, which equals it there and stays defined for other input sizes.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import fold_pairs

SLOW_WIDTHS = (256, 512, 1024, 2048)
FAST_WIDTHS = (32, 64, 128, 256)
STAGE_DEPTHS = (3, 4, 6, 3)
ALPHA = 4  # the fast pathway sees ALPHA times the slow pathway's frames


def _conv3d(cin: int, cout: int, kernel, stride=(1, 1, 1)) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel, stride=stride, padding=tuple(k // 2 for k in kernel), bias=False)


class PathwayStem(nn.Module):
    def __init__(self, out_channels: int, temporal_kernel: int):
        super().__init__()
        self.conv = _conv3d(3, out_channels, (temporal_kernel, 7, 7), (1, 2, 2))
        self.norm = nn.BatchNorm3d(out_channels)
        self.activation = nn.ReLU()
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.norm(self.conv(x))))

    def fuse_batchnorm(self) -> None:
        fold_pairs(self, [("conv", "norm")])


class Bottleneck3d(nn.Module):
    """conv_a (temporal kernel ka x1x1), conv_b (1x3x3, carries the spatial stride), conv_c (1x1x1), each with BN."""

    def __init__(self, cin: int, inner: int, cout: int, temporal_kernel: int, stride: int):
        super().__init__()
        self.conv_a = _conv3d(cin, inner, (temporal_kernel, 1, 1))
        self.norm_a = nn.BatchNorm3d(inner)
        self.act_a = nn.ReLU()
        self.conv_b = _conv3d(inner, inner, (1, 3, 3), (1, stride, stride))
        self.norm_b = nn.BatchNorm3d(inner)
        self.act_b = nn.ReLU()
        self.conv_c = _conv3d(inner, cout, (1, 1, 1))
        self.norm_c = nn.BatchNorm3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))

    def fuse_batchnorm(self) -> None:
        fold_pairs(self, [("conv_a", "norm_a"), ("conv_b", "norm_b"), ("conv_c", "norm_c")])


class ResidualBlock3d(nn.Module):
    """Bottleneck plus shortcut (``branch1_conv``/``branch1_norm`` when the shape changes), then ReLU."""

    def __init__(self, cin: int, inner: int, cout: int, temporal_kernel: int, stride: int):
        super().__init__()
        if cin != cout or stride != 1:
            self.branch1_conv = _conv3d(cin, cout, (1, 1, 1), (1, stride, stride))
            self.branch1_norm = nn.BatchNorm3d(cout)
        else:
            self.branch1_conv = None
            self.branch1_norm = None
        self.branch2 = Bottleneck3d(cin, inner, cout, temporal_kernel, stride)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
        return self.activation(shortcut + self.branch2(x))

    def fuse_batchnorm(self) -> None:
        if self.branch1_conv is not None:
            fold_pairs(self, [("branch1_conv", "branch1_norm")])


class PathwayStage(nn.Module):
    def __init__(self, cin: int, inner: int, cout: int, depth: int, temporal_kernel: int, stride: int):
        super().__init__()
        self.res_blocks = nn.ModuleList(
            ResidualBlock3d(cin if i == 0 else cout, inner, cout, temporal_kernel, stride if i == 0 else 1)
            for i in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.res_blocks:
            x = block(x)
        return x


class FastToSlowFusion(nn.Module):
    """Lateral connection: fast features, temporally strided to the slow rate, concatenated to the slow ones."""

    def __init__(self, fast_channels: int):
        super().__init__()
        self.conv_fast_to_slow = nn.Conv3d(fast_channels, 2 * fast_channels, (7, 1, 1), stride=(ALPHA, 1, 1),
                                           padding=(3, 0, 0), bias=False)
        self.norm = nn.BatchNorm3d(2 * fast_channels)
        self.activation = nn.ReLU()

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lateral = self.activation(self.norm(self.conv_fast_to_slow(fast)))
        return torch.cat([slow, lateral], dim=1), fast

    def fuse_batchnorm(self) -> None:
        fold_pairs(self, [("conv_fast_to_slow", "norm")])


class TwoPathwayBlock(nn.Module):
    """One stage of both pathways (``multipathway_blocks``), then the lateral fusion (``multipathway_fusion``)."""

    def __init__(self, slow: nn.Module, fast: nn.Module, fusion: nn.Module | None):
        super().__init__()
        self.multipathway_blocks = nn.ModuleList([slow, fast])
        self.multipathway_fusion = fusion if fusion is not None else nn.Identity()

    def forward(self, pathways: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        slow = self.multipathway_blocks[0](pathways[0])
        fast = self.multipathway_blocks[1](pathways[1])
        if isinstance(self.multipathway_fusion, nn.Identity):
            return slow, fast
        return self.multipathway_fusion(slow, fast)


class GlobalMean3d(nn.Module):
    """Mean over (T, H, W), accumulated in float32 (safe in an FP16 graph), result in the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(2, 3, 4)).to(x.dtype)


class PathwayPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.ModuleList([GlobalMean3d(), GlobalMean3d()])

    def forward(self, pathways: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.pool[0](pathways[0]), self.pool[1](pathways[1])], dim=1)


class ClassifierHead(nn.Module):
    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.dropout = nn.Dropout(0.5)
        self.proj = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(x))


class SlowFastR50(nn.Module):
    """SlowFast-R50 8x8. ``features(clip)`` takes ``[N, 3, T, H, W]`` (T a multiple of 4, 32 for Kinetics) and
    returns ``[N, 2304]`` (slow 2048 then fast 256); ``forward`` returns Kinetics logits ``[N, 400]``."""

    feature_width = SLOW_WIDTHS[-1] + FAST_WIDTHS[-1]

    def __init__(self, num_classes: int = 400):
        super().__init__()
        blocks: list[nn.Module] = [TwoPathwayBlock(PathwayStem(64, 1), PathwayStem(8, 5), FastToSlowFusion(8))]
        slow_in, fast_in = 64 + 16, 8
        for index, (slow_out, fast_out, depth) in enumerate(zip(SLOW_WIDTHS, FAST_WIDTHS, STAGE_DEPTHS)):
            stride = 1 if index == 0 else 2
            slow = PathwayStage(slow_in, slow_out // 4, slow_out, depth, 1 if index < 2 else 3, stride)
            fast = PathwayStage(fast_in, fast_out // 4, fast_out, depth, 3, stride)
            last = index == len(STAGE_DEPTHS) - 1
            blocks.append(TwoPathwayBlock(slow, fast, None if last else FastToSlowFusion(fast_out)))
            slow_in, fast_in = slow_out + (0 if last else 2 * fast_out), fast_out
        blocks.append(PathwayPool())
        blocks.append(ClassifierHead(self.feature_width, num_classes))
        self.blocks = nn.ModuleList(blocks)
        self._slow_index: dict[int, torch.Tensor] = {}

    @staticmethod
    def slow_frame_indices(num_frames: int) -> list[int]:
        """The fast frames the slow pathway sees: ``linspace(0, T-1, T/4)`` truncated (0,4,8,13,17,22,26,31)."""
        count = num_frames // ALPHA
        if count < 2:
            return [0] * max(count, 1)
        return [int(i * (num_frames - 1) / (count - 1)) for i in range(count)]

    def features(self, clip: torch.Tensor) -> torch.Tensor:
        frames = clip.shape[2]
        if frames % ALPHA:
            raise ValueError(f"SlowFast needs a multiple of {ALPHA} frames per clip, got {frames}")
        # index_select with a constant index exports as one ONNX Gather (list indexing would give GatherND).
        index = self._slow_index.get(frames)
        if index is None:
            index = self._slow_index[frames] = torch.tensor(self.slow_frame_indices(frames), dtype=torch.long)
        slow = torch.index_select(clip, 2, index.to(clip.device))
        pathways = (slow, clip)
        for block in self.blocks[:5]:
            pathways = block(pathways)
        return self.blocks[5](pathways)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.blocks[6](self.features(clip))
