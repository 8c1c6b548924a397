"""Shared fixtures of the export tests: models with non-trivial BatchNorm statistics, real clips."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the export tests need torch (pip install 'edgevqa[export]')")

SHARED_VIDEOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "videos"

# The ONNX exporter warns once per torchvision operator it cannot register; irrelevant here.
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


def randomize_batchnorm(model, seed: int = 0):
    """Give every BatchNorm random running statistics and affine parameters, so folding is really exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                module.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


@pytest.fixture(scope="session")
def bn_randomizer():
    return randomize_batchnorm


@pytest.fixture(scope="session")
def real_clip() -> str:
    path = SHARED_VIDEOS / "dover_demo_eWgy8eG3stA_000164_000174.mp4"
    if not path.is_file():
        pytest.skip(f"real test clips not found at {SHARED_VIDEOS} (the ../shared folder is absent)")
    return os.fspath(path)
