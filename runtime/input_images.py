"""What a model saw, as pictures: a view's input tensor turned back into 8-bit RGB and written as PNG.

A score that surprises (an upscaled clip, combing, a colour cast) is easiest judged by looking at the
fragments or frames the model was given. Each clip of a view becomes one image, its frames side by side
left to right in time, separated by a dark gap. PNG is written with the standard library (zlib), so this
needs nothing beyond the base dependencies.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from .manifest import ViewSpec

GAP = 4  # px between frames
GAP_VALUE = 32  # dark grey: stands apart from black fragments


def clip_pictures(array: np.ndarray, view: ViewSpec) -> list[np.ndarray]:
    """One ``[H, T*W + (T-1)*GAP, 3]`` uint8 picture per clip of ``array`` (the view's model input: normalised,
    ``view.layout``), the normalisation undone and rounded."""
    if array.ndim != 5:
        raise ValueError(f"view {view.name!r}: expected a 5-D input, got shape {array.shape}")
    clips = array if view.layout == "NCTHW" else array.transpose(0, 2, 1, 3, 4)  # -> N, C, T, H, W
    mean = np.asarray(view.mean, np.float32)[:, None, None, None]
    std = np.asarray(view.std, np.float32)[:, None, None, None]
    pictures = []
    for clip in clips:
        rgb = np.clip(np.rint(clip.astype(np.float32) * std + mean), 0, 255).astype(np.uint8)  # C, T, H, W
        channels, frames, height, width = rgb.shape
        picture = np.full((height, frames * width + (frames - 1) * GAP, 3), GAP_VALUE, np.uint8)
        for t in range(frames):
            left = t * (width + GAP)
            picture[:, left:left + width] = rgb[:, t].transpose(1, 2, 0)
        pictures.append(picture)
    return pictures


def png_bytes(picture: np.ndarray) -> bytes:
    """A ``[H, W, 3]`` uint8 picture as an 8-bit RGB PNG file."""
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
        raise ValueError(f"expected a [H, W, 3] uint8 picture, got {picture.shape} {picture.dtype}")
    height, width = picture.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), picture.reshape(height, width * 3)], axis=1)  # filter 0

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, truecolour, deflate, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))
