"""Shared fixtures: generated media and small models (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def shared_videos() -> list[Path]:
    return sorted(SHARED_VIDEOS.glob("*.mp4")) if SHARED_VIDEOS.is_dir() else []


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def small_clip(media_dir) -> str:
    from edgevqa.samples import write_clip

    return write_clip(media_dir / "small.mp4", width=160, height=96, num_frames=40, fps=20)


@pytest.fixture(scope="session")
def probe_model(tmp_path_factory) -> str:
    from edgevqa.testing import make_probe_model

    return make_probe_model(tmp_path_factory.mktemp("models") / "probe.onnx")


@pytest.fixture
def shared_clips() -> list[str]:
    clips = shared_videos()
    if not clips:
        pytest.skip(f"shared test videos not found at {SHARED_VIDEOS}")
    return [os.fspath(c) for c in clips]
