"""Scores over time: a video cut into consecutive segments of a few seconds, each planned as a video of its own.

One score per video hides where quality drops: a stall, a bitrate switch, a noisy scene. A segment's plan is
the plan its frames ``[start, end)`` would get as a file of their own (same frame rate, ``end - start`` frames),
shifted to the source's frame numbers, so a segment scores as that cut would: the tests check it against a
lossless cut. The pipeline samples every segment and the whole-video plan in one decode pass
(`edgevqa.feed.sample_plans`, ``streamed``), so asking for segments costs no second decode.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from .errors import PlanError
from .manifest import ViewSpec
from .sampling import SamplePlan, make_plans
from .video import VideoInfo


def check_segment_seconds(seconds: Any) -> float:
    """``seconds`` as a positive finite float, else a `PlanError` saying what was given."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise PlanError(f"segment length must be a number of seconds, got {seconds!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise PlanError(f"segment length must be a positive number of seconds, got {seconds!r}")
    return value


def segment_length(info: VideoInfo, seconds: float) -> int:
    """Frames in a segment of ``seconds`` at the stream's frame rate (half a frame rounds up, not to even)."""
    seconds = check_segment_seconds(seconds)
    if not info.fps or not math.isfinite(info.fps) or info.fps <= 0:
        raise PlanError(f"{info.path}: the stream declares no frame rate, so it cannot be cut into segments of "
                        f"{seconds:g} s")
    return max(1, int(math.floor(seconds * info.fps + 0.5)))


def segment_ranges(info: VideoInfo, seconds: float) -> list[tuple[int, int]]:
    """Consecutive frame ranges ``[start, end)`` of ``seconds`` each, covering all ``info.num_frames`` frames.

    A last piece shorter than half a segment joins the segment before it (a sliver of a few frames would be
    scored as a video of its own, mostly of repeated frames); a video shorter than one segment is one segment.
    """
    length = segment_length(info, seconds)
    total = int(info.num_frames)
    if total < 1:
        raise PlanError(f"{info.path}: video has no frames")
    starts = list(range(0, total, length))
    if len(starts) > 1 and total - starts[-1] < length / 2:
        starts.pop()
    ends = starts[1:] + [total]
    return list(zip(starts, ends))


def segment_info(info: VideoInfo, start: int, end: int) -> VideoInfo:
    """What the container of a cut holding frames ``[start, end)`` of ``info`` would say."""
    count = end - start
    return dataclasses.replace(info, num_frames=count, duration=count / info.fps)


def segment_plans(views: Sequence[ViewSpec], info: VideoInfo, start: int, end: int, seed: int | None = None,
                  mode: str = "default") -> list[SamplePlan]:
    """The plans of every view for frames ``[start, end)``, in the source's frame numbers."""
    plans = make_plans(views, segment_info(info, start, end), seed, mode)
    return [dataclasses.replace(p, frame_indices=(p.frame_indices + start).astype(np.int64)) for p in plans]


def segment_times(info: VideoInfo, start: int, end: int) -> tuple[float, float]:
    """Start and end of frames ``[start, end)`` in seconds from the first frame: frame numbers over the
    stream's frame rate, exact for a constant frame rate (segments are cut by frame count; a variable-rate
    stream's segments last what their frames last)."""
    return start / info.fps, end / info.fps
