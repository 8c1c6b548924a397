"""Fixtures for the calib tests: a small conv net exported from torch, and generated clips.

The net is Conv+BN+ReLU, depthwise Conv+BN+ReLU, pointwise Conv+BN+ReLU with a residual Add, global mean and
a Gemm head with two outputs; its weights and BN statistics are drawn from a seeded NumPy generator. Clips are
rendered scenes at different brightness and contrast, so the net scores them far apart and a rank comparison
means something.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from calib_media import write_graded_clip
from edgevqa.manifest import ModelManifest, ViewSpec

OUTPUTS = ("overall", "color")


def small_manifest() -> ModelManifest:
    view = ViewSpec(name="video", kind="fragments", num_clips=1, clip_len=4, frame_interval=1, segments_per_clip=4,
                    temporal="segments", grid=(4, 4), patch=(16, 16), aligned=4, size=(64, 64))
    return ModelManifest(name="calib_test_net", version="1", views=(view,), outputs=OUTPUTS,
                         rescale={"overall": (20.0, 50.0), "color": (10.0, 3.0)}, description="calib test net")


def export_small_net(path: Path) -> str:
    torch = pytest.importorskip("torch", reason="the test model is exported from torch (extra 'export')")
    import onnx
    from torch import nn

    from edgevqa.manifest import embed_in_onnx

    class SmallNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 12, 3, 2, 1, bias=False), nn.BatchNorm2d(12), nn.ReLU())
            self.depthwise = nn.Sequential(nn.Conv2d(12, 12, 3, 1, 1, groups=12, bias=False), nn.BatchNorm2d(12),
                                           nn.ReLU())
            self.pointwise = nn.Sequential(nn.Conv2d(12, 12, 1, bias=False), nn.BatchNorm2d(12))
            self.expand = nn.Sequential(nn.Conv2d(12, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
            self.head = nn.Linear(24, 2)

        def forward(self, video):
            clips, channels, frames, height, width = video.shape
            x = video.transpose(1, 2).reshape(clips * frames, channels, height, width)
            x = self.stem(x)
            x = torch.relu(x + self.pointwise(self.depthwise(x)))
            x = self.expand(x)
            features = x.mean(dim=(2, 3)).reshape(clips, frames, -1).mean(dim=1)
            out = self.head(features)
            return out[:, 0:1], out[:, 1:2]

    net = SmallNet().eval()
    rng = np.random.default_rng(20251128)
    with torch.no_grad():
        for name, tensor in list(net.named_parameters()) + list(net.named_buffers()):
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                values = rng.uniform(0.5, 2.0, tensor.shape)
            elif name.endswith("running_mean") or name.endswith("bias"):
                values = rng.normal(0.0, 0.2, tensor.shape)
            elif name.endswith(".weight") and tensor.ndim == 1:  # BatchNorm gamma
                values = rng.uniform(0.5, 1.5, tensor.shape)
            else:
                fan_in = int(np.prod(tensor.shape[1:]))
                values = rng.normal(0.0, 1.0 / np.sqrt(fan_in), tensor.shape)
            tensor.copy_(torch.from_numpy(values.astype(np.float32)))
    manifest = small_manifest()
    example = torch.zeros(manifest.views[0].input_shape(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), os.fspath(path), input_names=["video"], output_names=list(OUTPUTS),
                          dynamic_axes={"video": {0: "clips"}, "overall": {0: "clips"}, "color": {0: "clips"}},
                          opset_version=17, dynamo=False)
    model = onnx.load(os.fspath(path))
    embed_in_onnx(model, manifest)
    onnx.save(model, os.fspath(path))
    return os.fspath(path)


@pytest.fixture(scope="session")
def small_net(tmp_path_factory) -> str:
    return export_small_net(tmp_path_factory.mktemp("calib_models") / "small_net.onnx")


@pytest.fixture(scope="session")
def calib_clips(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("calib_clips")
    # Calibration covers the held-out clips' brightness and contrast (ranges outside it would clip).
    for i, (gain, offset) in enumerate([(1.0, 0.0), (0.25, -70.0), (2.0, 30.0), (0.6, 60.0)]):
        write_graded_clip(folder / f"calib{i}.mp4", gain, offset, seed=i)
    return os.fspath(folder)


@pytest.fixture(scope="session")
def holdout_clips(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("holdout_clips")
    # Gradings whose FP32 scores lie >= 0.35 apart in both dimensions (INT8 moves them by < 0.2).
    for i, (gain, offset, seed) in enumerate([(0.7, 50.0, 205), (1.0, 0.0, 207), (2.0, -50.0, 212),
                                              (0.3, -50.0, 200)]):
        write_graded_clip(folder / f"held{i}.mp4", gain, offset, seed=seed)
    return os.fspath(folder)
