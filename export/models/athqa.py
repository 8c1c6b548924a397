"""An ATHQA-style video quality net: fragments in, one score per named quality dimension out.

ATHQA is the talking-head track entry of the NTIRE 2025 XGC challenge report (no public code). The report
names its parts: fragment sampling (FAST-VQA, Wu et al., ECCV 2022), content-understanding and
distortion-understanding modules with content-adaptive and distortion-aware modulation (CaM, DaM), multi-scale
feature fusion, 448 x 448 input with 8 frames, depthwise separable convolutions, Conv+BN+ReLU operator fusion
and FP16 for speed, about 26 M parameters. This module builds a net from those ideas; the layout below is our
own design (see ``shared/design/sampling.md`` section 3):

- per-frame backbone: a stem and four stages of depthwise separable inverted-residual blocks (MobileNetV2,
  Sandler et al., CVPR 2018), every conv followed by a foldable BatchNorm; strides 4, 8, 16, 32, so with
  32-pixel fragments the last stage has exactly one cell per fragment;
- multi-scale fusion: stages 2, 3 and 4 are projected to a common width, pooled to the stage-4 grid,
  concatenated and mixed by a 1x1 conv;
- content-adaptive modulation (CaM): channel-wise scale and shift from the globally pooled deepest features
  (what the frame shows);
- distortion-aware modulation (DaM): channel-wise scale and shift from global mean and max statistics of the
  two shallowest stages (where noise, blur and blocking are visible);
- a temporal branch: depthwise temporal convolutions over the modulated per-frame maps of the clip;
- heads: one small 1x1x1-conv head per named output on the local spatio-temporal quality map, averaged to
  ``[clips, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from edgevqa.errors import ModelError
from edgevqa.manifest import IMAGENET_MEAN_255, IMAGENET_STD_255, ModelManifest, ViewSpec

from .layers import ConvBNAct, fuse_model
from .registry import ModelEntry, register_model

DEFAULT_OUTPUTS = ("overall", "color", "noise", "artifact", "blur", "temporal")


@dataclass(frozen=True)
class AthqaConfig:
    """Widths and depths of one ATHQA-style variant."""

    stem: int
    widths: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    expansion: int
    fusion_width: int
    temporal_width: int
    head_width: int
    modulation_hidden: int


class InvertedResidual(nn.Module):
    """Depthwise separable block: 1x1 expand (Conv+BN+ReLU), 3x3 depthwise (Conv+BN+ReLU), 1x1 project (Conv+BN).

    The residual connection is used when the block keeps its shape.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        self.expand = ConvBNAct(in_channels, hidden, 1) if expansion != 1 else nn.Identity()
        self.depthwise = ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden)
        self.project = ConvBNAct(hidden, out_channels, 1, act=False)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.use_residual else y


class ChannelModulation(nn.Module):
    """``x * (1 + scale) + shift`` with per-sample, per-channel scale and shift predicted from a descriptor.

    The last layer starts at a small scale so a fresh net starts close to the unmodulated one.
    """

    def __init__(self, descriptor_width: int, hidden: int, channels: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(descriptor_width, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 2 * channels))
        with torch.no_grad():
            self.mlp[2].weight.mul_(0.1)
            self.mlp[2].bias.zero_()
        self.channels = channels

    def forward(self, x: torch.Tensor, descriptor: torch.Tensor) -> torch.Tensor:
        params = self.mlp(descriptor)
        scale = params[:, : self.channels, None, None]
        shift = params[:, self.channels:, None, None]
        return x * (1.0 + scale) + shift


class AthqaNet(nn.Module):
    """ATHQA-style net. Input ``[clips, 3, T, H, W]`` (normalised fragments); ``forward`` returns a dict of
    ``[clips, 1]`` tensors, one per name in ``outputs``. H and W must be multiples of 32.
    """

    def __init__(self, config: AthqaConfig, outputs: Sequence[str] = DEFAULT_OUTPUTS):
        super().__init__()
        self.config = config
        self.outputs = tuple(outputs)
        c = config
        self.stem = ConvBNAct(3, c.stem, 3, stride=2)
        stages = []
        in_ch = c.stem
        for width, depth in zip(c.widths, c.depths):
            blocks = [InvertedResidual(in_ch, width, 2, c.expansion)]
            blocks += [InvertedResidual(width, width, 1, c.expansion) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = width
        self.stages = nn.ModuleList(stages)
        # Multi-scale fusion of stages 2, 3, 4 (strides 8, 16, 32) on the stride-32 grid.
        self.fusion_inputs = nn.ModuleList(ConvBNAct(w, c.fusion_width, 1) for w in c.widths[1:])
        self.fusion_pools = nn.ModuleList([nn.AvgPool2d(4, 4), nn.AvgPool2d(2, 2), nn.Identity()])
        self.fusion_mix = ConvBNAct(3 * c.fusion_width, c.fusion_width, 1)
        self.content_modulation = ChannelModulation(c.widths[3], c.modulation_hidden, c.fusion_width)
        self.distortion_modulation = ChannelModulation(2 * (c.widths[0] + c.widths[1]), c.modulation_hidden,
                                                       c.fusion_width)
        # Temporal branch over [clips, C, T, h, w]: depthwise (3,1,1) then pointwise, twice the receptive field.
        self.temporal = nn.Sequential(
            ConvBNAct(c.fusion_width, c.fusion_width, (3, 1, 1), groups=c.fusion_width, dims=3),
            ConvBNAct(c.fusion_width, c.temporal_width, 1, dims=3),
            ConvBNAct(c.temporal_width, c.temporal_width, (3, 1, 1), groups=c.temporal_width, dims=3),
        )
        head_in = c.fusion_width + c.temporal_width
        self.heads = nn.ModuleDict({
            name: nn.Sequential(nn.Conv3d(head_in, c.head_width, 1), nn.ReLU(inplace=True),
                                nn.Conv3d(c.head_width, 1, 1))
            for name in self.outputs
        })

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        clips, channels, frames, height, width = video.shape
        x = video.transpose(1, 2).reshape(-1, channels, height, width)  # [clips*T, 3, H, W]
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        fused = torch.cat([pool(proj(f)) for proj, pool, f in
                           zip(self.fusion_inputs, self.fusion_pools, features[1:])], dim=1)
        fused = self.fusion_mix(fused)
        content = features[3].mean(dim=(2, 3))
        distortion = torch.cat([torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
                                for f in features[:2]], dim=1)
        fused = self.content_modulation(fused, content)
        fused = self.distortion_modulation(fused, distortion)
        grid_h, grid_w = fused.shape[2], fused.shape[3]
        volume = fused.reshape(-1, frames, fused.shape[1], grid_h, grid_w).transpose(1, 2)  # [clips, C, T, h, w]
        local = torch.cat([volume, self.temporal(volume)], dim=1)
        return {name: head(local).mean(dim=(2, 3, 4)) for name, head in self.heads.items()}

    def fuse(self) -> "AthqaNet":
        """Fold every BatchNorm into its convolution (in place, eval-mode semantics); returns self."""
        self.eval()
        return fuse_model(self)


ATHQA_CONFIGS = {
    "athqa_tiny": AthqaConfig(stem=16, widths=(24, 48, 96, 192), depths=(1, 2, 3, 2), expansion=4,
                              fusion_width=96, temporal_width=64, head_width=64, modulation_hidden=64),
    # About 25 M parameters, the size the challenge report gives for ATHQA.
    "athqa_base": AthqaConfig(stem=32, widths=(64, 160, 384, 768), depths=(2, 4, 10, 3), expansion=4,
                              fusion_width=320, temporal_width=192, head_width=128, modulation_hidden=256),
}


# --------------------------------------------------------------------------------------------- registry


def athqa_manifest(variant: str, frames: int, grid, patch: int, outputs: Sequence[str] = DEFAULT_OUTPUTS,
                   num_clips: int = 1) -> ModelManifest:
    """Fragments view: ``frames`` frames, one from each of ``frames`` equal segments of the video (the report's
    "8 randomly sampled frames"; centre of each segment by default), ``grid`` cells of ``patch`` pixels, one
    patch position kept for the whole clip so the temporal branch compares like with like."""
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    view = ViewSpec(name="video", kind="fragments", num_clips=num_clips, clip_len=frames, frame_interval=1,
                    segments_per_clip=frames, temporal="segments", grid=(gh, gw), patch=(patch, patch),
                    aligned=frames, size=(gh * patch, gw * patch), mean=IMAGENET_MEAN_255, std=IMAGENET_STD_255)
    return ModelManifest(name=variant, views=(view,), outputs=tuple(outputs), version="0",
                         description=f"ATHQA-style fragment net ({variant}); untrained unless a checkpoint says "
                                     f"otherwise",
                         metadata={"family": "athqa"})


def _athqa_builder(variant: str):
    def build(frames: int = 8, grid=7, patch: int = 32, outputs: Sequence[str] = DEFAULT_OUTPUTS,
              num_clips: int = 1) -> AthqaNet:
        if patch % 32:
            raise ModelError(f"{variant}: patch must be a multiple of 32 (the net's stride), got {patch}")
        if frames < 1:
            raise ModelError(f"{variant}: frames must be >= 1, got {frames}")
        return AthqaNet(ATHQA_CONFIGS[variant], outputs)

    def manifest(frames: int = 8, grid=7, patch: int = 32, outputs: Sequence[str] = DEFAULT_OUTPUTS,
                 num_clips: int = 1) -> ModelManifest:
        return athqa_manifest(variant, frames, grid, patch, outputs, num_clips)

    return build, manifest


for _variant, _defaults, _text in (
        ("athqa_tiny", {"frames": 8, "grid": 7, "patch": 32},
         "ATHQA-style net sized for a 2-core CPU: ~0.8 M parameters, 8 frames of 7x7 fragments (224x224)"),
        ("athqa_base", {"frames": 8, "grid": 14, "patch": 32},
         "ATHQA-style net at the report's size: ~25 M parameters, 8 frames of 14x14 fragments (448x448)")):
    _build, _manifest = _athqa_builder(_variant)
    register_model(ModelEntry(name=_variant, family="athqa", description=_text, build=_build, manifest=_manifest,
                              defaults=_defaults))
