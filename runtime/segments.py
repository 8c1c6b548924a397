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


def check_time_range(time_range: Any) -> tuple[float, float | None] | None:
    """``time_range`` (start seconds, end seconds or None for the video's end) checked, as floats; None stays
    None. A `PlanError` says what is wrong."""
    if time_range is None:
        return None
    try:
        if isinstance(time_range, (str, bytes)):  # "12" would unpack into "1" and "2"
            raise TypeError
        start, end = time_range
        start = float(start)
        end = None if end is None else float(end)
    except (TypeError, ValueError):
        raise PlanError(f"a time range is (start, end) in seconds, end None for the video's end; got {time_range!r}"
                        ) from None
    if not math.isfinite(start) or start < 0:
        raise PlanError(f"a time range must start at 0 s or later, got {start:g}")
    if end is not None and (not math.isfinite(end) or end <= start):
        raise PlanError(f"a time range must end after its start ({start:g} s), got {end:g}")
    return start, end


def time_range_frames(info: VideoInfo, time_range: tuple[float, float | None]) -> tuple[tuple[int, int], list[str]]:
    """Frames ``[start, end)`` of ``info`` that ``time_range`` (checked) covers, by the stream's frame rate (a
    frame belongs to the range when its time, index / fps, lies in [start, end)), and notes on the range: one
    running past the video's end is cut there. A `PlanError` when no frame of the video lies in it."""
    start_s, end_s = time_range
    if not info.fps or not math.isfinite(info.fps) or info.fps <= 0:
        raise PlanError(f"{info.path}: the stream declares no frame rate, so a time range cannot be found in it")
    total = int(info.num_frames)
    first = int(math.ceil(start_s * info.fps - 1e-9))
    end = total if end_s is None else min(total, int(math.ceil(end_s * info.fps - 1e-9)))
    if first >= total:
        raise PlanError(f"{info.path}: the range starts at {start_s:g} s, after the video's end ({total} frames, "
                        f"{total / info.fps:.3f} s)")
    if end <= first:
        raise PlanError(f"{info.path}: no frame lies between {start_s:g} s and {end_s:g} s (frames are "
                        f"{1 / info.fps:.4f} s apart)")
    notes = []
    if end_s is not None and end_s * info.fps > total + 1e-9:
        notes.append(f"the range asked ends at {end_s:g} s, after the video's end ({total / info.fps:.3f} s); "
                     "scored to its end")
    return (first, end), notes


def segment_length(info: VideoInfo, seconds: float) -> int:
    """Frames in a segment of ``seconds`` at the stream's frame rate (half a frame rounds up, not to even)."""
    seconds = check_segment_seconds(seconds)
    if not info.fps or not math.isfinite(info.fps) or info.fps <= 0:
        raise PlanError(f"{info.path}: the stream declares no frame rate, so it cannot be cut into segments of "
                        f"{seconds:g} s")
    return max(1, int(math.floor(seconds * info.fps + 0.5)))


def segment_ranges(info: VideoInfo, seconds: float, frames: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Consecutive frame ranges ``[start, end)`` of ``seconds`` each, covering all ``info.num_frames`` frames
    (or the frames ``[first, end)`` of ``frames``, a time range's).

    A last piece shorter than half a segment joins the segment before it (a sliver of a few frames would be
    scored as a video of its own, mostly of repeated frames); a video shorter than one segment is one segment.
    """
    length = segment_length(info, seconds)
    first, total = (0, int(info.num_frames)) if frames is None else frames
    if total - first < 1:
        raise PlanError(f"{info.path}: video has no frames")
    starts = list(range(first, total, length))
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
    return [dataclasses.replace(p, frame_indices=(p.frame_indices + start).astype(np.int64), frames=(start, end))
            for p in plans]


def segment_times(info: VideoInfo, start: int, end: int) -> tuple[float, float]:
    """Start and end of frames ``[start, end)`` in seconds from the first frame: frame numbers over the
    stream's frame rate, exact for a constant frame rate (segments are cut by frame count; a variable-rate
    stream's segments last what their frames last)."""
    return start / info.fps, end / info.fps
