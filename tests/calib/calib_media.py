"""Generated clips for the calib tests (imported by conftest and by tests directly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_graded_clip(path: Path, gain: float, offset: float, seed: int, width: int = 96, height: int = 80,
                      frames: int = 12) -> str:
    from edgevqa.samples import render_scene, write_clip

    scene = render_scene(width, height, frames, seed=seed).astype(np.float32)
    graded = np.clip((scene - 128.0) * gain + 128.0 + offset, 0, 255).astype(np.uint8)
    return write_clip(path, frames=graded, fps=6, crf=20)
