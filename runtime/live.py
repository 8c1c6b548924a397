"""Scoring a stream as it plays: consecutive segments of a few seconds, each scored as soon as its frames are in.

A live source (an RTSP or HLS URL FFmpeg opens, a pipe such as ``ffmpeg ... -f mpegts - | edgevqa watch -``,
a camera's recording) has no known length, so the whole video cannot be planned ahead as `Pipeline.score`
plans it. Here each segment of ``seconds`` is planned as a video of its own (`edgevqa.segments.segment_plans`)
when its first frame arrives, every decoded frame is sampled into the segments that use it and then released,
and a segment is scored the moment its last planned frame is sampled. Memory stays at one segment's inputs;
a segment's scores equal those of the same segment of `Pipeline(segment_seconds=...)` on the whole file.

The stream's end: a last piece of at least half a segment is scored with the missing positions repeating the
last frame (its warnings say how many, as for segments of a file); a shorter one is not scored, and
`StreamScores.unscored_frames` says how many frames it held.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterator

import numpy as np

from edgevqa import kernels

from .decode import PyAVDecoder, describe_source
from .feed import check_frame_size
from .errors import PlanError, VideoDecodeError
from .sampling import frame_region
from .scenecuts import SnippetPlacer
from .segments import check_segment_seconds, segment_length, segment_plans, segment_times


class _OpenSegment:
    """The inputs of one segment being filled: each view's buffer, and which of its positions each frame feeds."""

    def __init__(self, number: int, start: int, end: int, plans: list, dtype_of, avoid_cuts: bool = False):
        self.number, self.start, self.end, self.plans = number, start, end, plans
        self.arrays = [np.empty(p.output_shape, dtype=dtype_of(p)) for p in plans]
        # With scene cuts avoided, the placer fills its snippets' positions (`edgevqa.scenecuts`).
        placer = SnippetPlacer(plans, self.sample_into, self.arrays.__getitem__) if avoid_cuts else None
        self.placer = placer
        self.users: dict[int, list[tuple[int, int]]] = {}
        for k, plan in enumerate(plans):
            for slot, frame in enumerate(plan.frame_indices):
                if placer is None or not placer.owns(k, slot):
                    self.users.setdefault(int(frame), []).append((k, slot))
        self.filled = [np.zeros(len(p.frame_indices), dtype=bool) for p in plans]
        self.missing = sum(len(p.frame_indices) for p in plans)
        self.scored = False
        self.conversion: Any = None

    def sample_into(self, k: int, slot: int, frame: Any, out: np.ndarray | None = None) -> None:
        kernels.sample_frame(frame.planes, self.plans[k], slot, self.conversion, self.arrays[k] if out is None else out)

    def _mark(self, k: int, slot: int) -> None:
        self.filled[k][slot] = True
        self.missing -= 1

    def sample(self, frame: Any, conversion: Any) -> None:
        self.conversion = conversion
        for k, slot in self.users.get(frame.index, ()):
            self.sample_into(k, slot, frame)
            self._mark(k, slot)
        if self.placer is not None:
            for k, slot in self.placer.offer(frame):
                self._mark(k, slot)

    def repeat_last(self, frame: Any, conversion: Any) -> int:
        """Fills every position not sampled yet with ``frame`` (after the snippets still waiting for frames
        past the stream's end are decided); returns how many there were."""
        self.conversion = conversion
        if self.placer is not None:
            for k, slot in self.placer.finish():
                self._mark(k, slot)
        repeated = 0
        for k, plan in enumerate(self.plans):
            for slot in np.nonzero(~self.filled[k])[0]:
                kernels.sample_frame(frame.planes, plan, int(slot), conversion, self.arrays[k])
                repeated += 1
        self.missing = 0
        return repeated


class StreamScores:
    """Iterating yields one dict per segment as it is scored (the keys of `Result.segments`, plus
    ``scored_at``: the wall-clock time, seconds since the epoch). ``max_segments`` stops after that many.
    ``input_format`` and ``input_options`` go to FFmpeg's demuxer (`PyAVDecoder`): a raw stream of frames
    needs ``input_format='rawvideo'`` and the options ``video_size``, ``pixel_format`` and ``framerate``.

    ``reconnect`` (seconds): when the stream ends or fails after it once played, wait that long and open it
    again (a camera's stream that dropped), forever or until ``max_segments``; segment times go on from where
    the stream stopped, and each connection starts a new segment. A source that never opened is an error.
    ``on_note`` is called with each note on the stream as it arises (also kept in ``notes``)."""

    def __init__(self, pipeline: Any, source: Any, seconds: float, max_segments: int | None = None,
                 input_format: str | None = None, input_options: dict[str, str] | None = None,
                 reconnect: float | None = None, on_note: Callable[[str], None] | None = None):
        self.pipeline = pipeline
        self.source = source
        self.input_format, self.input_options = input_format, dict(input_options or {})
        self.seconds = check_segment_seconds(seconds)
        if max_segments is not None and (isinstance(max_segments, bool) or not isinstance(max_segments, int)
                                         or max_segments < 1):
            raise PlanError(f"max_segments must be a whole number of at least 1, got {max_segments!r}")
        if reconnect is not None and not (isinstance(reconnect, (int, float)) and 0 <= reconnect < math.inf):
            raise PlanError(f"reconnect must be a number of seconds of at least 0, got {reconnect!r}")
        self.max_segments = max_segments
        self.reconnect = reconnect
        self.on_note = on_note
        self.name = describe_source(source)
        self.info = None
        self.frames_decoded = 0
        self.unscored_frames = 0  # frames of last pieces too short to score
        self.connections = 0  # times the stream was opened and played
        self.scoring_seconds: list[float] = []  # per segment: inference and aggregation once its inputs are in
        self.notes: list[str] = []  # what concerns the whole stream (the view's notes, the stream's end)
        self._scored = 0

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            if self.on_note is not None:
                self.on_note(text)

    def _finished(self) -> bool:
        return bool(self.max_segments) and self._scored >= self.max_segments

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.pipeline.activate()
        self._scored = 0
        self._position = (0, 0.0)  # frames and seconds played so far, over every connection
        while True:
            try:
                yield from self._connection(self._position)
            except VideoDecodeError as exc:
                if self.reconnect is None or not self.connections:
                    raise
                self._note(str(exc))
            if self.reconnect is None or self._finished():
                return
            self._note(f"the stream stopped at {self._position[1]:.2f} s; opening it again in {self.reconnect:g} s")
            time.sleep(self.reconnect)

    def _connection(self, offset: tuple[int, float]) -> Iterator[dict[str, Any]]:
        """Plays the stream once, yielding its segments; ``offset`` is what the connections before played."""
        pipeline = self.pipeline
        with pipeline.open_decoder(self.source, None, live=True, input_format=self.input_format,
                                   input_options=self.input_options) as decoder:
            self.name, info = decoder.name, decoder.info
            self.info = info
            self.connections += 1
            length = segment_length(info, self.seconds)
            views = pipeline.views_for(info)
            avoid_cuts = pipeline.scene_cuts == "avoid"

            def open_segment(number: int) -> _OpenSegment:
                start = number * length
                plans = segment_plans(views, info, start, start + length, pipeline.seed, pipeline.plan_mode)
                return _OpenSegment(number, start, start + length, plans, self._dtype, avoid_cuts=avoid_cuts)

            segments_open = {0: open_segment(0)}  # this segment's and the next's
            first_plans = segments_open[0].plans

            def segment_of(number: int) -> _OpenSegment:
                """The segment ``number``, made when the decoder first asks for one of its frames' regions."""
                if number not in segments_open:
                    for old in [n for n in segments_open if n < number - 1]:
                        del segments_open[old]
                    segments_open[number] = open_segment(number)
                return segments_open[number]

            def region(index: int) -> tuple[np.ndarray, np.ndarray]:
                """What the plans of frame ``index``'s segment read of it: an HDR frame is mapped only there
                (none of most frames of a stream, every one of which is decoded)."""
                segment = segment_of(index // length)
                uses = [(segment.plans[k], slot) for k, slot in segment.users.get(index, ())]
                return frame_region(uses + (segment.placer.region_uses(index) if segment.placer else []))

            decoder.regions = region
            picture_notes = info.picture_notes(pipeline.deinterlace, pipeline.tone_map)
            for note in picture_notes + [n for p in first_plans for n in p.notes]:
                self._note(note)
            conversion = None
            current: _OpenSegment | None = None
            last_frame = None
            damage_seen = 0
            changes_said = gaps_said = 0
            for frame in decoder.frames(None):
                self.frames_decoded += 1
                check_frame_size(self.name, frame, info)
                if conversion is None:
                    conversion = kernels.conversion_for_frame(frame)
                number = frame.index // length
                if current is None or current.number != number:
                    # Frames are numbered in decode order with no gaps, so the segment before is complete and
                    # scored by now: its plans read only its own frames.
                    current = segment_of(number)
                current.sample(frame, conversion)
                last_frame = frame
                self._position = (offset[0] + frame.index + 1, offset[1] + (frame.index + 1) / info.fps)
                if len(decoder.live_gaps) > gaps_said:
                    for gap_at, gap in decoder.live_gaps[gaps_said:]:
                        self._note(f"frames are missing from the stream: {gap:.2f} s after {offset[1] + gap_at:.2f} "
                                   "s; read as a player shows it, the frame before the gap held until the next is "
                                   "due, so the model sees the freeze a viewer does")
                    gaps_said = len(decoder.live_gaps)
                if len(decoder.format_changes) + len(decoder.size_changes) > changes_said:
                    self._say_changes(decoder, offset[0], info)
                    changes_said = len(decoder.format_changes) + len(decoder.size_changes)
                if current.missing == 0 and not current.scored:
                    yield self._score(current, 0, decoder.corrupt_packets - damage_seen, offset)
                    damage_seen = decoder.corrupt_packets
                    current.scored = True
                    self._scored += 1
                    if self._finished():
                        return
            if last_frame is None:
                raise VideoDecodeError(f"{self.name}: no frame could be decoded")
            played = last_frame.index + 1
            if current is not None and not current.scored:
                held = played - current.start
                if held * 2 >= length:
                    current.end = played
                    whole = last_frame.whole() if getattr(last_frame, "whole", None) is not None else last_frame
                    repeated = current.repeat_last(whole, conversion)  # other positions than its own: all of it
                    yield self._score(current, repeated, decoder.corrupt_packets - damage_seen, offset)
                    self._scored += 1
                else:
                    self.unscored_frames += held
                    self._note(f"the stream ended {held} frame(s) into a segment of {length}: too short to score "
                               "(under half a segment)")
            if decoder.decode_error:
                self._note(decoder.decode_error)

    def _say_changes(self, decoder: PyAVDecoder, offset: int, info: Any) -> None:
        """A note for each change of pixel format or frame size the decoder met (`_note` says each once)."""
        first_size = f"{info.width}x{info.height}" if info.rotation in (0, 180) else f"{info.height}x{info.width}"
        for what, changes, first, done in (("pixel format", decoder.format_changes, info.pix_fmt, "converted to it"),
                                           ("coded frame size", decoder.size_changes, first_size,
                                            "scaled to it (bicubic), as a player shows them")):
            for at, value in changes:
                self._note(f"from frame {offset + at} the {what} is {value} (the stream started as {first}); "
                           + (f"such frames are {done}" if value != first else "as it was"))

    def _dtype(self, plan: Any) -> np.dtype:
        return np.dtype(plan.view.dtype)

    def _score(self, segment: _OpenSegment, repeated: int, damaged_packets: int,
               offset: tuple[int, float]) -> dict[str, Any]:
        started = time.perf_counter()
        pipeline, info = self.pipeline, self.info
        start, end = segment.start, segment.end
        feed = {plan.view.name: array for plan, array in zip(segment.plans, segment.arrays)}
        scores, _ = pipeline._aggregate(pipeline._infer(feed), f"{self.name} [frames {start}-{end - 1}]")
        warnings = [n for p in segment.plans for n in p.notes if n not in self.notes]
        if repeated:
            warnings.append(f"the stream ended before this segment's last frame; {repeated} sampled frame(s) "
                            "repeat the last decoded one")
        if damaged_packets:
            warnings.append(f"{damaged_packets} damaged packet(s) skipped while this segment was decoded; the score "
                            "reflects the damage")
        start_s, end_s = segment_times(info, start, end)
        self.scoring_seconds.append(time.perf_counter() - started)
        frames, seconds = offset  # counted from the first connection's first frame
        return {"start_frame": frames + start, "end_frame": frames + end, "start_s": seconds + start_s,
                "end_s": seconds + end_s, "scores": scores, "warnings": warnings, "scored_at": time.time()}
