"""Shared fixtures of the export tests: the real clips of ../shared (when present), quiet exporter logs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the export tests need torch (pip install 'edgevqa[export]')")

SHARED_VIDEOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "videos"

# The ONNX exporter warns once per torchvision operator it cannot register; irrelevant here.
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def real_clip_or_none() -> str | None:
    path = SHARED_VIDEOS / "dover_demo_eWgy8eG3stA_000164_000174.mp4"
    return os.fspath(path) if path.is_file() else None


@pytest.fixture(scope="session")
def real_clip() -> str:
    path = SHARED_VIDEOS / "dover_demo_eWgy8eG3stA_000164_000174.mp4"
    if not path.is_file():
        pytest.skip(f"real test clips not found at {SHARED_VIDEOS} (the ../shared folder is absent)")
    return os.fspath(path)
