"""Synthetic video clips made with PyAV: the README's sample clip and the test suite's media.

Scenes are rendered procedurally (moving gradients, checkerboards and discs with texture), so nothing is
downloaded and every clip is reproducible from its arguments.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Sequence

import numpy as np

from .errors import EdgeVQAError


def render_scene(width: int, height: int, num_frames: int, seed: int = 0) -> np.ndarray:
    """A moving textured scene as uint8 RGB frames ``[num_frames, height, width, 3]``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.normal(0.0, 1.0, size=(max(height // 4, 1) + 2, max(width // 4, 1) + 2)).astype(np.float32)
    texture = np.kron(texture, np.ones((4, 4), np.float32))[:height, :width] * 12.0
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        phase = t / max(num_frames, 1)
        shift = 3.0 * t
        r = 128 + 90 * np.sin(2 * np.pi * (xx + shift) / max(width, 8))
        g = 128 + 90 * np.sin(2 * np.pi * (yy - 0.5 * shift) / max(height, 8) + phase)
        checker = (((xx + shift) // max(width // 8, 2) + yy // max(height // 6, 2)) % 2) * 60
        b = 70 + checker
        cx, cy = width * (0.3 + 0.4 * phase), height * (0.5 + 0.25 * np.sin(2 * np.pi * phase))
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < (0.15 * min(width, height)) ** 2
        rgb = np.stack([r, g, b], axis=-1) + texture[..., None]
        rgb[disc] = (235, 220, 40)
        frames[t] = np.clip(rgb, 0, 255).astype(np.uint8)
    return frames


def write_clip(path: str | os.PathLike, width: int = 320, height: int = 180, num_frames: int = 50,
               fps: int | Fraction = 25, codec: str = "libx264", pix_fmt: str = "yuv420p", crf: int | None = 23,
               rotation: int = 0, frame_times: Sequence[float] | None = None, seed: int = 0,
               frames: np.ndarray | None = None, overwrite: bool = False, qp: int | None = None,
               threads: int | None = None, options: dict[str, str] | None = None) -> str:
    """Encode a clip; returns its path. ``frame_times`` (seconds) makes a variable-frame-rate clip.

    ``frames`` (uint8 RGB ``[T, H, W, 3]``) replaces the rendered scene. ``qp`` (x264/x265) replaces ``crf``
    with a constant quantiser (0: lossless at any bit depth). ``threads`` fixes the encoder's thread count (1
    for the same bits on every machine). ``options`` are more encoder options (``{"flags": "+ilme+ildct"}`` codes
    interlaced). Refuses to overwrite an existing file unless ``overwrite``.
    """
    import av

    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise EdgeVQAError(f"{path}: already exists; choose another name or remove it first")
    if frames is None:
        frames = render_scene(width, height, num_frames, seed)
    num_frames, height, width = frames.shape[:3]
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        encoder_options = dict(options or {})
        if codec in ("libx264", "libx265") and (qp is not None or crf is not None):
            rate = {"qp": str(qp)} if qp is not None else {"crf": str(crf)}
            encoder_options = {**rate, "preset": "veryfast", **encoder_options}
        if encoder_options:
            stream.options = encoder_options
        if threads is not None:
            stream.codec_context.thread_count = threads
        if rotation:
            stream.set_display_rotation(rotation)
        time_base = Fraction(1, 1000) if frame_times is not None else Fraction(1, fps)
        stream.codec_context.time_base = time_base

        def rgb_frames():
            for t in range(num_frames):
                frame = av.VideoFrame.from_ndarray(frames[t], format="rgb24")
                frame.pts = int(round(frame_times[t] * 1000)) if frame_times is not None else t
                frame.time_base = time_base
                yield frame

        _encode_all(container, stream, rgb_frames())
    return path


def write_hdr_clip(path: str | os.PathLike, frames: np.ndarray, transfer: str = "pq", fps: int = 25,
                   codec: str = "ffv1", max_cll: int | None = None, crf: int | None = None, rotation: int = 0,
                   overwrite: bool = False) -> str:
    """Encode uint8 SDR RGB ``frames`` ``[T, H, W, 3]`` as a 10-bit 4:2:0 HDR clip (`edgevqa.tonemap.sdr_to_hdr_planes`:
    BT.2020, PQ or HLG, SDR white at 203 nits) tagged as such: losslessly (FFV1 in Matroska, or libx265 in MP4,
    which can also carry a MaxCLL of ``max_cll`` nits, and a display ``rotation``), or with libx265 at ``crf``;
    returns its path."""
    import av

    from .tonemap import sdr_to_hdr_planes

    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise EdgeVQAError(f"{path}: already exists; choose another name or remove it first")
    num_frames, height, width = frames.shape[:3]
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p10le"
        context = stream.codec_context
        context.color_primaries, context.colorspace, context.color_range = 9, 9, 1  # BT.2020, limited
        context.color_trc = 16 if transfer == "pq" else 18
        if codec == "libx265":
            params = ([f"crf={crf}"] if crf is not None else ["lossless=1"]) + ["log-level=error"]
            params += [f"max-cll={max_cll},{max_cll // 4}"] if max_cll else []
            stream.options = {"x265-params": ":".join(params)}
        elif max_cll or crf is not None:
            raise EdgeVQAError("write_hdr_clip: max_cll and crf need codec libx265")
        if rotation:
            stream.set_display_rotation(rotation)
        def hdr_frames():
            for t in range(num_frames):
                frame = av.VideoFrame(width, height, "yuv420p10le")
                for plane, data in zip(frame.planes, sdr_to_hdr_planes(frames[t], transfer)):
                    rows = np.frombuffer(plane, np.uint16).reshape(plane.height, plane.line_size // 2)
                    rows[:, : data.shape[1]] = data
                frame.pts = t
                yield frame

        _encode_all(container, stream, hdr_frames())
    return path


def _encode_all(container, stream, frames) -> None:
    """Encode ``frames`` (PyAV video frames) on ``stream``, flush the encoder, and mux every packet."""
    for frame in frames:
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_sample_clip(path: str | os.PathLike, overwrite: bool = False) -> str:
    """The README's sample: 4 s of a rendered scene, 640x360 H.264 at 25 fps."""
    return write_clip(path, width=640, height=360, num_frames=100, fps=25, overwrite=overwrite)
