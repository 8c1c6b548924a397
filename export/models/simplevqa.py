"""SimpleVQA (Sun et al., "A Deep Learning based No-reference Quality Assessment Model for UGC Videos",
ACM MM 2022; github.com/sunwei925/SimpleVQA), as described in ``shared/design/sampling.md`` section 2.

Inputs, one clip per second of video (the clip axis is the batch axis):

- ``spatial`` ``[seconds, 3, 1, 448, 448]``: the second's first frame, short side resized to 520, centre crop
  448, ImageNet normalisation. A ResNet-50 (or RegNetY-8GF) gives layer2/3/4 maps, each pooled by global mean and
  unbiased standard deviation: 7168 values (order avg2, std2, avg3, std3, avg4, std4, as the original).
- ``motion`` ``[seconds, 3, 32, 224, 224]``: 32 consecutive frames from the second's start, squashed to
  224 x 224, Kinetics normalisation. A SlowFast-R50 gives slow 2048 + fast 256 values.
- Regressor: Linear 9472 -> 128 -> 1, no activation in between. Output ``overall`` ``[seconds, 1]``; the video
  score is the mean over seconds, as the original.

Official checkpoints (``DataParallel``: ``module.`` prefix, torchvision ResNet names, ``quality.0/1``) load
through `official_to_ours`; they hold no SlowFast weights, which come from pytorchvideo's Kinetics checkpoint
(``SLOWFAST_8x8_R50.pyth``, keys under ``model_state``) and load unchanged into ``motion``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from edgevqa.errors import ModelError
from edgevqa.manifest import (IMAGENET_MEAN_255, IMAGENET_STD_255, KINETICS_MEAN_255, KINETICS_STD_255,
                              ModelManifest, ViewSpec)

from .layers import mean_std_pool
from .regnet import regnet_y_8gf
from .registry import ModelEntry, register_model
from .resnet import resnet50
from .slowfast import SlowFastR50

OFFICIAL_FORMAT = "simplevqa-official"


class SimpleVQA(nn.Module):
    """Spatial backbone + optional SlowFast motion features + the two-layer linear regressor ``quality``."""

    def __init__(self, backbone: str = "resnet50", motion: bool = True, hidden: int = 128):
        super().__init__()
        if backbone == "resnet50":
            self.spatial = resnet50(num_classes=None)
        elif backbone == "regnet_y_8gf":
            self.spatial = regnet_y_8gf(num_classes=None)
        else:
            raise ModelError(f"SimpleVQA backbone must be 'resnet50' or 'regnet_y_8gf', got {backbone!r}")
        self.backbone = backbone
        self.motion = SlowFastR50() if motion else None
        spatial_width = 2 * sum(self.spatial.stage_channels[1:])
        width = spatial_width + (SlowFastR50.feature_width if motion else 0)
        self.quality = nn.Sequential(nn.Linear(width, hidden), nn.Linear(hidden, 1))

    def spatial_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` -> ``[N, 2 * (C2 + C3 + C4)]``; pooling statistics are computed in float32."""
        stages = self.spatial.forward_stages(frames)
        pooled = []
        for stage in stages[1:]:
            mean, std = mean_std_pool(stage)
            pooled += [mean, std]
        return torch.cat(pooled, dim=1)

    def forward(self, spatial: torch.Tensor, motion: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        clips, channels, frames, height, width = spatial.shape
        per_frame = self.spatial_features(spatial.transpose(1, 2).reshape(-1, channels, height, width))
        if self.motion is not None:
            if motion is None:
                raise ModelError("this SimpleVQA variant needs the 'motion' input")
            if frames != 1:
                raise ModelError(f"SimpleVQA with motion pairs one key frame with each motion clip; got {frames} "
                                 f"key frames per clip")
            per_frame = torch.cat([per_frame, self.motion.features(motion)], dim=1)
        scores = self.quality(per_frame).reshape(-1, frames).mean(dim=1, keepdim=True)
        return {"overall": scores}

    def load_foreign_state_dict(self, fmt: str, state_dict: Mapping[str, Any], source: str,
                                motion_state_dict: Mapping[str, Any] | None = None) -> None:
        from ..checkpoint import load_state_dict_strict

        if fmt != OFFICIAL_FORMAT:
            raise ModelError(f"{source}: SimpleVQA cannot read checkpoints of format {fmt!r}")
        mapped = official_to_ours(state_dict)
        if self.motion is not None:
            if motion_state_dict is None:
                raise ModelError(f"{source}: official SimpleVQA checkpoints hold no SlowFast weights; give "
                                 f"pytorchvideo's SLOWFAST_8x8_R50.pyth too (--motion-weights PATH)")
            mapped.update({f"motion.{k}": v for k, v in motion_state_dict.items()})
        load_state_dict_strict(self, mapped, source)


def is_official_checkpoint(state_dict: Mapping[str, Any]) -> bool:
    return "module.quality.0.weight" in state_dict and "module.conv1.weight" in state_dict


def official_to_ours(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``module.conv1.weight`` -> ``spatial.conv1.weight``; ``module.quality.*`` -> ``quality.*``."""
    mapped = {}
    for key, value in state_dict.items():
        name = key[len("module."):] if key.startswith("module.") else key
        mapped[name if name.startswith("quality.") else f"spatial.{name}"] = value
    return mapped


def ours_to_official(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `official_to_ours` for the spatial and quality parts (motion keys are dropped)."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("spatial."):
            out["module." + key[len("spatial."):]] = value
        elif key.startswith("quality."):
            out["module." + key] = value
    return out


# --------------------------------------------------------------------------------------------- registry


def simplevqa_manifest(name: str, motion: bool, frames: int = 8, crop: int = 448, short_side: int = 520,
                       motion_size: int = 224, motion_frames: int = 32) -> ModelManifest:
    views = [ViewSpec(name="spatial", kind="resize_crop", num_clips=frames, clip_len=1, frame_interval=1,
                      temporal="key_frames", size=(crop, crop), short_side=short_side, mean=IMAGENET_MEAN_255,
                      std=IMAGENET_STD_255)]
    if motion:
        views.append(ViewSpec(name="motion", kind="clips", num_clips=frames, clip_len=motion_frames,
                              frame_interval=1, temporal="per_second", size=(motion_size, motion_size),
                              mean=KINETICS_MEAN_255, std=KINETICS_STD_255))
    return ModelManifest(name=name, views=tuple(views), outputs=("overall",), version="0",
                         description=f"SimpleVQA ({name}): one score per second of video, averaged",
                         metadata={"family": "simplevqa"})


def _simplevqa_entry(name: str, backbone: str, motion: bool, text: str) -> ModelEntry:
    def build(frames: int = 8, crop: int = 448, short_side: int = 520, motion_size: int = 224,
              motion_frames: int = 32) -> SimpleVQA:
        if motion and motion_frames % 4:
            raise ModelError(f"{name}: motion_frames must be a multiple of 4 (SlowFast alpha), got {motion_frames}")
        if crop % 32 or (motion and motion_size % 32):
            raise ModelError(f"{name}: crop and motion_size must be multiples of 32, got {crop}, {motion_size}")
        return SimpleVQA(backbone, motion)

    def manifest(frames: int = 8, crop: int = 448, short_side: int = 520, motion_size: int = 224,
                 motion_frames: int = 32) -> ModelManifest:
        return simplevqa_manifest(name, motion, frames, crop, short_side, motion_size, motion_frames)

    return ModelEntry(name=name, family="simplevqa", description=text, build=build, manifest=manifest)


def _register_official_format() -> None:
    from ..checkpoint import register_foreign_format

    register_foreign_format(OFFICIAL_FORMAT, is_official_checkpoint, "simplevqa", official_to_ours)


_register_official_format()
register_model(_simplevqa_entry("simplevqa", "resnet50", True,
                                "SimpleVQA: ResNet-50 mean/std features + SlowFast-R50 motion, linear head"))
register_model(_simplevqa_entry("simplevqa_spatial", "resnet50", False,
                                "SimpleVQA spatial only: ResNet-50 mean/std features, linear head"))
register_model(_simplevqa_entry("simplevqa_regnety8g", "regnet_y_8gf", True,
                                "SimpleVQA with RegNetY-8GF spatial features (NTIRE 2025 XGC AutoHome variant)"))
