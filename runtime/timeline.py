"""A video's frames as a player shows them when its timestamps leave gaps: the frame before a gap held.

A recording that lost frames (a camera or a stream that dropped them, a phone that slowed down in low light)
keeps the timestamps of the frames it has, so its frames are not evenly spaced: a player holds the frame before
each gap until the next one is due, and the viewer sees a freeze. Read frame after frame as coded, a model sees
no freeze at all, only a jump. `display_timeline` lays the frames on an even grid of display ticks, one frame
period apart, each tick showing the last frame due by then, so plans, segments and time ranges count ticks and
a model sees what the viewer sees.

The frame period is the typical spacing of the timestamps (the mean of those within half their median of it).
Each frame is due one tick after the one before, except after a gap: a spacing of more than 1.75 periods holds
the frame before it for as many ticks as the gap lasts. So timestamps that jitter move no frame off its tick,
and a stream without gaps needs no grid (None). Nor does one where more than a quarter of the frames are
followed by a gap: that is a rate of its own (frames 20 and 60 ms apart in turn), not frames lost. A gap of
`MAX_HELD_SECONDS` or more is a jump in the timestamps (a concatenated recording, a clock reset), not a stall,
and counts one tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Timestamps this far apart, or more, are a jump, not frames lost: nothing is held across them.
MAX_HELD_SECONDS = 10.0
# Spacings up to this many periods are jitter: no tick falls between the two frames. A frame dropped leaves two.
HELD_AFTER_PERIODS = 1.75
# Gaps after more than this share of the frames are no stalls but a rate of their own (frames 20 and 60 ms apart
# in turn): such a stream is read as coded.
MAX_LOST_SHARE = 0.25
# Fewer frames than this tell no rate.
MIN_FRAMES = 4


@dataclass(frozen=True)
class Timeline:
    """Display ticks ``period`` seconds apart; tick ``k`` shows coded frame ``shown[k]`` (frames counted in
    presentation order). ``gaps`` lists each stretch where frames were lost: (seconds from the first frame to the
    last one before the gap, seconds until the next frame)."""

    period: float
    shown: np.ndarray
    gaps: tuple[tuple[float, float], ...]

    @property
    def fps(self) -> float:
        return 1.0 / self.period

    @property
    def ticks(self) -> int:
        return int(self.shown.size)

    def ticks_before(self, coded_frames: int) -> int:
        """How many ticks show one of the first ``coded_frames`` frames (a stream that ended early)."""
        return int(np.searchsorted(self.shown, coded_frames, side="left"))


def is_gap(spacing, period: float):
    """Whether frames ``spacing`` seconds apart (a number or an array) leave a gap at ``period``: more than
    `HELD_AFTER_PERIODS` periods, under `MAX_HELD_SECONDS` (a jump)."""
    return (spacing > HELD_AFTER_PERIODS * period) & (spacing < MAX_HELD_SECONDS)


def gap_ticks(spacing, period: float):
    """How many ticks a gap of ``spacing`` seconds lasts at ``period``: as many as fit, at least 2 (the frame
    before it held at least once)."""
    return np.maximum(np.floor(np.asarray(spacing) / period + 0.5), 2).astype(np.int64)


def display_timeline(times: np.ndarray) -> Timeline | None:
    """The display grid of frames whose presentation times (seconds, any order) are ``times``; None when each
    tick would show its own frame (see the module's note)."""
    times = np.sort(np.asarray(times, dtype=np.float64))
    if times.size < MIN_FRAMES or not np.all(np.isfinite(times)):
        return None
    spacing = np.diff(times)
    if np.any(spacing <= 0):
        return None  # two frames at one time: the timestamps cannot be trusted to place frames
    typical = float(np.median(spacing))
    lost = is_gap(spacing, typical)
    if not lost.any() or lost.sum() > MAX_LOST_SHARE * spacing.size:
        return None
    # The mean of the spacings near the median: timestamps in whole milliseconds put a 24 fps clip's median at
    # 42 ms, its mean at 41.67.
    near = (spacing >= 0.5 * typical) & (spacing <= 1.5 * typical)
    period = float(np.mean(spacing[near]))
    # Each frame is due one tick after the one before, or after as many ticks as a gap lasts: timestamps that
    # jitter place no frame off its tick, and a jump in them counts one tick.
    steps = np.where(lost, gap_ticks(spacing, period), 1)
    due = np.concatenate(([0], np.cumsum(steps)))
    shown = np.searchsorted(due, np.arange(int(due[-1]) + 1), side="right") - 1
    gaps = tuple((round(float(times[k] - times[0]), 3), round(float(spacing[k]), 3)) for k in np.flatnonzero(lost))
    return Timeline(period=period, shown=shown.astype(np.int64), gaps=gaps)
